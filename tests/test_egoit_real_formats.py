"""EgoTimeQA and EgoExoLearn read right on their real formats (issue 17).

EgoTimeQA: the real annotations.EgoTimeQA.json gives every QA of a clip the clip uid as sample_id (the record quoted
in GroundVQA issue 9, https://github.com/Becomebright/GroundVQA/issues/9); a QA's id is derived from its clip,
moment and question, and a QA asked twice is reported. EgoExoLearn: the real exo_train.csv has 3 cells that caption
two videos ("Video 1: ... Video 2: ..."); they are rejected with their reason, never turned into answers.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

from pipeline.core.shards import read_tar_samples
from pipeline.egoit.convert import load_templates, to_items
from pipeline.egoit.records import RecordFailure, SourceRecord
from pipeline.egoit.sources import egoexolearn, egotimeqa
from tests.conftest import SHARED_REAL, build_egoit, needs_real

CLIP = "16fc2d81-e55c-4a3b-a298-b9d0272e9815"
# GroundVQA issue 9, verbatim: sample_id is the clip uid
QUOTED = (
    '{"video_id":"16fc2d81-e55c-4a3b-a298-b9d0272e9815","sample_id":"16fc2d81-e55c-4a3b-a298-b9d0272e9815",'
    '"answer":"gave it to Person B","question":"What did I do with the coffee?",'
    '"moment_start_frame":3601.4243095096826,"moment_end_frame":3857.5756904903174,'
    '"wrong_answers":["drank it myself","left it on the table","spilled it on the floor"]}'
)
# four more QAs on the same clip, one per narration window, in the quoted record's format
OTHERS = [
    ("How many cups did I wash?", "two", 300.5, 540.0),
    ("Where did I put the mug?", "on the counter next to the sink", 1180.2394117647059, 1395.7605882352941),
    ("Which drawer did I open?", "the top drawer on the left", 2400.3, 2590.8),
    ("What did I pick up from the table?", "the car keys", 3000.0, 3120.5),
]
EXO_REAL = SHARED_REAL / "egoexolearn" / "exo_train.csv"
MULTI_VIDEO_ROWS = {"8pRbwiLJ": 3463, "yCMpB0Mx": 3464, "OEz8OyEw": 3469}  # annotation_id -> reader's row number
PANE_LABEL = re.compile(r"\bvideo\s*\d\s*:", re.IGNORECASE)


def five_qas() -> list[dict]:
    rows = [json.loads(QUOTED)]
    for question, answer, start, end in OTHERS:
        rows.append({"video_id": CLIP, "sample_id": CLIP, "answer": answer, "question": question,
                     "moment_start_frame": start, "moment_end_frame": end})  # fmt: skip
    return rows


def split(results) -> tuple[list[SourceRecord], list[RecordFailure]]:
    results = list(results)
    return [r for r in results if isinstance(r, SourceRecord)], [r for r in results if isinstance(r, RecordFailure)]


def write_json(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))
    return path


# ------------------------------------------------------------------------------------------------ EgoTimeQA


def test_five_qas_on_one_clip_in_the_real_format_give_five_records(tmp_path):
    rows = five_qas()
    assert {r["sample_id"] for r in rows} == {CLIP}  # the real format: one sample_id for the whole clip
    path = write_json(tmp_path / egotimeqa.FILE_NAME, rows)
    records, failures = split(egotimeqa.read(path, "/e", exists=None))
    assert not failures and len(records) == 5 == len({r.record_id for r in records})
    assert [r.fields["question"] for r in records] == [r["question"] for r in rows]
    coffee = records[0]
    assert coffee.record_id == egotimeqa.qa_id(CLIP, 3601.4243095096826, 3857.5756904903174, coffee.fields["question"])
    assert re.fullmatch(CLIP + r"_[0-9a-f]{12}", coffee.record_id) and coffee.video_id == CLIP
    # every item (open and multiple choice) of the five has its own id
    items = [item.id for r in records for item in to_items(r, load_templates())]
    assert len(items) == 6 == len(set(items))  # the quoted record has wrong answers: its -mc item too
    assert split(egotimeqa.read(path, "/e", exists=None))[0] == records  # deterministic


def test_a_qa_asked_twice_is_reported_never_dropped_silently(tmp_path):
    rows = five_qas()
    again = {**rows[2], "answer": "on the counter"}  # same clip, window and question: a true duplicate
    spaced = {**rows[1], "question": "  how many cups did I  wash?"}  # case and spacing folded: the same question
    other_window = {**rows[1], "moment_end_frame": 600.0}  # the same question on another window: another QA
    other_clip = {**rows[1], "video_id": "clip-b", "sample_id": "clip-b"}
    path = write_json(tmp_path / egotimeqa.FILE_NAME, [*rows, again, spaced, other_window, other_clip])
    records, failures = split(egotimeqa.read(path, "/e", exists=None))
    assert len(records) == 7 == len({r.record_id for r in records})
    assert [(f.record, f.reason) for f in failures] == [
        (f"row 6 {CLIP}", "duplicate question"),
        (f"row 7 {CLIP}", "duplicate question"),
    ]
    assert failures[0].detail.endswith("asked before in row 3") and "Where did I put the mug?" in failures[0].detail
    assert failures[1].detail.endswith("asked before in row 2")


def test_qa_id_folds_case_spacing_and_number_form_only():
    base = egotimeqa.qa_id("c", 30, 60.5, "What did I take?")
    assert base == egotimeqa.qa_id("c", 30.0, 60.5, " what did  I take? ")
    assert len({base, egotimeqa.qa_id("c", 31, 60.5, "What did I take?"), egotimeqa.qa_id("d", 30, 60.5,
                "What did I take?"), egotimeqa.qa_id("c", 30, 60.5, "What did I drop?")}) == 4  # fmt: skip


def test_five_qas_on_one_clip_give_five_items_in_a_real_build(egoit_sample, tmp_path):
    """The EgoIT CLI, real Beam, ffmpeg and shards, on the five QAs above: the clip is the mini-release's."""
    rows = [{k: v for k, v in r.items() if k != "wrong_answers"} for r in five_qas()]  # open QA only: 5 items
    write_json(tmp_path / "egotimeqa" / "unified" / egotimeqa.FILE_NAME, rows)
    config = tmp_path / "egoit.yaml"
    config.write_text(f"sources:\n  egotimeqa: {{root: egotimeqa, videos: {egoit_sample / 'egotimeqa/ego4d'}}}\n")
    out = tmp_path / "out"
    stats = build_egoit(tmp_path, out)
    assert stats["input_rows"]["egotimeqa"]["all"] == 5
    docs = [json.loads(s["json"]) for tar in sorted(out.glob("egoit-*.tar")) for s in read_tar_samples(tar)]
    assert len(docs) == 5 == len({d["id"] for d in docs})
    assert sorted(d["metadata"]["question"] for d in docs) == sorted(r["question"] for r in rows)
    assert {d["metadata"]["record_id"].rsplit("_", 1)[0] for d in docs} == {CLIP}
    assert not (out / "errors.jsonl").read_text().strip()


def test_the_bundled_build_keeps_every_qa_of_a_clip(egoit_sample, egoit_build):
    out, _ = egoit_build
    rows = json.loads(next((egoit_sample / "egotimeqa").rglob(egotimeqa.FILE_NAME)).read_text())
    assert all(r["sample_id"] == r["video_id"] for r in rows) and Counter(r["video_id"] for r in rows)[CLIP] == 5
    docs = [json.loads(s["json"]) for tar in sorted(out.glob("egoit-*.tar")) for s in read_tar_samples(tar)]
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    open_qa = {d["metadata"]["question"] for d in docs if d["source"] == "egotimeqa" and d["task"] == "open_qa"}
    removed = [e for e in errors if e["source"] == "egotimeqa" and e["reason"] == "near duplicate"]
    # the clip's 5 QAs: 4 items, and the fridge paraphrase removed as a near duplicate with its reason
    on_clip = {r["question"] for r in rows if r["video_id"] == CLIP}
    assert len(on_clip & open_qa) == 4 and len(removed) == 2  # the paraphrase's open and MC items


# ---------------------------------------------------------------------------------------------- EgoExoLearn


@needs_real
def test_real_multi_video_cells_are_rejected_with_their_reason():
    with open(EXO_REAL, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # counted independently of the reader: every cell with a "Video N:" label, in either language
    labelled = [r["annotation_id"] for r in rows if PANE_LABEL.search(r["narration_en"]) or "视频" in r["narration_ch"]]
    assert len(rows) == 6270 and labelled == list(MULTI_VIDEO_ROWS)
    assert all({r["video_uid"] for r in rows if r["annotation_id"] in MULTI_VIDEO_ROWS} == {v} for v in
               ["2d79404a-56c4-11ee-88ee-80615f12b59e"])  # fmt: skip
    records, failures = split(egoexolearn.read(EXO_REAL, "/v", exists=None))
    assert len(records) == 6267
    assert [(f.record, f.reason) for f in failures] == [
        (f"row {n} {ident}", "multi-video caption") for ident, n in MULTI_VIDEO_ROWS.items()
    ]
    assert all("'Video 1:', 'Video 2:'" in f.detail for f in failures)
    # no record and no EgoIT answer of the real file says "Video 1:"
    assert not [r for r in records if PANE_LABEL.search(r.fields["narration"])]
    templates = load_templates()
    answers = [item.conversations[1].text for r in records for item in to_items(r, templates)]
    assert len(answers) == 6267 and not [a for a in answers if PANE_LABEL.search(a)]


def test_pane_labels_in_either_language_reject_the_row(tmp_path):
    header = ["annotation_id", "start_sec", "end_sec", "narration_ch", "narration_en", "scenario", "video_uid"]
    rows = [
        ["a1", "0", "1", "", "Video 1: Cut the eggplant.\nVideo 2: Cut the potato.", "kitchen", "v"],
        ["a2", "1", "2", "", "Divide the garlic.\nvideo 2 : Press the small ones.", "kitchen", "v"],
        ["a3", "2", "3", "视频一：切茄子", "Cut the eggplant.", "kitchen", "v"],  # the label only in Chinese
        ["a4", "3", "4", "", "Play the video 1 more time, then cut the eggplant.", "kitchen", "v"],  # no label
    ]
    path = tmp_path / "exo_train.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    records, failures = split(egoexolearn.read(path, "/v", exists=None))
    assert [r.record_id for r in records] == ["a4"]
    assert [(f.record, f.reason) for f in failures] == [(f"row {n} a{n}", "multi-video caption") for n in (1, 2, 3)]


def test_the_bundled_build_has_no_pane_label_and_reports_its_multi_video_cell(egoit_build):
    out, stats = egoit_build
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    multi = [(e["source"], e["record"]) for e in errors if e["reason"] == "multi-video caption"]
    assert multi == [("egoexolearn", "row 5 8pRbwiLJ")]
    docs = [json.loads(s["json"]) for tar in sorted(out.glob("egoit-*.tar")) for s in read_tar_samples(tar)]
    texts = [turn["value"] for d in docs for turn in d["conversations"]]
    assert texts and not [t for t in texts if PANE_LABEL.search(t)]
    assert sum(d["source"] == "egoexolearn" for d in docs) == 9
