"""The composite transforms of the EgoClip build; each `expand()` only wires labelled steps.

    ReadClipRows   the csv path -> ClipRows, row failures, the row count
    PlanVideos     per Ego4D video: found under the root, probed once, rows -> frame ranges
    AssignShards, WriteShards, Finalize   (pipeline.core) shard plans per split, shards with resume, stats

ReadClipRows and PlanVideos return dicts of PCollections including `failures` (rows.ClipFailure records).
"""

from __future__ import annotations

from pipeline.core.composites import FnStep, ReadSources
from pipeline.egoclip import transforms as T


def ReadClipRows(csv_path: str) -> ReadSources:
    """The csv path -> {"rows": ClipRows, "failures": row failures, "counts": [("rows", n)]}."""
    return ReadSources([csv_path], T.ReadRowsFn(), main="rows")


def PlanVideos(root: str, probe_timeout_s: float, val_fraction: float, seed: int) -> FnStep:
    """ClipRows -> one VideoPlan per usable video (located under the Ego4D root, probed once), failures."""
    return FnStep(T.PlanVideoFn(root, probe_timeout_s, val_fraction, seed), "plans", before="group",
                  key=T.key_by_video)  # fmt: skip
