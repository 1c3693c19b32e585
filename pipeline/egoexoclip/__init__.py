"""Ego-ExoClip: an Ego-Exo4D download -> synchronized (narration, ego clip, exo clip) WebDataset shards.

    release.py, windows.py   reading the release; the EgoClip window rule and per-camera frame offsets
    plan.py                  the build plan (windows -> frame ranges per view -> samples), failures
    samples.py, writer.py    the sample format; a take as one group of the core's shard writer
    transforms.py, composites.py, build.py, cli.py   the Beam job and its command line
    finalize.py              stats.json on top of the core's dataset files
    sample_release.py, bench.py   the bundled sample release; `make bench`
"""

from pipeline.egoexoclip.build import BuildConfig, build_pipeline, run
from pipeline.egoexoclip.cli import engine_args, main, parse_args

__all__ = ["BuildConfig", "build_pipeline", "engine_args", "main", "parse_args", "run"]
