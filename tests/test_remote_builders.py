"""Every source root of every builder may be remote (gs://, s3://, http(s):// on a cluster): annotations are
read, folders listed, videos probed and image sequences decoded through Beam's filesystem layer. Here the
bundled samples sit behind `fakeremote://` (tests/test_remote_inputs.py: a scheme only Beam can open) and each
build gives the local build's bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.test_bundled_bytes import RECORDED, digests, main_of
from tests.test_remote_inputs import SCHEME

PATH_KEYS = ("root", "annotations", "videos")


def remote(path: Path) -> str:
    return f"{SCHEME}://{path}"


def remote_config(sample: Path, name: str, key: str, tmp_path: Path) -> Path:
    """The sample's YAML config with every root, annotation and video path made absolute and remote."""
    raw = yaml.safe_load((sample / f"{name}.yaml").read_text())
    for entry in raw[key].values():
        for k in PATH_KEYS:
            if k in entry:
                entry[k] = remote(sample / entry[k])
    path = tmp_path / f"{name}-remote.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(("name", "key"), [("egoit", "sources"), ("egobench", "benchmarks"), ("egoclip", None)])
def test_build_from_remote_roots_gives_the_local_bytes(request, tmp_path, name, key):
    sample = request.getfixturevalue(f"{name}_sample")
    if key is None:
        from tools.samples import egoclip as SR

        inputs = ["--csv", remote(sample / SR.CSV_NAME), "--ego4d-root", remote(sample / SR.VIDEO_ROOT)]
    else:
        inputs = ["--config", str(remote_config(sample, name, key, tmp_path))]
    out = tmp_path / "out"
    assert main_of(name)([*inputs, "--out", str(out), "--quiet"]) == 0
    got, recorded = digests(out, sample), RECORDED[name]["sha256"]
    assert {k: v for k, v in got.items() if k != "errors.jsonl"} == {
        k: v for k, v in recorded.items() if k != "errors.jsonl"
    }
    # the same losses, each naming the remote file
    lines = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    files = [f["file"] for f in lines if f.get("file")]
    assert files and all(f.startswith(f"{SCHEME}://") for f in files if str(sample) in f)
    errors = tmp_path / "errors-local.jsonl"
    errors.write_text((out / "errors.jsonl").read_text().replace(f"{SCHEME}://", ""))
    from tests.test_bundled_bytes import errors_digest

    assert errors_digest(errors, sample) == recorded["errors.jsonl"]
