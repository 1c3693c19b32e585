"""The EgoClip build (pipeline/egoclip): csv rows and their failures, every clip's frames (decoded stamps),
determinism and resume, the composites alone on TestPipeline, the command line, and the "ego" data kind of the
initialisation stage reading the shards."""

from __future__ import annotations

import hashlib
import json
import math
import tarfile
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
import torch
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from exo2ego_model.config import ConfigError, DataConfig
from exo2ego_model.data import IGNORE_INDEX, SampleError, make_loader
from exo2ego_model.samples import count_samples
from exo2ego_model.tiny import tiny_tokenizer
from pipeline.core.clips import read_frames, sample_frame_indices
from pipeline.core.framecode import decode_frame
from pipeline.core.shards import read_tar_samples
from pipeline.egoclip import composites as C
from pipeline.egoclip import main
from pipeline.egoclip import plan as P
from pipeline.egoclip import rows as R
from tools.samples import egoclip as SR

JSON_TYPES = {
    "key": str, "split": str, "video_uid": str, "video": str, "video_dur": float, "narration_source": str,
    "narration_ind": int, "narration_time": float, "clip_start": float, "clip_end": float, "text": str,
    "raw_text": str, "start_frame": int, "end_frame": int, "fps": float, "tag_verb": list, "tag_noun": list,
}  # fmt: skip
HEADER = "\t".join(R.COLUMNS)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return SR.generate_sample(tmp_path_factory.mktemp("egoclip_sample"))


def build(sample: Path, out, *extra: str) -> dict:
    argv = ["--csv", str(sample / SR.CSV_NAME), "--ego4d-root", str(sample / SR.VIDEO_ROOT), "--out", str(out)]
    assert main([*argv, "--max-samples-per-shard", "8", *extra]) == 0
    return json.loads((Path(out) / "stats.json").read_text())


@pytest.fixture(scope="module")
def built(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("egoclip_build")
    return out, build(sample, out)


def _samples(out: Path) -> list[dict]:
    return [s for tar in sorted(out.glob("egoclip-*.tar")) for s in read_tar_samples(tar)]


def _errors(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]


def _digests(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------------------ pure pieces


def test_captions_are_normalised_like_egoexoclip():
    assert R.caption("#C C picks a bag of clothes from the floor") == "Camera-wearer picks a bag of clothes from the floor"
    assert R.caption("#O man X hands C a cup") == "Man X hands the camera-wearer a cup"
    assert R.caption("#C C picks #unsure from the bed") == "Camera-wearer picks something from the bed"
    assert R.caption("#C C  wipes the counter  .") == "Camera-wearer wipes the counter."
    assert R.caption("#C") == R.caption("  ") == ""


def _read(*lines: str) -> list:
    return list(R.read_rows([line + "\n" for line in lines], "egoclip.csv"))


def test_read_rows_parses_fields_and_reports_each_bad_row():
    uid = "0a1b2c3d-aaaa-bbbb-cccc-000000000001"
    good = f"{uid}\t20.5\tnarration_pass_2\t7\t3.25\t-0.5\t4.0\t#C C opens the door\t[3]\t[12, 40]"
    out = _read(
        "\ufeff" + HEADER,  # a BOM before the header (spreadsheet exports)
        good,
        "",  # blank lines are not rows
        f"{uid}\t20.5\tnarration_pass_1\t8.0\t3.3\t4.0\t3.9\t#C C x\t[]\t[]",  # end <= start
        f"{uid}\t20.5\tnarration_pass_1\t9\tinf\t1.0\t2.0\t#C C x\t[]\t[]",  # narration_time not finite
        f"{uid}\t20.5\tnarration_pass_1\tnine\t1.5\t1.0\t2.0\t#C C x\t[]\t[]",
        "a/b\t20.5\tnarration_pass_1\t1\t1.5\t1.0\t2.0\t#C C x\t[]\t[]",
        "a.b\t20.5\tnarration_pass_1\t1\t1.5\t1.0\t2.0\t#C C x\t[]\t[]",
        f"{uid}\t20.5\tnarration_pass_1\t1\t1.5\t1.0\t2.0\t#C \t[]\t[]",
        f"{uid}\t20.5\tnarration_pass_1\t1\t1.5\t1.0\t2.0",
    )
    row = out[0]
    assert isinstance(row, R.ClipRow)
    assert (row.row, row.key, row.narration_ind, row.clip_start, row.clip_end, row.narration_time) == (
        1, f"{uid}-p2-000007", 7, -0.5, 4.0, 3.25
    )  # fmt: skip
    assert (row.text, row.raw_text, row.tag_verb, row.tag_noun, row.video_dur) == (
        "Camera-wearer opens the door", "#C C opens the door", (3,), (12, 40), 20.5
    )  # fmt: skip
    assert [(f.row, f.reason) for f in out[1:]] == [
        (2, R.BAD_TIMES), (3, R.BAD_TIMES), (4, R.BAD_FIELD), (5, R.PATH_ESCAPE), (6, R.BAD_FIELD),
        (7, R.EMPTY_TEXT), (8, R.MALFORMED_ROW),
    ]  # fmt: skip
    assert all(f.scope == "row" and f.file == "egoclip.csv" for f in out[1:])
    # columns are found by name: an index column in front and another order still parse
    shuffled = _read("\t".join(["", *reversed(R.COLUMNS)]), "\t".join(["0", *reversed(good.split("\t"))]))
    assert shuffled == [row]
    bad = _read("video_uid\tclip_start\tclip_end", "x\t1\t2")
    assert [(f.scope, f.reason) for f in bad] == [("file", R.BAD_HEADER)] and "clip_text" in bad[0].detail


def test_windows_layouts_and_splits():
    assert P.clip_window(-0.42, 0.85, 30.0, 480) == (0, 26)  # start clamped at 0
    assert P.clip_window(15.2, 16.3, 30.0, 480) == (456, 480)  # end clamped at the last frame
    assert P.clip_window(1.0, 1.01, 30.0, 480) == (30, 31)  # at least one frame
    for start, end in ((16.0, 17.0), (-2.0, -1.0)):
        with pytest.raises(ValueError):
            P.clip_window(start, end, 30.0, 480)
    uid = "u-1"
    for present in P.LAYOUTS:  # every documented layout is found, the ego4d CLI's first
        rel = present.format(uid=uid)
        assert P.locate_video("gs://b/ego4d", uid, lambda p, rel=rel: p == f"gs://b/ego4d/{rel}") == (
            rel, f"gs://b/ego4d/{rel}"
        )  # fmt: skip
    assert P.locate_video("/r", uid, lambda p: True)[0] == "v2/full_scale/u-1.mp4"
    assert P.locate_video("/r", uid, lambda p: False) is None
    splits = [P.split_of(f"v{i}", 0.3, 0) for i in range(400)]
    assert splits == [P.split_of(f"v{i}", 0.3, 0) for i in range(400)] and 80 < splits.count("val") < 160
    assert {P.split_of(f"v{i}", 0.0, 0) for i in range(50)} == {"train"}


# ---------------------------------------------------------------------------------------- the sample build


def test_every_csv_row_is_in_a_shard_or_reported(sample, built):
    out, stats = built
    lines = [ln for ln in (sample / SR.CSV_NAME).read_text().splitlines()[1:] if ln.strip()]
    samples, errors = _samples(out), _errors(out)
    rows = [e for e in errors if e["scope"] == "row"]
    assert len(lines) == stats["rows"]["input"] == 33
    assert len(samples) == stats["samples"] == SR.N_GOOD == 20
    assert len(samples) + len(rows) == len(lines) and stats["rows"]["unaccounted"] == 0
    assert Counter(e["reason"] for e in rows) == SR.EXPECTED_FAILURES
    assert {e["row"]: e["reason"] for e in rows} == {number: reason for number, reason, _ in SR.BAD_ROWS}
    videos = {(e["reason"], e["video_uid"]) for e in errors if e["scope"] == "video"}
    assert videos == {("missing video", SR.MISSING), ("unreadable video", SR.TRUNCATED)}
    keys = {json.loads(s["json"])["key"] for s in samples}
    assert not keys & {e["key"] for e in rows if e["reason"] != "duplicate row"}
    assert {e["key"] for e in rows if e["reason"] == "duplicate row"} <= keys  # its first row is the sample
    assert stats["splits"] == {"train": {"shards": 3, "samples": 20, "bytes": stats["splits"]["train"]["bytes"],
                                         "videos": 3}}  # fmt: skip


def test_every_clip_shows_exactly_its_window(sample, built):
    """Decode every frame of every clip: the stamp says which video (code) and which frame it is."""
    out, _ = built
    codes = json.loads((sample / SR.CODES_NAME).read_text())
    videos = {v.uid: v for v in SR.VIDEOS}
    clamped = set()
    for s in _samples(out):
        doc = json.loads(s["json"])
        assert set(s) == {"__key__", "ego.mp4", "txt", "json"} and s["__key__"] == doc["key"]
        assert {k: type(v) for k, v in doc.items()} == JSON_TYPES
        assert s["txt"].decode() == doc["text"] == R.caption(doc["raw_text"]) and doc["text"][0].isupper()
        v = videos[doc["video_uid"]]
        assert doc["fps"] == v.fps and doc["video"] == f"v2/full_scale/{v.uid}.mp4"
        start, end = max(0, round(doc["clip_start"] * v.fps)), min(v.n_frames, round(doc["clip_end"] * v.fps))
        assert (doc["start_frame"], doc["end_frame"]) == (start, end)
        if doc["clip_start"] < 0 or doc["clip_end"] * v.fps > v.n_frames:
            clamped.add(doc["key"])
        stamps = [decode_frame(f) for f in read_frames(s["ego.mp4"])]
        assert stamps == [(codes[f"{SR.VIDEO_ROOT}/{doc['video']}"], j) for j in range(start, end)]
    assert len(clamped) == 2  # the clip starting before 0 s and the one running past its video's end


def test_manifest_and_wids_index_agree_with_the_shards(built):
    out, stats = built
    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    docs = {json.loads(s["json"])["key"]: json.loads(s["json"]) for s in _samples(out)}
    assert sorted(r["key"] for r in manifest) == sorted(docs)
    for r in manifest:
        assert (r["start_frame"], r["end_frame"], r["text"]) == (docs[r["key"]]["start_frame"],
                                                                 docs[r["key"]]["end_frame"], docs[r["key"]]["text"])  # fmt: skip
        assert math.isclose(r["clip_seconds"], (r["end_frame"] - r["start_frame"]) / r["fps"])
    index = json.loads((out / "egoclip-train.wids.json").read_text())
    assert [s["url"] for s in index["shardlist"]] == [p.name for p in sorted(out.glob("egoclip-train-*.tar"))]
    assert sum(s["nsamples"] for s in index["shardlist"]) == stats["samples"]
    for tar in out.glob("egoclip-*.tar"):  # a video's clips all in one shard: one decode per video
        with tarfile.open(tar) as t:
            assert len({m.name.split("-p")[0] for m in t}) == 1


def test_rebuild_is_byte_identical_and_resumes(sample, built, tmp_path):
    first, _ = built
    out = tmp_path / "again"
    build(sample, out)
    assert _digests(out) == _digests(first)
    tars = sorted(out.glob("egoclip-*.tar"))
    kept = tars[2].stat().st_mtime_ns
    tars[0].unlink()  # a lost shard and an unfinished one (no commit marker) are rebuilt; the other is kept
    (out / f"{tars[1].stem}_stats.json").unlink()
    build(sample, out)
    assert _digests(out) == _digests(first)
    assert tars[2].stat().st_mtime_ns == kept


def test_frames_mode(sample, tmp_path):
    out = tmp_path / "frames"
    stats = build(sample, out, "--frames", "4", "--size", "64")
    docs = []
    for s in _samples(out):
        doc = json.loads(s["json"])
        assert sorted(k for k in s if k.endswith(".jpg")) == [f"ego.{i:02d}.jpg" for i in range(4)]
        frames = [read_frames(s[f"ego.{i:02d}.jpg"])[0] for i in range(4)]
        assert min(frames[0].shape[:2]) == 64
        want = sample_frame_indices(doc["start_frame"], doc["end_frame"], 4)
        assert [decode_frame(f)[1] for f in frames] == want
        docs.append(doc)
    assert len(docs) == stats["samples"] == SR.N_GOOD


# ------------------------------------------------------------------------------------------- composites


def _sample_rows(sample: Path) -> list[R.ClipRow]:
    text = (sample / SR.CSV_NAME).read_text().splitlines(keepends=True)
    return [r for r in R.read_rows(text, "egoclip.csv") if isinstance(r, R.ClipRow)]


def test_read_clip_rows_composite(sample):
    parse_failures = [(n, reason) for n, reason, _ in SR.BAD_ROWS
                      if not reason.startswith("video:") and reason not in ("duplicate row", "clip outside the video")]  # fmt: skip
    with BeamTestPipeline() as p:
        out = p | C.ReadClipRows(str(sample / SR.CSV_NAME))
        assert_that(out["rows"] | beam.combiners.Count.Globally(), equal_to([33 - len(parse_failures)]), label="rows")
        assert_that(out["failures"] | beam.Map(lambda f: (f.row, f.reason)), equal_to(parse_failures), label="failures")
        assert_that(out["counts"], equal_to([("rows", 33)]), label="counts")


def test_plan_videos_composite(sample):
    rows = _sample_rows(sample)
    root = str(sample / SR.VIDEO_ROOT)
    with BeamTestPipeline() as p:
        out = p | beam.Create(rows) | C.PlanVideos(root, 60, 0.0, 0)
        plans = out["plans"] | beam.Map(lambda v: (v.video_uid, v.info.n_frames, len(v.clips), v.split))
        assert_that(plans, equal_to([(SR.LAUNDRY, 600, 8, "train"), (SR.KITCHEN, 480, 7, "train"),
                                     (SR.GARAGE, 360, 5, "train")]), label="plans")  # fmt: skip
        failures = out["failures"] | beam.Map(lambda f: (f.scope, f.reason, f.row))
        assert_that(failures, equal_to([
            ("row", "duplicate row", 19), ("row", "clip outside the video", 20),
            ("video", "missing video", -1), ("row", "video: missing video", 22), ("row", "video: missing video", 23),
            ("video", "unreadable video", -1), ("row", "video: unreadable video", 25),
            ("row", "video: unreadable video", 26),
        ]), label="failures")  # fmt: skip


# ------------------------------------------------------------------------------------------ command line


def test_bad_command_lines_are_clear_errors(sample, tmp_path, capsys):
    (tmp_path / "wrong.csv").write_text("video_uid,clip_start,clip_end\nx,1,2\n")
    csv, root = str(sample / SR.CSV_NAME), str(sample / SR.VIDEO_ROOT)
    for argv, message in [
        (["--csv", str(tmp_path / "nope.csv"), "--ego4d-root", root], "nope.csv: not found"),
        (["--csv", str(tmp_path / "wrong.csv"), "--ego4d-root", root], "missing columns"),
        (["--csv", csv, "--ego4d-root", str(tmp_path / "nope")], "nope: not found"),
        (["--csv", csv, "--ego4d-root", csv], "not a folder"),
        (["--csv", csv, "--ego4d-root", root, "--val-fraction", "1.5"], "val_fraction=1.5"),
        (["--csv", csv, "--ego4d-root", root, "--frames", "4", "--size", "63"], "size"),
        (["--csv", csv, "--ego4d-root", root, "--runner", "dataflow"], "--csv="),
        (["--csv", csv], "--ego4d-root"),
    ]:
        try:
            status = main([*argv, "--out", str(tmp_path / "out")])
        except SystemExit as exit_:  # refused while parsing the command line
            status = exit_.code
        err = capsys.readouterr().err
        assert status == 2 and message in err and err.count("\n") == 1 and err.startswith("error: "), (argv, err)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- the initialisation stage's data


def test_ego_kind_reads_every_egoclip_clip_once_with_its_caption(built):
    out, stats = built
    tok = tiny_tokenizer()
    index = str(out / "egoclip-train.wids.json")  # the shard list by manifest
    texts = {json.loads(s["json"])["key"]: s["txt"].decode() for s in _samples(out)}
    cfg = DataConfig(shards=index, n_frames=2, image_size=16, num_workers=0, shuffle_buffer=0)
    keys = []
    for batch in make_loader(cfg, "ego", tok, batch_size=8):
        assert {k for k in batch if k.endswith("_BTCHW")} == {"ego_BTCHW"}
        assert batch["ego_BTCHW"].shape[1:] == (2, 3, 16, 16) and batch["ego_BTCHW"].dtype == torch.float32
        for key, labels in zip(batch["keys"], batch["labels_BL"], strict=True):
            assert tok.decode(labels[labels != IGNORE_INDEX]) == f" {texts[key]}</s>"
        keys += batch["keys"]
    assert sorted(keys) == sorted(texts) and len(keys) == stats["samples"] == count_samples(index, "ego")
    assert count_samples(index, "instruct") == stats["samples"]
    with pytest.raises(ConfigError, match="EgoClip"):
        count_samples(index, "exo")
    with pytest.raises(SampleError, match="ego-only"):
        next(iter(make_loader(cfg, "pairs", tok, batch_size=2)))
