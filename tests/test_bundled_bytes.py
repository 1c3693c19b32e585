"""The bundled EgoIT, EgoBench and EgoClip builds keep their bytes across the move onto one skeleton, and every
engine gives the same bytes.

tests/data/bundled_digests.json holds the sha256 of every file of each bundled build (default mp4, and
`--frames 4 --size 64`), recorded at commit fe729dc before the builders were put on the core's skeleton
(issue 16). Ego-ExoClip's digests are pinned by tests/test_layout.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import egoclip_inputs

RECORDED = json.loads((Path(__file__).parent / "data" / "bundled_digests.json").read_text())["builds"]


def errors_digest(path: Path, sample: Path) -> str:
    """errors.jsonl names files under the sample folder and ends ffmpeg's messages (detail) by length: its
    lines are compared with the folder written <SAMPLE> and without detail."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        d.pop("detail", None)
        rows.append(json.dumps({k: v.replace(str(sample), "<SAMPLE>") if isinstance(v, str) else v
                                for k, v in d.items()}, sort_keys=True))  # fmt: skip
    return "normalized:" + hashlib.sha256("\n".join(rows).encode()).hexdigest()


def digests(out: Path, sample: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): errors_digest(p, sample)
        if p.name == "errors.jsonl"
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def inputs_of(builder: str, request) -> tuple[Path, list[str]]:
    """(the bundled sample's folder, the command line's input options)."""
    sample = request.getfixturevalue(f"{builder}_sample")
    if builder == "egoclip":
        return sample, egoclip_inputs(sample)
    return sample, ["--config", str(sample / f"{builder}.yaml")]


def main_of(builder: str):
    import importlib

    return importlib.import_module(f"pipeline.{builder}.builder").main


@pytest.mark.parametrize("build", ["egoit", "egobench", "egoclip"])
def test_default_build_bytes_unchanged(request, build):
    """The session's default builds (conftest) are the recorded bytes, file for file."""
    out, _ = request.getfixturevalue(f"{build}_build")
    sample, _ = inputs_of(build, request)
    assert digests(out, sample) == RECORDED[build]["sha256"]


@pytest.mark.parametrize("build", ["egoit-frames", "egobench-frames", "egoclip-frames"])
def test_frames_build_bytes_unchanged(request, tmp_path, build):
    recorded = RECORDED[build]
    sample, inputs = inputs_of(recorded["builder"], request)
    argv = [*inputs, "--out", str(tmp_path / "out"), *recorded["args"], "--quiet"]
    assert main_of(recorded["builder"])(argv) == 0
    assert digests(tmp_path / "out", sample) == recorded["sha256"]


@pytest.mark.parametrize("builder", ["egoit", "egobench", "egoclip"])
def test_dask_runner_gives_the_direct_bytes(request, tmp_path, builder):
    """A local Dask cluster of 2 worker processes builds the same files, byte for byte, as the DirectRunner."""
    out = tmp_path / "out"
    sample, inputs = inputs_of(builder, request)
    argv = [*inputs, "--out", str(out), "--runner", "dask", "--workers", "2", "--quiet"]
    assert main_of(builder)(argv) == 0
    assert digests(out, sample) == RECORDED[builder]["sha256"]
