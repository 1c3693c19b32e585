"""Every bad-input class costs only its own row, in every reader (issue 16 part 3).

Each case puts one fault into one row of a real annotation file (../shared/real, copied into tmp_path) or of a
small file in the documented format, reads it with the real reader, and checks that the faulty row is exactly one
failure naming its file, record and reason, and that every other row comes out as it does from the file without
the fault. The fixes live in the core's shared helpers (pipeline/core/readers.py, values.py, text.py, keys.py).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from pipeline.core.readers import csv_records, decode
from pipeline.core.records import RecordFailure
from pipeline.egobench.sources import egomcq, egoplan, egoschema, vlnqa
from pipeline.egoclip import rows as R
from pipeline.egoexoclip.release import parse_take_descriptions
from pipeline.egoit.convert import load_templates, to_items
from pipeline.egoit.sources import egoexolearn, egotimeqa, egtea, openeqa, ssv2
from tests.conftest import SHARED_REAL, needs_real

EGTEA = SHARED_REAL / "egtea_gaze_plus"
EGOEXOLEARN = SHARED_REAL / "egoexolearn" / "exo_train.csv"
OPENEQA = SHARED_REAL / "openeqa" / "open-eqa-v0.json"
SSV2 = SHARED_REAL / "something_something_v2"
EGOPLAN = SHARED_REAL / "egoplan" / "EgoPlan_validation.json"
VLNQA = SHARED_REAL / "vln_qa" / "vlnqa.json"
FIRST_EGOEXOLEARN = "hIOL2zPZ"  # the first data row of exo_train.csv (a one-line row)
CONTROL = "\x1b[31m\u202e\x00\u200b\ufeff"  # an ANSI colour, a bidi override, NUL, zero-width space, BOM
FRAMES = ["00000-rgb.png", "00001-rgb.png", "00002-rgb.png"]


def split(results) -> tuple[list, list[RecordFailure]]:
    results = list(results)
    failures = [r for r in results if isinstance(r, RecordFailure)]
    return [r for r in results if not isinstance(r, RecordFailure)], failures


def row_id(row) -> str:
    return row.record_id if hasattr(row, "record_id") else row.item_id


def only_row_lost(before, after, file: str, record: str, reason: str, lost_id: str) -> RecordFailure:
    """`after` is `before` with the row `lost_id` replaced by one failure (file, record, reason): every other row
    is there, unchanged and in order, and so is every failure `before` had."""
    (kept_before, failed_before), (kept_after, failed_after) = split(before), split(after)
    new = [f for f in failed_after if f not in failed_before]
    assert len(new) == 1 and len(failed_after) == len(failed_before) + 1, new
    [lost] = new
    assert (lost.file, lost.record, lost.reason) == (file, record, reason), lost
    assert {row_id(r) for r in kept_before} - {row_id(r) for r in kept_after} == {lost_id}
    assert kept_after == [r for r in kept_before if row_id(r) != lost_id]
    return lost


def copy_with(tmp_path: Path, source: Path, name: str, edit) -> Path:
    """A copy of `source` (bytes) under tmp_path/name with `edit(bytes) -> bytes` applied."""
    out = tmp_path / name
    out.parent.mkdir(parents=True, exist_ok=True)
    data = source.read_bytes()
    changed = edit(data)
    assert changed != data, "the edit changed nothing"
    out.write_bytes(changed)
    return out


def replace_once(old: bytes, new: bytes):
    def edit(data: bytes) -> bytes:
        assert old in data, old
        return data.replace(old, new, 1)

    return edit


def egoexolearn_read(path: Path):
    return list(egoexolearn.read(path, "/v", exists=None))


def openeqa_read(path: Path):
    return list(openeqa.read(path, "/f", listdir=lambda _p: FRAMES))


def egtea_read(folder: Path):
    return list(egtea.read(folder / "train_split1.txt", "/v", exists=None))


def egtea_copy(tmp_path: Path, edit=None) -> Path:
    folder = tmp_path / "egtea"
    folder.mkdir(parents=True)
    for name in ("action_idx.txt", "verb_idx.txt", "noun_idx.txt", "train_split1.txt"):
        data = (EGTEA / name).read_bytes()
        (folder / name).write_bytes(edit(data) if edit and name == "train_split1.txt" else data)
    return folder


# ------------------------------------------------------------------------------------------------ numbers


@needs_real
def test_egtea_clip_name_with_a_400_digit_number_costs_its_line(tmp_path):
    before = egtea_read(egtea_copy(tmp_path / "a"))
    clip = b"P21-R04-ContinentalBreakfast-291175-294945-F006979-F007088"
    huge = clip.replace(b"-294945-", b"-" + b"9" * 400 + b"-")
    after = egtea_read(egtea_copy(tmp_path / "b", replace_once(clip, huge)))
    lost = only_row_lost(
        before, after, "train_split1.txt", f"line 1 {huge.decode()[:200]}", "bad time", clip.decode()
    )
    assert "end_ms" in lost.detail and len(lost.detail) < 200


@needs_real
@pytest.mark.parametrize("value", [b"1e308", b"-1e308", b"nan", b"inf", b"-5.0", b"9" * 400])
def test_egoexolearn_end_sec_out_of_range_costs_its_row(tmp_path, value):
    before = egoexolearn_read(EGOEXOLEARN)
    path = copy_with(
        tmp_path,
        EGOEXOLEARN,
        "exo_train.csv",
        replace_once(b"hIOL2zPZ,0.0,20.0,", b"hIOL2zPZ,0.0," + value + b","),
    )
    reason = "empty window" if value == b"-5.0" else "bad time"
    only_row_lost(
        before,
        egoexolearn_read(path),
        "exo_train.csv",
        f"row 1 {FIRST_EGOEXOLEARN}",
        reason,
        FIRST_EGOEXOLEARN,
    )


def timeqa_row(sample_id: str, start, wrong=()) -> dict:
    # one question per sample_id: a QA's id is derived from its clip, moment and question (pipeline/egoit/sources)
    return {"video_id": "clip1", "sample_id": sample_id, "question": f"What did I take for {sample_id}?",
            "answer": "a cup", "moment_start_frame": start, "moment_end_frame": 90.0,
            "wrong_answers": list(wrong)}  # fmt: skip


def test_egotimeqa_nan_infinity_and_huge_literals_cost_their_rows(tmp_path):
    rows = [json.dumps(timeqa_row(f"s{i}", 30.0)) for i in range(3)]
    literals = [
        "NaN",
        "Infinity",
        "-Infinity",
        "-1e308",
        "1e999",
        "9" * 5000,
    ]  # 5,000 digits: int() refuses it
    path = tmp_path / "annotations.EgoTimeQA.json"
    bad = [json.dumps(timeqa_row(f"b{i}", 0)).replace('"moment_start_frame": 0', f'"moment_start_frame": {lit}')
           for i, lit in enumerate(literals)]  # fmt: skip
    path.write_text("[" + ",\n".join([rows[0], *bad, *rows[1:]]) + "]")
    records, failures = split(egotimeqa.read(path, "/e", exists=None))
    assert [r.fields["question"] for r in records] == [f"What did I take for s{i}?" for i in range(3)]
    assert [(f.file, f.record, f.reason) for f in failures] == [
        (path.name, f"row {2 + i} b{i}", "bad time") for i in range(len(literals))
    ]
    assert all(len(f.detail) < 300 for f in failures)


def mcq_clip(uid: str, start, end, text: str = "#C C picks a cup") -> dict:
    return {
        "video_uid": uid,
        "clip_start": start,
        "clip_end": end,
        "clip_text": text,
        "tag_verb": "[1]",
        "tag_noun": "[2]",
    }


def mcq_entry(end=15.0) -> dict:
    choices = {str(i): mcq_clip(f"v{i}", 10.0 + i, 12.0 + i) for i in range(5)}
    choices["3"] = mcq_clip("v3", 13.0, end)
    return {"query": mcq_clip("v0", 10.0, 12.0), "choices": choices, "answer": 0, "types": 1}


def test_egomcq_candidate_time_of_1e308_costs_its_item(tmp_path):
    path = tmp_path / "egomcq.json"
    path.write_text(json.dumps({"0": mcq_entry(), "1": mcq_entry(), "2": mcq_entry()}))
    before = list(egomcq.read(path, "/e", exists=None))
    path.write_text(json.dumps({"0": mcq_entry(), "1": mcq_entry(1e308), "2": mcq_entry()}))
    only_row_lost(before, list(egomcq.read(path, "/e", exists=None)), "egomcq.json", "key 1", "bad time", "1")


@needs_real
def test_egoplan_frame_beyond_64_bits_costs_its_row(tmp_path):
    rows = json.loads(EGOPLAN.read_text())[:20]
    path = tmp_path / "EgoPlan_validation.json"
    path.write_text(json.dumps(rows))
    before = list(egoplan.read(path, exists=None))
    text = json.dumps(rows).replace(f'"current_observation_frame": {rows[3]["current_observation_frame"]}',
                                    '"current_observation_frame": ' + "9" * 30, 1)  # fmt: skip
    path.write_text(text)
    record = f"row 4 {rows[3]['sample_id']}"
    only_row_lost(
        before,
        list(egoplan.read(path, exists=None)),
        path.name,
        record,
        "bad time",
        str(rows[3]["sample_id"]),
    )


EGOCLIP_HEADER = "\t".join(R.COLUMNS)


def egoclip_line(i: int, **over) -> str:
    fields = {"video_uid": f"0a1b2c3d-{i:04d}", "video_dur": "20.5", "narration_source": "narration_pass_1",
              "narration_ind": str(i), "narration_time": "3.25", "clip_start": "1.0", "clip_end": "4.0",
              "clip_text": f"#C C opens door {i}", "tag_verb": "[3]", "tag_noun": "[12, 40]", **over}  # fmt: skip
    return "\t".join(fields[c] for c in R.COLUMNS) + "\n"


def egoclip_read(lines: list[str]) -> list:
    return list(R.read_rows([EGOCLIP_HEADER + "\n", *lines], "egoclip.csv"))


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"clip_end": "1e308"}, R.BAD_TIMES),
        ({"clip_start": "-1e308"}, R.BAD_TIMES),
        ({"narration_time": "9" * 400}, R.BAD_TIMES),
        ({"narration_ind": "9" * 25}, R.BAD_FIELD),  # beyond 64 bits
        ({"tag_noun": "[" + "9" * 30 + "]"}, R.BAD_FIELD),
        ({"clip_text": '"#C C picks up the knife'}, R.MALFORMED_ROW),  # an unclosed quote
        ({"clip_text": "#C C picks \ufffd up"}, "not UTF-8"),  # a byte the caller's decode replaced
    ],
)
def test_egoclip_bad_value_costs_its_row(over, reason):
    lines = [egoclip_line(i) for i in range(1, 21)]
    before = egoclip_read(lines)
    lines[6] = egoclip_line(7, **over)
    after = egoclip_read(lines)
    assert all(isinstance(r, R.ClipRow) for r in before) and len(before) == 20
    [lost] = [r for r in after if isinstance(r, R.ClipFailure)]
    assert (lost.row, lost.reason, lost.scope, lost.file) == (7, reason, "row", "egoclip.csv")
    assert [r for r in after if isinstance(r, R.ClipRow)] == before[:6] + before[7:]


def test_ego_exo4d_timestamp_of_1e308_costs_its_description():
    descriptions = [{"text": f"C picks cup {i}", "timestamp": 1.0 + i} for i in range(4)]
    descriptions[2]["timestamp"] = 1e308
    parsed = parse_take_descriptions("t1", [{"annotation_uid": "a1", "descriptions": descriptions}], "train")
    assert [n.desc_index for n in parsed.narrations] == [0, 1, 3]
    assert [(d[1], d[2]) for d in parsed.dropped] == [("a1:2", "bad timestamp")]


# ------------------------------------------------------------------------------------------------ CSV quoting


def test_an_unclosed_quote_swallows_no_other_row():
    lines = ["id\ta\tb\n", '1\t"open\tx\n'] + [f"{i}\ty\tz\n" for i in range(2, 22)]
    records = list(csv_records(lines, "\t"))
    assert isinstance(records[1][1], Exception) and "unclosed quote" in records[1][1].detail
    assert [r for _, r in records[2:]] == [[str(i), "y", "z"] for i in range(2, 22)]
    # a real multi-line quoted field is one record
    legit = list(csv_records(io.StringIO('id,a,b\n1,"two\nlines",z\n2,y,z\n')))
    assert [r for _, r in legit] == [["id", "a", "b"], ["1", "two\nlines", "z"], ["2", "y", "z"]]
    # a file cut inside a quoted field (with or without its line end) fails its last row
    for cut in ('2,"y', '2,"y\n'):
        assert isinstance(list(csv_records(["id,a\n", "1,x\n", cut]))[-1][1], Exception)


@needs_real
def test_egoexolearn_unclosed_quote_costs_its_row(tmp_path):
    before = egoexolearn_read(EGOEXOLEARN)
    # row 1 ends `...,kitchen,<video_uid>`: a quote opened before the uid never closes on its line
    row1 = EGOEXOLEARN.read_bytes().split(b"\n")[1]
    assert row1.startswith(b"hIOL2zPZ,")
    edit = replace_once(row1, row1.replace(b",kitchen,", b',kitchen,"', 1))
    after = egoexolearn_read(copy_with(tmp_path, EGOEXOLEARN, "exo_train.csv", edit))
    lost = only_row_lost(before, after, "exo_train.csv", "row 1", "malformed row", FIRST_EGOEXOLEARN)
    assert "unclosed quote" in lost.detail


# ------------------------------------------------------------------------------------------------ bytes


@needs_real
def test_egoexolearn_byte_that_is_not_utf8_costs_its_row(tmp_path):
    before = egoexolearn_read(EGOEXOLEARN)
    path = copy_with(
        tmp_path,
        EGOEXOLEARN,
        "exo_train.csv",
        replace_once(
            b"Use your left hand to hold down the meat", b"Use your l\xffeft hand to hold down the meat"
        ),
    )
    lost = only_row_lost(
        before,
        egoexolearn_read(path),
        "exo_train.csv",
        f"row 1 {FIRST_EGOEXOLEARN}",
        "not UTF-8",
        FIRST_EGOEXOLEARN,
    )
    assert "0xff" in lost.detail


@needs_real
def test_openeqa_byte_that_is_not_utf8_costs_its_row(tmp_path):
    before = openeqa_read(OPENEQA)
    old = b'"answer": "Air conditioning unit"'
    path = copy_with(
        tmp_path, OPENEQA, "open-eqa-v0.json", replace_once(old, b'"answer": "Air cond\xe9itioning unit"')
    )
    qid = "f2e82760-5c3c-41b1-88b6-85921b9e7b32"
    only_row_lost(before, openeqa_read(path), "open-eqa-v0.json", f"row 1 {qid}", "not UTF-8", qid)


@needs_real
def test_egtea_byte_that_is_not_utf8_costs_its_line(tmp_path):
    before = egtea_read(egtea_copy(tmp_path / "a"))
    clip = b"P21-R04-ContinentalBreakfast-551908-569222-F013204-F013703 1 1 1"
    after = egtea_read(egtea_copy(tmp_path / "b", replace_once(clip, clip[:-1] + b"\xff1")))
    lost = only_row_lost(
        before,
        after,
        "train_split1.txt",
        f"line 2 {clip.split()[0].decode()}",
        "not UTF-8",
        clip.split()[0].decode(),
    )
    assert "0xff" in lost.detail


def test_a_file_whose_first_line_is_not_utf8_is_one_file_failure(tmp_path):
    (tmp_path / "exo_train.csv").write_bytes(b"\xff\xfea\x00n\x00n\x00\n1,2\n")
    records, failures = split(egoexolearn.read(tmp_path / "exo_train.csv", exists=None))
    assert not records and [(f.record, f.reason) for f in failures] == [("", "unreadable file")]


# ------------------------------------------------------------------------------------------------ text


@needs_real
def test_control_and_bidi_characters_never_reach_egoit_answers(tmp_path):
    before = egoexolearn_read(EGOEXOLEARN)
    old = b"Use your left hand to hold down the meat piece"
    edit = replace_once(old, b"Use your left " + CONTROL.encode() + b"hand to hold down the meat piece")
    after = egoexolearn_read(copy_with(tmp_path, EGOEXOLEARN, "exo_train.csv", edit))
    assert after == before  # removed, not rejected: the row is kept, its text as without them
    templates = load_templates()
    for record in split(after)[0][:50]:
        for item in to_items(record, templates):
            for turn in item.conversations:
                assert all(c.isprintable() or c == "\n" for c in turn.text), turn.text


@needs_real
def test_control_characters_are_removed_from_openeqa_and_vlnqa_text(tmp_path):
    before = openeqa_read(OPENEQA)
    edit = replace_once(
        b'"answer": "Air conditioning unit"', b'"answer": "Air \\u001b[2J\\u202econditioning\\u0000 unit"'
    )
    assert openeqa_read(copy_with(tmp_path, OPENEQA, "open-eqa-v0.json", edit)) == before
    vln_before = list(vlnqa.read(VLNQA, exists=None))
    edit = replace_once(b"Select the best answer", b"Select the \\u001b]0;title\\u0007best \\u2066answer")
    assert list(vlnqa.read(copy_with(tmp_path, VLNQA, "vlnqa.json", edit), exists=None)) == vln_before


def test_control_characters_are_removed_from_egoclip_captions():
    lines = [egoclip_line(1), egoclip_line(2)]
    before = egoclip_read(lines)
    lines[1] = egoclip_line(2, clip_text="#C C opens \x1b[1mdoor\x1b[0m\u202e 2\x00")
    [_, row] = egoclip_read(lines)
    assert (
        (row.text, row.raw_text)
        == (before[1].text, before[1].raw_text)
        == ("Camera-wearer opens door 2", "#C C opens door 2")
    )


@needs_real
def test_bom_and_crlf_change_no_row(tmp_path):
    def crlf(data: bytes) -> bytes:
        return b"\xef\xbb\xbf" + data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    assert egoexolearn_read(copy_with(tmp_path, EGOEXOLEARN, "exo_train.csv", crlf)) == egoexolearn_read(
        EGOEXOLEARN
    )
    before = egtea_read(egtea_copy(tmp_path / "a"))
    assert egtea_read(egtea_copy(tmp_path / "b", crlf)) == before
    assert openeqa_read(copy_with(tmp_path, OPENEQA, "open-eqa-v0.json", crlf)) == openeqa_read(OPENEQA)
    assert decode(b"\xef\xbb\xbfa\r\nb") == "a\r\nb"


# ------------------------------------------------------------------------------------------------ ids


def openeqa_rows(*ids: str) -> list[dict]:
    return [{"question": f"Where is it {i}?", "answer": "On the table", "category": "c", "question_id": q,
             "episode_history": "hm3d-v0/000-x"} for i, q in enumerate(ids)]  # fmt: skip


def test_ids_that_collide_after_sanitising_cost_the_second_row(tmp_path):
    path = tmp_path / "open-eqa-v0.json"
    path.write_text(json.dumps(openeqa_rows("q.1", "q2", "q_1", "q/1")))
    records, failures = split(openeqa.read(path, "/f", listdir=lambda _p: FRAMES))
    assert [r.record_id for r in records] == ["q.1", "q2"]
    assert [(f.record, f.reason) for f in failures] == [
        ("row 3 q_1", "duplicate id"),
        ("row 4 q/1", "duplicate id"),
    ]
    assert "openeqa-q_1" in failures[0].detail and "'q.1'" in failures[0].detail


def test_a_sample_id_ending_in_mc_beside_a_multiple_choice_item_costs_nothing(tmp_path):
    # EgoTimeQA's record ids are <clip>_<hash>, never a sample_id: "x-mc" cannot take the key of x's MC item
    path = tmp_path / "annotations.EgoTimeQA.json"
    rows = [timeqa_row("x", 30.0, wrong=["a plate", "a fork"]), timeqa_row("x-mc", 30.0), timeqa_row("y-mc", 30.0),
            timeqa_row("y", 30.0, wrong=["a plate"])]  # fmt: skip
    path.write_text(json.dumps(rows))
    records, failures = split(egotimeqa.read(path, "/e", exists=None))
    assert len(records) == 4 and not failures
    templates = load_templates()
    ids = [item.id for r in records for item in to_items(r, templates)]
    assert len(ids) == 6 and len(set(ids)) == len(ids)


# ------------------------------------------------------------------------------------------------ paths


@pytest.mark.parametrize("episode", ["../../etc", "/etc/x", "hm3d-v0/\x1b[2J/x", "a\\b", "gs://b/x"])
def test_unsafe_paths_cost_their_row(tmp_path, episode):
    path = tmp_path / "open-eqa-v0.json"
    rows = openeqa_rows("q1", "q2", "q3")
    rows[1]["episode_history"] = episode
    path.write_text(json.dumps(rows))
    records, failures = split(openeqa.read(path, "/f", listdir=lambda _p: FRAMES))
    assert [r.record_id for r in records] == ["q1", "q3"]
    assert [(f.file, f.record, f.reason) for f in failures] == [(path.name, "row 2 q2", "unsafe path")]


@needs_real
def test_unsafe_video_paths_cost_their_row_in_egobench(tmp_path):
    before = list(vlnqa.read(VLNQA, exists=None))
    first = json.loads(VLNQA.read_text())[0]["video_path"]
    edit = replace_once(f'"video_path": "{first}"'.encode(), b'"video_path": "../../../etc/passwd.mp4"')
    after = list(vlnqa.read(copy_with(tmp_path, VLNQA, "vlnqa.json", edit), exists=None))
    lost_id = before[0].item_id
    only_row_lost(before, after, "vlnqa.json", "row 1 ../../../etc/passwd.mp4", "unsafe path", lost_id)


# ------------------------------------------------------------------------------------------------ truncation


@needs_real
def test_a_json_cut_in_half_is_one_file_failure(tmp_path):
    folder = tmp_path / "labels"
    folder.mkdir()
    (folder / "something-something-v2-labels.json").write_bytes(
        (SSV2 / "something-something-v2-labels.json").read_bytes()
    )
    data = (SSV2 / "something-something-v2-validation.json").read_bytes()
    (folder / "something-something-v2-validation.json").write_bytes(data[: len(data) // 2])
    records, failures = split(ssv2.read(folder, exists=None, splits=("validation",)))
    assert not records
    assert [(f.file, f.record, f.reason) for f in failures] == [
        ("something-something-v2-validation.json", "", "unreadable file")
    ]
    assert "truncated" in failures[0].detail


@needs_real
def test_a_csv_cut_mid_row_costs_that_row(tmp_path):
    data = EGOEXOLEARN.read_bytes()
    lines = data.split(b"\n")
    cut = (
        b"\n".join(lines[:41]) + b"\n" + lines[41][: len(lines[41]) // 2]
    )  # the 41st line, cut in its middle
    path = tmp_path / "exo_train.csv"
    path.write_bytes(cut)
    records, failures = split(egoexolearn.read(path, "/v", exists=None))
    with open(EGOEXOLEARN, newline="", encoding="utf-8") as f:
        full = [row["annotation_id"] for row in csv.DictReader(f)]
    assert [r.record_id for r in records] == full[: len(records)]
    assert len(failures) == 1 and failures[0].record.startswith(f"row {len(records) + 1}")
    assert failures[0].reason in ("schema violation", "malformed row")
    assert split(egoexolearn.read(EGOEXOLEARN, "/v", exists=None))[0][: len(records)] == records


def test_egoschema_answers_out_of_range_cost_their_entry(tmp_path):
    (tmp_path / "subset_answers.json").write_text(
        '{"q1": 1, "q2": 99999999999999999999999, "q3": NaN, "q4": 2}'
    )
    answers, failures = egoschema.load_answers(str(tmp_path / "subset_answers.json"))
    assert answers == {"q1": 1, "q4": 2}
    assert [(f.record, f.reason) for f in failures] == [("key q2", "bad answer"), ("key q3", "bad answer")]
