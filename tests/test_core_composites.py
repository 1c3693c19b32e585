"""The core's composites alone, on Beam's TestPipeline (each builder wires them; here they are checked without a
dataset): FnStep's tagged outputs, spreading, grouping and keying; AssignShards over pack_groups; Finalize's
side inputs."""

from __future__ import annotations

import json
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.pvalue import AsList
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.core.composites import COUNTS, AssignGroupsFn, AssignShards, Finalize, FnStep, ReadSources
from pipeline.core.planning import ShardSizing
from pipeline.core.transforms import FAILURES


class ParityFn(beam.DoFn):
    """Even numbers pass, odd ones are failures; every element is counted."""

    def process(self, n):
        yield beam.pvalue.TaggedOutput(COUNTS, ("seen", 1))
        if n % 2:
            yield beam.pvalue.TaggedOutput(FAILURES, f"odd {n}")
        else:
            yield n


class SumGroupFn(beam.DoFn):
    def process(self, group):
        key, values = group
        yield key, sum(values)


def test_fnstep_tags_failures_and_counts():
    with BeamTestPipeline() as p:
        out = p | beam.Create(range(6)) | FnStep(ParityFn(), "evens", before="spread", counts=True)
        assert sorted(out) == ["counts", "evens", "failures"]
        assert_that(out["evens"], equal_to([0, 2, 4]), label="main")
        assert_that(out["failures"], equal_to(["odd 1", "odd 3", "odd 5"]), label="failures")
        seen = out["counts"] | beam.CombinePerKey(sum)
        assert_that(seen, equal_to([("seen", 6)]), label="counts")


def test_fnstep_groups_by_a_key_it_makes():
    with BeamTestPipeline() as p:
        out = p | beam.Create(["aa", "ab", "b", "bcd"]) | FnStep(
            SumGroupFn(), "sums", before="group", key=lambda w: (w[0], len(w))
        )
        assert sorted(out) == ["failures", "sums"]
        assert_that(out["sums"], equal_to([("a", 4), ("b", 4)]))


def test_read_sources_reads_every_spec():
    class RangeFn(beam.DoFn):
        def process(self, n):
            yield beam.pvalue.TaggedOutput(COUNTS, (n, n))
            yield from range(n)

    with BeamTestPipeline() as p:
        out = p | ReadSources([2, 3], RangeFn(), main="rows")
        assert_that(out["rows"], equal_to([0, 1, 0, 1, 2]), label="rows")
        assert_that(out["counts"], equal_to([(2, 2), (3, 3)]), label="counts")


@dataclass(frozen=True)
class Video:
    name: str
    split: str
    n: int

    @property
    def order_key(self) -> str:
        return self.name

    def pack_unit(self):
        return self.name, [f"{self.name}#{i}" for i in range(self.n)], [(0, 10)] * self.n


def test_assign_shards_keeps_a_group_in_one_shard_per_split():
    sizing = ShardSizing(max_samples=3, max_bytes=10**9, bytes_per_frame=1, n_frames=1, frames_mode=False)
    assign = AssignGroupsFn("toy", sizing, lambda options, groups: f"{options['v']}:{len(groups)}", {"v": 1})
    videos = [Video("a", "train", 2), Video("b", "train", 2), Video("c", "val", 5), Video("d", "train", 1)]
    with BeamTestPipeline() as p:
        plans = p | beam.Create(videos) | AssignShards(assign, lambda v: [(v.split, v)])
        got = plans | beam.Map(lambda s: (s.name, s.split, [g.name for g in s.groups], s.fingerprint))
        assert_that(got, equal_to([
            ("toy-train-000000", "train", ["a"], "1:1"),  # a (2) + b (2) would pass 3 samples
            ("toy-train-000001", "train", ["b", "d"], "1:2"),
            ("toy-val-000000", "val", ["c"], "1:1"),  # a group bigger than a shard stays whole
        ]))  # fmt: skip


def test_finalize_waits_for_every_write_and_gets_its_side_inputs(tmp_path):
    record = tmp_path / "finalize.json"

    def finalize(planned, failures, *, extra):  # runs on a worker (a pickled copy): it records into a file
        with open(record, "a") as f:
            f.write(json.dumps([sorted(planned), sorted(failures), sorted(extra)]) + "\n")

    with BeamTestPipeline() as p:
        plans = p | "Plans" >> beam.Create([Video("s-x", "train", 1), Video("s-y", "val", 1)])
        written = plans | "Write" >> beam.Map(lambda s: s.name)
        failures = p | "Failures" >> beam.Create(["lost row"])
        extra = p | "Extra" >> beam.Create([3, 1])
        _ = p | "Finalize" >> Finalize(finalize, plans, written, failures, extra=AsList(extra))
    assert [json.loads(line) for line in record.read_text().splitlines()] == [
        [[["s-x", "train"], ["s-y", "val"]], ["lost row"], [1, 3]]
    ]
