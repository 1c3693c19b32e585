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

from pipeline.core.composites import COUNTS, FnStep
from pipeline.core.transforms import FAILURES
from pipeline.egoit import mix
from pipeline.egoit import transforms as T


def ConvertItems(templates_path: str | None, val_fraction: float, seed: int) -> FnStep:
    """SourceRecords -> ((source, video id), EgoITItem) in the first person, failures, counts."""
    return FnStep(T.ConvertFn(templates_path, val_fraction, seed), "items", before="spread", counts=True)


def RemoveNearDuplicates(threshold: float, model_dir: str | None, model_sha256: str | None) -> FnStep:
    """((source, video id), item) -> the items that are not near duplicates of an earlier one of their video."""
    return FnStep(T.DedupFn(threshold, model_dir, model_sha256), "items", before="group", counts=True)


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
            FAILURES, COUNTS, main="items"
        )
        return {"items": mixed["items"], "failures": mixed[FAILURES], "counts": mixed[COUNTS]}


def PlanVideos(roots: dict[str, str], probe_timeout_s: float, image_fps: float) -> FnStep:
    """((source, video path), item) -> VideoPlan per source video (probed once), failures."""
    return FnStep(T.PlanVideoFn(roots, probe_timeout_s, image_fps), "plans", before="group")
