"""The composite transforms of the EgoClip build; each `expand()` only wires labelled steps.

    ReadClipRows   the csv path -> ClipRows, row failures, the row count
    PlanVideos     per Ego4D video: found under the root, probed once, rows -> frame ranges
    AssignShards, WriteShards, Finalize   (pipeline.core) shard plans per split, shards with resume, stats

ReadClipRows and PlanVideos return dicts of PCollections including `failures` (rows.ClipFailure records).
"""

from __future__ import annotations

import apache_beam as beam

from pipeline.core.transforms import FAILURES
from pipeline.egoclip import transforms as T


class ReadClipRows(beam.PTransform):
    def __init__(self, csv_path: str):
        super().__init__()
        self.csv_path = csv_path

    def expand(self, p):
        read = (
            p
            | "CsvPath" >> beam.Create([self.csv_path])
            | "ReadRows" >> beam.ParDo(T.ReadRowsFn()).with_outputs(FAILURES, T.COUNTS, main="rows")
        )
        return {"rows": read.rows, "failures": read[FAILURES], "counts": read[T.COUNTS]}


class PlanVideos(beam.PTransform):
    """ClipRows -> one VideoPlan per usable video."""

    def __init__(self, root: str, probe_timeout_s: float, val_fraction: float, seed: int):
        super().__init__()
        self.root, self.probe_timeout_s, self.val_fraction, self.seed = (
            root,
            probe_timeout_s,
            val_fraction,
            seed,
        )

    def expand(self, rows):
        planned = (
            rows
            | "KeyByVideo" >> beam.Map(T.key_by_video)
            | "GroupByVideo" >> beam.GroupByKey()
            | "LocateProbeAndPlan"
            >> beam.ParDo(
                T.PlanVideoFn(self.root, self.probe_timeout_s, self.val_fraction, self.seed)
            ).with_outputs(FAILURES, main="plans")
        )
        return {"plans": planned.plans, "failures": planned[FAILURES]}
