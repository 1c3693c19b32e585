"""The composite transforms of the Ego-ExoClip build; each `expand()` only wires labelled steps.

    ReadTakes      takes.json + splits.json -> probed takes (views on disk, frame counts), excluded takes
    ReadNarrations atomic_descriptions_<split>.json -> narrations, dropped descriptions, description counts
    PlanClips      takes x narrations -> checked narrations -> alpha (global combine) -> window/frame plans
    AssignShards   plans -> shard plans (deterministic membership, decided before any decoding)
    WriteShards    shard plans -> shards written (complete shards skipped: resume), pipeline.core.transforms

Every composite returns a dict of PCollections including `failures` (plan.Failure records).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.pvalue import AsDict, AsSingleton

from pipeline.core.transforms import FAILURES
from pipeline.egoexoclip import transforms as T
from pipeline.egoexoclip.release import NarrationFilters
from pipeline.egoexoclip.windows import FrameOffsets, WindowRule


class ReadTakes(beam.PTransform):
    def __init__(
        self,
        root: str,
        resolution: str,
        splits: tuple[str, ...],
        probe_timeout_s: float,
        trust_symlinks: bool = False,
    ):
        super().__init__()
        self.root, self.resolution, self.splits = root, resolution, splits
        self.probe_timeout_s, self.trust_symlinks = probe_timeout_s, trust_symlinks

    def expand(self, p):
        split_of = (
            p
            | "SplitsPath" >> beam.Create([f"{self.root}/annotations/splits.json"])
            | "ReadSplits" >> beam.ParDo(T.ReadSplitsFn()).with_outputs(FAILURES, main="splits")
        )
        records = (
            p
            | "TakesPath" >> beam.Create([f"{self.root}/takes.json"])
            | "ReadTakeRecords"
            >> beam.ParDo(T.ReadTakeRecordsFn()).with_outputs(FAILURES, T.EXCLUDED, main="records")
        )
        parsed = (
            records.records
            | "SpreadTakes" >> beam.Reshuffle()
            | "ParseTakes"
            >> beam.ParDo(
                T.ParseTakeFn(self.root, self.resolution, self.splits, self.trust_symlinks),
                split_of=AsDict(split_of.splits),
            ).with_outputs(FAILURES, T.EXCLUDED, main="takes")
        )
        probed = parsed.takes | "ProbeViews" >> beam.ParDo(T.ProbeViewsFn(self.probe_timeout_s)).with_outputs(
            FAILURES, T.EXCLUDED, main="takes"
        )
        return {
            "takes": probed.takes,
            "excluded": (records[T.EXCLUDED], parsed[T.EXCLUDED], probed[T.EXCLUDED])
            | "AllExcluded" >> beam.Flatten(),
            "failures": (split_of[FAILURES], records[FAILURES], parsed[FAILURES], probed[FAILURES])
            | "TakeFailures" >> beam.Flatten(),
        }


class ReadNarrations(beam.PTransform):
    def __init__(self, root: str, splits: tuple[str, ...], filters: NarrationFilters):
        super().__init__()
        self.root, self.splits, self.filters = root, splits, filters

    def expand(self, p):
        # the test split has no atomic descriptions in the release
        paths = [
            (f"{self.root}/annotations/atomic_descriptions_{s}.json", s) for s in self.splits if s != "test"
        ]
        passes = (
            p
            | "DescriptionPaths" >> beam.Create(paths)
            | "ReadDescriptions" >> beam.ParDo(T.ReadDescriptionsFn()).with_outputs(FAILURES, main="passes")
        )
        parsed = (
            passes.passes
            | "SpreadDescriptions" >> beam.Reshuffle()
            | "ParseDescriptions"
            >> beam.ParDo(T.ParseDescriptionsFn(self.filters)).with_outputs(
                FAILURES, T.COUNTS, T.DROPPED, main="narrations"
            )
        )
        return {
            "narrations": parsed.narrations,
            "dropped": parsed[T.DROPPED],
            "counts": parsed[T.COUNTS],
            "failures": (passes[FAILURES], parsed[FAILURES]) | "NarrationFailures" >> beam.Flatten(),
        }


class PlanClips(beam.PTransform):
    """Input: {"takes", "excluded", "narrations", "dropped"} keyed by take_uid."""

    def __init__(self, rule: WindowRule, offsets: FrameOffsets):
        super().__init__()
        self.rule, self.offsets = rule, offsets

    def expand(self, inputs):
        joined = (
            {
                "take": inputs["takes"],
                "excluded": inputs["excluded"],
                "narrations": inputs["narrations"],
                "dropped": inputs["dropped"],
            }
            | "GroupByTake" >> beam.CoGroupByKey()
            | "JoinNarrations"
            >> beam.ParDo(T.JoinNarrationsFn(self.offsets)).with_outputs(FAILURES, main="bundles")
        )
        alpha = (
            joined.bundles
            | "Betas" >> beam.Map(lambda kv: kv[1][3])
            | "Alpha" >> beam.CombineGlobally(T.AlphaFn())
        )
        planned = joined.bundles | "PlanWindows" >> beam.ParDo(
            T.PlanTakeFn(self.rule, self.offsets), alpha=AsSingleton(alpha)
        ).with_outputs(FAILURES, main="plans")
        return {
            "plans": planned.plans,
            "alpha": alpha,
            "failures": (joined[FAILURES], planned[FAILURES]) | "PlanFailures" >> beam.Flatten(),
        }


class AssignShards(beam.PTransform):
    """(take_uid, TakePlan) -> ShardPlan; a take's samples stay in one shard, takes in name order per split."""

    def __init__(
        self, layout: str, max_samples: int, max_bytes: int, bytes_per_frame: int, content_options: dict
    ):
        super().__init__()
        self.layout, self.max_samples, self.max_bytes = layout, max_samples, max_bytes
        self.bytes_per_frame, self.content_options = bytes_per_frame, content_options

    def expand(self, plans):
        assignments = (
            plans
            | "Summaries" >> beam.Map(lambda kv: T.plan_summary(kv[1], self.layout, self.bytes_per_frame))
            | "GroupBySplit" >> beam.GroupByKey()
            | "AssignTakes" >> beam.ParDo(T.AssignShardsFn(self.max_samples, self.max_bytes))
        )
        return (
            {"plan": plans, "shard": assignments}
            | "JoinAssignments" >> beam.CoGroupByKey()
            | "KeyByShard" >> beam.Map(T.key_by_shard)
            | "GroupByShard" >> beam.GroupByKey()
            | "MakeShardPlans" >> beam.ParDo(T.MakeShardPlanFn(self.content_options))
        )
