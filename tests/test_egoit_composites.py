"""Each composite of the EgoIT build alone, on Beam's TestPipeline with assert_that."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.core.clips import ClipFormat
from pipeline.core.composites import AssignGroupsFn, AssignShards, ReadSources
from pipeline.core.config import load_config_file
from pipeline.core.planning import ShardSizing
from pipeline.egoit import composites as C
from pipeline.egoit import transforms as T
from pipeline.egoit.build import config_from_mapping
from pipeline.egoit.mix import MixRule, item_rank
from pipeline.egoit.plan import PlannedItem, SourceVideo, VideoPlan, fingerprint
from pipeline.egoit.records import EgoITItem, Turn, VideoRef


def _config(sample):
    return config_from_mapping(load_config_file(str(sample / "egoit.yaml")), "unused", sample)


def _item(ident: str, source: str = "openeqa", task: str = "open_qa", video: str = "ep", answer: str = "a",
          question: str = "q", window=(None, None)) -> EgoITItem:  # fmt: skip
    return EgoITItem(ident, source, task, "train", video, VideoRef(f"{video}.mp4", *window),
                     (Turn("human", f"<video>\nX {question}"), Turn("gpt", answer)),
                     {"question": question, "record_id": ident})  # fmt: skip


def test_read_sources_gives_records_and_row_failures(egoit_sample):
    cfg = _config(egoit_sample)
    with BeamTestPipeline() as p:
        out = p | ReadSources(cfg.sources, T.ReadSourceFn())
        per_source = out["records"] | beam.Map(lambda r: r.source) | "CountRecords" >> beam.combiners.Count.PerElement()
        assert_that(per_source, equal_to([("egtea", 17), ("ssv2", 9), ("egotimeqa", 10), ("openeqa", 8),
                                          ("egoexolearn", 9)]), label="records")  # fmt: skip
        reasons = out["failures"] | beam.Map(lambda f: (f.source, f.scope, f.reason))
        assert_that(reasons, equal_to([("egtea", "record", "label mismatch"), ("ssv2", "record", "video not found"),
                                       ("openeqa", "record", "episode not found"),
                                       ("egoexolearn", "record", "multi-video caption")]), label="failures")  # fmt: skip


def test_convert_items_makes_open_and_multiple_choice_items(egoit_sample):
    cfg = _config(egoit_sample)
    with BeamTestPipeline() as p:
        records = p | ReadSources([s for s in cfg.sources if s.name == "egotimeqa"], T.ReadSourceFn())
        items = records["records"] | C.ConvertItems(None, 0.0, 0)
        tasks = items["items"] | beam.Map(lambda kv: kv[1].task) | beam.combiners.Count.PerElement()
        # 10 rows, 9 of them with wrong answers: 10 open items + 9 multiple-choice items
        assert_that(tasks, equal_to([("open_qa", 10), ("multiple_choice", 9)]))


def test_remove_near_duplicates_per_video():
    items = [
        _item("openeqa-1", video="ep1", question="Is the outside door open or closed?", answer="open"),
        _item("openeqa-2", video="ep1", question="is the outside door open or closed?", answer="open"),
        _item("openeqa-3", video="ep2", question="Is the outside door open or closed?", answer="open"),
        _item("openeqa-4", video="ep1", question="Where is the clock?", answer="on the wall"),
    ]
    with BeamTestPipeline() as p:
        out = p | beam.Create([((i.source, i.video_id), i) for i in items]) | C.RemoveNearDuplicates(0.95, None, None)
        assert_that(out["items"] | beam.Map(lambda i: i.id), equal_to(["openeqa-1", "openeqa-3", "openeqa-4"]),
                    label="kept")  # fmt: skip
        dropped = out["failures"] | beam.Map(lambda f: (f.item, f.reason, f.detail.split()[1]))
        assert_that(dropped, equal_to([("openeqa-2", "near duplicate", "openeqa-1")]), label="dropped")


def test_mix_sources_applies_ratio_then_cap():
    items = [_item(f"ssv2-{i}", source="ssv2", video=f"v{i}") for i in range(300)] + [
        _item(f"egtea-{i}", source="egtea", video=f"s{i % 7}") for i in range(50)
    ]
    rules = {"ssv2": MixRule(ratio=0.5, cap=40), "egtea": MixRule()}
    passing = sorted((item_rank(i.id), i.id) for i in items if i.source == "ssv2" and item_rank(i.id) < 0.5)
    expected = {ident for _, ident in passing[:40]} | {i.id for i in items if i.source == "egtea"}
    with BeamTestPipeline() as p:
        out = p | beam.Create(items) | C.MixSources(rules, 0)
        assert_that(out["items"] | beam.Map(lambda kv: kv[1].id), equal_to(sorted(expected)), label="kept")
        reasons = out["failures"] | beam.Map(lambda f: f.reason) | beam.combiners.Count.PerElement()
        assert_that(reasons, equal_to([("mixing ratio", 300 - len(passing)), ("mixing cap", len(passing) - 40)]),
                    label="reasons")  # fmt: skip


def test_plan_videos_probes_once_and_reports_each_item_of_a_broken_video(egoit_sample):
    cfg = _config(egoit_sample)
    roots = {s.name: s.videos for s in cfg.sources}
    clip = "76e6cc56-a425-564f-8ed2-1fc3bbc8477c"  # truncated in the mini-release
    good = "16fc2d81-e55c-4a3b-a298-b9d0272e9815"
    items = [
        _item("egotimeqa-a", "egotimeqa", video=good, window=(1.0, 2.0)),
        _item("egotimeqa-b", "egotimeqa", video=good, window=(9999.0, 10000.0)),  # past the end of the clip
        _item("egotimeqa-c", "egotimeqa", video=clip, window=(1.0, 2.0)),
    ]
    items = [EgoITItem(i.id, i.source, i.task, i.split, i.video_id, VideoRef(f"v2/clips/{i.video_id}.mp4",
             i.video.start_sec, i.video.end_sec), i.conversations, i.metadata) for i in items]  # fmt: skip
    with BeamTestPipeline() as p:
        keyed = p | beam.Create([((i.source, i.video.path), i) for i in items])
        out = keyed | C.PlanVideos(roots, 60, 2.0)
        plans = out["plans"] | beam.Map(lambda v: (v.path, [(x.item.id, x.start_frame, x.end_frame) for x in v.items]))
        assert_that(plans, equal_to([(f"v2/clips/{good}.mp4", [("egotimeqa-a", 30, 60)])]), label="plans")
        reasons = out["failures"] | beam.Map(lambda f: (f.scope, f.reason, f.item))
        assert_that(reasons, equal_to([("item", "window outside the video", "egotimeqa-b"),
                                       ("video", "unreadable video", ""),
                                       ("item", "video: unreadable video", "egotimeqa-c")]), label="failures")  # fmt: skip


def test_assign_shards_keeps_a_video_in_one_shard_and_bounds_samples():
    video = SourceVideo(300, 30.0, "30/1", 64, 64, "h264")

    def plan(name: str, n: int) -> VideoPlan:
        items = tuple(PlannedItem(_item(f"{name}-{k}", video=name), k, k + 10) for k in range(n))
        return VideoPlan("openeqa", f"{name}.mp4", f"/x/{name}.mp4", (), video, items)

    plans = [plan("a", 3), plan("b", 2), plan("c", 4), plan("d", 1)]
    sizing = ShardSizing.of(5, 10**12, ClipFormat())
    assign = AssignGroupsFn("egoit", sizing, fingerprint, {"kind": ClipFormat().kind})
    with BeamTestPipeline() as p:
        shards = p | beam.Create(plans) | AssignShards(assign, T.split_videos)
        summary = shards | beam.Map(lambda s: (s.split, sorted(v.path for v in s.groups), sum(len(v.items) for v in s.groups)))

        def check(got):
            assert sorted(v for _, vs, _ in got for v in vs) == ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]  # each once
            assert all(n <= 5 or len(vs) == 1 for _, vs, n in got)
            assert {split for split, _, _ in got} == {"train"}

        assert_that(summary, check)
