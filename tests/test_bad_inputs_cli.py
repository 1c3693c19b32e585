"""Bad input on real runs of the builders' command lines (issue 16): every class costs only its own rows.

Per builder, ONE mutated copy of the bundled sample carries one bad row (or file) per bad-input class, and the
builder's CLI (`main([...])`, in process, real Beam and ffmpeg) runs on it once. One test per class then checks
the exit status, that class's errors.jsonl line(s) (file, record or row, reason), and that every other record
is intact: the manifest's keys are the unmutated build's (conftest's egoit_build, egobench_build,
egoclip_build) minus exactly the keys of the broken rows, and every shard member of every other sample is the
unmutated build's, byte for byte (its JSON and text where its video lost another window: clips of one video
are encoded in one pass). The build-stopping classes (a missing root, a file as --out, an annotation
file cut so that a source reads no row) are quick runs, one test each parametrized over the builders; a source
losing more than --max-bad-share is checked on EgoClip.

EgoIT and the build-stopping classes here; EgoBench, EgoClip and Ego-ExoClip in tests/test_bad_inputs_cli_others.py
(Ego-ExoClip's mutated release is tests/test_hardening_inputs.py: only the classes it lacks are added, the
missing root here, broken views, BOM/CRLF, a timestamp beyond 64 bits and a byte that is not UTF-8 there).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import shutil
import subprocess
import tarfile
from collections import Counter, defaultdict
from pathlib import Path

import imageio_ffmpeg
import pyarrow.parquet as pq
import pytest

from pipeline.egoit.records import item_key
from pipeline.egoit.sources.egotimeqa import qa_id
from tests.conftest import egoclip_inputs

# control, bidi, zero-width and escape sequences: removed from text, never in an output
CONTROL = "\x1b[31m\u202e\x00\u200b\ufeff\u2066\x1b]0;title\x07"
CONTROL_CHARS = set("\x1b\u202e\x00\u200b\ufeff\u2066\x07")
BROKEN_VIDEOS = ("empty", "html", "audio", "directory")  # 0-byte, HTML text, audio only, a folder named x.mp4


# ------------------------------------------------------------------------------------------ shared helpers


def run_cli(main, argv: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of a builder's main(argv), in process."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as stop:
            rc = stop.code
    return rc, err.getvalue()


def edit(path: Path, old: bytes, new: bytes, *, record: bytes = b"") -> None:
    """Replace the one occurrence of `old`, or its first one in the record (line) that starts with `record`."""
    data = path.read_bytes()
    if record:
        assert data.count(b"\n" + record) == 1, record
        at = data.index(old, data.index(b"\n" + record))
        data = data[:at] + new + data[at + len(old) :]
    else:
        assert data.count(old) == 1, old
        data = data.replace(old, new)
    path.write_bytes(data)


def bom_crlf(path: Path) -> None:
    """A BOM first and every line end CRLF."""
    data = path.read_bytes().replace(b"\r\n", b"\n")
    path.write_bytes(b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n"))


def json_with_literals(rows, literals: dict[str, str]) -> str:
    """json.dumps(rows), each placeholder string in `literals` written as the raw JSON literal given."""
    text = json.dumps(rows, indent=1)
    for placeholder, literal in literals.items():
        assert text.count(json.dumps(placeholder)) == 1, placeholder
        text = text.replace(json.dumps(placeholder), literal)
    return text


def break_video(path: Path, kind: str) -> None:
    """Replace (or create) a video file with a broken one of `kind` (BROKEN_VIDEOS)."""
    if path.is_dir():
        shutil.rmtree(path)
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "html":  # what a download link that expired serves
        path.write_text(
            "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>gone</body></html>\n"
        )
    elif kind == "audio":
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
               "-c:a", "aac", "-f", "mp4", str(path)]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    else:
        path.mkdir()
        (path / "inside.mp4").write_bytes(b"")


def mutated_build(main, sample: Path, tmp: Path, mutate, args) -> tuple[int, str, Path, Path]:
    """(exit status, stderr, OUT, the copy) of main([*args(copy), "--out", OUT, "--quiet"]) on a copy of the
    sample that mutate(copy) damaged."""
    root = Path(shutil.copytree(sample, tmp / "sample"))
    mutate(root)
    rc, err = run_cli(main, [*args(root), "--out", str(tmp / "out"), "--quiet"])
    return rc, err, tmp / "out", root


def errors(out: Path) -> list[dict]:
    return [
        json.loads(line) for line in (Path(out) / "errors.jsonl").read_text(encoding="utf-8").splitlines()
    ]


def manifest(out: Path, key=lambda r: r["key"]) -> dict:
    return {key(r): r for r in pq.read_table(Path(out) / "manifest.parquet").to_pylist()}


def members(out: Path, by_task: bool = False) -> dict:
    """{sample key (or (task, key) with by_task): {extension: bytes}} of every shard."""
    found: dict = defaultdict(dict)
    for tar in sorted(Path(out).glob("*.tar")):
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                key, ext = m.name.split(".", 1)
                sample = (tar.name.split("-")[1], key) if by_task else key
                assert ext not in found[sample], m.name
                found[sample][ext] = tf.extractfile(m).read()
    return dict(found)


def matching(lines: list[dict], **want) -> list[dict]:
    return [e for e in lines if all(e.get(k) == v for k, v in want.items())]


def one_line(lines: list[dict], **want) -> dict:
    """The one errors.jsonl line with these fields."""
    found = matching(lines, **want)
    assert len(found) == 1, (want, found)
    return found[0]


def broken_video_lines(lines: list[dict], source: dict, lost: dict, video: str = "") -> tuple[dict, dict]:
    """The one errors.jsonl line of a broken video (scope "video", the fields `source`, and `video`, its path
    under the video root, when given) and the one of the sample it cost (`source` and `lost`): a probe's
    reason naming the file, and "video: <that reason>"."""
    failed = one_line(lines, scope="video", **source, **({"video": video} if video else {}))
    sample = one_line(lines, **source, **lost)
    assert failed["reason"] in ("unreadable video", "no video stream", "ffmpeg failed"), failed
    assert sample["reason"] == f"video: {failed['reason']}"
    assert not video or (failed["file"].endswith(video) and sample["video"] == video)
    return failed, sample


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def assert_printable(text: str, where: str) -> None:
    assert not CONTROL_CHARS & set(text), where
    assert text.replace("\n", "").isprintable(), where


def assert_no_control_in_outputs(out: Path) -> int:
    """No control / bidi character in any shard member's text or JSON, the manifest or the dataset JSON files;
    returns the number of strings checked."""
    n = 0
    for key, files in members(out, by_task=True).items():
        for ext, data in files.items():
            if ext.endswith("json"):
                for s in strings(json.loads(data)):
                    assert_printable(s, f"{key}.{ext}")
                    n += 1
            elif ext.endswith("txt"):
                assert_printable(data.decode("utf-8"), f"{key}.{ext}")
                n += 1
    for row in manifest(out, key=lambda r: (r.get("task"), r["key"])).values():
        for column, value in row.items():
            if isinstance(value, str):
                assert_printable(value, f"manifest {row['key']} {column}")
                n += 1
    for path in Path(out).glob("*.json"):
        for s in strings(json.loads(path.read_text(encoding="utf-8"))):
            assert not CONTROL_CHARS & set(s), path.name
    return n


def assert_intact(bad_out: Path, base_out: Path, lost: set, videos_of, by_task: bool = False) -> None:
    """The mutated build holds exactly the unmutated build's samples minus `lost` (all of which the unmutated
    build has), each with the same manifest row and the same shard members, byte for byte. A clip's bytes (and
    clip_bytes) may differ only where another sample of its source video is gone: clips of one video are cut
    in one decode, so the encoder's output depends on the video's other windows. `videos_of(row)` names the
    source videos of a manifest row."""
    key = (lambda r: (r["task"], r["key"])) if by_task else (lambda r: r["key"])
    bad, base = manifest(bad_out, key), manifest(base_out, key)
    assert lost <= set(base), lost - set(base)
    assert set(bad) == set(base) - lost, set(bad) ^ (set(base) - lost)

    def users(rows: dict) -> dict:
        found = defaultdict(set)
        for k, r in rows.items():
            for video in videos_of(r):
                found[video].add(k)
        return found

    bad_users, base_users = users(bad), users(base)
    same_windows = {k for k, r in bad.items() if all(bad_users[v] == base_users[v] for v in videos_of(r))}
    assert len(same_windows) >= len(bad) // 2, "too few samples whose videos lost no window to compare bytes"
    drop = {"shard", "clip_file", "clip_bytes"}
    for k, row in bad.items():
        got = {c: v for c, v in row.items() if c not in drop or (c == "clip_bytes" and k in same_windows)}
        assert got == {c: base[k][c] for c in got}, k
    bad_m, base_m = members(bad_out, by_task), members(base_out, by_task)
    assert set(bad_m) == set(bad)
    for k, files in bad_m.items():
        compared = (
            files if k in same_windows else {e: b for e, b in files.items() if e.endswith(("json", "txt"))}
        )
        assert set(files) == set(base_m[k]) and compared == {e: base_m[k][e] for e in compared}, k


def egoit_videos(row: dict) -> list:
    return [(row["source"], row["video"])]


def record_lines(lines: list[dict], scopes=("record", "file"), fields=("source", "file", "record", "reason")):
    return Counter(tuple(e.get(f) for f in fields) for e in lines if e["scope"] in scopes)


# ------------------------------------------------------------------------------------------------ EgoIT

EGTEA = "egtea/action_annotation"
HUGE_CLIP = "P21-R04-ContinentalBreakfast-291175-" + "9" * 400 + "-F006979-F007088"
TIMEQA = "egotimeqa/unified/annotations.EgoTimeQA.json"
OPENEQA = "openeqa/open-eqa-v0.json"
EXO = "egoexolearn/exo_train.csv"
T16, T99 = "16fc2d81-e55c-4a3b-a298-b9d0272e9815", "d9919e0c-aebc-5c29-934a-fe1454ab16b9"
Q_ETC, Q_ABS, Q_CONTROL = (
    "f2e82760-5c3c-41b1-88b6-85921b9e7b32",
    "49040c95-b666-4304-b342-30765c75aa74",
    "6ef3413f-bde6-40ec-bd4a-48f620de4445",
)
EGTEA_VIDEOS = {  # broken kind -> the cropped clip (of train_split1.txt) it replaces
    "empty": "P02-R06-GreekSalad-46060-47420-F001102-F001142",
    "html": "P02-R06-GreekSalad-172891-173601-F004148-F004168",
    "audio": "P02-R06-GreekSalad-112246-114586-F002688-F002756",
    "directory": "P02-R06-GreekSalad-120291-121551-F002883-F002921",
}


def mutate_egoit(root: Path) -> None:
    """One bad row per class in the EgoIT mini-release; no source loses more than half its rows."""
    # numbers: a 400-digit time in an EGTEA clip name, EgoExoLearn end_sec 1e308, EgoTimeQA NaN, Infinity,
    # -1e308 and an integer beyond 64 bits
    edit(root / EGTEA / "train_split1.txt", b"-294945-", b"-" + b"9" * 400 + b"-")
    edit(root / EXO, b"hIOL2zPZ,0.0,20.0,", b"hIOL2zPZ,0.0,1e308,")
    rows = json.loads((root / TIMEQA).read_text())
    assert [r["sample_id"] for r in rows][:7] == [T16] * 5 + [T99] * 2  # the real format: sample_id = clip uid
    rows[0]["moment_start_frame"], rows[4]["moment_end_frame"] = "@NAN", "@INF"
    rows[5]["moment_start_frame"], rows[6]["moment_start_frame"] = "@NEG", "@BIG"
    # a QA asked twice: row 2's clip, moment and question again (another answer)
    rows.append({**rows[1], "answer": "in the cupboard", "wrong_answers": []})
    literals = {"@NAN": "NaN", "@INF": "Infinity", "@NEG": "-1e308", "@BIG": "9" * 25}
    (root / TIMEQA).write_text(json_with_literals(rows, literals))
    # broken CSV quoting (a quote opened before the video uid), a byte that is not UTF-8
    edit(root / EXO, b",kitchen,2c6fe3f2", b',kitchen,"2c6fe3f2', record=b"PgE4v4TR,")
    edit(root / EXO, b"Use your left hand to hold the prepared", b"Use your l\xffeft hand to hold the prepared",
         record=b"L9mK6hgI,")  # fmt: skip
    # control and bidi characters: removed, the rows kept
    edit(root / EXO, b"Press the green pepper with your left", b"Press the green pepper with your " + CONTROL.encode()
         + b"left", record=b"4RSPaEFM,")  # fmt: skip
    questions = json.loads((root / OPENEQA).read_text())
    assert [q["question_id"] for q in questions][::6] == [Q_ETC, Q_ABS]
    questions[8]["answer"] = questions[8]["answer"].replace("on the ", "on the " + CONTROL)
    # unsafe paths: a relative path leaving the frames root, an absolute one
    questions[0]["episode_history"], questions[6]["episode_history"] = "../../../etc", "/etc/ssl"
    (root / OPENEQA).write_text(json.dumps(questions, indent=2))
    # BOM and CRLF: the SSv2 files, EGTEA's index files and its test split
    for name in ("ssv2/labels/something-something-v2-validation.json", "ssv2/labels/something-something-v2-labels.json",
                 *(f"{EGTEA}/{n}" for n in ("action_idx.txt", "verb_idx.txt", "noun_idx.txt", "test_split1.txt"))):  # fmt: skip
        bom_crlf(root / name)
    # a CSV cut inside the quoted field of its last row
    data = (root / EXO).read_bytes()
    (root / EXO).write_bytes(data[: data.rindex(b"\nOr,\n") + 5])
    for kind, clip in EGTEA_VIDEOS.items():
        break_video(root / "egtea/cropped_clips" / clip.rsplit("-", 4)[0] / f"{clip}.mp4", kind)


@pytest.fixture(scope="module")
def egoit_bad(egoit_sample, tmp_path_factory):
    """(exit status, stderr, OUT, the mutated copy) of the EgoIT CLI on the mutated mini-release."""
    from pipeline.egoit.builder import main

    tmp = tmp_path_factory.mktemp("egoit_bad")
    return mutated_build(
        main, egoit_sample, tmp, mutate_egoit, lambda root: ["--config", str(root / "egoit.yaml")]
    )


def timeqa_id(row: int) -> str:
    """The record id of the mini-release's EgoTimeQA row (0-based): its clip, moment and question."""
    from tools.samples.egoit import ROWS

    r = json.loads((ROWS / "egotimeqa" / "annotations.EgoTimeQA.json").read_text())[row]
    return qa_id(r["video_id"], r["moment_start_frame"], r["moment_end_frame"], r["question"])


def timeqa_keys(*rows: int) -> set[str]:
    return {k for n in rows for k in (item_key("egotimeqa", timeqa_id(n)), item_key("egotimeqa", timeqa_id(n), "mc"))}


# class -> (errors.jsonl lines (source, file, record, reason) it adds, manifest keys it loses)
EGOIT_CLASSES = {
    "numbers": (
        [("egtea", "train_split1.txt", f"line 1 {HUGE_CLIP[:200]}", "bad time"),
         ("egoexolearn", "exo_train.csv", "row 1 hIOL2zPZ", "bad time"),
         *(("egotimeqa", "annotations.EgoTimeQA.json", f"row {n} {i}", "bad time")
           for n, i in ((1, T16), (5, T16), (6, T99), (7, T99)))],
        {item_key("egtea", HUGE_CLIP.replace("9" * 400, "294945")), "egoexolearn-hIOL2zPZ",
         item_key("egotimeqa", timeqa_id(0)), *timeqa_keys(4, 5, 6)},  # row 0: no -mc
    ),
    "csv_quoting": ([("egoexolearn", "exo_train.csv", "row 3", "malformed row")], {"egoexolearn-PgE4v4TR"}),
    "not_utf8": ([("egoexolearn", "exo_train.csv", "row 4 L9mK6hgI", "not UTF-8")], {"egoexolearn-L9mK6hgI"}),
    "control_bidi": ([], set()),
    "bom_crlf": ([], set()),
    "duplicate_question": ([("egotimeqa", "annotations.EgoTimeQA.json", f"row 11 {T16}", "duplicate question")],
                           set()),
    "unsafe_paths": (
        [("openeqa", "open-eqa-v0.json", f"row 1 {Q_ETC}", "unsafe path"),
         ("openeqa", "open-eqa-v0.json", f"row 7 {Q_ABS}", "unsafe path")],
        {f"openeqa-{Q_ETC}", f"openeqa-{Q_ABS}"},
    ),
    "broken_videos": ([], {item_key("egtea", c) for c in EGTEA_VIDEOS.values()}),
    "truncated": ([("egoexolearn", "exo_train.csv", "row 10", "malformed row")], {"egoexolearn-UfxPZk1S"}),
}  # fmt: skip
EGOIT_LOST = set().union(*(lost for _, lost in EGOIT_CLASSES.values()))


@pytest.mark.parametrize("bad_class", sorted(EGOIT_CLASSES))
def test_egoit_bad_input_costs_only_its_rows(bad_class, egoit_bad, egoit_build):
    rc, err, out, _ = egoit_bad
    assert rc == 0, err  # no source lost more than half its rows
    lines, base_lines = errors(out), errors(egoit_build[0])
    added, lost = EGOIT_CLASSES[bad_class]
    for source, file, record, reason in added:
        one_line(lines, scope="record", source=source, file=file, record=record, reason=reason)
    # every other record is intact, and no other row or file failed than those of the unmutated build
    assert_intact(out, egoit_build[0], EGOIT_LOST, egoit_videos)
    every_added = Counter(a for added, _ in EGOIT_CLASSES.values() for a in added)
    assert record_lines(lines) == record_lines(base_lines) + every_added
    assert lost <= set(manifest(egoit_build[0])) and not lost & set(manifest(out))


def test_egoit_bad_rows_name_their_fault(egoit_bad):
    lines = errors(egoit_bad[2])
    huge = one_line(lines, source="egtea", record=f"line 1 {HUGE_CLIP[:200]}")
    assert "end_ms" in huge["detail"] and len(huge["detail"]) < 300
    assert "unclosed quote" in one_line(lines, source="egoexolearn", record="row 3")["detail"]
    assert "0xff" in one_line(lines, source="egoexolearn", reason="not UTF-8")["detail"]
    # the CSV cut inside a quoted field: its last row fails once, the rest of that row is not another row
    assert "the quote never closes" in one_line(lines, source="egoexolearn", record="row 10")["detail"]
    assert not matching(lines, source="egoexolearn", record="row 11 Or")
    assert json.loads((egoit_bad[2] / "stats.json").read_text())["input_rows"]["egoexolearn"]["all"] == 10
    assert "asked before in row 2" in one_line(lines, reason="duplicate question", source="egotimeqa")["detail"]


def test_egoit_control_and_bidi_characters_never_reach_the_outputs(egoit_bad, egoit_build):
    _, _, out, _ = egoit_bad
    assert assert_no_control_in_outputs(out) > 100
    bad, base = members(out), members(egoit_build[0])
    for key, field, text in (("egoexolearn-4RSPaEFM", "narration", "Press the green pepper with your left hand"),
                             (f"openeqa-{Q_CONTROL}", "answer", "Hanging on the wall")):  # fmt: skip
        meta = json.loads(bad[key]["json"])["metadata"]
        assert text in meta[field] and bad[key]["json"] == base[key]["json"]
    egoit_json = json.loads((out / "egoit.json").read_text(encoding="utf-8"))
    assert all(not CONTROL_CHARS & set(s) for s in strings(egoit_json))


def test_egoit_bom_and_crlf_change_nothing(egoit_bad, egoit_build, egoit_sample):
    _, _, out, root = egoit_bad
    files = {f"{EGTEA}/{n}" for n in ("action_idx.txt", "verb_idx.txt", "noun_idx.txt", "test_split1.txt")}
    files |= {f"ssv2/labels/something-something-v2-{n}.json" for n in ("labels", "validation")}
    assert all(
        (root / f).read_bytes().startswith(b"\xef\xbb\xbf") and b"\r\n" in (root / f).read_bytes()
        for f in files
    )

    def named(out: Path) -> list:
        return sorted(
            (e["file"], e["record"], e["reason"])
            for e in errors(out)
            if e["file"] in {Path(f).name for f in files}
        )

    assert named(out) == named(egoit_build[0])  # the one SSv2 video missing from the sample, nothing else
    test_split = (egoit_sample / EGTEA / "test_split1.txt").read_text().splitlines()
    keys = [item_key("egtea", line.split()[0]) for line in test_split]
    keys += [k for k in manifest(egoit_build[0]) if k.startswith("ssv2-")]
    bad, base = members(out), members(egoit_build[0])
    assert len(keys) > 10 and all(bad[k] == base[k] for k in keys)


@pytest.mark.parametrize("kind", BROKEN_VIDEOS)
def test_egoit_broken_video_costs_its_rows(kind, egoit_bad, egoit_build):
    rc, err, out, _ = egoit_bad
    assert rc == 0, err
    clip = EGTEA_VIDEOS[kind]
    video = f"cropped_clips/{clip.rsplit('-', 4)[0]}/{clip}.mp4"
    broken_video_lines(
        errors(out), {"source": "egtea"}, {"scope": "item", "item": item_key("egtea", clip)}, video
    )
    assert_intact(out, egoit_build[0], EGOIT_LOST, egoit_videos)


def test_egoit_audio_only_video_is_no_video_stream(egoit_bad):
    clip = EGTEA_VIDEOS["audio"]
    video = f"cropped_clips/{clip.rsplit('-', 4)[0]}/{clip}.mp4"
    assert one_line(errors(egoit_bad[2]), scope="video", video=video)["reason"] == "no video stream"


# ------------------------------------------------------------------------- the classes that stop a build

BUILDERS = ("egoit", "egobench", "egoclip")


def builder_main(name: str):
    return importlib.import_module(f"pipeline.{name}.builder").main


def sample_args(name: str, request) -> list[str]:
    """The builder's command line (but --out) on its bundled sample."""
    sample = request.getfixturevalue(f"{name}_sample")
    return egoclip_inputs(sample) if name == "egoclip" else ["--config", str(sample / f"{name}.yaml")]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def only_line(err: str) -> str:
    """stderr of a build that could not start: one `error:` line and nothing else."""
    lines = [line for line in err.strip().splitlines() if "apitools not found" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("builder", [*BUILDERS, "egoexoclip"])
def test_a_missing_root_exits_2_with_one_line_before_any_work(builder, request, tmp_path):
    missing = tmp_path / "no_such_root"
    argv, what = {
        "egoit": (["--roots", f"egtea={missing}"], "sources.egtea.root"),
        "egobench": (["--roots", f"vlnqa={missing}"], "benchmarks.vlnqa.root"),
        "egoclip": (lambda: [*sample_args("egoclip", request)[:2], "--ego4d-root", str(missing)], "--ego4d-root"),
        "egoexoclip": (["--root", str(missing)], "--root"),
    }[builder]  # fmt: skip
    argv = argv() if callable(argv) else argv
    rc, err = run_cli(builder_main(builder), [*argv, "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 2 and only_line(err) == f"error: {what} {missing}: not found"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("builder", BUILDERS)
def test_a_file_as_out_exits_2_with_one_line(builder, request, tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("not a folder\n")
    rc, err = run_cli(builder_main(builder), [*sample_args(builder, request), "--out", str(out), "--quiet"])
    assert rc == 2 and only_line(err) == f"error: --out {out}: exists and is not a directory"
    assert out.read_text() == "not a folder\n"


def cut_source(builder: str, request, tmp: Path) -> tuple[list[str], str, dict]:
    """A one-source input of `builder` whose annotation file is cut so that the source keeps no row: (command
    line but --out, the source's name in the error line, the errors.jsonl fields of the cut file)."""
    sample = request.getfixturevalue(f"{builder}_sample")
    if builder == "egoclip":  # no JSON: the csv cut inside its first row
        csv = (sample / "egoclip.csv").read_bytes()
        (tmp / "egoclip.csv").write_bytes(csv[: csv.index(b"\n") + 60])
        argv = ["--csv", str(tmp / "egoclip.csv"), *egoclip_inputs(sample)[2:]]
        return argv, "--csv", {"scope": "row", "row": 1, "reason": "malformed row"}
    folder, name, config = {
        "egoit": ("ssv2", "labels/something-something-v2-validation.json",
                  "sources:\n  ssv2: {root: ssv2, options: {splits: [validation]}}\n"),
        "egobench": ("egomcq", "egomcq.json", "benchmarks:\n  egomcq: {root: egomcq, videos: egomcq/ego4d}\n"),
    }[builder]  # fmt: skip
    shutil.copytree(sample / folder, tmp / folder)
    data = (tmp / folder / name).read_bytes()
    (tmp / folder / name).write_bytes(data[: len(data) // 2])
    (tmp / "config.yaml").write_text(config)
    source = {"egoit": {"source": "ssv2"}, "egobench": {"benchmark": "egomcq"}}[builder]
    return ["--config", str(tmp / "config.yaml")], folder, {**source, "file": Path(name).name, "record": "",
                                                             "reason": "unreadable file"}  # fmt: skip


@pytest.mark.parametrize("builder", BUILDERS)
def test_an_annotation_file_cut_so_that_a_source_keeps_no_row_exits_2(builder, request, tmp_path):
    argv, source, failure = cut_source(builder, request, tmp_path)
    out = tmp_path / "out"
    rc, err = run_cli(builder_main(builder), [*argv, "--out", str(out), "--quiet"])
    assert rc == 2, err
    [line] = error_lines(err)
    assert line.startswith(f"error: source {source}: ") and f"see {out}/errors.jsonl" in line, line
    assert ("1 of 1 rows lost (100% > 50%: malformed row 1)" if builder == "egoclip" else
            "no row read (unreadable file 1)") in line  # fmt: skip
    found = one_line(errors(out), **failure)
    assert builder == "egoclip" or "truncated" in found["detail"]
    assert not manifest(out)
