"""The composite transforms of the EgoBench build; each `expand()` only wires labelled steps.

    ReadBenchmarks   (pipeline.core ReadSources) specs -> (source key, (item, k)) per clip k of each item
    PlanVideos       per source video (or image sequence): probed once, clips -> frame ranges
    AssembleItems    per item: all of its clips planned -> (task, PlannedItem), else one item failure
    AssignShards     (pipeline.core) per task: items -> decode groups -> shard plans (T.AssignShardsFn)
    CutStagedSources multi-clip tasks (EgoMCQ): each source of an incomplete shard decoded once, clips staged
    WriteShards, Finalize   (pipeline.core) shards with resume, stats.json and the sentence sets

Every composite returns a dict of PCollections including `failures` (plan.BenchFailure records).
"""

from __future__ import annotations

import apache_beam as beam

from pipeline.core.composites import FnStep
from pipeline.egobench import transforms as T


def PlanVideos(roots: dict[str, str], probe_timeout_s: float, image_fps: float) -> FnStep:
    """((benchmark, path, frames), (item, k)) -> ((benchmark, task, id), (k, item, ClipPlan | failure))."""
    return FnStep(T.PlanVideoFn(roots, probe_timeout_s, image_fps), "clips", before="group")


def AssembleItems(longest_member: int) -> FnStep:
    """Planned clips -> (task, PlannedItem) per item whose clips all exist, else one item failure."""
    return FnStep(T.AssembleItemFn(longest_member), "items", before="group")


class CutStagedSources(beam.PTransform):
    """ShardPlans -> (task, source path) for every source staged for the incomplete staged (multi-clip)
    shards."""

    def __init__(self, out: str, fmt, overwrite: bool):
        super().__init__()
        self.out, self.fmt, self.overwrite = out, fmt, overwrite

    def expand(self, plans):
        return (
            plans
            | "StagedPlans" >> beam.Filter(lambda s: s.staged)
            | "SourcesToStage" >> beam.ParDo(T.StagedSourcesFn(self.out, self.overwrite))
            | "GroupByStagedSource" >> beam.GroupByKey()
            | "CutSources" >> beam.ParDo(T.CutSourceFn(self.out, self.fmt))
        )
