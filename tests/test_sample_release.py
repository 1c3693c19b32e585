"""The sample release generator: JSON shapes, every quirk, stamped frames, and byte-identical reruns."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from pipeline.core.framecode import MAX_FRAME_INDEX, camera_code, decode_frame
from tools.samples.egoexoclip import (
    BAD_RECORDS,
    FPS,
    SAMPLE_TAKES,
    generate_release,
    main,
    write_stamped_video,
)

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
TAKES = {t.name: t for t in SAMPLE_TAKES}
ANN = "annotations"


@pytest.fixture(scope="module")
def release(sample_root) -> Path:
    """The session-wide sample release of conftest.py (generate_release with defaults, made once)."""
    return Path(sample_root)


def _load(root: Path, rel: str):
    return json.loads((root / rel).read_text())


def _takes_by_name(root: Path) -> dict:
    return {t["take_name"]: t for t in _load(root, "takes.json")}


def _passes(root: Path, name: str) -> list[dict]:
    take = TAKES[name]
    return _load(root, f"{ANN}/atomic_descriptions_{take.split}.json")["annotations"][take.uid]


def _probe_and_read(path: Path, frames: list[int]) -> tuple[tuple[int, int], bool, dict[int, np.ndarray]]:
    """((width, height), has_audio, {frame index: grey frame}) for the requested frame indices of a video."""
    info = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    w, h = map(int, re.search(r"Video: h264.*?, (\d+)x(\d+)", info).groups())
    select = "+".join(f"eq(n\\,{i})" for i in frames)
    raw = subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-threads",
            "1",
            "-i",
            str(path),
            "-map",
            "0:v",
            "-vf",
            f"select='{select}'",
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    got = np.frombuffer(raw, np.uint8).reshape(-1, h, w)
    present = sorted(i for i in frames)[: len(got)]  # select keeps decode order; indices past the end vanish
    return (w, h), "Audio: aac" in info, dict(zip(present, got, strict=True))


def test_json_files_and_shapes(release):
    for rel in [
        "takes.json",
        "captures.json",
        f"{ANN}/splits.json",
        f"{ANN}/atomic_descriptions_train.json",
        f"{ANN}/atomic_descriptions_val.json",
        f"{ANN}/keystep_train.json",
        f"{ANN}/keystep_val.json",
    ]:
        assert (release / rel).is_file(), rel
    takes = _takes_by_name(release)
    assert set(takes) == {t.name for t in SAMPLE_TAKES if t.in_takes_json}
    for name, rec in takes.items():
        spec = TAKES[name]
        assert rec["root_dir"] == f"takes/{name}"
        assert rec["duration_sec"] == max(v.n_frames for v in spec.views) / FPS
        assert (
            rec["parent_task_name"] == spec.parent_task_name
            and rec["university_name"] == spec.university_name
        )
        assert {"task_name", "task_id", "best_exo", "is_dropped", "validated"} <= set(rec)
        assert [c["cam_id"] for c in rec["capture"]["cameras"]] == [v.cam_id for v in spec.views]
        fav = rec["frame_aligned_videos"]
        assert set(fav) == {v.cam_id for v in spec.views} | {"collage", "best_exo"}
        assert fav["best_exo"]["0"]["clip_uid"] is None and fav["best_exo"]["0"]["relative_path"] is None
        for v in spec.views:
            if v.device == "aria":
                assert set(fav[v.cam_id]) == {"rgb", "slam-left", "slam-right", "et"}
                stream = fav[v.cam_id]["rgb"]
                assert stream["stream_id"] == "214-1" and stream["readable_stream_id"] == "rgb"
            else:
                stream = fav[v.cam_id]["0"]
            if name != "escape_take_01":
                assert stream["relative_path"] == f"frame_aligned_videos/{v.file_name}"
    clip_uids = [
        s["clip_uid"]
        for t in takes.values()
        for cam in t["frame_aligned_videos"].values()
        for s in cam.values()
        if s["clip_uid"]
    ]
    assert len(clip_uids) == len(set(clip_uids))
    assert {c["capture_name"] for c in _load(release, "captures.json")} >= {"cmu_bike01", "upenn_dance_02"}

    splits = _load(release, f"{ANN}/splits.json")
    assert splits["take_uid_to_split"] == {t.uid: t.split for t in SAMPLE_TAKES}
    for split, uids in splits["split_to_take_uids"].items():
        assert all(splits["take_uid_to_split"][u] == split for u in uids)
    for split in ("train", "val"):
        ad = _load(release, f"{ANN}/atomic_descriptions_{split}.json")
        assert {"ds", "take_cam_id_map", "annotations"} <= set(ad)
        assert set(ad["annotations"]) == {t.uid for t in SAMPLE_TAKES if t.split == split}
        ks = _load(release, f"{ANN}/keystep_{split}.json")
        assert {"annotations", "taxonomy", "vocabulary"} <= set(ks)
        for uid, ann in ks["annotations"].items():
            assert ann["take_uid"] == uid and ann["segments"] and "annotation_meta" in ann
            for seg in ann["segments"]:
                assert seg["start_time"] < seg["end_time"] and str(seg["step_unique_id"]) in ks["vocabulary"]


def test_narrations_are_realistic(release):
    total = 0
    for take in SAMPLE_TAKES:
        if take.split == "test":
            continue
        for p in _passes(release, take.name):
            assert {"annotation_uid", "annotator_id", "rejected", "reject_reason", "descriptions"} <= set(p)
            good = [
                d
                for d in p["descriptions"]
                if isinstance(d.get("timestamp"), float)
                and d["text"].strip()
                and d["timestamp"] <= take.duration_sec
            ]
            assert all(d["text"].split()[0] in ("C", "O") for d in good)
            assert all(round(d["timestamp"], 5) == d["timestamp"] for d in good)
            if take.in_takes_json and not p["rejected"]:
                total += len(good)
    assert 90 <= total <= 160


def test_quirks(release):
    takes = _takes_by_name(release)
    # 1. three passes (two accepted by different annotators, one rejected), subject key, edges, bad records
    p = _passes(release, "cmu_bike01_2")
    assert [x["rejected"] for x in p] == [False, False, True] and p[2]["reject_reason"]
    assert p[0]["annotator_id"] != p[1]["annotator_id"]
    assert [d["text"] for d in p[0]["descriptions"]] != [d["text"] for d in p[1]["descriptions"]]
    stamps = [d.get("timestamp") for d in p[0]["descriptions"]]
    assert 0.0 in stamps and 12.0 in stamps and 42.0 in stamps and "abc" in stamps and None in stamps
    assert any(d["text"] == "   " for d in p[0]["descriptions"])
    assert all("subject" in d and isinstance(d["ego_visible"], bool) for d in p[0]["descriptions"])
    assert takes["cmu_bike01_2"]["best_exo"] == "cam02"
    # 2. egocentric GoPro, narration_subject key, "1"/"0" strings, null best_exo, messy text
    cams = {c["cam_id"]: c for c in takes["georgiatech_cooking_03_1"]["capture"]["cameras"]}
    assert cams["cam04"]["is_ego"] is True and cams["cam04"]["device_type"] == "hero10"
    descs = _passes(release, "georgiatech_cooking_03_1")[0]["descriptions"]
    assert all("narration_subject" in d and "subject" not in d and d["best_exo"] is None for d in descs)
    assert {d["unsure"] for d in descs} == {"0", "1"} and "0" in {d["ego_visible"] for d in descs}
    assert "  C   picks up the  knife ." in [d["text"] for d in descs]
    assert takes["georgiatech_cooking_03_1"]["best_exo"] is None
    # 3. gp names, string is_ego, shorter exo with a narration in its missing last seconds
    cams = takes["upenn_dance_02_4"]["capture"]["cameras"]
    assert {c["cam_id"]: c["is_ego"] for c in cams} == {
        "aria02": "true",
        "gp01": "false",
        "gp02": "false",
        "gp03": "false",
        "gp04": "false",
    }
    views = {v.cam_id: v for v in TAKES["upenn_dance_02_4"].views}
    assert views["aria02"].n_frames - views["gp03"].n_frames == 2 * FPS
    duration = takes["upenn_dance_02_4"]["duration_sec"]
    assert any(
        duration - 1 < d["timestamp"] < duration
        for d in _passes(release, "upenn_dance_02_4")[0]["descriptions"]
    )
    # 8. in splits and annotations but not in takes.json; 9. dropped; 10. one narration; 11. test split
    assert "nus_music_02_1" not in takes and _passes(release, "nus_music_02_1")
    assert takes["utokyo_health_03_1"]["is_dropped"] is True
    assert [len(x["descriptions"]) for x in _passes(release, "uniandes_cooking_01_1")] == [1]
    assert not (release / f"{ANN}/atomic_descriptions_test.json").exists()
    assert TAKES["cmu_bike02_1"].split == "test" and "cmu_bike02_1" in takes
    # bad takes.json records
    raw = _load(release, "takes.json")
    broken = [t for t in raw if t["take_name"] == "broken_take_01"]
    assert len(broken) == 1 and "take_uid" not in broken[0]
    assert (
        takes["escape_take_01"]["frame_aligned_videos"]["aria01"]["rgb"]["relative_path"]
        == "../../../../etc/passwd"
    )
    assert _passes(release, "escape_take_01")[0]["descriptions"]
    assert {r["take_name"] for r in BAD_RECORDS} == {"broken_take_01", "escape_take_01", "cmu_bike01_2"}
    for r in BAD_RECORDS:
        assert (release / r["file"]).is_file() and r["expected_reason_keyword"]


def test_frame_offsets_csv():
    csv = Path(__file__).parents[1] / "pipeline/egoexoclip/data/frame_offsets.csv"
    assert csv.read_text().splitlines() == ["take_name,cam_id,offset_frames", "indiana_bike_01_2,aria01,5"]
    assert {v.cam_id: v.offset_frames for v in TAKES["indiana_bike_01_2"].views}["aria01"] == 5


def _video_jobs(root: Path):
    for take in SAMPLE_TAKES:
        if not take.in_takes_json:
            continue
        base = root / "takes" / take.name / "frame_aligned_videos"
        for v in take.views:
            for path, size in (
                (base / "downscaled/448" / v.file_name, v.size448),
                (base / v.file_name, v.size_full),
            ):
                yield take, v, path, size


def test_files_on_disk(release):
    for _, v, path, _ in _video_jobs(release):
        assert path.exists() == (v.file_state != "missing"), path
    assert not list(release.rglob("*_1201-1.mp4")) and not list(release.rglob("*_211-1.mp4"))
    for _, v, path, _ in _video_jobs(release):
        if v.file_state == "truncated":
            res = subprocess.run(
                [FFMPEG, "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True
            )
            assert res.returncode != 0 and res.stderr, path


def test_stamped_frames_decode(release):
    def check(job):
        take, v, path, size = job
        n = v.n_frames
        wanted = sorted({0, v.offset_frames, n // 2, n - 1, n})  # frame n must not exist
        dims, audio, frames = _probe_and_read(path, wanted)
        assert dims == size and audio, path
        assert sorted(frames) == wanted[:-1], path
        for j, frame in frames.items():
            expected = j - v.offset_frames if j >= v.offset_frames else MAX_FRAME_INDEX
            assert decode_frame(frame) == (camera_code(v.cam_id), expected), (path, j)

    jobs = [j for j in _video_jobs(release) if j[1].file_state == "ok"]
    assert any(v.offset_frames for _, v, _, _ in jobs) and any(s == (448, 796) for *_, s in jobs)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(check, jobs))


def test_vertical_and_short_views(release):
    base = release / "takes/minnesota_rockclimbing_01_2/frame_aligned_videos"
    assert _probe_and_read(base / "downscaled/448/cam01.mp4", [0])[0] == (448, 796)
    assert _probe_and_read(base / "cam01.mp4", [0])[0] == (576, 1024)
    gp03 = release / "takes/upenn_dance_02_4/frame_aligned_videos/downscaled/448/gp03.mp4"
    assert sorted(_probe_and_read(gp03, [209, 210, 269])[2]) == [209]


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_generation_is_byte_identical(release, tmp_path):
    # The 448-only rerun covers every JSON file and every 448 video; full-res files use the same code path,
    # checked below on one file written twice.
    again = _digests(generate_release(tmp_path / "again", full_res=False))
    first = _digests(release)
    assert again and all(first[k] == d for k, d in again.items())
    for k in ("a", "b"):
        write_stamped_video(tmp_path / f"{k}.mp4", "cam02", 45, 1024, 576, offset_frames=3)
    assert _digests(tmp_path)["a.mp4"] == _digests(tmp_path)["b.mp4"]


def test_textured_video_decodes(tmp_path):
    plain, textured = tmp_path / "plain.mp4", tmp_path / "textured.mp4"
    write_stamped_video(plain, "gp02", 60, 796, 448)
    write_stamped_video(textured, "gp02", 60, 796, 448, textured=True, crf=23, gop=30)
    assert (
        textured.stat().st_size > 5 * plain.stat().st_size
    )  # the texture is what makes the bitrate realistic
    _, _, frames = _probe_and_read(textured, list(range(0, 60, 7)))
    assert {j: decode_frame(f) for j, f in frames.items()} == {j: (camera_code("gp02"), j) for j in frames}


def test_cli_skips_existing_release(release, capsys):
    before = (release / "takes.json").stat().st_mtime_ns
    assert main(["--out", str(release)]) == 0
    assert "exists" in capsys.readouterr().out and (release / "takes.json").stat().st_mtime_ns == before
