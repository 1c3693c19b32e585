"""The EgoBench build end to end on the bundled mini-benchmark (real ffmpeg, real Beam, real shards): every
row is in a shard or in errors.jsonl, every json validates and is its reader's item, every clip of every
sample is decoded and its frame stamps checked against the window its row names; frames mode, determinism,
resume, the composites alone on TestPipeline, CLI errors, and the verbatim sample rows."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.core.clips import read_frames, sample_frame_indices
from pipeline.core.composites import AssignShards, ReadSources
from pipeline.core.config import load_config_file
from pipeline.core.framecode import decode_frame
from pipeline.core.planning import ShardSizing
from pipeline.core.shards import MAX_TAR_NAME, read_tar_samples
from pipeline.egobench import composites as C
from pipeline.egobench import transforms as T
from pipeline.egobench.build import config_from_mapping
from pipeline.egobench.plan import (
    ClipPlan,
    PlannedItem,
    ShardPlan,
    SourceVideo,
    VideoSource,
    clip_window,
    group_items,
    make_group,
    sample_key,
)
from pipeline.egobench.records import LAST_FRAME_TASKS, TASKS, BenchItem, VideoRef
from pipeline.egobench.records_json import item_json, validate_item_json
from pipeline.egobench.samples import validate_sample_json
from pipeline.egobench.sources import READERS
from pipeline.egobench.writer import OutputFormat, build_shard, cut_source
from tests.conftest import SHARED_REAL, build_egobench, needs_real
from tools.samples.egobench import ANNOTATIONS, ROWS, media_specs

# The designed outcome per task: (items in shards, {failure reason: count}) -- README of sample_rows.
EXPECTED = {
    "egoschema": (8, {"video not found": 1}),
    "qaego4d_open": (6, {}),
    "qaego4d_closed": (5, {}),
    "egotaskqa_direct": (5, {"video not found": 1}),
    "egotaskqa_indirect": (4, {}),
    "egotaskqa_mcq": (7, {"video not found": 1}),
    "charades_ego": (7, {"video not found": 1}),
    "epic_mir": (9, {"video not found": 1}),
    "egoplan": (11, {"video not found": 1, "answer mismatch": 1}),
    "vlnqa": (8, {"video not found": 1, "video: unreadable video": 1}),
    "egomcq": (6, {"video not found": 1, "video: unreadable video": 1}),
}
# the task of each benchmark entry's failing rows (a row failure names its file, not a task)
ROW_TASK = {
    "egoschema": "egoschema",
    "qaego4d": "qaego4d_open",
    "egotaskqa": "egotaskqa_direct",
    "egotaskqa_mcq": "egotaskqa_mcq",
    "charades_ego": "charades_ego",
    "epic_mir": "epic_mir",
    "egoplan": "egoplan",
    "egoplan_v1": "egoplan",
    "vlnqa": "vlnqa",
    "egomcq": "egomcq",
}


def _samples(out: Path, pattern: str = "egobench-*.tar") -> list[tuple[str, dict]]:
    return [(tar.name, s) for tar in sorted(out.glob(pattern)) for s in read_tar_samples(tar)]


def _errors(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]


def _config(sample: Path):
    return config_from_mapping(load_config_file(str(sample / "egobench.yaml")), "unused", sample)


def _rows_in_files(sample: Path) -> dict[str, int]:
    """Rows of the annotation files each benchmark entry reads, counted without the readers."""

    def js(rel):
        return len(json.loads((sample / rel).read_text()))

    def rows(rel):
        return sum(1 for _ in csv.DictReader(io.StringIO((sample / rel).read_text(), newline="")))

    return {
        "egoschema": rows("egoschema/EgoSchema.csv"),
        "egoschema_unanswered": js("egoschema/questions.json"),
        "qaego4d": js("qaego4d/unified/annotations.QaEgo4D_test.json")
        + js("qaego4d/unified/annotations.QaEgo4D_test_close.json"),
        "egotaskqa": js("egotaskqa/direct/test_qas.json") + js("egotaskqa/indirect/test_qas.json"),
        "egotaskqa_mcq": js("egotaskqa_mcq/egotaskqa.json"),
        "charades_ego": rows("charades_ego/CharadesEgo/CharadesEgo_v0_egocentric_test.csv"),
        "epic_mir": rows("epic_kitchens/annotations/retrieval_annotations/EPIC_100_retrieval_test.csv"),
        "egoplan": js("egoplan/egoplan2.json"),
        "egoplan_v1": js("egoplan/EgoPlan_validation.json"),
        "vlnqa": js("vln_qa/vlnqa.json"),
        "egomcq": js("egomcq/egomcq.json"),
    }


# ------------------------------------------------------------------------------------------ accounting


def test_every_row_is_in_a_shard_or_reported(egobench_sample, egobench_build):
    out, stats = egobench_build
    rows = _rows_in_files(egobench_sample)
    assert stats["rows"] == rows and sum(rows.values()) == 87
    errors = _errors(out)
    docs = [json.loads(s["json"]) for _, s in _samples(out)]
    in_shards = Counter(d["task"] for d in docs)
    assert set(in_shards) == set(TASKS)  # all 11 tasks
    failed = Counter()
    for e in errors:
        if e["scope"] == "item":
            failed[(e["task"], e["reason"])] += 1
        elif e["scope"] == "record":
            failed[(ROW_TASK[e["benchmark"]], e["reason"])] += 1
    for task, (n, reasons) in EXPECTED.items():
        assert in_shards[task] == n == stats["items"]["in_shards"][task], task
        assert {r: c for (t, r), c in failed.items() if t == task} == reasons, task
    assert sum(in_shards.values()) + sum(failed.values()) == sum(rows.values())  # each row once
    assert stats["samples"] == len(docs) == 76
    assert stats["items"]["unaccounted"] == 0 and stats["unaccounted_rows"] == 0
    assert stats["items"]["read"] == {
        t: n + failed[(t, "video: unreadable video")] for t, (n, _) in EXPECTED.items()
    }
    # an item is never both in a shard and failed; a key is never in two samples of a task
    assert not {(e["task"], e["item"]) for e in errors if e["scope"] == "item"} & {
        (d["task"], d["id"]) for d in docs
    }
    assert len({(d["task"], d["id"]) for d in docs}) == len(docs)
    # the two truncated videos: one video failure each, and their items
    videos = sorted(e["video"] for e in errors if e["scope"] == "video")
    assert videos == ["right/1690_frame80.mp4", "v2/full_scale/5bece44e-d0c7-535b-8f73-fd7f75289f90.mp4"]
    assert stats["items"]["without_answer"] == {
        "egoschema": 3
    }  # questions.json: none of the 500 public answers


def test_outputs_manifest_and_wids_indexes(egobench_build):
    out, stats = egobench_build
    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    assert len(manifest) == stats["samples"]
    tars = {p.name for p in out.glob("egobench-*.tar")}
    assert {r["shard"] for r in manifest} == tars
    for task in TASKS:
        index = json.loads((out / f"egobench-{task}.wids.json").read_text())
        assert {s["url"] for s in index["shardlist"]} == {
            t for t in tars if t.startswith(f"egobench-{task}-0")
        }
        assert sum(s["nsamples"] for s in index["shardlist"]) == stats["items"]["in_shards"][task]
        assert stats["tasks"][task]["samples"] == stats["items"]["in_shards"][task]
    assert all(r["task"] in r["shard"] for r in manifest)
    assert {r["benchmark"] for r in manifest if r["task"] == "egoplan"} == {"egoplan", "egoplan_v1"}


# ------------------------------------------------------------------------------------------ json


def test_every_json_validates_and_is_its_readers_item(egobench_sample, egobench_build):
    out, _ = egobench_build
    cfg = _config(egobench_sample)
    expected = {}
    for spec in cfg.benchmarks:
        for o in READERS[spec.reader](spec.annotations, spec.videos, **spec.reader_options()):
            if isinstance(o, BenchItem):
                expected[(o.task, o.item_id)] = item_json(o)
    shapes: dict[str, dict] = {}
    for shard, s in _samples(out):
        doc = json.loads(s["json"])
        validate_sample_json(doc)
        item = {k: v for k, v in doc.items() if k != "clips"}
        validate_item_json(item)
        assert item == expected[(doc["task"], doc["id"])]  # json = item_json(item) + clips
        assert s["__key__"] == doc["id"] and f"-{doc['task']}-" in shard
        members = sorted(k for k in s if k not in ("__key__", "json"))
        assert members == ([f"v{k}.mp4" for k in range(5)] if doc["task"] == "egomcq" else ["mp4"])
        shape = {k: type(v).__name__ for k, v in doc.items()} | {
            f"metadata.{k}": type(v).__name__ for k, v in doc["metadata"].items()
        }
        assert (
            shapes.setdefault(doc["task"], shape) == shape
        )  # the same keys and types in every sample of a task
        assert all(len(f"{s['__key__']}.{m}".encode()) <= MAX_TAR_NAME for m in members)


# ------------------------------------------------------------------------------------------ clips


def _media(sample: Path) -> tuple[dict, dict]:
    codes = json.loads((sample / "stamp_codes.json").read_text())
    return codes, {s.path: s for s in media_specs()}


def _roots(sample: Path) -> dict[str, str]:
    return {b.name: Path(b.videos).relative_to(sample).as_posix() for b in _config(sample).benchmarks}


def _lemma_index(name: str) -> int:
    return int(name.removeprefix("img_").removesuffix(".jpg")) - 1


def _check_clip(frames, code: int, expected: list[int], where: str) -> None:
    stamps = [decode_frame(f) for f in frames]
    assert [c for c, _ in stamps] == [code] * len(stamps), where
    assert [i for _, i in stamps] == expected, where


def test_each_clip_shows_exactly_its_window(egobench_sample, egobench_build):
    """Decode every frame of every clip: the stamp says which file (code) and which frame it is; the frames
    are the window of the item's json, computed here from the generated files' own frame rates and lengths."""
    out, _ = egobench_build
    codes, specs = _media(egobench_sample)
    roots = _roots(egobench_sample)
    benchmark = {
        (r["task"], r["key"]): r["benchmark"] for r in pq.read_table(out / "manifest.parquet").to_pylist()
    }
    seen = Counter()
    for _, s in _samples(out):
        doc = json.loads(s["json"])
        root = roots[benchmark[(doc["task"], s["__key__"])]]
        for k, (v, c) in enumerate(zip(doc["videos"], doc["clips"], strict=True)):
            rel = f"{root}/{v['path']}"
            member = f"v{k}.mp4" if doc["task"] == "egomcq" else "mp4"
            frames = read_frames(s[member], pix_fmt="gray")
            where = f"{doc['task']}/{doc['id']} clip {k}"
            if v["frames"]:  # an image sequence: the reader's chosen LEMMA frames, all of them, in order
                assert (c["start_frame"], c["end_frame"], c["n_frames"]) == (
                    0,
                    len(v["frames"]),
                    len(v["frames"]),
                )
                _check_clip(frames, codes[rel], [_lemma_index(f) for f in v["frames"]], where)
                seen["images"] += 1
                continue
            spec = specs[rel]
            assert c["fps"] == spec.fps, where
            start = 0 if v["start_sec"] < 0 else round(v["start_sec"] * spec.fps)
            end = spec.n_frames if v["end_sec"] < 0 else min(spec.n_frames, round(v["end_sec"] * spec.fps))
            assert (c["start_frame"], c["end_frame"], c["n_frames"]) == (start, end, end - start), where
            _check_clip(frames, codes[rel], list(range(start, end)), where)
            seen["whole file" if v["start_sec"] < 0 else "window"] += 1
    assert seen == {"window": 56, "whole file": 34, "images": 10}


def test_windows_match_their_rows(egobench_sample, egobench_build):
    """The windows of a few items straight from their annotation rows (not from the json)."""
    out, _ = egobench_build
    docs = {(d["task"], d["id"]): d for d in (json.loads(s["json"]) for _, s in _samples(out))}
    # EgoSchema: uid_to_ego4d's 180 s window [240, 420) in the Ego4D video at 2 fps; the 3-minute clip whole
    assert docs[("egoschema", "001934bb-81bd-4cd8-a574-0472ef3f6678")]["clips"][0] == {
        "start_frame": 480,
        "end_frame": 840,
        "fps": 2.0,
        "n_frames": 360,
    }
    assert docs[("egoschema", "0074f737-11cb-497d-8d07-77c3a8127391")]["clips"][0]["end_frame"] == 360
    # EgoPlan-Bench2: frames 48840..51460 at EgoPlan's 30 fps numbering -> seconds -> the 1 fps video
    row = json.loads((egobench_sample / "egoplan/egoplan2.json").read_text())[-1]
    clip = docs[("egoplan", row["sample_id"])]["clips"][0]
    assert (clip["start_frame"], clip["end_frame"]) == (
        round(row["task_start_frame"] / 30),
        round((row["current_observation_frame"] + 1) / 30),
    )
    # QAEgo4D, clip file missing: the Ego4D video cut at the NLQ clip's window from nlq_val.json (5 fps), the
    # whole clip (never the closed row's video_start_sec..video_end_sec, which is the answer moment)
    closed = json.loads((egobench_sample / "qaego4d/unified/annotations.QaEgo4D_test_close.json").read_text())
    fallback = closed[-1]
    for task in ("qaego4d_closed", "qaego4d_open"):
        clip = docs[(task, fallback["sample_id"])]["clips"][0]
        assert (clip["start_frame"], clip["end_frame"]) == (round(28.5 * 5), round(88.5 * 5))
    assert (
        docs[("qaego4d_closed", closed[0]["sample_id"])]["videos"][0]["start_sec"] == -1.0
    )  # the whole clip
    # EPIC-100: the segment's timestamps at 12 fps
    epic = docs[("epic_mir", "P01_11_4")]["clips"][0]
    assert (epic["start_frame"], epic["end_frame"]) == (round(16.75 * 12), round(31.82 * 12))


def test_egomcq_samples_carry_five_clips_in_option_order(egobench_sample, egobench_build):
    out, _ = egobench_build
    codes, _ = _media(egobench_sample)
    rows = json.loads((egobench_sample / "egomcq/egomcq.json").read_text())
    samples = [s for _, s in _samples(out, "egobench-egomcq-*.tar")]
    assert sorted(s["__key__"] for s in samples) == ["0", "1", "2", "3", "4", "5"]
    for s in samples:
        doc, row = json.loads(s["json"]), rows[s["__key__"]]
        for k in range(5):
            choice = row["choices"][str(k)]
            frames = read_frames(s[f"v{k}.mp4"], pix_fmt="gray")
            start, end = round(max(choice["clip_start"], 0) * 10), round(choice["clip_end"] * 10)
            _check_clip(
                frames,
                codes[f"egomcq/ego4d/v2/full_scale/{choice['video_uid']}.mp4"],
                list(range(start, end)),
                f"egomcq {s['__key__']} v{k}",
            )
        answer = row["choices"][str(row["answer"])]
        assert doc["answer_index"] == row["answer"] and answer["clip_start"] == row["query"]["clip_start"]
        assert doc["metadata"]["n_videos"] == (5 if row["types"] == 1 else 1)


def test_epic_sentence_set(egobench_sample, egobench_build):
    out, stats = egobench_build
    doc = json.loads((out / "epic_mir_sentences.json").read_text())
    csv_rows = list(
        csv.DictReader(
            io.StringIO((ROWS / "epic_kitchens/EPIC_100_retrieval_test_sentence.csv").read_text(), newline="")
        )
    )
    assert [(s["id"], s["text"]) for s in doc["sentences"]] == [
        (r["narration_id"], r["narration"]) for r in csv_rows
    ]
    assert stats["sentence_sets"] == {"epic_mir": {"file": "epic_mir_sentences.json", "sentences": 7}}
    items = [json.loads(s["json"]) for _, s in _samples(out, "egobench-epic_mir-*.tar")]
    ids = {s["id"] for s in doc["sentences"]}
    assert all(d["sentence_id"] in ids for d in items)
    # a sentence relevant (same verb and noun classes) to segments of several videos: "take plate"
    by_id = {s["id"]: s for s in doc["sentences"]}
    take_plate = by_id["P01_11_0"]
    relevant = [
        d
        for d in items
        if d["metadata"]["verb_class"] == take_plate["verb_class"]
        and d["metadata"]["noun_classes"] == take_plate["noun_classes"]
    ]
    assert {d["metadata"]["video_id"] for d in relevant} == {"P01_11", "P01_15"} and len(relevant) == 3


# -------------------------------------------------------------------------------------- modes, determinism


def test_frames_mode(egobench_sample, tmp_path):
    """--frames 4: N JPEGs per clip, sampled uniformly over the window; EgoTaskQA's LEMMA items get 4
    images."""
    out = tmp_path / "frames"
    stats = build_egobench(egobench_sample, out, "--frames", "4", "--size", "64")
    assert stats["samples"] == 76 and stats["items"]["unaccounted"] == 0
    codes, _ = _media(egobench_sample)
    roots = _roots(egobench_sample)
    benchmark = {
        (r["task"], r["key"]): r["benchmark"] for r in pq.read_table(out / "manifest.parquet").to_pylist()
    }
    n_images = 0
    for _, s in _samples(out):
        doc = json.loads(s["json"])
        validate_sample_json(doc)
        multi = doc["task"] == "egomcq"
        jpgs = sorted(k for k in s if k.endswith(".jpg"))
        assert "mp4" not in s and jpgs == [
            f"{p}{i:02d}.jpg" for p in ([f"v{k}." for k in range(5)] if multi else [""]) for i in range(4)
        ]
        root = roots[benchmark[(doc["task"], s["__key__"])]]
        for k, (v, c) in enumerate(zip(doc["videos"], doc["clips"], strict=True)):
            frames = [
                read_frames(s[f"{f'v{k}.' if multi else ''}{i:02d}.jpg"], pix_fmt="gray")[0] for i in range(4)
            ]
            if v["frames"]:
                assert len(v["frames"]) == 4 and c["n_frames"] == 4
                expected = [_lemma_index(f) for f in v["frames"]]
                n_images += 1
            else:
                # EgoPlan: the observation frame (the window's last) is stored last
                last = doc["task"] in LAST_FRAME_TASKS
                expected = sample_frame_indices(c["start_frame"], c["end_frame"], 4, last)
            _check_clip(frames, codes[f"{root}/{v['path']}"], expected, doc["id"])
            assert min(frames[0].shape[:2]) == 64
    assert n_images == 10


def _digests(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in out.rglob("*")
        if p.is_file()
    }


def test_rebuild_is_byte_identical_and_resumes(egobench_sample, egobench_build, tmp_path):
    first, _ = egobench_build
    out = tmp_path / "again"
    build_egobench(egobench_sample, out)
    assert _digests(out) == _digests(first) and not (out / "_staging").exists()
    # resume: a deleted shard and a truncated one are rebuilt; the complete ones are kept as they are
    tars = sorted(out.glob("egobench-*.tar"))
    tars[0].unlink()
    tars[1].write_bytes(tars[1].read_bytes()[:1000])
    kept = {p: p.stat().st_mtime_ns for p in tars[2:]}
    build_egobench(egobench_sample, out)
    assert _digests(out) == _digests(first)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept


# ------------------------------------------------------------------------------------------ composites


def test_read_benchmarks_gives_one_element_per_clip_and_row_failures(egobench_sample):
    cfg = _config(egobench_sample)
    specs = [b for b in cfg.benchmarks if b.name in ("egomcq", "vlnqa")]
    with BeamTestPipeline() as p:
        out = p | ReadSources(specs, T.ReadBenchmarkFn(), main="clips")
        per = out["clips"] | beam.Map(lambda kv: kv[0][0]) | "CountClips" >> beam.combiners.Count.PerElement()
        assert_that(per, equal_to([("egomcq", 7 * 5), ("vlnqa", 9)]), label="clips")  # EgoMCQ: 5 per item
        reasons = out["failures"] | beam.Map(lambda f: (f.benchmark, f.scope, f.reason, f.record))
        assert_that(
            reasons,
            equal_to(
                [
                    ("egomcq", "record", "video not found", "key 7"),
                    ("vlnqa", "record", "video not found", "row 2 left/2763_frame73.mp4"),
                ]
            ),
            label="failures",
        )
        counts = out["counts"] | "SumCounts" >> beam.CombinePerKey(sum)
        assert_that(
            counts,
            equal_to(
                [
                    (("rows", "egomcq"), 8),
                    (("items", "egomcq"), 7),
                    (("rows", "vlnqa"), 10),
                    (("items", "vlnqa"), 9),
                ]
            ),
            label="counts",
        )


def _item(ident: str, *windows, task: str = "egoschema") -> BenchItem:
    videos = tuple(VideoRef(path, start, end) for path, start, end in windows)
    options = ("a", "b", "c", "d", "e")
    return BenchItem(task, ident, "f.json", videos, "q?", options, 0, {})


def test_plan_videos_probes_once_and_reports_each_clip_of_a_broken_video(egobench_sample):
    roots = {"egomcq": str(egobench_sample / "egomcq/ego4d")}
    good = "v2/full_scale/f4fb014a-32d2-5c46-8d1f-b789281956b3.mp4"  # 40 s at 10 fps
    bad = "v2/full_scale/5bece44e-d0c7-535b-8f73-fd7f75289f90.mp4"  # truncated
    a = _item("a", (good, 1.0, 2.0), (bad, 1.0, 2.0), task="egomcq")
    b = _item("b", (good, 100.0, 101.0), task="egomcq")  # past the end of the video
    c = _item("c", (good, 39.5, 40.8), task="egomcq")  # ends within the 1 s tolerance: cut at the last frame
    clips = [((("egomcq", v.path, ()), (i, k))) for i in (a, b, c) for k, v in enumerate(i.videos)]
    with BeamTestPipeline() as p:
        out = p | beam.Create(clips) | C.PlanVideos(roots, 60, 2.0)
        plans = out["clips"] | beam.Map(
            lambda kv: (
                kv[0][2],
                kv[1][0],
                (kv[1][2].start_frame, kv[1][2].end_frame) if isinstance(kv[1][2], ClipPlan) else kv[1][2][0],
            )
        )
        assert_that(
            plans,
            equal_to(
                [
                    ("a", 0, (10, 20)),
                    ("a", 1, "video: unreadable video"),
                    ("b", 0, "window outside the video"),
                    ("c", 0, (395, 400)),
                ]
            ),
            label="plans",
        )
        failures = out["failures"] | beam.Map(lambda f: (f.scope, f.reason, f.video))
        assert_that(failures, equal_to([("video", "unreadable video", bad)]), label="failures")


def _source(path: str, n: int = 100) -> VideoSource:
    return VideoSource("b", path, f"/x/{path}", (), SourceVideo(n, 10.0, "10/1", 64, 64, "h264"))


def _planned(ident: str, *paths: str, task: str = "egomcq") -> PlannedItem:
    item = _item(ident, *((p, 0.0, 1.0) for p in paths), task=task)
    return PlannedItem("b", item, ident, tuple(ClipPlan(_source(p), 0, 10) for p in paths))


def test_assemble_items_needs_every_clip():
    item = _item("m", *((f"v{k}.mp4", 0.0, 1.0) for k in range(5)), task="egomcq")
    plans = [(k, item, ClipPlan(_source(f"v{k}.mp4"), 0, 10)) for k in range(5)]
    broken = _item("n", *((f"v{k}.mp4", 0.0, 1.0) for k in range(5)), task="egomcq")
    broken_plans = [(k, broken, ClipPlan(_source(f"v{k}.mp4"), 0, 10)) for k in (0, 1, 4)]
    broken_plans += [
        (2, broken, ("video: corrupt video", "v2.mp4")),
        (3, broken, ("window outside the video", "v3.mp4", "ends at frame 9")),
    ]
    with BeamTestPipeline() as p:
        keyed = p | beam.Create([(("b", i.task, i.item_id), x) for x in plans + broken_plans for i in [x[1]]])
        out = keyed | C.AssembleItems(9)
        assert_that(
            out["items"] | beam.Map(lambda kv: (kv[0], kv[1].key, len(kv[1].clips))),
            equal_to([("egomcq", "m", 5)]),
            label="items",
        )
        assert_that(
            out["failures"] | beam.Map(lambda f: (f.scope, f.task, f.item, f.reason, f.video)),
            equal_to([("item", "egomcq", "n", "video: corrupt video", "v2.mp4")]),
            label="failures",
        )


def test_assign_shards_groups_items_by_source_and_stages_multi_clip_tasks():
    single = [
        _planned(i, p, task="egoschema")
        for i, p in (("a", "m1"), ("b", "m1"), ("c", "m2"), ("d", "m3"), ("e", "m1"))
    ]
    assert [[p.key for p in g.items] for g in group_items(single)] == [["a", "b", "e"], ["c"], ["d"]]
    multi = [
        _planned("x", "m1", "m2", "m3", "m4", "m5"),
        _planned("y", "m1", "m1", "m1", "m1", "m1"),
        _planned("z", "m5", "m6", "m7", "m8", "m9"),
    ]
    duplicate = PlannedItem("other", single[3].item, "d", single[3].clips)
    assign = T.AssignShardsFn(ShardSizing(2, 10**12, 3000, 16, False), {"kind": "mp4"})
    elements = [("egoschema", i) for i in [*single, duplicate]] + [("egomcq", i) for i in multi]
    with BeamTestPipeline() as p:
        out = p | beam.Create(elements) | AssignShards(assign, T.by_task, failures=True)
        summary = out["plans"] | beam.Map(
            lambda s: (
                s.name,
                s.staged,
                [[i.key for i in g.items] for g in s.groups],
                sorted(k[0] for k in s.reports),
            )
        )
        assert_that(
            summary,
            equal_to(
                [
                    ("egobench-egoschema-000000", False, [["a", "b", "e"]], []),  # a group is never split
                    ("egobench-egoschema-000001", False, [["c"], ["d"]], []),
                    (
                        "egobench-egomcq-000000",
                        True,
                        [["x"], ["y"]],
                        ["/x/m1", "/x/m2", "/x/m3", "/x/m4", "/x/m5"],
                    ),
                    ("egobench-egomcq-000001", True, [["z"]], ["/x/m6", "/x/m7", "/x/m8", "/x/m9"]),
                ]
            ),
            label="plans",
        )
        # a staged shard knows every window of its sources in the task: m5 is cut once for x and z
        windows = out["plans"] | beam.FlatMap(lambda s: [(s.index, k[0], w) for k, w in s.source_windows])
        assert_that(
            windows | beam.Filter(lambda t: t[1] == "/x/m5"),
            equal_to([(0, "/x/m5", ((0, 10),)), (1, "/x/m5", ((0, 10),))]),
            label="windows",
        )
        failures = out["failures"] | beam.Map(lambda f: (f.benchmark, f.item, f.reason))
        assert_that(failures, equal_to([("other", "d", "duplicate id")]), label="failures")


def test_staged_shard_reads_its_cut_clips_and_reports_a_failed_source_once(egobench_sample, tmp_path):
    """EgoMCQ's path: sources cut once into the staging folder, the shard assembled from them; a source that
    cannot be cut costs the items that need it, and is reported by one shard."""
    video = str(egobench_sample / "egomcq/ego4d/v2/full_scale/f4fb014a-32d2-5c46-8d1f-b789281956b3.mp4")
    good = VideoSource("egomcq", "good.mp4", video, (), SourceVideo(400, 10.0, "10/1", 128, 72, "h264"))
    bad = VideoSource("egomcq", "bad.mp4", video + "#", (), SourceVideo(1000, 10.0, "10/1", 128, 72, "h264"))

    def item(ident, *clips):
        it = _item(ident, *((s.path, a / 10, b / 10) for s, a, b in clips), task="egomcq")
        return PlannedItem("egomcq", it, ident, tuple(ClipPlan(s, a, b) for s, a, b in clips))

    ok = item("ok", *((good, 10 * k, 10 * k + 5) for k in range(5)))
    broken = item("broken", (good, 0, 5), (bad, 900, 950), (good, 20, 25), (good, 30, 35), (good, 40, 45))
    fmt = OutputFormat()
    for source, windows in ((good, [(0, 5), (10, 15), (20, 25), (30, 35), (40, 45)]), (bad, [(900, 950)])):
        done = cut_source(str(tmp_path), "egomcq", source, windows, fmt)
        assert (done["error"] or {}).get("reason") == (None if source is good else "missing file")
    plan = ShardPlan(
        "egobench-egomcq-000000",
        "egomcq",
        0,
        (make_group([broken]), make_group([ok])),
        "f",
        True,
        (),
        (bad.key,),
    )
    stats = build_shard(plan, str(tmp_path), fmt)
    assert stats["n_samples"] == 1
    assert [(f["scope"], f["reason"], f["item"]) for f in stats["failures"]] == [
        ("video", "missing file", ""),
        ("item", "video: missing file", "broken"),
    ]
    [sample] = read_tar_samples(tmp_path / "egobench-egomcq-000000.tar")
    codes, _ = _media(egobench_sample)
    for k in range(5):
        _check_clip(
            read_frames(sample[f"v{k}.mp4"], pix_fmt="gray"),
            codes["egomcq/ego4d/v2/full_scale/f4fb014a-32d2-5c46-8d1f-b789281956b3.mp4"],
            list(range(10 * k, 10 * k + 5)),
            k,
        )
    # an interrupted build keeps what it staged: the same plan is not cut again
    marker = tmp_path / "_staging/egomcq"
    before = {p: p.stat().st_mtime_ns for p in marker.rglob("*") if p.is_file()}
    cut_source(str(tmp_path), "egomcq", good, [(0, 5), (10, 15), (20, 25), (30, 35), (40, 45)], fmt)
    assert {p: p.stat().st_mtime_ns for p in marker.rglob("*") if p.is_file()} == before


def test_plan_units():
    assert sample_key("P01_11_0", 9) == "P01_11_0"
    long = "x" * 95
    key = sample_key(long, 9)
    assert len(key) + 1 + 9 == MAX_TAR_NAME and key != sample_key("x" * 96, 9)
    assert "." not in sample_key("a.b", 4) and sample_key("a.b", 4) != sample_key("a_b", 4)
    assert clip_window(None, None, 10, 50) == (0, 50)
    assert clip_window(1.0, 2.0, 10, 50) == (10, 20)
    assert clip_window(4.5, 5.9, 10, 50) == (45, 50)  # within the tolerance: cut at the end
    assert clip_window(1.0, 1.01, 10, 50) == (10, 11)  # at least one frame
    for window in ((5.0, 6.0), (4.0, 6.1)):
        with pytest.raises(ValueError):
            clip_window(*window, 10, 50)


# ------------------------------------------------------------------------------------------ CLI


def test_bad_command_lines_are_clear_errors(egobench_sample, tmp_path, capsys):
    from pipeline.egobench.builder import main

    config = str(egobench_sample / "egobench.yaml")
    bad = tmp_path / "bad.yaml"
    for argv, message, text in [
        (["--out", str(tmp_path)], "give --config or --roots", None),
        (["--roots", "egoschemaa=/x", "--out", str(tmp_path)], "unknown reader 'egoschemaa'", None),
        (["--roots", "egoschema", "--out", str(tmp_path)], "is not NAME=PATH", None),
        (["--config", str(tmp_path / "none.yaml"), "--out", str(tmp_path)], "not found", None),
        (["--config", config, "--frames", "-1", "--out", str(tmp_path)], "--frames=-1", None),
        (
            ["--config", config, "--size", "33", "--frames", "4", "--out", str(tmp_path)],
            "ClipFormat.size=33",
            None,
        ),
        (
            ["--config", str(bad), "--out", str(tmp_path)],
            "options: unknown ['colour']",
            "benchmarks:\n  vlnqa: {root: /x, options: {colour: red}}\n",
        ),
        (
            ["--config", str(bad), "--out", str(tmp_path)],
            "unknown key(s) ['max_samples']",
            "benchmarks:\n  vlnqa: /x\nmax_samples: 3\n",
        ),
        (
            ["--config", str(bad), "--out", str(tmp_path)],
            "benchmarks.vlnqa.root: missing",
            "benchmarks:\n  vlnqa: {videos: /x}\n",
        ),
    ]:
        if text is not None:
            bad.write_text(text)
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err, message


def test_real_data_config_template_parses():
    """pipeline/egobench/config.example.yaml (the template for real downloads) names every reader."""
    path = Path(__file__).resolve().parents[1] / "pipeline/egobench/config.example.yaml"
    cfg = config_from_mapping(load_config_file(str(path)), "out", path.parent)
    assert {b.reader for b in cfg.benchmarks} == set(READERS)
    assert all(os.path.isabs(b.root) for b in cfg.benchmarks)


# ------------------------------------------------------------------------------------------ sample rows


@needs_real
def test_real_sample_rows_are_verbatim_parts_of_the_real_files():
    """Each line of a real-file selection is a byte-identical line of its origin (records of one-line JSON
    files: byte-identical substrings), in the origin's order."""
    origins = {
        "egoschema/EgoSchema.csv": "egoschema/EgoSchema.csv",
        "egoschema/questions.json": "egoschema/questions.json.head.json",
        "egoschema/subset_answers.json": "egoschema/subset_answers.json",
        "egoschema/uid_to_ego4d.json": "egoschema/uid_to_ego4d.json",
        "egotaskqa_mcq/egotaskqa.json": "egotaskqa/egotaskqa.json",
        "charades_ego/CharadesEgo_v0_egocentric_test.csv": "charades_ego/CharadesEgo_v0_egocentric_test.csv",
        "charades_ego/Charades_v1_classes.txt": "charades_ego/Charades_v1_classes.txt",
        **{
            f"epic_kitchens/{n}": f"epic_kitchens_100/{n}"
            for n in ("EPIC_100_retrieval_test.csv", "EPIC_100_retrieval_test_sentence.csv")
        },
        "egoplan/egoplan2.json": "egoplan/egoplan2.json",
        "vln_qa/vlnqa.json": "vln_qa/vlnqa.json",
    }
    for rel, origin in origins.items():
        sel, real = (ROWS / rel).read_bytes(), (SHARED_REAL / origin).read_bytes()
        if sel.count(b"\n") <= 1:  # one-line JSON: the selected entries appear verbatim, in order
            data = json.loads(sel)
            entries = data if isinstance(data, list) else list(data.items())
            positions = []
            for e in entries:
                texts = [
                    json.dumps(e, ensure_ascii=a)
                    if isinstance(data, list)
                    else f"{json.dumps(e[0], ensure_ascii=a)}: {json.dumps(e[1], ensure_ascii=a)}"
                    for a in (True, False)
                ]
                found = [real.find(t.encode()) for t in texts if t.encode() in real]
                assert found, (rel, e)
                positions.append(found[0])
            assert positions == sorted(positions), rel
            continue
        real_lines = real.splitlines(keepends=True)
        at = -1
        for line in sel.splitlines(keepends=True):
            if line.strip() in (b"[", b"]"):
                continue
            try:
                at = real_lines.index(line, at + 1)
            except ValueError:
                pytest.fail(f"{rel}: {line!r} is not a line of {origin} (after line {at + 1})")
    assert set(ANNOTATIONS) == set(origins) | {
        "qaego4d/annotations.QaEgo4D_test.json",
        "qaego4d/annotations.QaEgo4D_test_close.json",
        "qaego4d/nlq_val.json",
        "egotaskqa/direct/test_qas.json",
        "egotaskqa/indirect/test_qas.json",
        "egoplan/EgoPlan_validation.json",
        "egomcq/egomcq.json",
    }  # the synthetic files


def test_media_specs_and_stamp_codes(egobench_sample):
    codes, specs = _media(egobench_sample)
    assert codes == {p: s.code for p, s in specs.items() if s.state != "missing"}
    assert sorted(codes.values()) == list(range(1, len(codes) + 1)) and len(codes) == 45
    assert all((egobench_sample / p).exists() for p in codes)
    missing = sorted(p for p, s in specs.items() if s.state == "missing")
    assert not any((egobench_sample / p).exists() for p in missing) and len(missing) == 9
    assert sorted(p for p, s in specs.items() if s.state == "truncated") == [
        "egomcq/ego4d/v2/full_scale/5bece44e-d0c7-535b-8f73-fd7f75289f90.mp4",
        "vln_qa/right/1690_frame80.mp4",
    ]
    longest = max(specs.values(), key=lambda s: s.n_frames / s.fps if s.kind == "mp4" and s.fps else 0)
    assert longest.fps == 1 and 1715.4 < longest.n_frames < 1720  # EgoPlan's window at 1628-1715 s, at 1 fps
