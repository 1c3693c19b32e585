"""Shared fixtures: the bundled sample release and a build of it, made once per test session."""

from __future__ import annotations

import pytest

from pipeline.egoexoclip import BuildConfig, run
from pipeline.sample_release import generate_release

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
