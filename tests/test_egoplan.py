"""EgoPlan v1 on the real validation file (../shared/real/egoplan/EgoPlan_validation.json, SOURCES.md section 11):
exact counts, its quirk items (60, 2390, 3244), EPIC's 60 fps frame numbering, the observation frame as the
last frame the model sees, the v1 test format (items without answers) and the challenge's submission files."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exo2ego_model.eval import submission
from exo2ego_model.video import decode_clip, last_indices
from pipeline.egobench.plan import clip_window
from pipeline.egobench.records import BenchItem, RecordFailure
from pipeline.egobench.records_json import item_json, validate_item_json
from pipeline.egobench.sources import egoplan
from tests.conftest import SHARED_REAL, needs_real

V1 = SHARED_REAL / "egoplan" / "EgoPlan_validation.json"
TEST_HIDDEN = ("video_source", "answer", "golden_choice_idx")  # what the real v1 test file's items lack


def split(results) -> tuple[dict[str, BenchItem], list[RecordFailure]]:
    results = list(results)
    items = {r.item_id: r for r in results if isinstance(r, BenchItem)}
    failures = [r for r in results if isinstance(r, RecordFailure)]
    assert len(items) + len(failures) == len(results)
    return items, failures


@pytest.fixture(scope="module")
def v1_rows() -> list[dict]:
    if not V1.exists():
        pytest.skip("../shared/real not present")
    return json.loads(V1.read_text())


@pytest.fixture(scope="module")
def v1(v1_rows) -> tuple[dict[str, BenchItem], list[RecordFailure]]:
    return split(egoplan.read(V1, exists=None))


# ------------------------------------------------------------------------------------------ the real file


@needs_real
def test_real_v1_validation_counts(v1_rows, v1):
    items, failures = v1
    assert len(v1_rows) == 3355
    assert len(items) == 3354 and len(failures) == 1
    [bad] = failures
    assert (bad.record, bad.reason) == ("row 3245 3244", "negative observation frame")
    assert "-26" in bad.detail
    # steps not shown (they end after the observation frame, as EgoPlan's load_video filters them)
    dropped = sum((egoplan.dropped_steps(r) for r in v1_rows), Counter())
    assert dropped == {egoplan.ENDS_AFTER: 408, egoplan.STARTS_AFTER: 4}
    # 498 good items without steps, 4 whose steps all end after the observation (2390 among them)
    assert sum(not r["task_progress_metadata"] for r in v1_rows if r["sample_id"] != 3244) == 498
    assert sum(not i.metadata["progress"] for i in items.values()) == 502
    assert Counter(i.metadata["video_source"] for i in items.values()) == {"EpicKitchens": 2432, "Ego4D": 922}
    assert Counter(i.metadata["fps"] for i in items.values()) == {60.0: 1163, 50.0: 1269, 30.0: 922}
    for row in v1_rows:
        item = items.get(str(row["sample_id"]))
        if item is None:
            continue
        observation = row["current_observation_frame"]
        assert item.answer == "ABCD".index(row["golden_choice_idx"])
        assert item.options[item.answer] == row["answer"]
        assert item.metadata["end_frame"] == observation + 1
        assert all(stop <= observation for stop in item.metadata["progress_stop_frames"])
        video = item.videos[0]
        assert video.end_sec == (observation + 1) / item.metadata["fps"]
        assert video.start_sec == item.metadata["start_frame"] / item.metadata["fps"]
    for doc in map(item_json, list(items.values())[::97]):
        validate_item_json(doc)


@needs_real
def test_item_60_steps_keyed_narration(v1_rows, v1):
    items, _ = v1
    row = v1_rows[60]
    assert sum("narration" in s for s in row["task_progress_metadata"]) == 5
    item = items["60"]
    # "hold pan" (9587-9709) ends after the observation frame 9602: not shown
    assert item.metadata["progress"] == [
        "open yoghurt",
        "pick up spoon",
        "scoop yoghurt",
        "pour yoghurt",
        "put spoon",
        "put yoghurt",
    ]
    assert egoplan.dropped_steps(row) == {egoplan.ENDS_AFTER: 1}
    assert (item.metadata["start_frame"], item.metadata["end_frame"]) == (8851, 9603)
    assert item.videos[0].path == "EPIC-KITCHENS/P02/videos/P02_12.MP4"
    assert (item.videos[0].start_sec, item.videos[0].end_sec) == (8851 / 60, 9603 / 60)


@needs_real
def test_item_2390_step_after_the_observation_and_3244_negative_frame(v1_rows, v1):
    items, failures = v1
    assert v1_rows[2390]["task_progress_metadata"][0]["start_frame"] > 24327
    item = items["2390"]
    assert egoplan.dropped_steps(v1_rows[2390]) == {egoplan.STARTS_AFTER: 1}
    # no step shown: the observation frame alone (EgoPlan shows the observation image, its clips masked)
    assert item.metadata["progress"] == [] and item.metadata["fps"] == 50.0  # P04_107: an extension video
    assert (item.metadata["start_frame"], item.metadata["end_frame"]) == (24327, 24328)
    assert "3244" not in items and failures[0].record.endswith(" 3244")


@needs_real
def test_epic_frame_numbers_are_60_fps(v1):
    items, _ = v1
    p01_13 = items["115"]  # the README's record
    assert p01_13.metadata["fps"] == 60.0
    assert (p01_13.videos[0].start_sec, p01_13.videos[0].end_sec) == (36 / 60, 761 / 60)
    assert egoplan.epic_frame_rate("P01_13") == 60.0
    # EPIC-55 frames are numbered at 60 whatever the camera (P09_07 is a 29.97 fps video): the table is ignored
    assert egoplan.epic_frame_rate("P09_07", {"P09_07": 29.97}) == 60.0
    assert egoplan.epic_frame_rate("P32_05") == 60.0  # same numbering (EPIC_100_validation.csv)
    assert egoplan.epic_frame_rate("P01_101") == 50.0
    assert egoplan.epic_frame_rate("P01_101", {"P01_101": 59.94}) == 59.94
    epic = [i for i in items.values() if i.metadata["video_source"] == "EpicKitchens"]
    assert all(i.metadata["fps"] == (60.0 if len(i.metadata["video_id"]) == 6 else 50.0) for i in epic)


# -------------------------------------------------------------------- the observation frame is the last one


@needs_real
def test_the_clip_ends_on_the_observation_frame(v1):
    """At the video's own rate (Ego4D 30, EPIC-55 60) the build cuts frames [start, observation]: the
    observation is the clip's last frame (plan.clip_window)."""
    items, _ = v1
    for item in list(items.values())[::7]:
        fps, video = item.metadata["fps"], item.videos[0]
        start, end = clip_window(video.start_sec, video.end_sec, fps, 10**7)
        assert (start, end - 1) == (item.metadata["start_frame"], item.metadata["end_frame"] - 1)


@pytest.mark.parametrize("n_available", [1, 2, 3, 7, 8, 16, 17, 100, 1001])
@pytest.mark.parametrize("n_frames", [1, 2, 4, 8, 16])
def test_last_indices_end_on_the_last_frame(n_available, n_frames):
    idx = last_indices(n_available, n_frames)
    assert len(idx) == n_frames and idx[-1] == n_available - 1
    assert idx == sorted(idx) and all(0 <= i < n_available for i in idx)
    if n_available == n_frames:
        assert idx == list(range(n_frames))  # stored frames of exactly T: no resampling
    if n_available > n_frames:
        assert len(set(idx)) == n_frames


def test_decoded_clip_ends_with_its_last_frame():
    def jpeg(level: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(np.full((32, 32, 3), level, np.uint8)).save(buf, format="JPEG", quality=95)
        return buf.getvalue()

    levels = [10 * k for k in range(25)]
    frames = decode_clip([jpeg(v) for v in levels], 4, 32, last=True)
    assert abs(float(frames[-1].float().mean()) - levels[-1]) < 2
    uniform = decode_clip([jpeg(v) for v in levels], 4, 32)
    assert abs(float(uniform[-1].float().mean()) - levels[-1]) > 20  # bin centres miss it


# ---------------------------------------------------------------------------------------- the v1 test file


@needs_real
def test_v1_test_format_reads_without_answers(v1_rows, tmp_path):
    """The real v1 test file (1,584 items, all Ego4D; answers hidden) is not in shared/: its format is the
    validation file's minus video_source, answer and golden_choice_idx, so this file is made from the real
    validation file's Ego4D items (all but 3244, whose negative frame is tested above) with those keys
    removed."""
    rows = [
        {k: v for k, v in r.items() if k not in TEST_HIDDEN}
        for r in v1_rows
        if r["video_source"] == "Ego4D" and r["sample_id"] != 3244
    ]
    path = tmp_path / "EgoPlan_test.json"
    path.write_text(json.dumps(rows))
    items, failures = split(egoplan.read(path, exists=None))
    assert len(rows) == len(items) == 922 and failures == []
    for row in rows:
        item = items[f"test_{row['sample_id']}"]
        assert item.answer is None and item.metadata["video_source"] == "Ego4D"
        assert item.videos[0].path == f"Ego4D/v1_288p/{row['video_id']}.mp4"
        assert item.videos[0].end_sec == (row["current_observation_frame"] + 1) / 30
    doc = item_json(next(iter(items.values())))
    validate_item_json(doc)
    assert (doc["has_answer"], doc["answer_index"], doc["answer_text"]) == (False, -1, "")


def test_answer_keys_must_come_together(tmp_path):
    row = {
        "sample_id": 1,
        "video_id": "000786a7-3f9d-4fe6-bfb3-045b368f7d44",
        "task_goal": "store cereal",
        "question": "What next?",
        **{f"choice_{c}": f"option {c}" for c in "abcd"},
        "current_observation_frame": 300,
        "task_progress_metadata": [],
    }
    path = tmp_path / "EgoPlan_test.json"
    path.write_text(json.dumps([row, {**row, "sample_id": 2, "answer": "option a"}]))
    items, failures = split(egoplan.read(path, exists=None))
    assert list(items) == ["test_1"] and [(f.record, f.reason) for f in failures] == [
        ("row 2 2", "bad answer")
    ]


# ---------------------------------------------------------------------------------- the submission files


def test_submission_files_in_the_challenge_format(tmp_path):
    def rec(item_id, pred=None, status="ok", task="egoplan"):
        return {
            "task": task,
            "id": item_id,
            "status": status,
            "options": ["a", "b", "c", "d"],
            "pred_ranking": pred,
            "pred_generation": 0,
        }

    records = [
        rec("test_2", 3),
        rec("test_10", 1),
        rec("test_1", None, status="error"),
        rec("115", 0),
        rec("0d270946-95c5-4e71-ae49-b9e802548147_89", 2),  # Bench2: not part of the v1 challenge
        rec("3", 1, task="egoschema"),
        rec("test_2", 2),  # a rerun's record: the last one counts
    ]
    written = submission.write_egoplan_submissions(records, tmp_path)
    assert written == {submission.FILES["test"]: 3, submission.FILES["validation"]: 1}
    test = json.loads((tmp_path / submission.FILES["test"]).read_text())
    assert test == [
        {"sample_id": 1, "label": "N/A"},
        {"sample_id": 2, "label": "C"},
        {"sample_id": 10, "label": "B"},
    ]
    assert json.loads((tmp_path / submission.FILES["validation"]).read_text()) == [
        {"sample_id": 115, "label": "A"}
    ]
    assert submission.write_egoplan_submissions([rec("3", 1, task="egoschema")], tmp_path / "none") == {}


def test_evaluation_predicts_unanswered_items_and_writes_the_submission(tmp_path, monkeypatch):
    """A tiny EgoBench build of EgoPlan items, two of them v1 test items without an answer: they get predictions
    (in the submission file), not scores; every EgoPlan clip is decoded with its last frame sampled last."""
    import exo2ego_model.video as video_module
    from exo2ego_model.eval.run import EvalConfig, evaluate
    from pipeline.core.shards import ShardWriter, canonical_json
    from pipeline.egobench.records import VideoRef
    from tests.test_eval import write_build_index
    from tools.samples.stamped_video import write_stamped_video

    write_stamped_video(tmp_path / "v.mp4", 1, 8, 64, 48, audio=False)
    mp4 = (tmp_path / "v.mp4").read_bytes()
    bench = tmp_path / "bench"
    bench.mkdir()
    ref = (VideoRef("Ego4D/v1_288p/x.mp4", 1.0, 3.0),)
    plan = ("pick up knife", "open fridge", "wash hands", "turn on stove")
    items = [
        BenchItem("egoplan", "115", "EgoPlan_validation.json", ref, egoplan.QUESTION.format("cook"), plan, 2),
        BenchItem("egoplan", "test_0", "EgoPlan_test.json", ref, egoplan.QUESTION.format("cook"), plan, None),
        BenchItem("egoplan", "test_1", "EgoPlan_test.json", ref, egoplan.QUESTION.format("eat"), plan, None),
    ]
    with open(bench / "egobench-egoplan-000000.tar", "wb") as f, ShardWriter(f) as w:
        for item in items:
            w.write({"__key__": item.item_id, "mp4": mp4, "json": canonical_json(item_json(item))})
    write_build_index(bench, {"egoplan": [i.item_id for i in items]})

    seen_last = []
    decode = video_module.decode_clip

    def spy(*args, last=False, **kwargs):
        seen_last.append(last)
        return decode(*args, last=last, **kwargs)

    monkeypatch.setattr(video_module, "decode_clip", spy)
    out = tmp_path / "out"
    scores = evaluate(EvalConfig(bench=str(bench), out=str(out), similarity=False, device="cpu"))
    assert seen_last == [True, True, True]
    task = scores["tasks"]["egoplan"]
    assert (task["n"], task["n_no_answer"]) == (1, 2)
    assert scores["submissions"] == {submission.FILES["validation"]: 1, submission.FILES["test"]: 2}
    test = json.loads((out / submission.FILES["test"]).read_text())
    assert [r["sample_id"] for r in test] == [0, 1] and all(r["label"] in "ABCD" for r in test)
    preds = {r["id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert preds["test_0"]["answer_index"] is None and preds["test_0"]["status"] == "ok"
    assert Path(out / "scores.json").exists()


def test_frames_mode_stores_the_last_frame_last(tmp_path):
    """The build's frames mode (core extract_clips) with `last`: the window's last frame (EgoPlan's observation)
    is the last stored frame, as the stamps of a generated video say; the evaluator's rule is the same."""
    from pipeline.core.clips import ClipFormat, ClipRequest, extract_clips, read_frames, sample_frame_indices
    from pipeline.core.framecode import decode_frame
    from tools.samples.stamped_video import write_stamped_video

    path = tmp_path / "v.mp4"
    write_stamped_video(path, 3, 40, 64, 48, audio=False)
    reqs = [ClipRequest("w0-25", 0, 25, True), ClipRequest("w30-31", 30, 31, True), ClipRequest("u", 0, 25)]
    fmt = ClipFormat(kind="frames", n_frames=4, size=48)
    clips = list(extract_clips(str(path), reqs, fmt, workdir=str(tmp_path / "work")))
    stamps = [[decode_frame(read_frames(j)[0])[1] for j in c.frames] for c in clips]
    assert stamps == [[4, 12, 20, 24], [30, 30, 30, 30], [3, 9, 15, 21]]
    for req, clip in zip(reqs, clips, strict=True):
        want = sample_frame_indices(req.start_frame, req.end_frame, 4, req.last)
        assert list(clip.source_frames) == want
        if req.last:
            assert want == [req.start_frame + i for i in last_indices(req.end_frame - req.start_frame, 4)]
