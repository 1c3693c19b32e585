"""Ego-ExoClip: an Ego-Exo4D download -> synchronized (narration, ego clip, exo clip) WebDataset shards.

    release.py, windows.py   reading the release; the EgoClip window rule and per-camera frame offsets
    plan.py                  the build plan (windows -> frame ranges per view -> samples), failures
    samples.py, writer.py    the sample format; a take as one group of the core's shard writer
    transforms.py, composites.py, build.py   the Beam job and the checks of its inputs
    builder.py               the dataset on the core's skeleton (pipeline/core/builder.py): options, `main`
    finalize.py              stats.json on top of the core's dataset files

The bundled sample release, the bench and the report live apart, in tools/ (samples/egoexoclip.py, bench/,
report.py).
"""

from pipeline.egoexoclip.build import BuildConfig, build_pipeline
from pipeline.egoexoclip.builder import BUILDER, main, parse_args, run

__all__ = ["BUILDER", "BuildConfig", "build_pipeline", "main", "parse_args", "run"]
