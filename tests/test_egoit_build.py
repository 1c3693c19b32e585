"""The EgoIT build end to end on the bundled mini-release: real ffmpeg, the real embedding model, real Beam and real
shards. Every clip is decoded and its frame stamps checked against the window its annotation row names."""

from __future__ import annotations

import csv
import hashlib
import json
import tarfile
from collections import Counter
from pathlib import Path

from pipeline.core.clips import read_frames, sample_frame_indices
from pipeline.core.framecode import decode_frame
from pipeline.core.shards import read_tar_samples
from pipeline.egoit.samples import validate_item_json
from tests.conftest import build_egoit

EGTEA_FPS, EGO4D_FPS = 24, 30


def _samples(out: Path) -> list[dict]:
    return [s for tar in sorted(out.glob("egoit-*.tar")) for s in read_tar_samples(tar)]


def _errors(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]


def _codes(sample: Path) -> dict[str, int]:
    return json.loads((sample / "stamp_codes.json").read_text())


def _stamps(frames) -> list[tuple[int, int]]:
    return [decode_frame(f) for f in frames]


def _rows_in_files(sample: Path) -> dict[str, int]:
    """Rows of the annotation files the mini-release's config reads, counted independently of the readers."""
    egtea = sum(
        1 for name in ("train_split1.txt", "test_split1.txt")
        for line in (sample / "egtea/action_annotation" / name).read_text().splitlines() if line.strip()
    )  # fmt: skip
    ssv2 = len(json.loads(next((sample / "ssv2").rglob("*validation.json")).read_text()))
    egotimeqa = len(json.loads(next((sample / "egotimeqa").rglob("annotations.EgoTimeQA.json")).read_text()))
    openeqa = len(json.loads(next((sample / "openeqa").rglob("open-eqa-v0.json")).read_text()))
    with open(next((sample / "egoexolearn").rglob("exo_train.csv")), newline="", encoding="utf-8") as f:
        egoexolearn = sum(1 for _ in csv.DictReader(f))
    return {"egtea": egtea, "ssv2": ssv2, "egotimeqa": egotimeqa, "openeqa": openeqa, "egoexolearn": egoexolearn}


def test_every_row_is_in_a_shard_or_reported(egoit_sample, egoit_build):
    out, stats = egoit_build
    rows = _rows_in_files(egoit_sample)
    assert {s: d["all"] for s, d in stats["input_rows"].items()} == rows
    errors = _errors(out)
    samples = _samples(out)
    docs = [json.loads(s["json"]) for s in samples]
    # rows: each one is a record or a record-scope failure
    record_failures = Counter(e["source"] for e in errors if e["scope"] == "record")
    assert {s: stats["records"][s]["all"] + record_failures[s] for s in rows} == rows
    # items: each converted item is in a shard or has an item-scope failure, never both
    item_failures = {e["item"] for e in errors if e["scope"] == "item"}
    in_shards = {d["id"] for d in docs}
    assert not item_failures & in_shards
    converted = sum(d["all"] for d in stats["items"]["converted"].values())
    assert len(in_shards) + len(item_failures) == converted and stats["items"]["unaccounted"] == 0
    assert stats["samples"] == len(samples) == len(in_shards)


def test_designed_failures_cost_only_their_rows(egoit_build):
    out, stats = egoit_build
    reasons = Counter((e["source"], e["scope"], e["reason"]) for e in _errors(out))
    assert reasons[("egtea", "record", "label mismatch")] == 1
    assert reasons[("ssv2", "record", "video not found")] == 1
    assert reasons[("openeqa", "record", "episode not found")] == 1
    # the truncated Ego4D clip: one video failure, and each of its items reported
    assert reasons[("egotimeqa", "video", "unreadable video")] == 1
    truncated = [e for e in _errors(out) if e["reason"] == "video: unreadable video"]
    assert truncated and all(e["video"].endswith("76e6cc56-a425-564f-8ed2-1fc3bbc8477c.mp4") for e in truncated)
    assert all(d["all"] > 0 for d in stats["items"]["in_shards"].values()) and len(stats["items"]["in_shards"]) == 5


def test_records_validate_and_speak_in_the_first_person(egoit_build):
    out, _ = egoit_build
    for s in _samples(out):
        doc = json.loads(s["json"])
        validate_item_json(doc)
        assert doc["id"] == s["__key__"]
        human, gpt = doc["conversations"][0]["value"], doc["conversations"][-1]["value"]
        assert human.startswith("<video>\n") and "<video>" not in gpt
        for text in (human, gpt):
            words = text.replace("\n", " ").split()
            assert "your" not in [w.strip(".,?!").lower() for w in words], text
            assert "[something]" not in text and not text.startswith("C ") and " C " not in text, text
        if doc["task"] in ("action_recognition", "description"):
            assert gpt.split()[0] in ("I", "My", "Using", "With", "After", "Then,", "Finally,", "One"), gpt


def test_each_clip_shows_exactly_its_window(egoit_sample, egoit_build):
    """Decode every frame of every clip: the stamp says which source video (code) and which frame it is."""
    out, _ = egoit_build
    codes = _codes(egoit_sample)
    roots = {"egtea": "egtea", "ssv2": "ssv2", "egotimeqa": "egotimeqa/ego4d", "openeqa": "openeqa/frames",
             "egoexolearn": "egoexolearn"}  # fmt: skip
    seen_sources = set()
    for s in _samples(out):
        doc = json.loads(s["json"])
        v, src = doc["video"], doc["source"]
        frames = read_frames(s["mp4"])
        stamps = _stamps(frames)
        if src == "openeqa":  # 16 of the episode's RGB frames, uniformly: stamp index = N of "<N>-rgb.png"
            folder = egoit_sample / roots[src] / v["path"]
            numbers = sorted(int(p.name.split("-")[0]) for p in folder.glob("*-rgb.png"))
            expected = [numbers[i] for i in sample_frame_indices(0, len(numbers), 16)]
            assert stamps == [(codes[f"{roots[src]}/{v['path']}"], n) for n in expected]
            assert v["n_images"] == 16
        else:
            code = codes[f"{roots[src]}/{v['path']}"]
            assert [c for c, _ in stamps] == [code] * len(stamps)
            assert [i for _, i in stamps] == list(range(v["start_frame"], v["end_frame"]))
        if src == "egotimeqa":
            m = doc["metadata"]
            assert v["start_frame"] == round(m["moment_start_sec"] * EGO4D_FPS)
            assert v["end_frame"] == round(m["moment_end_sec"] * EGO4D_FPS)
        if src == "egtea" and v["path"].startswith("videos/"):  # no cropped clip: cut from the session by ms
            assert (v["start_frame"], v["end_frame"]) == (round(27.140 * EGTEA_FPS), round(28.860 * EGTEA_FPS))
        if src == "ssv2":
            assert frames.shape[2] % 2 == 0  # 427-wide VP9 sources are scaled to an even width
        seen_sources.add(src)
    assert seen_sources == {"egtea", "ssv2", "egotimeqa", "openeqa", "egoexolearn"}


def test_near_duplicates_removed_within_a_video(egoit_build):
    out, stats = egoit_build
    dups = [e for e in _errors(out) if e["reason"] == "near duplicate"]
    assert stats["near_duplicates_removed"]["total"] == len(dups) == 3
    by_source = Counter(e["source"] for e in dups)
    assert by_source == {"egotimeqa": 2, "openeqa": 1}  # the fridge paraphrase (open + MC), the repeated question
    kept = {json.loads(s["json"])["id"] for s in _samples(out)}
    for e in dups:
        kept_id = e["detail"].split()[1]
        assert kept_id in kept and float(e["detail"].rsplit(" ", 1)[1].rstrip(")")) >= 0.95


def test_training_json_is_videollama2_format_over_the_clip_files(egoit_build):
    out, stats = egoit_build
    entries = json.loads((out / "egoit.json").read_text())
    assert len(entries) == stats["samples"]
    members = {}
    for tar in out.glob("egoit-*.tar"):
        with tarfile.open(tar) as t:
            members.update({m.name: t.extractfile(m).read() for m in t if m.name.endswith(".mp4")})
    for e in entries:
        assert set(e) == {"id", "video", "conversations"}
        assert e["conversations"][0]["from"] == "human" and e["conversations"][0]["value"].startswith("<video>\n")
        assert [t["from"] for t in e["conversations"]] == ["human", "gpt"]
        assert (out / e["video"]).read_bytes() == members[f"{e['id']}.mp4"]


def test_frames_mode(egoit_sample, tmp_path):
    out = tmp_path / "frames"
    stats = build_egoit(egoit_sample, out, "--frames", "4", "--size", "64")
    n = 0
    for tar in sorted(out.glob("egoit-*.tar")):
        for s in read_tar_samples(tar):
            n += 1
            doc = json.loads(s["json"])
            jpgs = sorted(k for k in s if k.endswith(".jpg"))
            assert jpgs == ["00.jpg", "01.jpg", "02.jpg", "03.jpg"] and "mp4" not in s
            stamps = [decode_frame(read_frames(s[k])[0])[1] for k in jpgs]
            v = doc["video"]
            if doc["source"] != "openeqa":
                assert stamps == sample_frame_indices(v["start_frame"], v["end_frame"], 4)
            # the clip file of egoit.json: a folder of the same JPEGs, under the shard's own clip folder
            folder = out / "clips" / tar.stem / doc["id"]
            assert [(folder / k).read_bytes() for k in jpgs] == [s[k] for k in jpgs]
    assert stats["samples"] == n > 0
    entries = json.loads((out / "egoit.json").read_text())
    assert len(entries) == n and all((out / e["video"]).is_dir() for e in entries)


def _digests(out: Path) -> dict[str, str]:
    files = [p for p in out.rglob("*") if p.is_file()]
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_rebuild_is_byte_identical_and_resumes(egoit_sample, egoit_build, tmp_path):
    first, _ = egoit_build
    out = tmp_path / "again"
    build_egoit(egoit_sample, out)
    assert _digests(out) == _digests(first)
    # resume: a deleted shard and a truncated one are rebuilt (with their clip files); the others are kept
    tars = sorted(out.glob("egoit-*.tar"))
    assert len(tars) >= 2
    tars[0].unlink()
    tars[1].write_bytes(tars[1].read_bytes()[:1000])
    kept_clip = next((out / "clips" / tars[1].stem).iterdir())
    kept_clip.unlink()
    build_egoit(egoit_sample, out)
    assert _digests(out) == _digests(first)
    # only clip files damaged, every tar intact: the markers' sha256 of each clip file catch both
    deleted = sorted((out / "clips" / tars[0].stem).iterdir())[0]
    truncated = sorted((out / "clips" / tars[1].stem).iterdir())[-1]
    deleted.unlink()
    truncated.write_bytes(truncated.read_bytes()[:100])
    build_egoit(egoit_sample, out)
    assert _digests(out) == _digests(first)


def test_bad_command_lines_are_clear_errors(egoit_sample, tmp_path, capsys):
    from pipeline.egoit import main

    for argv, message in [
        (["--out", str(tmp_path)], "give --config or --roots"),
        (["--roots", "egtee=/x", "--out", str(tmp_path)], "unknown source 'egtee'"),
        (["--roots", "egtea", "--out", str(tmp_path)], "is not SOURCE=PATH"),
        (["--config", str(egoit_sample / "egoit.yaml"), "--dedup-threshold", "1.5", "--out", str(tmp_path)],
         "dedup_threshold=1.5"),
        (["--config", str(egoit_sample / "egoit.yaml"), "--dedup-model", str(tmp_path), "--out", str(tmp_path)],
         "model.safetensors: not found"),
    ]:  # fmt: skip
        try:
            status = main(argv)
        except SystemExit as exit_:  # refused while parsing the command line
            status = exit_.code
        err = capsys.readouterr().err
        assert status == 2 and message in err and err.startswith("error: ") and err.count("\n") == 1, err


def test_real_roots_config_template_parses():
    """configs/egoit.yaml (the template for real downloads) is a valid config naming all five sources."""
    from pipeline.core.config import load_config_file
    from pipeline.egoit.build import config_from_mapping

    cfg = config_from_mapping(load_config_file("configs/egoit.yaml"), "out", Path("configs"))
    assert [s.name for s in cfg.sources] == ["egtea", "ssv2", "egotimeqa", "openeqa", "egoexolearn"]
    egoexolearn = cfg.sources[-1]
    assert egoexolearn.options == {"files": ["ego_train.csv"]}  # the issue: captions of the ego views
    assert cfg.sources[3].videos.endswith("/frames")  # OpenEQA frames beside the json by default


def test_dask_runner_gives_the_same_bytes(egoit_sample, egoit_build, tmp_path):
    """The core's Dask runner (a LocalCluster of 2 worker processes started by the CLI) runs the EgoIT graph
    (CombinePerKey, dict side inputs, tagged outputs) to the same shards, stats and training JSON."""
    first, _ = egoit_build
    out = tmp_path / "dask"
    build_egoit(egoit_sample, out, "--runner", "dask", "--workers", "2")
    names = [p.name for p in sorted(first.glob("egoit-*.tar"))] + ["egoit.json", "stats.json", "errors.jsonl"]
    assert {n: (out / n).read_bytes() for n in names} == {n: (first / n).read_bytes() for n in names}
