"""The composite transforms of the EgoIT build; each `expand()` only wires labelled steps.

    ReadSources          (pipeline.core) source specs -> SourceRecords (T.ReadSourceFn), row failures, counts
    ConvertItems         records -> first-person EgoITItems (templates, VideoLLaMA2 conversations)
    RemoveNearDuplicates per (source, video): sentence-embedding near duplicates dropped (reported)
    MixSources           per-source ratios and caps by item hash (dropped items reported)
    PlanVideos           per source video: probed once, items -> frame ranges
    AssignShards, WriteShards, Finalize   (pipeline.core) shard plans per split, shards and clip files with
                         resume, stats.json and egoit.json

Every composite returns a dict of PCollections including `failures` (plan.ItemFailure records) and `counts`
((source, stage, task), n) for the stats.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.pvalue import AsDict

from pipeline.core.transforms import FAILURES
from pipeline.egoit import mix
from pipeline.egoit import transforms as T


def _outputs(result, main: str) -> dict:
    return {main: result[main], "failures": result[FAILURES], "counts": result[T.COUNTS]}


class ConvertItems(beam.PTransform):
    def __init__(self, templates_path: str | None, val_fraction: float, seed: int):
        super().__init__()
        self.templates_path, self.val_fraction, self.seed = templates_path, val_fraction, seed

    def expand(self, records):
        converted = (
            records
            | "SpreadRecords" >> beam.Reshuffle()
            | "Convert"
            >> beam.ParDo(T.ConvertFn(self.templates_path, self.val_fraction, self.seed)).with_outputs(
                FAILURES, T.COUNTS, main="items"
            )
        )
        return _outputs(converted, "items")


class RemoveNearDuplicates(beam.PTransform):
    """Input: ((source, video_id), item)."""

    def __init__(self, threshold: float, model_dir: str | None, model_sha256: str | None):
        super().__init__()
        self.threshold, self.model_dir, self.model_sha256 = threshold, model_dir, model_sha256

    def expand(self, keyed_items):
        kept = (
            keyed_items
            | "GroupByVideo" >> beam.GroupByKey()
            | "Dedup"
            >> beam.ParDo(T.DedupFn(self.threshold, self.model_dir, self.model_sha256)).with_outputs(
                FAILURES, T.COUNTS, main="items"
            )
        )
        return _outputs(kept, "items")


class MixSources(beam.PTransform):
    """Items -> ((source, video path), item) of the kept ones; thresholds of capped sources as a side input."""

    def __init__(self, rules: dict[str, mix.MixRule], seed: int):
        super().__init__()
        self.rules, self.seed = rules, seed

    def expand(self, items):
        rules, seed = self.rules, self.seed
        thresholds = (
            items
            | "CappedRanks"
            >> beam.FlatMap(
                lambda i: [(i.source, r)]
                if rules[i.source].cap and mix.passes_ratio(r := mix.item_rank(i.id, seed), rules[i.source])
                else []
            )
            | "GroupRanks" >> beam.GroupByKey()
            | "CapThresholds" >> beam.ParDo(T.CapThresholdFn(rules))
        )
        mixed = items | "Mix" >> beam.ParDo(T.MixFn(rules, seed), thresholds=AsDict(thresholds)).with_outputs(
            FAILURES, T.COUNTS, main="items"
        )
        return _outputs(mixed, "items")


class PlanVideos(beam.PTransform):
    """((source, video path), item) -> VideoPlan per source video."""

    def __init__(self, roots: dict[str, str], probe_timeout_s: float, image_fps: float):
        super().__init__()
        self.roots, self.probe_timeout_s, self.image_fps = roots, probe_timeout_s, image_fps

    def expand(self, keyed_items):
        planned = (
            keyed_items
            | "GroupBySourceVideo" >> beam.GroupByKey()
            | "ProbeAndPlan"
            >> beam.ParDo(T.PlanVideoFn(self.roots, self.probe_timeout_s, self.image_fps)).with_outputs(
                FAILURES, main="plans"
            )
        )
        return {"plans": planned.plans, "failures": planned[FAILURES]}
