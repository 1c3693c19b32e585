"""Each composite of the build alone, on Beam's TestPipeline with assert_that."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to, is_not_empty

from pipeline.egoexoclip.composites import AssignShards, PlanClips, ReadNarrations, ReadTakes
from pipeline.egoexoclip.plan import TakePlan, VideoMeta
from pipeline.egoexoclip.release import Narration, NarrationFilters, Take, View
from pipeline.egoexoclip.windows import FrameOffsets, WindowRule
from tools.samples.egoexoclip import SAMPLE_TAKES


def test_read_takes_selects_takes_with_usable_ego_and_exo(sample_root):
    buildable = {
        t.name
        for t in SAMPLE_TAKES
        if t.in_takes_json
        and not t.is_dropped
        and t.split in ("train", "val")
        and t.name not in ("broken_take_01", "escape_take_01")
        and next(v for v in t.views if v.device == "aria").file_state == "ok"
    }
    with BeamTestPipeline() as p:
        out = p | ReadTakes(sample_root, "448", ("train", "val"), 60)
        names = out["takes"] | beam.Map(lambda kv: kv[1][0].take_name)
        assert_that(names, equal_to(sorted(buildable)), label="takes")
        reasons = out["excluded"] | beam.Map(lambda kv: kv[1][0])
        assert_that(
            reasons,
            equal_to(
                [
                    "split test not selected",
                    "take dropped",
                    "no usable ego video",
                    "no usable ego video",  # escape_take_01: its ego's path escapes the root (a view failure)
                ]
            ),
            label="excluded",
        )
        assert_that(out["failures"], is_not_empty(), label="failures")


def test_read_narrations_keeps_valid_and_counts_every_description(sample_root):
    expected, n_input = [], 0
    for split in ("train", "val"):
        doc = json.loads((Path(sample_root) / f"annotations/atomic_descriptions_{split}.json").read_text())
        for passes in doc["annotations"].values():
            for p in passes:
                n_input += len(p["descriptions"])
                if p["rejected"]:
                    continue
                for i, d in enumerate(p["descriptions"]):
                    if isinstance(d.get("timestamp"), int | float) and d["text"].strip():
                        expected.append(f"{p['annotation_uid']}:{i}")
    with BeamTestPipeline() as p:
        out = p | ReadNarrations(sample_root, ("train", "val"), NarrationFilters())
        assert_that(
            out["narrations"] | beam.Map(lambda kv: kv[1].source_id), equal_to(expected), label="kept"
        )
        total = (
            (
                out["counts"] | "Counts" >> beam.Map(lambda kv: kv[1]),
                out["dropped"] | "Zero" >> beam.Map(lambda _: 0),
            )
            | beam.Flatten()
            | beam.CombineGlobally(sum)
        )
        assert_that(total, equal_to([n_input]), label="count")


def _take(name: str, n_frames: int = 300):
    views = (View("aria01", "ego", f"/x/{name}/aria.mp4"), View("cam01", "exo", f"/x/{name}/cam01.mp4"))
    take = Take(f"uid-{name}", name, "train", "Cooking", "u", n_frames / 30, "", views)
    return take.take_uid, (
        take,
        {"aria01": VideoMeta(n_frames, 30.0, 448, 448), "cam01": VideoMeta(n_frames, 30.0, 796, 448)},
    )


def _narr(uid: str, t: float, i: int) -> tuple[str, Narration]:
    return uid, Narration(uid, "train", "a", "1", 0, i, t, "C x.", "Camera-wearer x.", "C", True, False, "")


def test_plan_clips_uses_the_global_alpha():
    """Take A: beta 1.0 (times 1,2,3); take B: beta 2.0 (times 2,4); alpha 1.5 -> half widths 1/3 and 2/3."""
    a, b = _take("a"), _take("b")
    narrations = [_narr(a[0], t, i) for i, t in enumerate([1.0, 2.0, 3.0])] + [
        _narr(b[0], t, i) for i, t in enumerate([2.0, 4.0])
    ]
    with BeamTestPipeline() as p:
        out = {
            "takes": p | "T" >> beam.Create([a, b]),
            "excluded": p | "E" >> beam.Create([]),
            "narrations": p | "N" >> beam.Create(narrations),
            "dropped": p | "D" >> beam.Create([]),
        } | PlanClips(WindowRule(), FrameOffsets())
        assert_that(out["alpha"], equal_to([1.5]), label="alpha")
        ranges = out["plans"] | beam.FlatMap(
            lambda kv: [(kv[1].take.take_name, n.canonical) for n in kv[1].narrations]
        )
        # a: 1 s +- 1/3 s -> frames 20..40; b: 2 s +- 2/3 s -> frames 40..80
        assert_that(
            ranges,
            equal_to(
                [("a", (20, 40)), ("a", (50, 70)), ("a", (80, 100)), ("b", (40, 80)), ("b", (100, 140))]
            ),
            label="ranges",
        )


def test_assign_shards_never_splits_a_take_and_bounds_sample_counts():
    from pipeline.egoexoclip.plan import plan_take

    plans = []
    for k, n in enumerate([5, 3, 4, 1]):
        uid, (take, videos) = _take(f"take{k}")
        narrations = [_narr(uid, 1.0 + i, i)[1] for i in range(n)]
        plan, _ = plan_take(take, videos, narrations, 1.0, 1.0, WindowRule(), FrameOffsets())
        plans.append((uid, plan))
    with BeamTestPipeline() as p:
        shard_plans = p | beam.Create(plans) | AssignShards("pairs", 6, 10**9, 3000, {})
        layout = shard_plans | beam.Map(lambda s: (s.name, [t.take.take_name for t in s.groups]))
        # greedy in name order with at most 6 samples: [5] [3] [4, 1]
        assert_that(
            layout,
            equal_to(
                [
                    ("egoexoclip-train-000000", ["take0"]),
                    ("egoexoclip-train-000001", ["take1"]),
                    ("egoexoclip-train-000002", ["take2", "take3"]),
                ]
            ),
        )
    assert all(isinstance(p, TakePlan) for _, p in plans)
