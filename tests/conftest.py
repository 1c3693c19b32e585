"""Shared fixtures: the bundled sample release and a build of it, made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.egoexoclip import BuildConfig, run
from tools.samples.egoexoclip import generate_release

# The real annotation files of the source datasets (../shared/real beside the checkout; see its SOURCES.md).
# Tests that read them skip where the folder is absent (e.g. a clone outside the workspace).
SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
needs_real = pytest.mark.skipif(not SHARED_REAL.exists(), reason="../shared/real not present")

# Small shards so that the bundled build has several per split (resume and wids tests need that).
SHARD_SAMPLES = 40


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> str:
    return str(generate_release(tmp_path_factory.mktemp("release")))


def build(root: str, out, **over) -> dict:
    cfg = BuildConfig(root=root, out=str(out), max_samples_per_shard=SHARD_SAMPLES, **over)
    return run(cfg, [])


@pytest.fixture(scope="session")
def bundled_build(sample_root, tmp_path_factory):
    """(output dir, stats) of a default build of the sample release."""
    out = tmp_path_factory.mktemp("build")
    stats = build(sample_root, out)
    return out, stats


# ----------------------------------------------------------------------------------------------- EgoIT


@pytest.fixture(scope="session")
def egoit_sample(tmp_path_factory) -> Path:
    from tools.samples.egoit import generate_sample

    return generate_sample(tmp_path_factory.mktemp("egoit_sample"))


def build_egoit(sample: Path, out, *extra: str) -> dict:
    """The EgoIT CLI on the bundled mini-release (its egoit.yaml); returns stats.json."""
    import json

    from pipeline.egoit import main

    assert main(["--config", str(sample / "egoit.yaml"), "--out", str(out), *extra]) == 0
    return json.loads((Path(out) / "stats.json").read_text())


@pytest.fixture(scope="session")
def egoit_build(egoit_sample, tmp_path_factory):
    """(output dir, stats) of a default (mp4) EgoIT build of the mini-release."""
    out = tmp_path_factory.mktemp("egoit_build")
    return out, build_egoit(egoit_sample, out)


# ----------------------------------------------------------------------------------------------- EgoClip


@pytest.fixture(scope="session")
def egoclip_sample(tmp_path_factory) -> Path:
    """The bundled EgoClip sample (tools/samples/egoclip.py): egoclip.csv and an Ego4D-style video root."""
    from tools.samples import egoclip as SR

    return SR.generate_sample(tmp_path_factory.mktemp("egoclip_sample"))


def egoclip_inputs(sample: Path) -> list[str]:
    """--csv and --ego4d-root of the bundled EgoClip sample."""
    from tools.samples import egoclip as SR

    return ["--csv", str(sample / SR.CSV_NAME), "--ego4d-root", str(sample / SR.VIDEO_ROOT)]


@pytest.fixture(scope="session")
def egoclip_build(egoclip_sample, tmp_path_factory):
    """(output dir, stats) of the bundled EgoClip sample's build (the initialisation stage's data)."""
    import json

    from pipeline.egoclip import main

    out = tmp_path_factory.mktemp("egoclip_build")
    assert main([*egoclip_inputs(egoclip_sample), "--out", str(out)]) == 0
    return out, json.loads((out / "stats.json").read_text())


# ----------------------------------------------------------------------------------------------- EgoBench


@pytest.fixture(scope="session")
def egobench_sample(tmp_path_factory) -> Path:
    """The bundled EgoBench mini-benchmark (tools/samples/egobench.py): its egobench.yaml, the annotation
    rows of all 11 tasks, stamped videos and stamp_codes.json."""
    from tools.samples.egobench import generate_sample

    return generate_sample(tmp_path_factory.mktemp("egobench_sample"))


def build_egobench(sample: Path, out, *extra: str) -> dict:
    """The EgoBench CLI on the bundled mini-benchmark (its egobench.yaml); returns stats.json."""
    import json

    from pipeline.egobench.builder import main

    assert main(["--config", str(sample / "egobench.yaml"), "--out", str(out), *extra]) == 0
    return json.loads((Path(out) / "stats.json").read_text())


@pytest.fixture(scope="session")
def egobench_build(egobench_sample, tmp_path_factory):
    """(output dir, stats) of a default (mp4) EgoBench build of the mini-benchmark: egobench-<task>-NNNNNN.tar,
    epic_mir_sentences.json, manifest.parquet, stats.json, errors.jsonl, egobench-<task>.wids.json."""
    out = tmp_path_factory.mktemp("egobench_build")
    return out, build_egobench(egobench_sample, out)
