"""Bad input on real runs of the EgoBench, EgoClip and Ego-ExoClip command lines (issue 16): see
tests/test_bad_inputs_cli.py (EgoIT, the build-stopping classes and the shared helpers).

One mutated copy of each bundled sample carries one bad row (or file) per bad-input class; the CLI runs once on
it; one test per class checks the exit status, the class's errors.jsonl lines and that every other record is
intact (the unmutated build's samples minus exactly the broken rows', their shard members byte for byte).
Ego-ExoClip gets only the classes tests/test_hardening_inputs.py lacks, on its val split.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import egoclip_inputs
from tests.test_bad_inputs_cli import (
    BROKEN_VIDEOS,
    CONTROL,
    CONTROL_CHARS,
    assert_intact,
    assert_no_control_in_outputs,
    bom_crlf,
    break_video,
    broken_video_lines,
    edit,
    error_lines,
    errors,
    json_with_literals,
    manifest,
    members,
    mutated_build,
    one_line,
    record_lines,
    run_cli,
)

# --------------------------------------------------------------------------------------------- EgoBench

MCQ, QA = "egomcq/egomcq.json", "qaego4d/unified/annotations.QaEgo4D_test"
VLNQA, CHARADES = "vln_qa/vlnqa.json", "charades_ego/CharadesEgo/CharadesEgo_v0_egocentric_test.csv"
PLAN2, PLAN1 = "egoplan/egoplan2.json", "egoplan/EgoPlan_validation.json"
Q0139, Q5FEF, PLAN_ID = (
    "0139f386-6dc6-4aad-a150-dc6745338445",
    "5feff7c5-d3f0-5f49-a15e-c08ef7537279",
    "ef725741-fe17-4bd2-ad6e-aba3e9468fd5_1",
)
ESCHEMA_Q = "001934bb-81bd-4cd8-a574-0472ef3f6678"
CHARADES_VIDEOS = {"empty": "BHP3HEGO", "html": "8NU3PEGO", "audio": "TM3BEEGO", "directory": "3W1HJEGO"}


def _rewrite(path: Path, change, literals: dict | None = None) -> None:
    rows = json.loads(path.read_text())
    change(rows)
    path.write_text(json_with_literals(rows, literals or {}))


def mutate_egobench(root: Path) -> None:
    """One bad row per class in the EgoBench mini-benchmark; no benchmark loses more than half its rows."""

    def mcq(d):  # numbers: a candidate clip ending at 1e308 s, a query starting at -1e308 s
        d["1"]["choices"]["2"]["clip_end"], d["4"]["query"]["clip_start"] = 1e308, -1e308

    def plan(rows):  # an observation frame beyond 64 bits
        assert rows[2]["sample_id"] == PLAN_ID
        rows[2]["current_observation_frame"] = "@BIG"

    def qa_open(rows):
        assert rows[5]["sample_id"] == f"{Q5FEF}_2"
        rows[5]["moment_start_frame"] = "@NAN"

    def qa_closed(rows):
        assert [r["sample_id"] for r in rows[1:4:2]] == [f"{Q0139}_1", f"{Q5FEF}_1"]
        rows[1]["moment_end_frame"], rows[3]["moment_start_frame"] = "@INF", -30.0

    _rewrite(root / MCQ, mcq)
    _rewrite(root / PLAN2, plan, {"@BIG": "9" * 30})
    _rewrite(root / f"{QA}.json", qa_open, {"@NAN": "NaN"})
    _rewrite(root / f"{QA}_close.json", qa_closed, {"@INF": "Infinity"})

    def vlnqa(rows):
        assert [r["video_path"] for r in rows[2::6]] == ["left/955_frame45.mp4", "stop/2690_frame26.mp4"]
        # unsafe paths; control and bidi characters; a path that names the first row's video again once
        # normalised (the same item id)
        rows[2]["video_path"], rows[8]["video_path"] = "../../../etc/passwd.mp4", "/etc/hosts.mp4"
        rows[6]["text"] = rows[6]["text"].replace("This is a navigation", f"This is a {CONTROL}navigation")
        other = rows[0]["text"].replace("Go up the stairs.", "Go down the stairs.")
        rows.append({**rows[0], "video_path": "left/./4504_frame52.mp4", "text": other})

    _rewrite(root / VLNQA, vlnqa)
    _rewrite(
        root / PLAN1, lambda rows: rows.append({**rows[0], "sample_id": "115", "question": "Which next?"})
    )
    _rewrite(root / "egoschema/questions.json",
             lambda rows: rows[0].update(question=rows[0]["question"].replace("the video is", f"the {CONTROL}video is")))  # fmt: skip
    # broken CSV quoting: the closing quote of the last field of EgoSchema.csv's row 4 (CRLF, as released) lost
    edit(root / "egoschema/EgoSchema.csv", b'started reading it."\r\n', b"started reading it.\r\n")
    edit(root / CHARADES, b"DTOZPEGO,,", b"DTOZPEGO,\xff,")  # a byte that is not UTF-8
    for name in ("epic_kitchens/annotations/retrieval_annotations/EPIC_100_retrieval_test.csv",
                 "epic_kitchens/annotations/retrieval_annotations/EPIC_100_retrieval_test_sentence.csv",
                 "egotaskqa/direct/test_qas.json", "charades_ego/CharadesEgo/Charades_v1_classes.txt"):  # fmt: skip
        bom_crlf(root / name)
    data = (root / CHARADES).read_bytes()  # cut in the middle of its last row
    (root / CHARADES).write_bytes(data[: data.rindex(b"\nLE01HEGO,") + 40])
    for kind, ident in CHARADES_VIDEOS.items():
        break_video(root / f"charades_ego/CharadesEgo_v1_480/{ident}.mp4", kind)


@pytest.fixture(scope="module")
def egobench_bad(egobench_sample, tmp_path_factory):
    from pipeline.egobench.builder import main

    tmp = tmp_path_factory.mktemp("egobench_bad")
    config = lambda root: ["--config", str(root / "egobench.yaml")]  # noqa: E731
    return mutated_build(main, egobench_sample, tmp, mutate_egobench, config)


def egobench_videos(row: dict) -> list:
    return json.loads(row["videos"])


_QA, _CLOSE = "annotations.QaEgo4D_test.json", "annotations.QaEgo4D_test_close.json"
# class -> (errors.jsonl lines (benchmark, file, record, reason) it adds, (task, key) of the samples it loses)
EGOBENCH_CLASSES = {
    "numbers": (
        [("egomcq", "egomcq.json", "key 1", "bad time"), ("egomcq", "egomcq.json", "key 4", "bad time"),
         ("egoplan", "egoplan2.json", f"row 3 {PLAN_ID}", "bad time"),
         ("qaego4d", _QA, f"row 6 {Q5FEF}_2", "bad time"), ("qaego4d", _CLOSE, f"row 2 {Q0139}_1", "bad time"),
         ("qaego4d", _CLOSE, f"row 4 {Q5FEF}_1", "bad time")],
        {("egomcq", "1"), ("egomcq", "4"), ("egoplan", PLAN_ID), ("qaego4d_open", f"{Q5FEF}_2"),
         ("qaego4d_closed", f"{Q0139}_1"), ("qaego4d_closed", f"{Q5FEF}_1")},
    ),
    "csv_quoting": ([("egoschema", "EgoSchema.csv", "row 4", "malformed row")],
                    {("egoschema", "0437cf5f-5014-47d6-b4b3-f299380aa688")}),
    "not_utf8": ([("charades_ego", "CharadesEgo_v0_egocentric_test.csv", "row 2 DTOZPEGO", "not UTF-8")],
                 {("charades_ego", "DTOZPEGO")}),
    "control_bidi": ([], set()),
    "bom_crlf": ([], set()),
    "colliding_ids": ([("vlnqa", "vlnqa.json", "row 11 left/./4504_frame52.mp4", "duplicate id"),
                       ("egoplan_v1", "EgoPlan_validation.json", "row 6 115", "duplicate id")], set()),
    "unsafe_paths": ([("vlnqa", "vlnqa.json", "row 3 ../../../etc/passwd.mp4", "unsafe path"),
                      ("vlnqa", "vlnqa.json", "row 9 /etc/hosts.mp4", "unsafe path")],
                     {("vlnqa", "left_955_frame45"), ("vlnqa", "stop_2690_frame26")}),
    "broken_videos": ([], {("charades_ego", i) for i in CHARADES_VIDEOS.values()}),
    "truncated": ([("charades_ego", "CharadesEgo_v0_egocentric_test.csv", "row 8 LE01HEGO", "schema violation")],
                  {("charades_ego", "LE01HEGO")}),
}  # fmt: skip
EGOBENCH_LOST = set().union(*(lost for _, lost in EGOBENCH_CLASSES.values()))
BENCH_FIELDS = ("benchmark", "file", "record", "reason")


@pytest.mark.parametrize("bad_class", sorted(EGOBENCH_CLASSES))
def test_egobench_bad_input_costs_only_its_rows(bad_class, egobench_bad, egobench_build):
    rc, err, out, _ = egobench_bad
    assert rc == 0, err
    lines = errors(out)
    added, lost = EGOBENCH_CLASSES[bad_class]
    for benchmark, file, record, reason in added:
        one_line(lines, scope="record", benchmark=benchmark, file=file, record=record, reason=reason)
    assert_intact(out, egobench_build[0], EGOBENCH_LOST, egobench_videos, by_task=True)
    every_added = Counter(a for added, _ in EGOBENCH_CLASSES.values() for a in added)
    base = record_lines(errors(egobench_build[0]), fields=BENCH_FIELDS)
    assert record_lines(lines, fields=BENCH_FIELDS) == base + every_added
    assert not lost & set(manifest(out, lambda r: (r["task"], r["key"])))


def test_egobench_control_bidi_bom_and_crlf_change_no_output(egobench_bad, egobench_build):
    _, _, out, _ = egobench_bad
    assert assert_no_control_in_outputs(out) > 100
    bad, base = members(out, by_task=True), members(egobench_build[0], by_task=True)
    for key in (("vlnqa", "forward_1195_frame30"), ("egoschema", ESCHEMA_Q)):
        assert "navigation video" in bad[key]["json"].decode() or "the video is" in bad[key]["json"].decode()
        assert bad[key]["json"] == base[key]["json"]
    # BOM and CRLF: every item of EPIC-KITCHENS MIR and EgoTaskQA (direct), the Charades class list, the
    # sentence set
    for task in ("epic_mir", "egotaskqa_direct"):
        keys = {k for k in base if k[0] == task}
        assert keys and all(bad[k] == base[k] for k in keys)
    assert (out / "epic_mir_sentences.json").read_bytes() == (
        egobench_build[0] / "epic_mir_sentences.json"
    ).read_bytes()
    assert json.loads(bad[("charades_ego", "Q6XPXEGO")]["json"])["options"][:3] == [
        "Holding some clothes", "Putting clothes somewhere", "Taking some clothes from somewhere"]  # fmt: skip


def test_egobench_bad_rows_name_their_fault(egobench_bad):
    lines = errors(egobench_bad[2])
    assert "1e+308" in one_line(lines, benchmark="egomcq", record="key 1")["detail"]
    assert "its line 2 is a row by itself" in one_line(lines, benchmark="egoschema", record="row 4")["detail"]
    assert "0xff" in one_line(lines, benchmark="charades_ego", reason="not UTF-8")["detail"]
    assert (
        "escapes the root"
        in one_line(lines, benchmark="vlnqa", record="row 3 ../../../etc/passwd.mp4")["detail"]
    )
    assert "left_4504_frame52" in one_line(lines, benchmark="vlnqa", reason="duplicate id")["detail"]


@pytest.mark.parametrize("kind", BROKEN_VIDEOS)
def test_egobench_broken_video_costs_its_item(kind, egobench_bad, egobench_build):
    rc, err, out, _ = egobench_bad
    assert rc == 0, err
    ident = CHARADES_VIDEOS[kind]
    lost = {"scope": "item", "item": ident}
    broken_video_lines(errors(out), {"benchmark": "charades_ego"}, lost, f"CharadesEgo_v1_480/{ident}.mp4")
    assert_intact(out, egobench_build[0], EGOBENCH_LOST, egobench_videos, by_task=True)


# ---------------------------------------------------------------------------------------------- EgoClip

CLIP_VIDEOS = {kind: f"badvideo-0000-0000-0000-00000000000{i}" for i, kind in enumerate(BROKEN_VIDEOS, 1)}
CONTROL_TEXT = "#C C cuts the \x1b[31monion\x1b[0m\u202e with \u2066a knife\x00\u200b"


def _clip_row(fields: list[bytes], **over: bytes) -> list[bytes]:
    from pipeline.egoclip.rows import COLUMNS

    fields = list(fields)
    for name, value in over.items():
        fields[COLUMNS.index(name)] = value
    return fields


def mutate_egoclip(csv: Path, ego4d: Path) -> None:
    """One bad row per class in the EgoClip sample's egoclip.csv (edited in place, appended rows, and broken
    videos for new uids); the file then gets a BOM and CRLF line ends."""
    header, *rows = [line.split(b"\t") for line in csv.read_bytes().rstrip(b"\n").split(b"\n")]
    assert len(rows) == 33
    edits = {
        1: {"clip_end": b"1e308"}, 2: {"clip_start": b"-1e308"}, 4: {"narration_time": b"Infinity"},
        5: {"narration_ind": b"9" * 25}, 7: {"narration_ind": b"-4"},  # numbers
        9: {"clip_text": b'"#O man X walks into the room'},  # an unclosed quote
        10: {"clip_text": b"#C C looks \xff around"},  # a byte that is not UTF-8
        14: {"clip_text": CONTROL_TEXT.encode()},  # ESC sequences, bidi, NUL, zero-width: removed
    }  # fmt: skip
    for n, over in edits.items():
        rows[n - 1] = _clip_row(rows[n - 1], **over)
    rows.append(
        _clip_row(rows[15], narration_source=b"p1", clip_text=b"#C C stirs the soup")
    )  # 34: row 16's key
    rows.append(_clip_row(rows[15], video_uid=b"/etc/hosts"))  # 35: unsafe paths
    rows.append(_clip_row(rows[15], video_uid=b"~root"))  # 36
    for uid in CLIP_VIDEOS.values():  # 37-40: broken videos
        rows.append(_clip_row(rows[15], video_uid=uid.encode()))
    data = b"\n".join(b"\t".join(r) for r in [header, *rows]) + b"\n"
    data += b"\t".join(_clip_row(rows[32], narration_ind=b"7"))[:70]  # 41: cut mid-row
    csv.write_bytes(data)
    bom_crlf(csv)
    for kind, uid in CLIP_VIDEOS.items():
        break_video(ego4d / f"v2/full_scale/{uid}.mp4", kind)


@pytest.fixture(scope="module")
def egoclip_bad(egoclip_sample, tmp_path_factory):
    from pipeline.egoclip.builder import main

    tmp = tmp_path_factory.mktemp("egoclip_bad")
    mutate = lambda root: mutate_egoclip(*(Path(a) for a in egoclip_inputs(root)[1::2]))  # noqa: E731
    return mutated_build(main, egoclip_sample, tmp, mutate, egoclip_inputs)


def egoclip_key(sample: Path, row: int) -> str:
    """The sample key of the unmutated csv's data row `row`."""
    fields = (sample / "egoclip.csv").read_text().split("\n")[row].split("\t")
    return f"{fields[0]}-p{fields[2].rsplit('_', 1)[1]}-{int(fields[3]):06d}"


# class -> ((row, reason) of the row failures it adds, rows of the unmutated csv whose samples it loses)
EGOCLIP_CLASSES = {
    "numbers": ([(1, "bad times"), (2, "bad times"), (4, "bad times"), (5, "bad field"), (7, "bad field")],
                [1, 2, 4, 5, 7]),
    "csv_quoting": ([(9, "malformed row")], [9]),
    "not_utf8": ([(10, "not UTF-8")], [10]),
    "control_bidi": ([], []),
    "bom_crlf": ([], []),
    "colliding_ids": ([(34, "duplicate row")], []),
    "unsafe_paths": ([(35, "path escape"), (36, "path escape")], []),
    "broken_videos": ([], []),
    "truncated": ([(41, "malformed row")], []),
}  # fmt: skip


def egoclip_lost(sample: Path) -> set[str]:
    return {egoclip_key(sample, n) for _, rows in EGOCLIP_CLASSES.values() for n in rows}


@pytest.mark.parametrize("bad_class", sorted(EGOCLIP_CLASSES))
def test_egoclip_bad_input_costs_only_its_rows(bad_class, egoclip_bad, egoclip_build, egoclip_sample):
    rc, err, out, _ = egoclip_bad
    assert rc == 0, err
    lines = errors(out)
    added, lost_rows = EGOCLIP_CLASSES[bad_class]
    for row, reason in added:
        one_line(lines, scope="row", row=row, reason=reason)
    lost = egoclip_lost(egoclip_sample)
    assert_intact(out, egoclip_build[0], lost, lambda r: [r["video"]])
    fields = ("row", "reason")
    rows = [e for e in lines if e["scope"] == "row" and not e["reason"].startswith("video:")]
    base = [
        e for e in errors(egoclip_build[0]) if e["scope"] == "row" and not e["reason"].startswith("video:")
    ]
    every_added = Counter(a for added, _ in EGOCLIP_CLASSES.values() for a in added)
    assert record_lines(rows, ("row",), fields) == record_lines(base, ("row",), fields) + every_added
    assert {egoclip_key(egoclip_sample, n) for n in lost_rows} <= lost


def test_egoclip_faults_are_named_and_clean_text_reaches_the_shards(
    egoclip_bad, egoclip_build, egoclip_sample
):
    _, _, out, root = egoclip_bad
    csv = egoclip_inputs(root)[1]
    lines = errors(out)
    assert Path(csv).read_bytes().startswith(b"\xef\xbb\xbfvideo_uid\t") and b"\r\n" in Path(csv).read_bytes()
    assert one_line(lines, row=1)["file"] == csv and "clip_end" in one_line(lines, row=1)["detail"]
    assert "narration_ind" in one_line(lines, row=5)["detail"] and len(one_line(lines, row=5)["detail"]) < 100
    assert "row 16" in one_line(lines, row=34)["detail"]
    assert {one_line(lines, row=n)["video_uid"] for n in (35, 36)} == {"/etc/hosts", "~root"}
    assert assert_no_control_in_outputs(out) > 40
    key = egoclip_key(egoclip_sample, 14)
    bad, base = members(out)[key], members(egoclip_build[0])[key]
    assert (
        bad["txt"] == base["txt"] == b"Camera-wearer cuts the onion with a knife"
        and bad["json"] == base["json"]
    )
    assert not CONTROL_CHARS & set(manifest(out)[key]["raw_text"])


@pytest.mark.parametrize("kind", BROKEN_VIDEOS)
def test_egoclip_broken_video_costs_its_rows(kind, egoclip_bad, egoclip_build, egoclip_sample):
    rc, err, out, _ = egoclip_bad
    assert rc == 0, err
    uid = CLIP_VIDEOS[kind]
    lines = errors(out)
    _, row = broken_video_lines(lines, {"video_uid": uid}, {"scope": "row"})
    assert row["row"] == 37 + BROKEN_VIDEOS.index(kind)
    assert_intact(out, egoclip_build[0], egoclip_lost(egoclip_sample), lambda r: [r["video"]])


def test_a_source_losing_more_than_max_bad_share_exits_2_and_1_accepts_it(egoclip_sample, tmp_path):
    from pipeline.egoclip.builder import main

    header, *rows = (egoclip_sample / "egoclip.csv").read_text().splitlines(keepends=True)
    bad_end = rows[1].replace("\t4.2175\t", "\t1e308\t")  # clip_end
    bad_quote = rows[3].replace("\t#C C opens", '\t"#C C opens')
    assert bad_end != rows[1] and bad_quote != rows[3]
    csv = tmp_path / "egoclip.csv"
    csv.write_text(header + rows[0] + bad_end + bad_quote)
    argv = ["--csv", str(csv), *egoclip_inputs(egoclip_sample)[2:], "--quiet"]
    rc, err = run_cli(main, [*argv, "--out", str(tmp_path / "out")])
    assert rc == 2 and error_lines(err) == [
        f"error: source --csv: 2 of 3 rows lost (67% > 50%: bad times 1, malformed row 1); see {tmp_path}/out/"
        "errors.jsonl (--max-bad-share sets the limit)"
    ]
    rc, err = run_cli(main, [*argv, "--out", str(tmp_path / "out1"), "--max-bad-share", "1"])
    assert rc == 0 and not error_lines(err), err
    for out in ("out", "out1"):  # the build ran to the end either way: the good row is in a shard
        assert [r["narration_ind"] for r in manifest(tmp_path / out).values()] == [0]
        assert sorted((e["row"], e["reason"]) for e in errors(tmp_path / out)) == [
            (2, "bad times"),
            (3, "malformed row"),
        ]


# ------------------------------------------------------------------ Ego-ExoClip: what test_hardening_inputs lacks

MINN, UPENN = "minnesota_rockclimbing_01_2", "upenn_dance_02_4"
EEC_VIEWS = {
    "empty": (MINN, "cam01"),
    "html": (MINN, "cam02"),
    "audio": (UPENN, "gp01"),
    "directory": (UPENN, "gp02"),
}
EEC_FILES = ("takes.json", "annotations/splits.json", "annotations/atomic_descriptions_val.json")
# windows depend on every narration of the splits built (alpha): both builds take the val split only
EEC_ARGS = ["--splits", "val", "--max-samples-per-shard", "40", "--quiet"]


def _eec_copy(sample_root: str, dest: Path, *, big: bytes = b"9" * 25) -> tuple[Path, str]:
    """A copy of the sample release whose val descriptions hold one more description of MINN's first pass,
    with the timestamp `big`; (root, that description's narration id "<annotation_uid>:<index>")."""
    root = Path(shutil.copytree(sample_root, dest))
    path = root / "annotations/atomic_descriptions_val.json"
    doc = json.loads(path.read_text())
    [take_uid] = [
        t["take_uid"] for t in json.loads((root / "takes.json").read_text()) if t.get("take_name") == MINN
    ]
    first = doc["annotations"][take_uid][0]
    first["descriptions"].append({**first["descriptions"][0], "timestamp": "@BIG"})
    text = json.dumps(doc, indent=1).encode()
    assert text.count(b'"@BIG"') == 1
    path.write_bytes(text.replace(b'"@BIG"', big))
    return root, f"{first['annotation_uid']}:{len(first['descriptions']) - 1}"


@pytest.fixture(scope="module")
def egoexoclip_bad(sample_root, tmp_path_factory):
    """(exit status, stderr, OUT, narration id of the bad timestamp, OUT of the unmutated val build) of the
    Ego-ExoClip CLI on a copy with broken views, BOM and CRLF, a timestamp beyond 64 bits."""
    from pipeline.egoexoclip.builder import main

    tmp = tmp_path_factory.mktemp("egoexoclip_bad")
    rc, err = run_cli(main, ["--root", sample_root, "--out", str(tmp / "base"), *EEC_ARGS])
    assert rc == 0, err
    root, narration = _eec_copy(sample_root, tmp / "release")
    for name in EEC_FILES:
        bom_crlf(root / name)
    for kind, (take, cam) in EEC_VIEWS.items():
        break_video(root / "takes" / take / "frame_aligned_videos/downscaled/448" / f"{cam}.mp4", kind)
    rc, err = run_cli(main, ["--root", str(root), "--out", str(tmp / "out"), *EEC_ARGS])
    return rc, err, tmp / "out", narration, tmp / "base"


def _without_views(row: dict, cams: set) -> dict:
    """A manifest row or sample JSON as it is once the views `cams` are lost: its take's view lists shrink."""
    row = dict(row)
    row["exo_cams"] = [c for c in row["exo_cams"] if c not in cams]
    row["exo_frames"] = [f for f in row["exo_frames"] if f.split(":")[0] not in cams]
    return row


def test_egoexoclip_bad_input_costs_only_its_views_and_description(egoexoclip_bad):
    rc, err, out, narration, base_out = egoexoclip_bad
    assert rc == 0, err
    lines, base_lines = errors(out), errors(base_out)
    # a timestamp beyond 64 bits: that description only
    assert (
        one_line(lines, scope="narration", take_name=MINN, narration=narration)["reason"] == "bad timestamp"
    )
    # BOM and CRLF: no other file, record, take or narration failure than the unmutated build's
    others = Counter((e["scope"], e["reason"], e["take_name"], e["file"]) for e in base_lines)
    assert Counter((e["scope"], e["reason"], e["take_name"], e["file"]) for e in lines if e["scope"] != "view" and
                   e.get("narration") != narration) == others  # fmt: skip
    # every pair of every view that is not broken, with the same window, frames, text and clip bytes
    lost = {v for v in EEC_VIEWS.values()}
    bad, base = manifest(out), manifest(base_out)
    gone = {k for k, r in base.items() if (r["take_name"], r["exo_cam"]) in lost}
    assert gone and set(bad) == set(base) - gone
    cams = {cam for _, cam in lost}
    drop = {"shard"}
    for k, r in bad.items():
        assert {c: v for c, v in r.items() if c not in drop} == {
            c: v for c, v in _without_views(base[k], cams).items() if c not in drop
        }, k
    bad_m, base_m = members(out), members(base_out)
    for k, files in bad_m.items():
        assert files["json"] == base_m[k]["json"] or json.loads(files["json"]) == _without_views(
            json.loads(base_m[k]["json"]), cams
        )
        assert {e: b for e, b in files.items() if e != "json"} == {
            e: b for e, b in base_m[k].items() if e != "json"
        }
    assert assert_no_control_in_outputs(out) > 40


@pytest.mark.parametrize("kind", BROKEN_VIDEOS)
def test_egoexoclip_broken_view_is_reported_once(kind, egoexoclip_bad):
    rc, err, out, _, _ = egoexoclip_bad
    assert rc == 0, err
    take, cam = EEC_VIEWS[kind]
    view = one_line(errors(out), scope="view", take_name=take, cam_id=cam)
    assert view["file"].endswith(f"/{take}/frame_aligned_videos/downscaled/448/{cam}.mp4")
    assert view["reason"] in ("unreadable video", "no video stream", "ffmpeg failed", "not a regular file"), (
        view
    )
    assert not [r for r in manifest(out).values() if (r["take_name"], r["exo_cam"]) == (take, cam)]


def test_egoexoclip_byte_that_is_not_utf8_costs_its_description(sample_root, tmp_path):
    from pipeline.egoexoclip.builder import main

    root, narration = _eec_copy(
        sample_root, tmp_path / "release", big=b'1.5, "text": "C holds \xff the rope"'
    )
    rc, err = run_cli(main, ["--root", str(root), "--out", str(tmp_path / "out"), *EEC_ARGS])
    assert rc == 0, err
    assert one_line(errors(tmp_path / "out"), scope="narration", narration=narration)["reason"] == "not UTF-8"
