"""Composite transforms of the skeleton that every builder wires the same way; each `expand()` only wires
labelled steps (the work is in pipeline.core.planning and the builders' pure modules).

    ReadSources      source specs -> what one reader DoFn yields per spec (spread over workers), failures, counts
    FnStep           one DoFn over a PCollection (spread, or grouped by key first): {main, failures[, counts]}
    AssignShards     per split: planned groups -> shard plans (decided before any decoding)
    Finalize         once every shard is written: the builder's dataset-level files, stats.json last

(WriteShards, in pipeline.core.transforms, writes the planned shards with resume.)
"""

from __future__ import annotations

from collections.abc import Callable

import apache_beam as beam

from pipeline.core import shards
from pipeline.core.planning import ShardPlan, ShardSizing, pack_groups
from pipeline.core.transforms import FAILURES

COUNTS = "counts"  # the tagged output of counts for stats.json: (key, n)


class ReadSources(beam.PTransform):
    """Specs (one per source dataset or benchmark entry) -> {main: records, failures, counts}: each spec read
    by `read_fn` on some worker (the specs are spread first, so sources are read in parallel)."""

    def __init__(self, specs, read_fn: beam.DoFn, main: str = "records"):
        super().__init__()
        self.specs, self.read_fn, self.main = list(specs), read_fn, main

    def expand(self, p):
        specs = p | "Specs" >> beam.Create(self.specs)
        return specs | "Read" >> FnStep(self.read_fn, self.main, before="spread", counts=True)


class FnStep(beam.PTransform):
    """One step of a builder: `fn` (a DoFn whose failures, and counts with counts=True, are tagged outputs)
    applied to every element, after spreading the elements over workers (before="spread") or grouping them
    by key (before="group", keyed by `key(element)` first when given). Returns {main, "failures"[, "counts"]}."""

    def __init__(self, fn: beam.DoFn, main: str, *, before: str | None = None, key: Callable | None = None,
                 counts: bool = False):  # fmt: skip
        super().__init__()
        if before not in (None, "spread", "group"):
            raise ValueError(f"FnStep.before={before!r}: expected None, 'spread' or 'group'")
        self.fn, self.main, self.before, self.key, self.counts = fn, main, before, key, counts

    def expand(self, pcoll):
        if self.key is not None:
            pcoll = pcoll | "Key" >> beam.Map(self.key)
        if self.before == "spread":
            pcoll = pcoll | "Spread" >> beam.Reshuffle()
        elif self.before == "group":
            pcoll = pcoll | "Group" >> beam.GroupByKey()
        tags = (FAILURES, COUNTS) if self.counts else (FAILURES,)
        out = pcoll | "Apply" >> beam.ParDo(self.fn).with_outputs(*tags, main=self.main)
        return {self.main: out[self.main], **{tag: out[tag] for tag in tags}}


class AssignGroupsFn(beam.DoFn):
    """(split, groups) -> ShardPlans: groups packed by pipeline.core.planning.pack_groups, each shard's
    fingerprint fingerprint(content_options, its groups)."""

    def __init__(self, prefix: str, sizing: ShardSizing, fingerprint: Callable, content_options: dict):
        self.prefix, self.sizing, self.fingerprint, self.content_options = prefix, sizing, fingerprint, content_options

    def process(self, group):
        split, groups = group
        for index, members in enumerate(pack_groups(groups, self.sizing)):
            name = shards.shard_name(self.prefix, split, index).removesuffix(".tar")
            yield ShardPlan(name, split, index, tuple(members), self.fingerprint(self.content_options, members))


class AssignShards(beam.PTransform):
    """Planned groups -> shard plans per split: by_split(group) yields (split, group) pairs, `assign_fn` packs
    each split's groups. With failures=True the assign step may tag failures: {"plans", "failures"}."""

    def __init__(self, assign_fn: beam.DoFn, by_split: Callable, failures: bool = False):
        super().__init__()
        self.assign_fn, self.by_split, self.failures = assign_fn, by_split, failures

    def expand(self, groups):
        by_split = groups | "BySplit" >> beam.FlatMap(self.by_split) | "GroupBySplit" >> beam.GroupByKey()
        if not self.failures:
            return by_split | "AssignGroups" >> beam.ParDo(self.assign_fn)
        plans = by_split | "AssignGroups" >> beam.ParDo(self.assign_fn).with_outputs(FAILURES, main="plans")
        return {"plans": plans.plans, "failures": plans[FAILURES]}


class Finalize(beam.PTransform):
    """Once every shard is written, finalize(planned, failures, **side) on one worker: planned is the (shard
    name, split) of every shard plan, failures every failure record of the planning stages, side the other
    side inputs (already wrapped: beam.pvalue.AsList, AsSingleton). Applied to the pipeline."""

    def __init__(self, finalize: Callable, shard_plans, written, failures, split_of: Callable | None = None,
                 **side):  # fmt: skip
        super().__init__()
        self.finalize, self.shard_plans, self.written, self.failures = finalize, shard_plans, written, failures
        self.split_of = split_of or (lambda s: s.split)
        self.side = side

    def expand(self, p):
        finalize, split_of = self.finalize, self.split_of
        names = self.shard_plans | "ShardNames" >> beam.Map(lambda s: (s.name, split_of(s)))
        return (
            p
            | "FinalizeTrigger" >> beam.Create([None])
            | "Finalize"
            >> beam.Map(
                lambda _, planned, done, failures, **side: finalize(planned, failures, **side),
                planned=beam.pvalue.AsList(names),
                done=beam.pvalue.AsList(self.written),  # a side input: Finalize waits for every shard write
                failures=beam.pvalue.AsList(self.failures),
                **self.side,
            )
        )
