"""Shared fixtures: the bundled sample release and a build of it, made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.egoexoclip import BuildConfig, run
from pipeline.egoexoclip.sample_release import generate_release

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
