"""EgoClip: (ego clip, caption) pairs from EgoVLP's egoclip.csv over Ego4D full-scale videos, built by Beam: the
data of the initialisation stage (ego encoder + connector trained on clip-text pairs, LLM frozen).

    rows.py                  egoclip.csv -> ClipRow | ClipFailure (every row, with its reason)
    plan.py                  videos under the Ego4D root, frame windows, shard plans and fingerprints
    samples.py, writer.py    rows -> samples (ego clip, txt, json) in the core's shards, one decode per video
    transforms.py, composites.py, build.py, finalize.py   the Beam job, stats.json
    builder.py               the dataset on the core's skeleton (pipeline/core/builder.py): options, `main`
"""

from pipeline.egoclip.builder import BUILDER, main, parse_args, run

__all__ = ["BUILDER", "main", "parse_args", "run"]
