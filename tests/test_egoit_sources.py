"""The five EgoIT source readers: exact record / failure counts on the real annotation files (../shared/real),
and every failure reason, path rule and window rule on small hand-written files."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from pipeline.core.readers import uniform_indices
from pipeline.core.values import UnsafePath, join_root, safe_relpath
from pipeline.egoit.records import SOURCES, RecordFailure, SourceRecord
from pipeline.egoit.sources import LAYOUTS, READERS, egoexolearn, egotimeqa, egtea, openeqa, ssv2
from tests.conftest import SHARED_REAL, needs_real

EGTEA_REAL = SHARED_REAL / "egtea_gaze_plus"
SSV2_REAL = SHARED_REAL / "something_something_v2"
OPENEQA_REAL = SHARED_REAL / "openeqa" / "open-eqa-v0.json"
EGOEXOLEARN_REAL = SHARED_REAL / "egoexolearn" / "exo_train.csv"


def split(results) -> tuple[list[SourceRecord], list[RecordFailure]]:
    results = list(results)
    records = [r for r in results if isinstance(r, SourceRecord)]
    failures = [r for r in results if isinstance(r, RecordFailure)]
    assert len(records) + len(failures) == len(results)
    return records, failures


def reasons(failures) -> Counter:
    return Counter((f.file, f.reason) for f in failures)


def only(failures, reason: str) -> RecordFailure:
    [hit] = [f for f in failures if f.reason == reason]
    return hit


def exists_in(paths: set[str]):
    """A fake `exists` (the readers probe video files only through it)."""
    return lambda p: p in paths


# ---------------------------------------------------------------------------------------------- registry, common


def test_registry_has_one_reader_and_layout_per_source():
    assert tuple(READERS) == SOURCES and tuple(LAYOUTS) == SOURCES
    assert "cropped_clips/<session>/<clip>.mp4" in LAYOUTS["egtea"]
    assert "20bn-something-something-v2/<id>.webm" in LAYOUTS["ssv2"]
    assert "v2/clips/<clip_uid>.mp4" in LAYOUTS["egotimeqa"]
    assert "<episode_history>/<N>-rgb.png" in LAYOUTS["openeqa"]
    assert "<video_uid>.mp4" in LAYOUTS["egoexolearn"]


@pytest.mark.parametrize("rel", ["/etc/passwd", "../x", "a/../../x", "a/..", "C:\\x", "C:/x", "\\\\srv\\share",
                                 "gs://bucket/x", "", "  ", "a\\b", "a\x00b"])
def test_safe_relpath_rejects_escapes(rel):
    with pytest.raises(UnsafePath):
        safe_relpath(rel)


def test_safe_relpath_normalises_and_join_keeps_remote_roots():
    assert safe_relpath("hm3d-v0/./000-hm3d-X/") == "hm3d-v0/000-hm3d-X"
    assert join_root("gs://bucket/ego4d/", "v2/clips/a.mp4") == "gs://bucket/ego4d/v2/clips/a.mp4"


def test_uniform_indices_are_bin_centres():
    assert uniform_indices(10, 4) == [1, 3, 6, 8]  # (2i+1)*10 // 8
    assert uniform_indices(3, 5) == [0, 0, 1, 2, 2]  # shorter than n: repeats, always n
    assert uniform_indices(16, 16) == list(range(16))


@pytest.mark.parametrize("source", SOURCES)
def test_garbage_files_become_failures_never_exceptions(tmp_path, source):
    names = ["action_idx.txt", "verb_idx.txt", "noun_idx.txt", "train_split1.txt", "test_split1.txt",
             "labels.json", "train.json", "validation.json", egotimeqa.FILE_NAME, openeqa.FILE_NAME,
             "ego_train.csv", "exo_train.csv"]
    for name in names:
        (tmp_path / name).write_bytes(b"\xff\xfe\x00garbage\x81")
    records, failures = split(READERS[source](tmp_path))
    assert not records and failures
    assert {f.reason for f in failures} <= {"unreadable file", "index unavailable"}
    assert all(f.record == "" for f in failures)  # whole files


# ---------------------------------------------------------------------------------------------------- EGTEA


def egtea_folder(tmp_path: Path, train: str, test: str = "", actions: str | None = None) -> Path:
    folder = tmp_path / "action_annotation"
    folder.mkdir()
    (folder / "verb_idx.txt").write_text("Inspect/Read 1\nTurn on 2\nPour 3\n")
    (folder / "noun_idx.txt").write_text("recipe 1\nfaucet 2\noil 3\noil_container 4\npan 5\n")
    default_actions = "Inspect/Read recipe 1\nTurn on faucet 2\nPour oil,oil_container,pan 3\n"
    (folder / "action_idx.txt").write_text(default_actions if actions is None else actions)
    (folder / "train_split1.txt").write_text(train)
    (folder / "test_split1.txt").write_text(test)
    return folder


CLIP_A = "OP01-R01-PastaSalad-1002316-1004005-F024051-F024101"
CLIP_B = "P21-R04-ContinentalBreakfast-291175-294945-F006979-F007088"


def test_egtea_every_failure_reason(tmp_path):
    train = "\n".join([
        f"{CLIP_A} 1 1 1",
        "",  # blank lines are not rows
        f"{CLIP_B} 3 3 3 4 5",  # three nouns listed
        f"{CLIP_B} 1 1 1",  # same clip again
        "OP01-R01-PastaSalad-1-2-F1-F2 1 1",  # 3 fields
        "OP01-R01-PastaSalad-1-2-F1-F2 1 x 1",  # not an integer
        "not-a-clip-name 1 1 1",
        "OP01-R01-PastaSalad-500-500-F1-F2 1 1 1",  # end <= start
        "OP01-R01-PastaSalad-1-9-F1-F2 99 1 1",  # no such action
        "OP01-R01-PastaSalad-1-8-F1-F2 3 3 3 4 1",  # action 3's third noun is pan (5), not recipe
        "OP01-R01-PastaSalad-1-7-F1-F2 2 2 2",  # labels fine, no video
    ])
    folder = egtea_folder(tmp_path, train, test="OP02-R02-TurkeySandwich-10-20-F1-F2 2 2 2\n")
    present = {f"{tmp_path}/cropped_clips/OP01-R01-PastaSalad/{CLIP_A}.mp4",
               f"{tmp_path}/cropped_clips/P21-R04-ContinentalBreakfast/{CLIP_B}.mp4",
               f"{tmp_path}/videos/OP02-R02-TurkeySandwich.mp4"}
    records, failures = split(egtea.read(folder, exists=exists_in(present)))
    assert [r.record_id for r in records] == [CLIP_A, CLIP_B, "OP02-R02-TurkeySandwich-10-20-F1-F2"]
    assert Counter(f.reason for f in failures) == {
        "duplicate id": 1, "schema violation": 2, "bad clip name": 1, "empty window": 1,
        "unknown label": 1, "label mismatch": 1, "video not found": 1}
    assert only(failures, "duplicate id").record == f"line 4 {CLIP_B}"  # blank line 2 still counts
    assert only(failures, "label mismatch").file == "train_split1.txt"
    pour = records[1]
    assert pour.fields["verb"] == "Pour" and pour.fields["nouns"] == ["oil", "oil_container", "pan"]
    assert pour.fields["noun_ids"] == [3, 4, 5] and pour.fields["action"] == "Pour oil,oil_container,pan"
    assert (pour.video_id, pour.source_split, pour.task) == ("P21-R04-ContinentalBreakfast", "train",
                                                             "action_recognition")


def test_egtea_cropped_clip_else_session_video_cut_by_time(tmp_path):
    # the default video root is the download root above action_annotation/ (real files here, default exists)
    folder = egtea_folder(tmp_path, f"{CLIP_A} 1 1 1\n", test=f"{CLIP_B} 1 1 1\n")
    (tmp_path / "cropped_clips" / "OP01-R01-PastaSalad").mkdir(parents=True)
    (tmp_path / "cropped_clips" / "OP01-R01-PastaSalad" / f"{CLIP_A}.mp4").write_bytes(b"")
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "OP01-R01-PastaSalad.mp4").write_bytes(b"")
    (tmp_path / "videos" / "P21-R04-ContinentalBreakfast.mp4").write_bytes(b"")
    for given in (folder, tmp_path):  # the annotation folder or the download root holding it
        records, failures = split(egtea.read(given))
        assert not failures
        cropped, session = (r.video for r in records)
        assert (cropped.path, cropped.start_sec, cropped.end_sec) == (
            f"cropped_clips/OP01-R01-PastaSalad/{CLIP_A}.mp4", None, None)
        assert (session.path, session.start_sec, session.end_sec) == (
            "videos/P21-R04-ContinentalBreakfast.mp4", 291.175, 294.945)
        assert records[1].fields["start_ms"] == 291175 and records[1].source_split == "test"


def test_egtea_broken_index_accounts_for_every_split_file(tmp_path):
    folder = egtea_folder(tmp_path, f"{CLIP_A} 1 1 1\n")
    (folder / "noun_idx.txt").unlink()
    records, failures = split(egtea.read(folder, exists=None))
    assert not records
    assert reasons(failures) == {("noun_idx.txt", "missing file"): 1, ("train_split1.txt", "index unavailable"): 1,
                                 ("test_split1.txt", "index unavailable"): 1}


def test_egtea_bad_index_lines_and_actions(tmp_path):
    actions = "Inspect/Read recipe 1\nTurn on faucet 2\nPour oil,spoon 3\nno_id_here\n"
    folder = egtea_folder(tmp_path, f"{CLIP_A} 1 1 1\n{CLIP_B} 3 3 3 6\n", actions=actions)
    records, failures = split(egtea.read(folder, exists=None))
    assert [r.record_id for r in records] == [CLIP_A]
    assert [(f.file, f.record, f.reason) for f in failures] == [
        ("action_idx.txt", "line 4", "schema violation"),
        ("action_idx.txt", "id 3", "unknown label"),  # "spoon" is not in noun_idx
        ("train_split1.txt", f"line 2 {CLIP_B}", "unknown label"),
    ]


def test_egtea_split_choice_and_single_file(tmp_path):
    folder = egtea_folder(tmp_path, f"{CLIP_A} 1 1 1\n", test=f"{CLIP_B} 1 1 1\n")
    (folder / "train_split2.txt").write_text(f"{CLIP_B} 1 1 1\n")
    (folder / "test_split2.txt").write_text(f"{CLIP_A} 1 1 1\n")
    records, _ = split(egtea.read(folder, exists=None, split=2))
    assert [(r.source_file, r.record_id) for r in records] == [("train_split2.txt", CLIP_B),
                                                               ("test_split2.txt", CLIP_A)]
    records, failures = split(egtea.read(folder / "test_split1.txt", exists=None))
    assert [r.record_id for r in records] == [CLIP_B] and not failures
    with pytest.raises(ValueError):
        list(egtea.read(folder, split=4))


@needs_real
def test_egtea_real_split1_counts():
    lines = {name: (EGTEA_REAL / name).read_text().splitlines() for name in ("train_split1.txt", "test_split1.txt")}
    widths = {name: Counter(len(line.split()) for line in rows) for name, rows in lines.items()}
    assert widths == {"train_split1.txt": {4: 7893, 5: 177, 6: 229}, "test_split1.txt": {4: 1923, 5: 44, 6: 55}}
    # independent label check: the split's verb/noun ids against action_idx resolved by name
    verbs = dict(line.rsplit(" ", 1) for line in (EGTEA_REAL / "verb_idx.txt").read_text().splitlines())
    nouns = dict(line.rsplit(" ", 1) for line in (EGTEA_REAL / "noun_idx.txt").read_text().splitlines())
    expected = {}
    for line in (EGTEA_REAL / "action_idx.txt").read_text().splitlines():
        text, ident = line.rsplit(" ", 1)
        verb, noun_text = text.rsplit(" ", 1)
        expected[ident] = [verbs[verb], *(nouns[n] for n in noun_text.split(","))]
    mismatched = [row.split()[0] for rows in lines.values() for row in rows
                  if expected[row.split()[1]] != row.split()[2:]]
    assert mismatched == ["P02-R06-GreekSalad-311565-321545-F007453-F007742"]  # nouns 47 29 14, action: 47 29 44

    # videos: OP sessions as cropped clips, P sessions as session videos, one session with neither
    clips = [row.split()[0] for rows in lines.values() for row in rows]
    sessions = {clip: clip.rsplit("-", 4)[0] for clip in clips}
    absent = "P03-R01-PastaSalad"
    present = {f"/v/cropped_clips/{s}/{c}.mp4" for c, s in sessions.items() if s.startswith("OP")}
    present |= {f"/v/videos/{s}.mp4" for s in sessions.values() if s.startswith("P") and s != absent}
    records, failures = split(egtea.read(EGTEA_REAL, "/v", exists=exists_in(present)))
    n_absent = sum(s == absent and c not in mismatched for c, s in sessions.items())
    assert n_absent > 0
    assert len(records) == 8299 + 2022 - 1 - n_absent
    assert Counter(f.reason for f in failures) == {"label mismatch": 1, "video not found": n_absent}
    assert Counter(r.video.path.split("/")[0] for r in records) == {
        "cropped_clips": sum(s.startswith("OP") for s in sessions.values()),
        "videos": sum(s.startswith("P") and s != absent for s in sessions.values()) - 1}
    # with every video present: 8298 + 1 mismatch in train, 2022 in test
    records, failures = split(egtea.read(EGTEA_REAL, exists=lambda p: True))
    assert Counter(r.source_file for r in records) == {"train_split1.txt": 8298, "test_split1.txt": 2022}
    assert reasons(failures) == {("train_split1.txt", "label mismatch"): 1}
    assert Counter(len(r.fields["noun_ids"]) for r in records) == {1: 7893 + 1923, 2: 177 + 44, 3: 229 + 55 - 1}


# ----------------------------------------------------------------------------------------------------- SSv2

SSV2_LABELS = {"Approaching something with your camera": "0", "Putting something on a surface": "1",
               "Moving something and something away from each other": "2", "Putting something somewhere": "3"}


def ssv2_folder(tmp_path: Path, validation, labels=None, prefix: str = "") -> Path:
    folder = tmp_path / "labels"
    folder.mkdir()
    (folder / f"{prefix}labels.json").write_text(json.dumps(SSV2_LABELS if labels is None else labels))
    (folder / f"{prefix}validation.json").write_text(json.dumps(validation))
    return folder


def ssv2_row(ident, template="Putting [something] on a surface", placeholders=("cup",), label="putting cup"):
    return {"id": ident, "label": label, "template": template, "placeholders": list(placeholders)}


def test_ssv2_every_failure_reason(tmp_path):
    validation = [
        ssv2_row("1"),
        ssv2_row(2, "Putting [something] [somewhere]", ["cup", "on the table"]),  # int id; a non-"something" slot
        ssv2_row("3", placeholders=[]),  # one slot, no placeholder
        ssv2_row("4", "Throwing [something]"),  # not in labels.json
        {"id": "5"},  # test-style row in a labelled file
        {"label": "x"},  # no id
        {**ssv2_row("6"), "placeholders": "cup"},  # not a list
        {"id": "7", "label": "x", "template": "Putting [something] on a surface"},  # placeholders missing
        ssv2_row("../8"),
        ssv2_row("a/9"),
        ssv2_row("1"),  # duplicate
        ssv2_row("10"),  # no video
        "not an object",
    ]
    folder = ssv2_folder(tmp_path, validation)
    present = {f"{tmp_path}/20bn-something-something-v2/1.webm", f"{tmp_path}/2.webm"}
    records, failures = split(ssv2.read(folder, exists=exists_in(present), splits=("validation",)))
    assert [(r.record_id, r.video.path, r.fields["class_index"]) for r in records] == [
        ("1", "20bn-something-something-v2/1.webm", 1), ("2", "2.webm", 3)]
    assert Counter(f.reason for f in failures) == {
        "placeholder mismatch": 1, "unknown label": 1, "no label": 1, "schema violation": 4, "unsafe path": 2,
        "duplicate id": 1, "video not found": 1}
    assert only(failures, "unknown label").record == "row 4 4"
    assert records[1].fields["template"] == "Putting [something] [somewhere]"
    assert records[1].source_split == "validation" and records[1].task == "action_recognition"


def test_ssv2_names_layouts_and_missing_files(tmp_path):
    folder = ssv2_folder(tmp_path, [ssv2_row("1")], prefix="something-something-v2-")
    # the download root holding labels/, 20BN-era names; default splits: train is missing
    records, failures = split(ssv2.read(tmp_path, exists=None))
    assert [r.source_file for r in records] == ["something-something-v2-validation.json"]
    assert reasons(failures) == {("something-something-v2-train.json", "missing file"): 1}
    records, failures = split(ssv2.read(folder / "something-something-v2-validation.json", exists=None))
    assert len(records) == 1 and not failures
    (folder / "something-something-v2-labels.json").write_text('{"Putting something on a surface": "one"}')
    records, failures = split(ssv2.read(folder, exists=None, splits=("validation", "test")))
    assert not records and reasons(failures) == {
        ("something-something-v2-labels.json", "schema violation"): 1,
        ("something-something-v2-validation.json", "index unavailable"): 1,
        ("something-something-v2-test.json", "index unavailable"): 1}
    with pytest.raises(ValueError):
        list(ssv2.read(folder, splits=("val",)))


def test_ssv2_unreadable_split_file_is_one_failure(tmp_path):
    folder = ssv2_folder(tmp_path, [])
    (folder / "validation.json").write_text("[{")
    (folder / "train.json").write_text('{"id": "1"}')
    records, failures = split(ssv2.read(folder, exists=None))
    assert not records and [(f.file, f.record, f.reason) for f in failures] == [
        ("train.json", "", "schema violation"), ("validation.json", "", "unreadable file")]


@needs_real
def test_ssv2_real_validation_and_test_counts():
    validation = json.loads((SSV2_REAL / "something-something-v2-validation.json").read_text())
    test = json.loads((SSV2_REAL / "something-something-v2-test.json").read_text())
    assert (len(validation), len(test)) == (24777, 27157)
    records, failures = split(ssv2.read(SSV2_REAL, "/v", exists=lambda p: True, splits=("validation",)))
    assert (len(records), failures) == (24777, [])
    assert [r.record_id for r in records] == [row["id"] for row in validation]  # file order
    assert records[0].fields["class_index"] == 140 and records[0].video.path == "20bn-something-something-v2/74225.webm"
    # 2,880 rows have slots other than "[something]" ("[Something]", "[somewhere]", ...): all kept
    other_slots = sum(bool(re.search(r"\[(?!something\])[^\]]*\]", row["template"])) for row in validation)
    assert other_slots == 2880
    labels = json.loads((SSV2_REAL / "something-something-v2-labels.json").read_text())
    assert Counter(r.fields["class_index"] for r in records) == Counter(
        int(labels[row["template"].replace("[", "").replace("]", "")]) for row in validation)
    records, failures = split(ssv2.read(SSV2_REAL, exists=None, splits=("test",)))
    assert not records and reasons(failures) == {("something-something-v2-test.json", "no label"): 27157}
    # the default splits: train.json (> 4 MB) is not in shared/real
    records, failures = split(ssv2.read(SSV2_REAL, exists=None))
    assert len(records) == 24777 and reasons(failures) == {("something-something-v2-train.json", "missing file"): 1}


# ------------------------------------------------------------------------------------------------ EgoTimeQA


def timeqa_row(sample_id, start=3601.4243095096826, end=3857.5756904903174, **over):
    row = {"video_id": "16fc2d81-e55c-4a3b-a298-b9d0272e9815", "sample_id": sample_id,
           "question": "What did I do with the coffee?", "answer": "gave it to Person B",
           "moment_start_frame": start, "moment_end_frame": end,
           "wrong_answers": ["drank it myself", "left it on the table", "spilled it on the floor"]}
    row.update(over)
    return {k: v for k, v in row.items() if v is not None}


@pytest.fixture
def timeqa_file(tmp_path) -> Path:
    """The GroundVQA format (annotations.EgoTimeQA.json; no real file is public), good and bad rows."""
    rows = [
        timeqa_row("s1"),
        timeqa_row("s2", 15, 45, wrong_answers=None, video_id="clip-b"),  # open-only variant
        timeqa_row("s3", 90, 90),  # end == start
        timeqa_row("s4", 120, 60),  # end < start
        timeqa_row("s5", -3, 60),
        timeqa_row("s6", "10", 60),  # a string, not a number
        timeqa_row("s7", True, 60),
        timeqa_row("s8", float("nan"), 60),
        timeqa_row("s9", question=None),
        timeqa_row("s10", answer="  "),
        timeqa_row("s11", wrong_answers=["a", "gave it to person b", "c"]),  # the answer among the wrong ones
        timeqa_row("s12", wrong_answers="a"),
        timeqa_row("s13", video_id="../../etc/passwd"),
        timeqa_row("s1"),
        timeqa_row("s14", video_id="clip-missing"),
        ["not", "an", "object"],
    ]
    path = tmp_path / "unified" / egotimeqa.FILE_NAME
    path.parent.mkdir()
    path.write_text(json.dumps(rows, allow_nan=True))
    return path


def ego4d_present(root: str) -> set[str]:
    return {f"{root}/v2/clips/16fc2d81-e55c-4a3b-a298-b9d0272e9815.mp4", f"{root}/clips/clip-b.mp4"}


def test_egotimeqa_frames_to_seconds_and_every_failure_reason(timeqa_file):
    records, failures = split(egotimeqa.read(timeqa_file, "/ego4d", exists=exists_in(ego4d_present("/ego4d"))))
    first, second = records
    assert first.video.path == "v2/clips/16fc2d81-e55c-4a3b-a298-b9d0272e9815.mp4"
    assert first.video.start_sec == pytest.approx(120.04747698365609)  # 3601.42... / 30
    assert first.video.end_sec == pytest.approx(128.58585634967725)
    assert first.fields["wrong_answers"] == ["drank it myself", "left it on the table", "spilled it on the floor"]
    clip = "16fc2d81-e55c-4a3b-a298-b9d0272e9815"
    assert (first.video_id, first.task) == (clip, "open_qa")
    assert first.record_id == egotimeqa.qa_id(clip, 3601.4243095096826, 3857.5756904903174, first.fields["question"])
    assert (second.video.path, second.video.start_sec, second.video.end_sec) == ("clips/clip-b.mp4", 0.5, 1.5)
    assert second.fields["wrong_answers"] == []
    assert Counter(f.reason for f in failures) == {
        "empty window": 2, "bad time": 4, "schema violation": 3, "empty text": 1, "bad wrong answers": 1,
        "unsafe path": 1, "duplicate question": 1, "video not found": 1}
    assert only(failures, "duplicate question").record == "row 14 s1"
    assert only(failures, "duplicate question").detail.endswith("asked before in row 1")
    assert only(failures, "video not found").detail.startswith("v2/clips/clip-missing.mp4 or clips/")


def test_egotimeqa_context_and_whole_clip(timeqa_file):
    exists = exists_in(ego4d_present("/e"))
    records, _ = split(egotimeqa.read(timeqa_file.parent.parent, "/e", exists=exists, context_sec=1.0))
    assert [(r.video.start_sec, r.video.end_sec) for r in records][1] == (0.0, 2.5)  # 0.5 - 1 clamped at 0
    assert records[0].video.start_sec == pytest.approx(119.04747698365609)
    records, failures = split(egotimeqa.read(timeqa_file, "/e", exists=exists, whole_clip=True))
    assert [(r.video.start_sec, r.video.end_sec) for r in records] == [(None, None), (None, None)]
    assert records[1].fields["moment_start_sec"] == 0.5 and records[1].fields["moment_end_sec"] == 1.5
    assert len(failures) == 14  # the moment is still checked


def test_egotimeqa_video_variants_and_missing_file(tmp_path):
    path = tmp_path / egotimeqa.FILE_NAME
    path.write_text(json.dumps([timeqa_row("s1", video_id="u")]))
    records, _ = split(egotimeqa.read(path, "/e", exists=exists_in({"/e/u.mp4"})))
    assert records[0].video.path == "u.mp4"
    records, _ = split(egotimeqa.read(tmp_path, "/e", exists=None))
    assert records[0].video.path == "v2/clips/u.mp4"
    records, failures = split(egotimeqa.read(tmp_path / "nothing-here"))
    assert reasons(failures) == {(egotimeqa.FILE_NAME, "missing file"): 1} and failures[0].record == ""


# -------------------------------------------------------------------------------------------------- OpenEQA


def touch_frames(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def openeqa_row(qid, episode="hm3d-v0/000-hm3d-A", **over):
    row = {"question": "What is on the wall?", "answer": "A clock", "category": "object recognition",
           "question_id": qid, "episode_history": episode}
    row.update(over)
    return {k: v for k, v in row.items() if v is not None}


def test_openeqa_frames_sorted_numerically_and_sampled(tmp_path):
    episode = tmp_path / "frames" / "scannet-v0" / "002-scannet-scene0709_00"
    touch_frames(episode, [f"{i:06d}-rgb.png" for i in range(0, 100, 10)] + ["000000-depth.png", "000010.txt",
                                                                               "intrinsic_color.txt"])
    touch_frames(tmp_path / "frames" / "hm3d-v0" / "000-hm3d-A", ["10-rgb.png", "9-rgb.png", "2-rgb.png"])
    path = tmp_path / openeqa.FILE_NAME
    path.write_text(json.dumps([openeqa_row("q1", "scannet-v0/002-scannet-scene0709_00", extra_answers=["clock"]),
                                openeqa_row("q2")]))
    records, failures = split(openeqa.read(tmp_path, n_frames=4))  # default frames root: frames/ beside the json
    assert not failures
    scannet, hm3d = records
    # 10 RGB frames, 4 picked at bin centres 1, 3, 6, 8
    assert scannet.video.frames == ("000010-rgb.png", "000030-rgb.png", "000060-rgb.png", "000080-rgb.png")
    assert scannet.video.path == scannet.video_id == "scannet-v0/002-scannet-scene0709_00"
    assert scannet.fields["extra_answers"] == ["clock"] and hm3d.fields["extra_answers"] == []
    assert hm3d.video.frames == ("2-rgb.png", "9-rgb.png", "9-rgb.png", "10-rgb.png")  # 3 frames -> [0, 1, 1, 2]
    records, _ = split(openeqa.read(path))
    assert len(records[0].video.frames) == 16 and records[0].video.is_image_sequence


def test_openeqa_every_failure_reason_and_listing_once_per_episode(tmp_path):
    rows = [
        openeqa_row("q1"),
        openeqa_row("q2", "hm3d-v0/001-missing"),
        openeqa_row("q3", "hm3d-v0/002-depth-only"),
        openeqa_row("q4", "../../etc"),
        openeqa_row("q5", "/abs/episode"),
        openeqa_row("q6", extra_answers="clock"),
        openeqa_row("q7", category=None),
        openeqa_row("q8", answer=""),
        openeqa_row("q1"),
        openeqa_row("q9"),
        openeqa_row("q10", "hm3d-v0/001-missing"),
    ]
    path = tmp_path / openeqa.FILE_NAME
    path.write_text(json.dumps(rows))
    listings = {"/f/hm3d-v0/000-hm3d-A": ["/f/hm3d-v0/000-hm3d-A/00001-rgb.png", "00000-rgb.png"],  # paths or names
                "/f/hm3d-v0/002-depth-only": ["00000-depth.png", "00000.txt"]}
    calls = []

    def listdir(folder):
        calls.append(folder)
        if folder not in listings:
            raise FileNotFoundError(2, "No such file or directory", folder)
        return listings[folder]

    records, failures = split(openeqa.read(path, "/f", listdir=listdir, n_frames=2))
    assert [(r.record_id, r.video.frames) for r in records] == [("q1", ("00000-rgb.png", "00001-rgb.png")),
                                                                ("q9", ("00000-rgb.png", "00001-rgb.png"))]
    assert Counter(f.reason for f in failures) == {
        "episode not found": 2, "no frames": 1, "unsafe path": 2, "schema violation": 2, "empty text": 1,
        "duplicate id": 1}
    assert sorted(calls) == sorted([*listings, "/f/hm3d-v0/001-missing"])  # each episode listed once


@needs_real
def test_openeqa_real_counts(tmp_path):
    questions = json.loads(OPENEQA_REAL.read_text())
    assert len(questions) == 1636
    episodes = sorted({q["episode_history"] for q in questions})
    assert len(episodes) == 152
    missing, depth_only = set(episodes[:3]), set(episodes[3:5])
    frames_root = tmp_path / "frames"
    for i, episode in enumerate(episodes):
        if episode in missing:
            continue
        names = ["00000-depth.png"] if episode in depth_only else [f"{k:05d}-rgb.png" for k in range(20 + i)]
        touch_frames(frames_root / episode, names)
    records, failures = split(openeqa.read(OPENEQA_REAL, frames_root))
    per_episode = Counter(q["episode_history"] for q in questions)
    n_missing = sum(per_episode[e] for e in missing)
    n_depth_only = sum(per_episode[e] for e in depth_only)
    assert n_missing and n_depth_only
    assert Counter(f.reason for f in failures) == {"episode not found": n_missing, "no frames": n_depth_only}
    assert len(records) == 1636 - n_missing - n_depth_only
    assert all(len(r.video.frames) == 16 for r in records)
    assert Counter(r.fields["category"] for r in records) == Counter(
        q["category"] for q in questions if q["episode_history"] not in missing | depth_only)
    assert sum(bool(r.fields["extra_answers"]) for r in records) == sum(
        "extra_answers" in q for q in questions if q["episode_history"] not in missing | depth_only)


# ---------------------------------------------------------------------------------------------- EgoExoLearn

EEL_HEADER = ["annotation_id", "start_sec", "end_sec", "narration_ch", "narration_en", "scenario", "video_uid"]


def write_csv(path: Path, rows, header=EEL_HEADER) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_egoexolearn_every_failure_reason(tmp_path):
    write_csv(tmp_path / "exo_train.csv", [
        ["a1", "0.0", "20.0", "左手摁住肉块", "Hold the meat,\nthen slice it.", "kitchen", "v1"],
        ["a2", "1.5", "3", "", "Stir.", "lab", "v2"],  # under exo/
        ["a3", "5", "5", "", "Same start and end.", "lab", "v1"],
        ["a4", "abc", "5", "", "Bad start.", "lab", "v1"],
        ["a5", "-1", "5", "", "Negative.", "lab", "v1"],
        ["a6", "nan", "5", "", "Not finite.", "lab", "v1"],
        ["a7", "1", "2", "", "   ", "lab", "v1"],
        ["a8", "1", "2", "", "Short row."],
        ["a9", "1", "2", "", "Long row.", "lab", "v1", "extra"],
        ["", "1", "2", "", "No id.", "lab", "v1"],
        ["a10", "1", "2", "", "Escape.", "lab", "../v1"],
        ["a11", "1", "2", "", "No video.", "lab", "v-missing"],
    ])
    write_csv(tmp_path / "ego_train.csv", [["a1", "0", "1", "", "Duplicate id.", "kitchen", "v1"]])
    present = {"/v/v1.mp4", "/v/exo/v2.mp4"}
    records, failures = split(egoexolearn.read(tmp_path, "/v", exists=exists_in(present),
                                               files=("exo_train.csv", "ego_train.csv")))
    first, second = records
    assert first.fields == {"narration": "Hold the meat,\nthen slice it.", "scenario": "kitchen", "view": "exo"}
    assert (first.video.path, first.video.start_sec, first.video.end_sec) == ("v1.mp4", 0.0, 20.0)
    assert (second.video.path, second.video.start_sec, second.video.end_sec) == ("exo/v2.mp4", 1.5, 3.0)
    assert (first.source_split, first.task, first.video_id) == ("train", "description", "v1")
    assert Counter(f.reason for f in failures) == {
        "empty window": 1, "bad time": 3, "empty text": 1, "schema violation": 3, "unsafe path": 1,
        "video not found": 1, "duplicate id": 1}
    assert only(failures, "duplicate id").file == "ego_train.csv"
    assert only(failures, "empty window").record == "row 3 a3"


def test_egoexolearn_file_scope_failures(tmp_path):
    write_csv(tmp_path / "ego_train.csv", [["a1", "0", "1", "", "x", "kitchen", "v1"]],
              header=["annotation_id", "start_sec", "end_sec", "narration_en", "video_uid"])  # no scenario
    # a header that is not UTF-8 fails the file (a bad byte in a data row costs that row: test_readers_hardening)
    (tmp_path / "exo_train.csv").write_bytes("annotation_id,caf\xe9\nx,y\n".encode("latin-1"))
    records, failures = split(egoexolearn.read(tmp_path, exists=None))
    assert not records and [(f.file, f.record, f.reason) for f in failures] == [
        ("ego_train.csv", "", "schema violation"), ("exo_train.csv", "", "unreadable file")]
    records, failures = split(egoexolearn.read(tmp_path / "absent", exists=None))
    assert reasons(failures) == {("ego_train.csv", "missing file"): 1, ("exo_train.csv", "missing file"): 1}


@needs_real
def test_egoexolearn_real_exo_train_counts():
    with open(EGOEXOLEARN_REAL, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6270 and len(EGOEXOLEARN_REAL.read_text(encoding="utf-8").splitlines()) == 6293
    uids = sorted({row["video_uid"] for row in rows})
    absent, in_view_folder = uids[0], set(uids[1:50])
    present = {f"/v/exo/{u}.mp4" for u in in_view_folder} | {f"/v/{u}.mp4" for u in uids[50:]}
    records, failures = split(egoexolearn.read(EGOEXOLEARN_REAL, "/v", exists=exists_in(present)))
    n_absent = sum(row["video_uid"] == absent for row in rows)
    multi = {"8pRbwiLJ", "yCMpB0Mx", "OEz8OyEw"}  # "Video 1: ... Video 2: ..." cells (test_egoit_real_formats)
    assert n_absent and reasons(failures) == {("exo_train.csv", "video not found"): n_absent,
                                              ("exo_train.csv", "multi-video caption"): len(multi)}
    rows = [row for row in rows if row["annotation_id"] not in multi]
    assert len(records) == 6270 - n_absent - len(multi)
    assert [r.record_id for r in records] == [row["annotation_id"] for row in rows if row["video_uid"] != absent]
    assert sum(r.video.path.startswith("exo/") for r in records) == sum(row["video_uid"] in in_view_folder
                                                                        for row in rows)
    # quoted narrations with newlines survive as written
    assert sum("\n" in r.fields["narration"] for r in records) == sum(
        "\n" in row["narration_en"] for row in rows if row["video_uid"] != absent) > 0
    assert Counter(r.fields["scenario"] for r in records) == Counter(
        row["scenario"] for row in rows if row["video_uid"] != absent)


def test_readers_are_deterministic(timeqa_file):
    first = list(egotimeqa.read(timeqa_file, "/e", exists=exists_in(ego4d_present("/e"))))
    assert first == list(egotimeqa.read(timeqa_file, "/e", exists=exists_in(ego4d_present("/e"))))
    assert first[0].record_id.startswith("16fc2d81-") and first[1].record_id.startswith("clip-b_")
    assert first[2].record == "row 3 s3"  # a failing row is named by its sample_id
