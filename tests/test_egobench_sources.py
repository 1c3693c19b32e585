"""The EgoBench readers: exact item / failure counts on the real annotation files (../shared/real), computed
independently here, and every failure reason, path rule and format of the missing files (QAEgo4D, EgoMCQ,
EgoTaskQA direct/indirect, EgoPlan v1, Charades-Ego v1) on small files written from the records quoted in
SOURCES.md."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from pipeline.egobench.records import TASKS, BenchItem, RecordFailure
from pipeline.egobench.records_json import META_FIELDS, item_json, typed_metadata, validate_item_json
from pipeline.egobench.sources import (
    LAYOUTS,
    READER_TASKS,
    READERS,
    charades_ego,
    egomcq,
    egoplan,
    egoschema,
    egotaskqa,
    epic_mir,
    qaego4d,
    vlnqa,
)
from tests.conftest import SHARED_REAL, needs_real

EGOSCHEMA = SHARED_REAL / "egoschema"
EGOTASKQA_MCQ = SHARED_REAL / "egotaskqa" / "egotaskqa.json"
CHARADES = SHARED_REAL / "charades_ego"
EPIC = SHARED_REAL / "epic_kitchens_100"
EGOPLAN2 = SHARED_REAL / "egoplan" / "egoplan2.json"
VLNQA = SHARED_REAL / "vln_qa" / "vlnqa.json"


def split(results) -> tuple[list[BenchItem], list[RecordFailure]]:
    results = list(results)
    items = [r for r in results if isinstance(r, BenchItem)]
    failures = [r for r in results if isinstance(r, RecordFailure)]
    assert len(items) + len(failures) == len(results)
    return items, failures


def reasons(failures) -> Counter:
    return Counter(f.reason for f in failures)


def only(failures, reason: str) -> RecordFailure:
    [hit] = [f for f in failures if f.reason == reason]
    return hit


def exists_in(paths: set[str]):
    return lambda p: p in paths


def check_json(items: list[BenchItem], stride: int = 1) -> list[dict]:
    """Every item converts; every stride-th validates against the schema; all have the same keys and types."""
    docs = [item_json(item) for item in items]
    for doc in docs[::stride]:
        validate_item_json(doc)
    shape = {k: type(v) for k, v in docs[0].items()}
    meta_shape = {k: type(v) for k, v in docs[0]["metadata"].items()}
    for doc in docs:
        assert {k: type(v) for k, v in doc.items()} == shape
        assert {k: type(v) for k, v in doc["metadata"].items()} == meta_shape
    return docs


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


# ------------------------------------------------------------------------------------------ registry, json


def test_registry_covers_every_task_with_a_layout():
    assert set(READERS) == set(LAYOUTS) == set(READER_TASKS)
    assert sorted(t for tasks in READER_TASKS.values() for t in tasks) == sorted(TASKS)
    assert (
        "videos/<q_uid>.mp4" in LAYOUTS["egoschema"]
        and "v2/full_scale/<video_uid>.mp4" in LAYOUTS["egoschema"]
    )
    assert "v2/clips/<clip_uid>.mp4" in LAYOUTS["qaego4d"]
    assert (
        "<video>/fpv<N>/img_<k+1:05d>.jpg" in LAYOUTS["egotaskqa"]
        and "<interval>.mp4" in LAYOUTS["egotaskqa_mcq"]
    )
    assert "CharadesEgo_v1_480/<id>.mp4" in LAYOUTS["charades_ego"]
    assert "<participant_id>/videos/<video_id>.MP4" in LAYOUTS["epic_mir"]
    assert (
        "Ego4D/v1_288p/<uid>.mp4" in LAYOUTS["egoplan"] and "EPIC-KITCHENS/<Pxx>/videos" in LAYOUTS["egoplan"]
    )
    assert "<video_path>" in LAYOUTS["vlnqa"] and "v2/full_scale/<video_uid>.mp4" in LAYOUTS["egomcq"]


def test_schema_metadata_matches_the_field_spec():
    schema = json.loads(
        (Path(__file__).resolve().parents[1] / "schemas" / "egobench.schema.json").read_text()
    )
    meta = schema["properties"]["metadata"]
    assert set(meta["required"]) == set(meta["properties"]) == set(META_FIELDS)


def test_item_json_fills_absent_values_and_rejects_unknown_or_mistyped_metadata():
    item = BenchItem(
        task="qaego4d_open",
        item_id="a_0",
        source_file="f.json",
        videos=(),
        question="q?",
        answer="seven",
        metadata={"moment_start_sec": 1},
    )
    item = BenchItem(**{**item.__dict__, "videos": (egomcq.ego4d_videos("u", 1, 2)[0],)})
    doc = item_json(item)
    validate_item_json(doc)
    assert (doc["answer_text"], doc["answer_index"], doc["answer_indices"], doc["sentence_id"]) == (
        "seven",
        -1,
        [],
        "",
    )
    assert doc["metadata"]["moment_start_sec"] == 1.0 and isinstance(
        doc["metadata"]["moment_start_sec"], float
    )
    assert doc["metadata"]["video_uid"] == "" and doc["metadata"]["noun_classes"] == []
    assert doc["videos"] == [{"path": "v2/full_scale/u.mp4", "start_sec": 1.0, "end_sec": 2.0, "frames": []}]
    with pytest.raises(ValueError, match="unknown metadata"):
        typed_metadata({"colour": "red"})
    with pytest.raises(ValueError, match="noun_classes"):
        typed_metadata({"noun_classes": ["2"]})
    bad = dict(doc, metric="choice")  # qaego4d_open is an open task
    with pytest.raises(ValueError, match="schema"):
        validate_item_json(bad)
    with pytest.raises(ValueError):
        validate_item_json(dict(doc, id="a.0"))  # not a key-safe id


GARBAGE = {
    "egoschema": "questions.json",
    "qaego4d": "annotations.QaEgo4D_test.json",
    "egotaskqa": "direct/test_qas.json",
    "egotaskqa_mcq": "egotaskqa.json",
    "charades_ego": "CharadesEgo_v1_test_only1st.csv",
    "epic_mir": "EPIC_100_retrieval_test.csv",
    "egoplan": "EgoPlan_validation.json",
    "vlnqa": "vlnqa.json",
    "egomcq": "egomcq.json",
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage\x81", b"[1, 2", b'"a string"'])
def test_garbage_files_become_whole_file_failures(tmp_path, reader, content):
    path = tmp_path / GARBAGE[reader]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    items, failures = split(READERS[reader](path, exists=None))
    assert not items and failures
    assert all(f.record == "" for f in failures)
    assert {f.reason for f in failures} <= {
        "unreadable file",
        "schema violation",
        "missing file",
        "classes unavailable",
        "sentences unavailable",
    }


@pytest.mark.parametrize("reader", sorted(set(READERS) - {"charades_ego", "epic_mir"}))  # the JSON ones
def test_rows_of_the_wrong_type_are_schema_violations(tmp_path, reader):
    data = {"0": 1, "1": None} if reader == "egomcq" else [1, None, "x", {}]
    path = write_json(tmp_path / GARBAGE[reader], data)
    items, failures = split(READERS[reader](path, exists=None))
    rows = [f for f in failures if f.file == path.name]
    assert not items and len(rows) == len(data) and {f.reason for f in rows} == {"schema violation"}
    assert [f.record for f in rows] == (
        [f"key {k}" for k in data] if reader == "egomcq" else [f"row {n}" for n in range(1, 5)]
    )
    # other failures: only EgoSchema's absent answer and window files
    assert {(f.file, f.reason) for f in failures if f not in rows} <= {
        ("subset_answers.json", "missing file"),
        ("uid_to_ego4d.json", "missing file"),
    }


# ---------------------------------------------------------------------------------------------- EgoSchema


@needs_real
def test_egoschema_real_head_questions_have_no_public_answer():
    questions = json.loads((EGOSCHEMA / "questions.json.head.json").read_text())
    answers = json.loads((EGOSCHEMA / "subset_answers.json").read_text())
    windows = json.loads((EGOSCHEMA / "uid_to_ego4d.json").read_text())
    items, failures = split(egoschema.read(EGOSCHEMA / "questions.json.head.json", exists=None))
    assert len(items) == len(questions) == 20 and not failures
    assert not any(q["q_uid"] in answers for q in questions)
    assert all(i.answer is None for i in items)
    for item, q in zip(items, questions, strict=True):
        assert item.item_id == q["q_uid"] and item.options == tuple(q[f"option {k}"] for k in range(5))
        w = windows[q["q_uid"]]
        assert (
            item.metadata["video_uid"],
            item.metadata["source_start_sec"],
            item.metadata["source_end_sec"],
        ) == (w["video_uid"], w["starting_sec"], w["ending_sec"])
        assert item.videos[0].path == f"videos/{q['q_uid']}.mp4"
    docs = check_json(items)
    assert {(d["has_answer"], d["answer_index"], d["answer_text"]) for d in docs} == {(False, -1, "")}


@needs_real
def test_egoschema_real_csv_answers_agree_with_subset_answers():
    answers = json.loads((EGOSCHEMA / "subset_answers.json").read_text())
    with open(EGOSCHEMA / "EgoSchema.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    items, failures = split(egoschema.read(EGOSCHEMA, questions="EgoSchema.csv", exists=None))
    assert len(rows) == len(items) == 500 and not failures
    for item, row in zip(items, rows, strict=True):
        options = [row[f"a{k}"] for k in range(5)]
        assert item.item_id == row["video_name"] and item.answer == answers[row["video_name"]]
        assert options[item.answer] == row["answer"]
    assert Counter(i.answer for i in items) == Counter(answers.values())
    docs = check_json(items)
    assert all(d["has_answer"] and d["answer_text"] == r["answer"] for d, r in zip(docs, rows, strict=True))


@needs_real
def test_egoschema_real_aux_files():
    answers, failures = egoschema.load_answers(str(EGOSCHEMA / "subset_answers.json"))
    assert len(answers) == 500 and not failures
    windows, failures = egoschema.load_windows(str(EGOSCHEMA / "uid_to_ego4d.json"))
    assert len(windows) == 5031 and not failures
    assert {end - start for _, start, end in windows.values()} == {180.0}


def egoschema_folder(tmp_path: Path, questions: list, answers: dict | str, windows: dict) -> Path:
    write_json(tmp_path / "questions.json", questions)
    if isinstance(answers, str):
        (tmp_path / "subset_answers.json").write_text(answers)
    else:
        write_json(tmp_path / "subset_answers.json", answers)
    write_json(tmp_path / "uid_to_ego4d.json", windows)
    return tmp_path


def question(q_uid: str, **over) -> dict:
    return {
        "q_uid": q_uid,
        "google_drive_id": "g",
        "question": "What did c do?",
        **{f"option {k}": f"option text {k}" for k in range(5)},
        **over,
    }


def test_egoschema_every_failure_reason_and_video_candidates(tmp_path):
    windows = {
        "a": {"video_uid": "va", "starting_sec": 240, "ending_sec": 420},
        "b": {"video_uid": "vb", "starting_sec": 10, "ending_sec": 10},  # empty window
        "c": {"starting_sec": 0, "ending_sec": 180},  # no video_uid
        "d": {"video_uid": "vd", "starting_sec": "x", "ending_sec": 180},
    }
    questions = [
        question("a"),
        question("b"),
        question("a"),
        question("e", question=" "),
        question("../x"),
        question("f"),
        {"q_uid": "g"},
    ]
    folder = egoschema_folder(tmp_path, questions, {"a": 2, "b": 7, "f": True}, windows)
    present = {f"{tmp_path}/videos/b.mp4", f"{tmp_path}/v2/full_scale/va.mp4"}
    items, failures = split(egoschema.read(folder, exists=exists_in(present)))
    assert [(f.file, f.record, f.reason) for f in failures] == [
        ("subset_answers.json", "key b", "bad answer"),
        ("subset_answers.json", "key f", "bad answer"),
        ("uid_to_ego4d.json", "key b", "empty window"),
        ("uid_to_ego4d.json", "key c", "schema violation"),
        ("uid_to_ego4d.json", "key d", "bad time"),
        ("questions.json", "row 3 a", "duplicate id"),
        ("questions.json", "row 4 e", "empty text"),
        ("questions.json", "row 5 ../x", "bad id"),
        ("questions.json", "row 6 f", "video not found"),
        ("questions.json", "row 7 g", "schema violation"),
    ]
    a, b = items
    assert (a.videos[0].path, a.videos[0].start_sec, a.videos[0].end_sec, a.answer) == (
        "v2/full_scale/va.mp4",
        240.0,
        420.0,
        2,
    )  # no EgoSchema clip: the Ego4D window
    assert (b.videos[0].path, b.videos[0].start_sec, b.answer) == ("videos/b.mp4", None, None)
    # ego4d=True: only Ego4D windows; a question without one cannot be placed
    items, failures = split(egoschema.read(folder, exists=None, ego4d=True))
    assert [i.videos[0].path for i in items] == ["v2/full_scale/va.mp4"]
    assert reasons(failures)["no ego4d window"] == 2  # b (its window is bad) and f


def test_egoschema_csv_answer_checks(tmp_path):
    header = ",video_name,question_id,question,answer,a0,a1,a2,a3,a4\n"
    rows = [
        "1,q1,g1,Why?,same,x,same,y,z,w",
        "2,q2,g2,Why?,same,x,same,y,z,w",
        "3,q3,g3,Why?,none,a,b,c,d,e",
        "4,q4,g4,Why?,dup,dup,b,dup,d,e",
        "5,q5,g5,Why?,dup,dup,b,dup,d,e",
        "6,q6,g6,Why?,a,a,b,c,d",
        "7,q7,g7,Why?, b ,a,b,c,d,e",
    ]
    (tmp_path / "EgoSchema.csv").write_text(header + "\n".join(rows) + "\n")
    write_json(tmp_path / "subset_answers.json", {"q1": 1, "q2": 3, "q5": 2})
    items, failures = split(egoschema.read(tmp_path / "EgoSchema.csv", exists=None))
    assert [(i.item_id, i.answer) for i in items] == [("q1", 1), ("q5", 2), ("q7", 1)]
    assert [(f.file, f.record, f.reason) for f in failures] == [
        ("uid_to_ego4d.json", "", "missing file"),  # optional for the CSV: the clips are named by q_uid
        ("EgoSchema.csv", "row 2 q2", "answer mismatch"),
        ("EgoSchema.csv", "row 3 q3", "answer not in options"),
        ("EgoSchema.csv", "row 4 q4", "ambiguous answer"),
        ("EgoSchema.csv", "row 6 q6", "schema violation"),
    ]
    assert items[0].videos[0].path == "videos/q1.mp4" and items[0].metadata["video_uid"] == ""


# ---------------------------------------------------------------------------------------------- QAEgo4D

# The real close-ended record quoted in GroundVQA issue 7 (SOURCES.md section 7).
QAEGO4D_CLOSE = {
    "video_uid": "53da674a-089d-428a-a719-e322b2de002b",
    "video_start_sec": 2624.7746333333334,
    "video_end_sec": 2667.6566133333336,
    "video_id": "9ab5fd9f-77e4-4438-a546-a4b6ed889f1a",
    "sample_id": "0139f386-6dc6-4aad-a150-dc6745338445_0",
    "answer": "seven",
    "question": "How many oven trays did I put in the trolley from the cupboard?",
    "moment_start_frame": 443.439,
    "moment_end_frame": 1729.8984,
    "wrong_answers": ["three", "five", "nine"],
}
QAEGO4D_OPEN = {
    k: QAEGO4D_CLOSE[k]
    for k in ("video_id", "sample_id", "answer", "question", "moment_start_frame", "moment_end_frame")
}


def test_qaego4d_open_and_closed_from_the_quoted_record(tmp_path):
    unified = tmp_path / "unified"
    write_json(unified / "annotations.QaEgo4D_test.json", [QAEGO4D_OPEN])
    write_json(unified / "annotations.QaEgo4D_test_close.json", [QAEGO4D_CLOSE])
    items, failures = split(qaego4d.read(tmp_path, exists=None))  # the folder above unified/
    assert not failures
    open_item, closed = items
    assert (open_item.task, open_item.answer, open_item.options) == ("qaego4d_open", "seven", ())
    assert open_item.videos[0].path == "v2/clips/9ab5fd9f-77e4-4438-a546-a4b6ed889f1a.mp4"
    assert open_item.metadata["moment_start_sec"] == pytest.approx(443.439 / 30)
    assert closed.task == "qaego4d_closed" and sorted(closed.options) == ["five", "nine", "seven", "three"]
    assert closed.options[closed.answer] == "seven"
    order = closed.metadata["option_order"]
    assert [["seven", "three", "five", "nine"][i] for i in order] == list(closed.options)
    docs = check_json(items)
    assert docs[1]["answer_text"] == "seven" and docs[0]["answer_text"] == "seven"
    # the closed record's video_start_sec / video_end_sec are the ANSWER MOMENT (42.9 s), never the clip shown
    moment = QAEGO4D_CLOSE["video_end_sec"] - QAEGO4D_CLOSE["video_start_sec"]
    assert moment == pytest.approx((1729.8984 - 443.439) / 30) == pytest.approx(42.88, abs=0.01)
    assert closed.videos[0] == open_item.videos[0] and closed.videos[0].start_sec is None  # the whole clip
    assert closed.metadata["moment_end_sec"] - closed.metadata["moment_start_sec"] == pytest.approx(moment)


def nlq_annotations(
    path: Path, clip_start: float, clip_end: float, video_uid: str = QAEGO4D_CLOSE["video_uid"]
):
    """Ego4D's nlq_val.json shape with one clip: the quoted record's NLQ clip. Its bounds are constructed here
    (the real nlq_val.json is not public in shared/): the start the record implies (video_start_sec -
    moment_start_frame / 30), the length of a canonical 8-minute Ego4D clip."""
    clip = {"clip_uid": QAEGO4D_CLOSE["video_id"], "video_start_sec": clip_start, "video_end_sec": clip_end}
    return write_json(path, {"videos": [{"video_uid": video_uid, "clips": [clip]}]})


def test_qaego4d_quoted_record_shows_the_whole_nlq_clip_from_the_full_video(tmp_path):
    """The record quoted in GroundVQA issue 7 (SOURCES.md section 7), with only the full-scale video on disk:
    the cut is the NLQ clip's window (480 s), not the record's 42.9 s answer moment."""
    unified = tmp_path / "unified"
    write_json(unified / "annotations.QaEgo4D_test.json", [QAEGO4D_OPEN])
    write_json(unified / "annotations.QaEgo4D_test_close.json", [QAEGO4D_CLOSE])
    video = f"{tmp_path}/v2/full_scale/{QAEGO4D_CLOSE['video_uid']}.mp4"
    # no clip file and no NLQ annotations: the clip's length is unknown, so nothing is cut
    items, failures = split(qaego4d.read(unified, tmp_path, exists=exists_in({video})))
    assert not items and reasons(failures) == {"video not found": 2}
    start = QAEGO4D_CLOSE["video_start_sec"] - 443.439 / 30
    nlq_annotations(tmp_path / "v2/annotations/nlq_val.json", start, start + 480.0)
    items, failures = split(qaego4d.read(unified, tmp_path, exists=exists_in({video})))
    assert not failures and [i.task for i in items] == ["qaego4d_open", "qaego4d_closed"]
    for item in items:
        v = item.videos[0]
        assert v.path == f"v2/full_scale/{QAEGO4D_CLOSE['video_uid']}.mp4"
        assert (v.start_sec, v.end_sec) == pytest.approx((2609.9933, 3089.9933), abs=1e-3)
        assert v.end_sec - v.start_sec == pytest.approx(480.0)  # the NLQ clip's length, not 42.9 s
        meta = item.metadata
        assert (meta["source_start_sec"], meta["source_end_sec"]) == (v.start_sec, v.end_sec)
        assert meta["video_uid"] == QAEGO4D_CLOSE["video_uid"]  # the open row has none: the NLQ file's
        # the answer moment, kept as metadata only: clip seconds, = the record's full-video window
        assert v.start_sec + meta["moment_start_sec"] == pytest.approx(QAEGO4D_CLOSE["video_start_sec"])
        assert v.start_sec + meta["moment_end_sec"] == pytest.approx(QAEGO4D_CLOSE["video_end_sec"])
    # the clip file, when present, wins (the whole canonical clip)
    clip = f"{tmp_path}/v2/clips/{QAEGO4D_CLOSE['video_id']}.mp4"
    items, _ = split(qaego4d.read(unified, tmp_path, exists=exists_in({video, clip})))
    assert {(i.videos[0].path, i.videos[0].start_sec) for i in items} == {
        (clip[len(str(tmp_path)) + 1 :], None)
    }
    # NLQ annotations that put the clip elsewhere than the closed row implies: "clip mismatch"
    nlq = nlq_annotations(tmp_path / "other" / "nlq_val.json", start + 5.0, start + 485.0)
    items, failures = split(qaego4d.read(unified, tmp_path, exists=exists_in({video}), nlq=nlq))
    assert [i.task for i in items] == ["qaego4d_open"] and reasons(failures) == {"clip mismatch": 1}
    # a broken NLQ file is one failure; the rows still read (without the full-video fallback)
    bad = write_json(tmp_path / "bad" / "nlq_val.json", {"videos": [{"clips": [{}]}]})
    items, failures = split(qaego4d.read(unified, tmp_path, exists=None, nlq=[bad]))
    assert len(items) == 2 and reasons(failures) == {"bad file": 1}


def test_qaego4d_option_order_is_deterministic_per_item_and_seed(tmp_path):
    records = [dict(QAEGO4D_CLOSE, sample_id=f"s_{i}") for i in range(48)]
    path = write_json(tmp_path / "annotations.QaEgo4D_test_close.json", records)
    first = [i.options for i in split(qaego4d.read(path, exists=None))[0]]
    again = [i.options for i in split(qaego4d.read(path, exists=None))[0]]
    other_seed = [i.options for i in split(qaego4d.read(path, exists=None, seed=1))[0]]
    assert first == again and first != other_seed
    answers = Counter(o.index("seven") for o in first)
    assert set(answers) == {0, 1, 2, 3}  # the answer is not always in one place
    assert sorted(qaego4d.option_order("s_0", 0)) == [0, 1, 2, 3]


def test_qaego4d_every_failure_reason(tmp_path):
    rows = [
        dict(QAEGO4D_CLOSE, sample_id="ok_0"),
        dict(QAEGO4D_CLOSE, sample_id="ok_0"),
        dict(QAEGO4D_CLOSE, sample_id="t_1", moment_start_frame="443"),
        dict(QAEGO4D_CLOSE, sample_id="t_2", moment_end_frame=1.0),
        dict(QAEGO4D_CLOSE, sample_id="w_3", wrong_answers=["three", "Seven", "nine"]),
        dict(QAEGO4D_CLOSE, sample_id="w_4", wrong_answers=["three"]),
        dict(QAEGO4D_CLOSE, sample_id="e_5", answer=" "),
        dict(QAEGO4D_CLOSE, sample_id="p_6", video_id="../../etc"),
        dict(QAEGO4D_CLOSE, sample_id="v_7", video_start_sec=None),
    ]
    path = write_json(tmp_path / "annotations.QaEgo4D_test_close.json", rows)
    items, failures = split(qaego4d.read(path, exists=None))
    assert [i.item_id for i in items] == ["ok_0"]
    assert [(f.record, f.reason) for f in failures] == [
        ("row 2 ok_0", "duplicate id"),
        ("row 3 t_1", "bad time"),
        ("row 4 t_2", "empty window"),
        ("row 5 w_3", "bad wrong answers"),
        ("row 6 w_4", "bad wrong answers"),
        ("row 7 e_5", "empty text"),
        ("row 8 p_6", "bad id"),
        ("row 9 v_7", "bad time"),
    ]
    items, failures = split(qaego4d.read(tmp_path / "empty", exists=None))
    assert not items and reasons(failures) == {"missing file": 1}


def test_qaego4d_own_open_file_name(tmp_path):
    write_json(tmp_path / "annotations.val.json", [QAEGO4D_OPEN])
    items, failures = split(qaego4d.read(tmp_path, exists=None, split="val"))
    assert [(i.task, i.metadata["split"]) for i in items] == [("qaego4d_open", "val")] and not failures


# ---------------------------------------------------------------------------------------------- EgoTaskQA

# The first real MCQ record (SOURCES.md section 8); its interval is the original's `interval`.
INTERVAL = "27k-22-11-2|P1|4546|4986"


def taskqa(question_id, answer: str, semantic: str = "object", **over) -> dict:
    return {
        "question": f"What is the status of sandwich {question_id}?",
        "answer": answer,
        "interval": INTERVAL,
        "program": "query(...)",
        "type": ["descriptive"],
        "category": ["object"],
        "semantic": semantic,
        "structural": "query",
        "reasoning_type": f"descriptive$object${semantic}$query",
        "video_id": 3,
        "question_id": question_id,
        **over,
    }


def test_egotaskqa_direct_and_indirect_options_and_videos(tmp_path):
    write_json(
        tmp_path / "direct" / "test_qas.json",
        [
            taskqa(1, "on top of plate"),
            taskqa(2, "Yes", "state"),
            taskqa(3, "on top of pan"),
            taskqa(4, "open", "state"),
            taskqa(5, "no", "action"),
        ],
    )
    write_json(
        tmp_path / "indirect" / "test_qas.json",
        [taskqa(9, "no"), taskqa(10, "closed", "change"), taskqa(11, "open", "state")],
    )
    frames = f"{tmp_path}/27k-22-11-2/fpv1"
    items, failures = split(egotaskqa.read(tmp_path, exists=exists_in({frames})))
    assert not failures
    assert [(i.task, i.item_id) for i in items] == [("egotaskqa_direct", str(n)) for n in (1, 2, 3, 4, 5)] + [
        ("egotaskqa_indirect", str(n)) for n in (9, 10, 11)
    ]
    plate, yes, pan, opened, no = items[:5]
    # open answer over the vocabulary: no train_qas.json here, so the file's own answers, lower case, sorted
    vocab = ("no", "on top of pan", "on top of plate", "open", "yes")
    assert all(i.options == vocab for i in items[:5])
    assert [i.options[i.answer] for i in items[:5]] == [
        "on top of plate",
        "yes",
        "on top of pan",
        "open",
        "no",
    ]
    assert {i.metadata["answer_group"] for i in items} == {"no_train_file"}
    assert items[5].options == ("closed", "no", "open")  # indirect/ has its own vocabulary
    video = plate.videos[0]
    assert video.path == "27k-22-11-2/fpv1" and len(video.frames) == egotaskqa.DEFAULT_FRAMES
    assert (
        video.frames[0] == "img_04560.jpg" and video.frames[-1] == "img_04973.jpg"
    )  # frames 4546 + k, 1-based
    assert (plate.metadata["start_frame"], plate.metadata["end_frame"], plate.metadata["view"]) == (
        4546,
        4986,
        "P1",
    )
    docs = check_json(items)
    assert docs[0]["videos"][0]["frames"][0] == "img_04560.jpg"
    # the pre-cut clip is preferred when present
    clip = f"{tmp_path}/{INTERVAL}.mp4"
    items, _ = split(egotaskqa.read(tmp_path / "direct", exists=exists_in({clip, frames})))
    assert {i.videos[0].path for i in items} == {f"{INTERVAL}.mp4"} and len(items) == 5


def test_egotaskqa_many_answers_every_question_is_an_item(tmp_path):
    """A direct/indirect test file in the original's record format with 40 distinct answers (more than the 26
    letters of a choice prompt) and a train file beside it: every question is an item, its options the train
    vocabulary (the baselines' answer set) + the file's answers; answer_group says which the train one holds."""
    nouns = [f"object {n:02d}" for n in range(40)]
    train = [taskqa(100 + i, noun.upper()) for i, noun in enumerate(nouns[:30])] + [taskqa(200, "yes")]
    write_json(tmp_path / "direct" / "train_qas.json", train)
    test = [taskqa(i, noun, ["object", "state"][i % 2]) for i, noun in enumerate(nouns)] + [taskqa(50, "no")]
    write_json(tmp_path / "direct" / "test_qas.json", test)
    items, failures = split(egotaskqa.read(tmp_path / "direct", exists=None))
    assert not failures and len(items) == len(test) == 41
    vocab = tuple(sorted([*nouns, "yes", "no"]))
    assert all(i.options == vocab for i in items) and len(vocab) == 42 > 26
    assert [i.options[i.answer] for i in items] == [*nouns, "no"]
    groups = Counter(i.metadata["answer_group"] for i in items)
    assert groups == {"in_train": 30, "not_in_train": 11}  # 10 nouns and "no" are not train answers
    docs = check_json(items)
    assert docs[0]["metric"] == "choice" and len(docs[0]["options"]) == 42 and docs[-1]["answer_text"] == "no"
    # the baselines keep the ANSWER_TOP most frequent train answers
    assert egotaskqa.ANSWER_TOP == 4000
    assert egotaskqa.train_vocabulary(str(tmp_path / "direct" / "train_qas.json")) == sorted(
        [*nouns[:30], "yes"]
    )
    # an unreadable train file: one failure, and the file's own answers as the vocabulary
    (tmp_path / "direct" / "train_qas.json").write_text("[{")
    items, failures = split(egotaskqa.read(tmp_path / "direct", exists=None))
    assert len(items) == 41 and reasons(failures) == {"unreadable file": 1}
    assert {i.metadata["answer_group"] for i in items} == {"no_train_file"}


def test_egotaskqa_every_failure_reason(tmp_path):
    path = write_json(
        tmp_path / "direct" / "val_qas.json",
        [
            taskqa(1, "on top of plate"),
            taskqa(1, "on top of pan"),
            taskqa(2, "x", interval="a/b|P1|1|2"),
            taskqa(3, "x", interval=f"{INTERVAL[:-4]}4546"),
            taskqa(4, " "),
            taskqa(5, "y", type="descriptive"),
            taskqa("6.0", "z"),
        ],
    )
    items, failures = split(egotaskqa.read(path, exists=None))
    assert [i.item_id for i in items] == ["1"]
    assert [(f.record, f.reason) for f in failures] == [
        ("row 2 1", "duplicate id"),
        ("row 3 2", "bad interval"),
        ("row 4 3", "empty window"),
        ("row 5 4", "empty text"),
        ("row 6 5", "schema violation"),
        ("row 7 6.0", "bad id"),
    ]
    lonely = write_json(
        tmp_path / "indirect" / "test_qas.json", [taskqa(1, "only answer"), taskqa(2, "Only answer")]
    )
    assert reasons(split(egotaskqa.read(lonely, exists=None))[1]) == {"too few options": 2}
    stray = write_json(tmp_path / "elsewhere" / "test_qas.json", [taskqa(1, "no")])
    assert reasons(split(egotaskqa.read(stray, exists=None))[1]) == {"unknown split type": 1}


@needs_real
def test_egotaskqa_mcq_real_counts():
    rows = json.loads(EGOTASKQA_MCQ.read_text())
    items, failures = split(egotaskqa.read_mcq(EGOTASKQA_MCQ.parent, exists=None))
    assert len(items) == len(rows) == 8783 and not failures
    assert len({i.videos[0].path for i in items}) == len({r["video_path"] for r in rows}) == 2128
    assert [i.item_id for i in items[:2]] == ["00001", "00002"] and items[-1].item_id == "08783"
    assert Counter("ABCDE"[i.answer] for i in items) == Counter(r["a"] for r in rows)
    for item, row in zip(items, rows, strict=True):
        assert (
            item.options[item.answer] == row["option"][row["a"]] and item.videos[0].path == row["video_path"]
        )
    assert Counter(i.metadata["view"] for i in items) == Counter(r["video_path"].split("|")[1] for r in rows)
    check_json(items, stride=97)


def test_egotaskqa_mcq_every_failure_reason(tmp_path):
    base = {
        "q": "What?",
        "video_path": f"{INTERVAL}.mp4",
        "a": "B",
        "option": dict(zip("ABCDE", "vwxyz", strict=True)),
    }
    path = write_json(
        tmp_path / "egotaskqa.json",
        [
            base,
            base,
            dict(base, a="F"),
            dict(base, q="Other?", option={"A": "v", "C": "w"}),
            dict(base, q="Again?", option=dict(zip("ABCDE", "vvxyz", strict=True))),
            dict(base, q="Where?", video_path=INTERVAL),
            dict(base, q="How?", video_path="../x|P1|1|2.mp4"),
        ],
    )
    items, failures = split(egotaskqa.read_mcq(path, exists=None))
    assert [i.item_id for i in items] == ["00001"] and items[0].answer == 1
    assert [(f.record, f.reason) for f in failures] == [
        ("row 2", "duplicate question"),
        ("row 3", "bad answer"),
        ("row 4", "bad options"),
        ("row 5", "bad options"),
        ("row 6", "bad interval"),
        ("row 7", "bad interval"),
    ]


# ---------------------------------------------------------------------------------------------- Charades-Ego


@needs_real
def test_charades_real_v0_test_and_classes():
    labels, class_failures = charades_ego.read_classes(str(CHARADES / "Charades_v1_classes.txt"))
    assert len(labels) == 157 and not class_failures
    assert (
        labels[134] == "Lying on a bed" and labels[156] == "Someone is eating something"
    )  # c134's space, no \n
    with open(CHARADES / "CharadesEgo_v0_egocentric_test.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    items, failures = split(charades_ego.read(CHARADES / "CharadesEgo_v0_egocentric_test.csv", exists=None))
    assert len(items) == len(rows) == 103 and not failures
    for item, row in zip(items, rows, strict=True):
        positives = sorted({int(a.split()[0][1:]) for a in row["actions"].split(";") if a})
        assert item.item_id == row["id"] and item.item_id.endswith("EGO") and list(item.answer) == positives
        assert item.options == labels and item.videos[0].path == f"CharadesEgo_v1_480/{row['id']}.mp4"
    assert sum(i.metadata["n_actions"] for i in items) == 883 and all(i.answer for i in items)
    assert len({c for i in items for c in i.answer}) == 154  # classes with a positive in this file
    docs = check_json(items)
    assert (
        docs[0]["answer_indices"] == [98, 100, 106, 107, 108, 109, 127, 135]
        and len(docs[0]["options"]) == 157
    )


CHARADES_HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"


def charades_folder(tmp_path: Path, rows: list[str], classes: str | None = None) -> Path:
    folder = tmp_path / "CharadesEgo"
    folder.mkdir()
    (folder / "CharadesEgo_v1_test_only1st.csv").write_text(CHARADES_HEADER + "\n".join(rows) + "\n")
    (folder / "Charades_v1_classes.txt").write_text(
        classes
        if classes is not None
        else "c000 Holding some clothes\nc001 Putting clothes somewhere \nc002 Eating"
    )
    return folder


def test_charades_v1_every_failure_reason(tmp_path):
    rows = [
        "AB12CEGO,S1,Kitchen,6,7,Yes,A person eats.,food,eating,c002 1.0 3.5;c000 0.0 2.0;c002 4 5,10.5",
        "AB12CEGO,,,,,,,,,c000 1 2,3",  # the same id again
        "AB12C,,,,,,,,,c000 1 2,3",  # third-person
        "ZZZZZEGO,,,,,,,,,,8.0",  # no actions: kept
        "BAD01EGO,,,,,,,,,c000 1,3",
        "BAD02EGO,,,,,,,,,c003 1 2,3",
        "BAD03EGO,,,,,,,,,c000 1 2,0",
        "../../EGO,,,,,,,,,c000 1 2,3",
        "SHORTEGO,,c000 1 2",
    ]
    folder = charades_folder(tmp_path, rows)
    present = {f"{tmp_path}/CharadesEgo_v1_480/AB12CEGO.mp4", f"{tmp_path}/CharadesEgo_v1_480/ZZZZZEGO.mp4"}
    items, failures = split(charades_ego.read(tmp_path, exists=exists_in(present)))  # the download root
    assert [(i.item_id, i.answer, i.metadata["n_actions"]) for i in items] == [
        ("AB12CEGO", (0, 2), 3),
        ("ZZZZZEGO", (), 0),
    ]
    assert items[0].options == ("Holding some clothes", "Putting clothes somewhere", "Eating")
    assert [(f.record, f.reason) for f in failures] == [
        ("row 2 AB12CEGO", "duplicate id"),
        ("row 3 AB12C", "not egocentric"),
        ("row 5 BAD01EGO", "bad action"),
        ("row 6 BAD02EGO", "unknown label"),
        ("row 7 BAD03EGO", "bad time"),
        ("row 8 ../../EGO", "bad id"),
        ("row 9 SHORTEGO", "schema violation"),
    ]
    check_json(items)
    items, failures = split(charades_ego.read(folder, exists=None, keep_unlabelled=False))
    assert "ZZZZZEGO" not in {i.item_id for i in items} and reasons(failures)["no actions"] == 1


def test_charades_bad_class_file_fails_the_csv(tmp_path):
    folder = charades_folder(
        tmp_path, ["AB12CEGO,,,,,,,,,c000 1 2,3"], classes="c000 Holding\nc002 Skipped\nnope"
    )
    items, failures = split(charades_ego.read(folder, exists=None))
    assert not items
    assert [(f.file, f.record, f.reason) for f in failures] == [
        ("Charades_v1_classes.txt", "line 2", "class out of order"),
        ("Charades_v1_classes.txt", "line 3", "schema violation"),
        ("CharadesEgo_v1_test_only1st.csv", "", "classes unavailable"),
    ]


# ---------------------------------------------------------------------------------------------- EPIC-100 MIR


@needs_real
def test_epic_real_segments_and_sentence_set():
    with open(EPIC / "EPIC_100_retrieval_test.csv", newline="") as f:
        rows = {r["narration_id"]: r for r in csv.DictReader(f)}
    with open(EPIC / "EPIC_100_retrieval_test_sentence.csv", newline="") as f:
        sentence_rows = list(csv.DictReader(f))
    items, failures = split(epic_mir.read(EPIC, exists=None))
    assert len(items) == len(rows) == 9668 and not failures
    sentences, failures = epic_mir.sentence_set(EPIC)
    assert len(sentences) == len(sentence_rows) == 3842 and not failures
    assert len({s.text for s in sentences}) == 3835
    assert [s.sentence_id for s in sentences] == [r["narration_id"] for r in sentence_rows]
    for s in sentences:  # classes of the narration row each sentence names
        named = rows[s.sentence_id]
        assert s.verb_class == int(named["verb_class"]) and list(s.noun_classes) == json.loads(
            named["all_noun_classes"]
        )
    shifted = [s.sentence_id for s in sentences if not s.text_matches_row]
    assert shifted == [
        r["narration_id"] for r in sentence_rows if r["narration"] != rows[r["narration_id"]]["narration"]
    ]
    assert len(shifted) == 6
    by_id = {s.sentence_id: s for s in sentences}
    for item in items:
        row = rows[item.item_id]
        assert by_id[item.answer].text == row["narration"]
        assert item.videos[0].path == f"{row['participant_id']}/videos/{row['video_id']}.MP4"
        assert item.metadata["noun_classes"] == json.loads(row["all_noun_classes"])
    first = items[0]
    assert (first.videos[0].start_sec, first.videos[0].end_sec, first.answer) == (0.0, 1.89, "P01_11_0")
    assert sum(len(i.metadata["noun_classes"]) > 1 for i in items) == sum(
        len(json.loads(r["all_noun_classes"])) > 1 for r in rows.values()
    )
    check_json(items, stride=101)


EPIC_HEADER = (
    "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,"
    "stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes\n"
)


def epic_rows(*rows: str) -> str:
    return EPIC_HEADER + "".join(r + "\n" for r in rows)


EPIC_OK = (
    "P01_11_0,P01,P01_11,00:00:00.560,00:00:00.00,00:00:01.89,1,113,take plate,take,0,plate,2,['plate'],[2]"
)


def test_epic_every_failure_reason(tmp_path):
    folder = tmp_path / "retrieval_annotations"
    folder.mkdir()
    (folder / epic_mir.TEST_CSV).write_text(
        epic_rows(
            EPIC_OK,
            EPIC_OK,  # duplicate
            EPIC_OK.replace("P01_11_0", "P01_11_2").replace("00:00:01.89", "1.89"),
            EPIC_OK.replace("P01_11_0", "P01_11_3").replace("00:00:01.89", "00:00:00.00"),
            EPIC_OK.replace("P01_11_0", "P01_11_4").replace("[2]", "[x]"),
            EPIC_OK.replace("P01_11_0", "P01_11_5").replace(",P01,", ",../P01,"),
            EPIC_OK.replace("P01_11_0", "P01_11_6").replace("take plate", "wash plate"),
            EPIC_OK.replace("P01_11_0", "P01_11_7").replace(",0,plate,", ",zero,plate,"),
            EPIC_OK.replace("P01_11_0", "P01_11_8")
            .replace("take plate", "take pan")
            .replace(",2,['plate'],[2]", ",5,['pan'],[5]"),
        )
    )
    (folder / epic_mir.SENTENCE_CSV).write_text(
        "narration_id,narration\nP01_11_0,take plate\nP01_11_8,take plate\nP09_09_9,stir\nP01_11_6,\n"
    )
    items, failures = split(epic_mir.read(tmp_path, exists=None))  # the repository root
    # P01_11_8 reads "take pan", its sentence row "take plate" (a shifted caption): it has no sentence
    assert [(i.item_id, i.answer) for i in items] == [("P01_11_0", "P01_11_0")]
    assert [(f.file, f.record, f.reason) for f in failures] == [
        (epic_mir.TEST_CSV, "row 2 P01_11_0", "duplicate id"),
        (epic_mir.TEST_CSV, "row 3 P01_11_2", "bad time"),
        (epic_mir.TEST_CSV, "row 4 P01_11_3", "empty window"),
        (epic_mir.TEST_CSV, "row 5 P01_11_4", "bad label"),
        (epic_mir.TEST_CSV, "row 6 P01_11_5", "unsafe path"),
        (epic_mir.TEST_CSV, "row 7 P01_11_6", "no sentence"),
        (epic_mir.TEST_CSV, "row 8 P01_11_7", "bad label"),
        (epic_mir.TEST_CSV, "row 9 P01_11_8", "no sentence"),
        (epic_mir.SENTENCE_CSV, "row 3 P09_09_9", "unknown narration"),
        (epic_mir.SENTENCE_CSV, "row 4 P01_11_6", "empty text"),
    ]
    sentences, _ = epic_mir.sentence_set(folder)
    assert [(s.sentence_id, s.verb_class, s.noun_classes, s.text_matches_row) for s in sentences] == [
        ("P01_11_0", 0, (2,), True),
        ("P01_11_8", 0, (5,), False),
    ]
    (folder / epic_mir.SENTENCE_CSV).unlink()
    items, failures = split(epic_mir.read(folder / epic_mir.TEST_CSV, exists=None))
    assert not items and [f.reason for f in failures] == ["missing file", "sentences unavailable"]


def test_epic_own_sentence_prefers_the_segment_classes():
    seg = epic_mir.Segment("P1_1_5", "P1", "P1_1", 0, 1, 0, 60, "cut slice", "cut", 7, 4, ("slice",), (4,))
    by_text = {
        "cut slice": [
            epic_mir.Sentence("P1_1_1", "cut slice", 7, (7,), True),
            epic_mir.Sentence("P1_1_2", "cut slice", 7, (4,), True),
        ]
    }
    assert epic_mir.own_sentence(seg, by_text) == "P1_1_2"
    assert epic_mir.seconds("01:02:03.5") == 3723.5


# ---------------------------------------------------------------------------------------------- EgoPlan


@needs_real
def test_egoplan2_real_counts_windows_and_answers():
    rows = json.loads(EGOPLAN2.read_text())
    items, failures = split(egoplan.read(EGOPLAN2, exists=None))
    assert len(items) == len(rows) == 1321 and not failures
    assert Counter(i.metadata["domain"] for i in items) == {
        "Daily life": 439,
        "Work": 404,
        "Hobbies": 295,
        "Recreation": 183,
    }
    for item, row in zip(items, rows, strict=True):
        assert (
            item.answer == "ABCD".index(row["golden_choice_idx"])
            and item.options[item.answer] == row["answer"]
        )
        uid = row["sample_id"].rsplit("_", 1)[0]
        video = item.videos[0]
        assert video.path == f"Ego4D/v1_288p/{uid}.mp4"
        assert video.start_sec == row["task_start_frame"] / 30
        assert video.end_sec == (row["current_observation_frame"] + 1) / 30
        assert item.question.endswith(f"in order to {row['task_goal']}?")
        assert item.metadata["progress"] == [p["narration_text"] for p in row["task_progress_metadata"]]
    check_json(items)


# The real v1 validation record quoted in the EgoPlan README (SOURCES.md section 11), progress complete.
EGOPLAN_V1 = {
    "sample_id": 115,
    "video_source": "EpicKitchens",
    "video_id": "P01_13",
    "task_goal": "store cereal",
    "question": "Considering the progress shown in the video and my current observation in the last frame, "
    "what action should I take next in order to store cereal?",
    "choice_a": "put cereal box into cupboard",
    "choice_b": "take cereal bag",
    "choice_c": "open cupboard",
    "choice_d": "put cereal bag into cereal box",
    "golden_choice_idx": "A",
    "answer": "put cereal box into cupboard",
    "current_observation_frame": 760,
    "task_progress_metadata": [
        {"narration_text": "take cereal bag", "start_frame": 36, "stop_frame": 105},
        {"narration_text": "fold cereal bag", "start_frame": 111, "stop_frame": 253},
        {"narration_text": "put cereal bag into cereal box", "start_frame": 274, "stop_frame": 456},
        {"narration_text": "close cereal box", "start_frame": 457, "stop_frame": 606},
        {"narration_text": "open cupboard", "start_frame": 689, "stop_frame": 760},
    ],
}


def test_egoplan_v1_epic_and_ego4d_windows(tmp_path):
    ego4d = dict(
        EGOPLAN_V1,
        sample_id=7,
        video_source="Ego4D",
        video_id="000786a7-3f9d-4fe6-bfb3-045b368f7d44",
        task_progress_metadata=[],
        current_observation_frame=300,
    )
    extension = dict(EGOPLAN_V1, sample_id=8, video_id="P01_101")
    path = write_json(tmp_path / "EgoPlan_validation.json", [EGOPLAN_V1, ego4d, extension])
    items, failures = split(egoplan.read(tmp_path, exists=None))
    assert not failures
    epic, ego, ext = items
    assert (epic.item_id, epic.answer, epic.question) == ("115", 0, EGOPLAN_V1["question"])
    assert epic.videos[0].path == "EPIC-KITCHENS/P01/videos/P01_13.MP4"
    assert (epic.videos[0].start_sec, epic.videos[0].end_sec) == (36 / 60, 761 / 60)  # EPIC-55: 60.0 fps
    assert ext.metadata["fps"] == 50.0 and ext.videos[0].start_sec == pytest.approx(36 / 50)
    # no progress: the clip is the observation frame alone
    assert (ego.videos[0].start_sec, ego.videos[0].end_sec) == (10.0, 301 / 30)
    assert ego.videos[0].path == "Ego4D/v1_288p/000786a7-3f9d-4fe6-bfb3-045b368f7d44.mp4"
    items, _ = split(egoplan.read(path, exists=None, epic_fps={"P01_13": 25.0, "P01_101": 25.0}))
    assert items[0].videos[0].start_sec == 36 / 60 and items[2].videos[0].start_sec == 36 / 25
    present = {f"{tmp_path}/P01/videos/P01_13.MP4"}
    items, failures = split(egoplan.read(path, exists=exists_in(present)))
    assert [i.videos[0].path for i in items] == ["P01/videos/P01_13.MP4"] and reasons(failures) == {
        "video not found": 2
    }
    check_json(split(egoplan.read(path, exists=None))[0])


def test_egoplan_every_failure_reason(tmp_path):
    def v(n, **over):
        return {**EGOPLAN_V1, "sample_id": n, **over}

    path = write_json(
        tmp_path / "EgoPlan_validation.json",
        [
            v(1),
            v(1),
            v(2, golden_choice_idx="E"),
            v(3, answer="open cupboard"),
            v(4, task_progress_metadata=[{}]),
            v(5, current_observation_frame="760"),
            v(6, video_source="YouTube"),
            v(7, video_id="kitchen_13"),
            v(8, current_observation_frame=-1),
            v(True),
            v(10, choice_b=" "),
        ],
    )
    items, failures = split(egoplan.read(path, exists=None))
    assert [i.item_id for i in items] == ["1"]
    assert [(f.record, f.reason) for f in failures] == [
        ("row 2 1", "duplicate id"),
        ("row 3 2", "bad answer"),
        ("row 4 3", "answer mismatch"),
        ("row 5 4", "bad progress"),
        ("row 6 5", "bad time"),
        ("row 7 6", "unknown video source"),
        ("row 8 7", "bad id"),
        ("row 9 8", "negative observation frame"),
        ("row 10", "bad id"),
        ("row 11 10", "empty text"),
    ]


# ---------------------------------------------------------------------------------------------- VLN-QA


@needs_real
def test_vlnqa_real_counts_and_gold_folders():
    rows = json.loads(VLNQA.read_text())
    items, failures = split(vlnqa.read(VLNQA.parent, exists=None))
    assert len(items) == len(rows) == 200 and not failures
    assert Counter(i.metadata["action"] for i in items) == {
        "left": 50,
        "right": 50,
        "forward": 50,
        "stop": 50,
    }
    gold = {"left": "Turn left", "right": "Turn right", "forward": "Move forward", "stop": "Stop"}
    for item, row in zip(items, rows, strict=True):
        line = re.search(rf"^{row['gt']}: (.*)$", row["text"], re.M)[1]  # the gold option, read independently
        assert line.startswith(gold[row["video_path"].split("/")[0]])
        assert item.options[item.answer] == line and item.videos[0].path == row["video_path"]
        assert item.question.startswith("This is a navigation video") and "\r" not in item.question
        assert len(item.options) == 4 and "Option" not in item.question
    assert Counter("ABCD"[i.answer] for i in items) == Counter(r["gt"] for r in rows)
    assert len({i.item_id for i in items}) == 200
    check_json(items)


VLN_TEXT = (
    "Select the best answer to the following multiple-choice question based on the video.\nQuestion: This is "
    'a navigation video of an agent following instruction: "Go to the stairs\r\nGo to the pool table." What '
    "is the next action it should take?\nOption:\nA: Turn right and move forward\nB: Move forward\nC: Stop\n"
    "D: Turn left and move forward\nOnly give the best option."
)


def test_vlnqa_parsing_and_every_failure_reason(tmp_path):
    path = write_json(
        tmp_path / "vlnqa.json",
        [
            {"text": VLN_TEXT, "video_path": "forward/1111_frame58.mp4", "gt": "B"},
            {"text": VLN_TEXT, "video_path": "forward/1111_frame58.mp4", "gt": "B"},
            {"text": VLN_TEXT, "video_path": "stop/1_frame1.mp4", "gt": "B"},
            {"text": "Question: no options", "video_path": "left/2.mp4", "gt": "A"},
            {"text": VLN_TEXT, "video_path": "../left/3.mp4", "gt": "D"},
            {"text": VLN_TEXT, "video_path": "left/4.mp4", "gt": "E"},
            {"text": VLN_TEXT, "video_path": "other/5.mp4", "gt": "A"},
        ],
    )
    items, failures = split(vlnqa.read(path, exists=None))
    assert [(i.item_id, i.answer, i.metadata["action"]) for i in items] == [
        ("forward_1111_frame58", 1, "forward"),
        ("other_5", 0, "other"),
    ]
    assert items[0].question.endswith(
        '"Go to the stairs\nGo to the pool table." What is the next action it should take?'
    )
    assert [(f.record, f.reason) for f in failures] == [
        ("row 2 forward/1111_frame58.mp4", "duplicate id"),
        ("row 3 stop/1_frame1.mp4", "answer mismatch"),
        ("row 4 left/2.mp4", "bad prompt"),
        ("row 5 ../left/3.mp4", "unsafe path"),
        ("row 6 left/4.mp4", "bad answer"),
    ]


# ---------------------------------------------------------------------------------------------- EgoMCQ


def clip(uid: str, start: float, text: str, **over) -> dict:
    return {
        "video_uid": uid,
        "video_dur": 1000.0,
        "narration_source": "narration_pass_1",
        "narration_ind": 3,
        "narration_time": start + 0.5,
        "clip_start": start,
        "clip_end": start + 1.0,
        "clip_text": text,
        "tag_verb": "[93]",
        "tag_noun": "[192, 115]",
        **over,
    }


def mcq(answer: int, types: int, uids: list[str], **over) -> dict:
    choices = {str(k): clip(uids[k], 10.0 * k, f"#C C picks object {k}") for k in range(5)}
    k = answer % 5
    return {
        "answer": answer,
        "query": clip(uids[k], 10.0 * k, f"#C C picks object {k}"),
        "choices": choices,
        "types": types,
        **over,
    }


def test_egomcq_items_keep_the_data_type_meaning(tmp_path):
    inter = mcq(2, 1, ["u0", "u1", "u2", "u3", "u4"])
    intra = mcq(4, 2, ["v"] * 5)
    intra["choices"]["0"]["clip_start"] = -0.3  # clamped at 0 as EgoVLP does
    write_json(tmp_path / "egomcq.json", {"10": intra, "2": inter})
    items, failures = split(egomcq.read(tmp_path, exists=None))
    assert not failures and [i.item_id for i in items] == ["2", "10"]  # numeric key order
    first, second = items
    assert (first.question, first.answer, first.metadata["types"], first.metadata["type_name"]) == (
        "Camera-wearer picks object 2",
        2,
        1,
        "inter",
    )
    assert first.metadata["n_videos"] == 5 and second.metadata["n_videos"] == 1
    assert second.metadata["type_name"] == "intra" and second.options[4] == "Camera-wearer picks object 4"
    assert [v.path for v in first.videos] == [f"v2/full_scale/u{k}.mp4" for k in range(5)]
    assert (second.videos[0].start_sec, second.videos[0].end_sec) == (0.0, 1.0)
    assert (first.metadata["tag_verb"], first.metadata["tag_noun"], first.metadata["query_text"]) == (
        [93],
        [192, 115],
        "#C C picks object 2",
    )
    docs = check_json(items)
    assert docs[0]["answer_text"] == "Camera-wearer picks object 2" and len(docs[0]["videos"]) == 5


def test_egomcq_every_failure_reason(tmp_path):
    uids = ["u0", "u1", "u2", "u3", "u4"]
    bad_time = mcq(0, 1, uids)
    bad_time["choices"]["3"]["clip_end"] = "x"
    empty = mcq(0, 1, uids)
    empty["choices"]["1"]["clip_end"] = 10.0
    escape = mcq(0, 1, ["../../etc/passwd", *uids[1:]])
    no_text = mcq(0, 1, uids)
    no_text["choices"]["2"]["clip_text"] = "#C"
    bad_tag = mcq(0, 1, uids)
    bad_tag["query"]["tag_noun"] = "[x]"
    data = {
        "0": mcq(0, 1, uids),
        "1": mcq(5, 1, uids),
        "2": mcq(0, 3, uids),
        "3": dict(mcq(0, 1, uids), choices={"0": clip("u0", 0, "#C C x")}),
        "4": bad_time,
        "5": empty,
        "6": escape,
        "7": no_text,
        "8": bad_tag,
        "9": mcq(1, 1, uids),
        "x.y": mcq(0, 1, uids),
    }
    present = {f"{tmp_path}/v2/full_scale/{u}.mp4" for u in uids}
    data["9"]["choices"]["4"]["video_uid"] = "missing"
    path = write_json(tmp_path / "egomcq.json", data)
    items, failures = split(egomcq.read(path, tmp_path, exists=exists_in(present)))
    assert [i.item_id for i in items] == ["0"]
    assert [(f.record, f.reason) for f in failures] == [
        ("key 1", "bad answer"),
        ("key 2", "bad type"),
        ("key 3", "bad choices"),
        ("key 4", "bad time"),
        ("key 5", "empty window"),
        ("key 6", "bad id"),
        ("key 7", "empty text"),
        ("key 8", "bad label"),
        ("key 9", "video not found"),
        ("key x.y", "bad id"),
    ]
