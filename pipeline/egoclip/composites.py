"""The composite transforms of the EgoClip build; each `expand()` only wires labelled steps.

    ReadClipRows   the csv path -> ClipRows, row failures, the row count
    PlanVideos     per Ego4D video: found under the root, probed once, rows -> frame ranges
    AssignShards   per split: videos in hash order -> shard plans (decided before any decoding)
    WriteShards    (pipeline.core.transforms) shard plans -> shards (complete shards skipped)

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


class AssignShards(beam.PTransform):
    """VideoPlans -> ShardPlans per split; a video's clips stay in one shard."""

    def __init__(self, assign_fn: beam.DoFn):
        super().__init__()
        self.assign_fn = assign_fn

    def expand(self, plans):
        return (
            plans
            | "BySplit" >> beam.Map(lambda v: (v.split, v))
            | "GroupBySplit" >> beam.GroupByKey()
            | "AssignVideos" >> beam.ParDo(self.assign_fn)
        )
