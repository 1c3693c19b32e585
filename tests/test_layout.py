"""The bundled Ego-ExoClip build's bytes are pinned: the split of pipeline/ into core + per-dataset packages
changed none of them, and nothing may change them unnoticed.

tests/data/egoexoclip_digests.json holds the sha256 of the bundled build's shards and manifests: recorded before
the move (commit 1c34a24) and reproduced by it, then updated once on purpose (see its _comment: rejected
narrations no longer feed alpha). The same options must give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.egoexoclip import main

RECORDED = json.loads((Path(__file__).parent / "data" / "egoexoclip_digests.json").read_text())["builds"]


@pytest.mark.parametrize("build", sorted(RECORDED))
def test_bundled_build_bytes_unchanged_by_the_move(sample_root, tmp_path, build):
    recorded = RECORDED[build]
    out = tmp_path / build
    assert main(["--root", sample_root, "--out", str(out), *recorded["args"]]) == 0
    got = {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in recorded["sha256"]}
    assert got == recorded["sha256"]
    assert sorted(p.name for p in out.glob("*.tar")) == sorted(n for n in recorded["sha256"] if n.endswith(".tar"))


def test_packages_are_split_by_role():
    import pipeline.core.clips
    import pipeline.core.writer
    import pipeline.egoexoclip.writer

    # the core knows no dataset: nothing in pipeline/core imports a dataset package
    core = Path(pipeline.core.writer.__file__).parent
    for path in core.rglob("*.py"):
        text = path.read_text()
        for pkg in ("egoexoclip", "egoit", "egobench", "egoclip"):
            for stmt in (f"from pipeline.{pkg}", f"import pipeline.{pkg}", f"from pipeline import {pkg}"):
                assert stmt not in text, f"{path} imports pipeline.{pkg}"
    assert pipeline.egoexoclip.writer.write_shard is pipeline.core.writer.write_shard
