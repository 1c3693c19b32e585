"""pipeline.core.clips against real ffmpeg: every output frame is identified by its framecode stamp."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import time

import numpy as np
import pytest

from pipeline.core.clips import (
    ClipFormat,
    ClipRequest,
    ExtractionError,
    VideoInfo,
    extract_clips,
    ffmpeg_exe,
    probe_video,
    read_frames,
    sample_frame_indices,
)
from pipeline.core.clips import extract as extract_mod
from pipeline.core.clips.plan import (
    assign_lanes,
    lane_segment_starts,
    membership_expr,
    merge_windows,
    mp4_filtergraph,
    scaled_size,
    to_union_numbering,
)
from pipeline.core.framecode import decode_frame

GP, ARIA = 21, 1  # camera codes stamped into the two test videos


def _make_video(path, cam, n, w, h):
    """Stamped frames -> H.264 yuv420p 30 fps, long GOP, plus an AAC track (which clips must drop)."""
    cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", "30", "-i", "pipe:0", "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={n / 30}",
           "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
           "-g", "250", "-c:a", "aac", str(path)]  # fmt: skip
    from pipeline.core.framecode import encode_frame

    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for i in range(n):
        proc.stdin.write(encode_frame(cam, i, w, h).tobytes())
    proc.stdin.close()
    assert proc.wait() == 0
    return str(path)


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("clipsrc")
    gp = _make_video(d / "gp01.mp4", GP, 300, 796, 448)
    aria = _make_video(d / "aria01.mp4", ARIA, 90, 448, 448)
    data = (d / "gp01.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])  # moov is at the end: cut off
    fast = d / "faststart.mp4"  # moov first: the truncation hits the packets instead
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", gp, "-c", "copy", "-movflags", "+faststart", str(fast)],
                   check=True)  # fmt: skip
    fdata = fast.read_bytes()
    (d / "truncated_fs.mp4").write_bytes(fdata[: len(fdata) // 2])
    return {"gp": gp, "aria": aria, "dir": d, "truncated": str(d / "truncated.mp4"),
            "truncated_fs": str(d / "truncated_fs.mp4")}  # fmt: skip


def _stamps(frames):
    return [decode_frame(f) for f in frames]


def _has_audio(data: bytes, tmp_path) -> bool:
    p = tmp_path / "probe.mp4"
    p.write_bytes(data)
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(p)], capture_output=True, text=True).stderr
    assert "Video: h264" in err
    return "Audio:" in err


# ---------------------------------------------------------------- pure planning


def test_sample_frame_indices_hand_computed():
    assert sample_frame_indices(0, 10, 4) == [1, 3, 6, 8]
    assert sample_frame_indices(5, 7, 4) == [5, 5, 6, 6]
    assert sample_frame_indices(0, 16, 16) == list(range(16))
    assert sample_frame_indices(10, 40, 1) == [25]
    assert sample_frame_indices(299, 300, 3) == [299, 299, 299]
    with pytest.raises(ValueError):
        sample_frame_indices(5, 5, 4)


def test_assign_lanes_greedy_first_fit():
    windows = [(0, 30), (10, 40), (30, 60), (35, 36), (0, 30), (40, 41)]
    # sorted by start: (0,30)#0 L0, (0,30)#4 L1, (10,40)#1 L2, (30,60)#2 L0, (35,36)#3 L1, (40,41)#5 L1
    assert assign_lanes(windows) == [[0, 2], [4, 3, 5], [1]]
    assert assign_lanes([]) == []
    lanes = assign_lanes(windows)
    assert sorted(i for lane in lanes for i in lane) == list(range(len(windows)))
    for lane in lanes:
        for a, b in zip(lane, lane[1:], strict=False):
            assert windows[a][1] <= windows[b][0]


def _eval_expr(expr: str, n: int) -> float:
    py = expr.replace("if(", "_if(")
    env = {"_if": lambda c, a, b: a if c else b, "lt": lambda x, y: x < y, "eq": lambda x, y: x == y,
           "between": lambda x, lo, hi: lo <= x <= hi, "n": n}  # fmt: skip
    return eval(py, env)  # noqa: S307 - our own generated expression, test only


def test_membership_expr_matches_union():
    windows = [(0, 1), (5, 9), (7, 12), (20, 21), (30, 40), (40, 41), (99, 100)]
    covered = {i for a, b in windows for i in range(a, b)}
    expr = membership_expr(windows)
    assert expr.count("if(") == len(merge_windows(windows)) - 1
    for n in range(110):
        assert bool(_eval_expr(expr, n)) == (n in covered), n
    assert membership_expr([]) == "0"
    assert merge_windows(windows) == [(0, 1), (5, 12), (20, 21), (30, 41), (99, 100)]


def test_filtergraph_layout():
    lanes = [[(0, 30), (30, 60), (295, 300)], [(10, 40)]]
    assert lane_segment_starts(lanes[0]) == [0, 30, 60]
    union = merge_windows(w for lane in lanes for w in lane)
    assert union == [(0, 60), (295, 300)]
    assert to_union_numbering([(295, 300), (10, 40)], union) == [(60, 65), (10, 40)]
    graph = mp4_filtergraph(lanes, "30000/1001")
    assert graph.startswith("[0:v:0]trim=end_frame=300,select=")
    assert "split=2[s0][s1]" in graph
    assert "[s0]select='between(n,0,64)',setpts=N/(30000/1001)/TB[l0]" in graph
    assert "[s1]select='between(n,10,39)',setpts=N/(30000/1001)/TB[l1]" in graph
    assert "split" not in mp4_filtergraph([[(3, 9)]], "30/1")


def test_scaled_size_and_format_validation():
    assert scaled_size(796, 448, 336) == (598, 336)
    assert scaled_size(448, 448, 336) == (336, 336)
    assert scaled_size(448, 796, 224) == (224, 398)
    for bad, field in [({"kind": "gif"}, "kind"), ({"crf": 60}, "crf"), ({"size": 335}, "size"),
                       ({"preset": "warp"}, "preset"), ({"n_frames": 0}, "n_frames"), ({"threads": 0}, "threads"),
                       ({"jpeg_quality": 0}, "jpeg_quality")]:  # fmt: skip
        with pytest.raises(ValueError, match=rf"ClipFormat\.{field}="):
            ClipFormat(**bad)


def test_extraction_error_pickles():
    e = pickle.loads(pickle.dumps(ExtractionError("/x.mp4", "decode timeout", "tail")))
    assert (e.path, e.reason, e.detail) == ("/x.mp4", "decode timeout", "tail")


# ---------------------------------------------------------------- probe


def test_probe_counts_frames(videos):
    assert probe_video(videos["gp"]) == VideoInfo(300, 30.0, "30/1", 796, 448, "h264")
    assert probe_video(videos["aria"]) == VideoInfo(90, 30.0, "30/1", 448, 448, "h264")


def test_probe_failures(videos):
    with pytest.raises(ExtractionError) as ei:
        probe_video(str(videos["dir"] / "nope.mp4"))
    assert ei.value.reason == "missing file"
    with pytest.raises(ExtractionError) as ei:
        probe_video(videos["truncated"])
    assert ei.value.reason == "unreadable video" and "moov" in ei.value.detail
    with pytest.raises(ExtractionError) as ei:
        probe_video(videos["truncated_fs"])
    assert ei.value.reason == "corrupt video"


# ---------------------------------------------------------------- mp4 clips

MP4_REQUESTS = [
    ClipRequest("first", 0, 30),  # starts at frame 0
    ClipRequest("overlap", 10, 40),
    ClipRequest("adjacent", 30, 60),  # shares a lane with "first", back to back
    ClipRequest("one", 35, 36),  # single frame inside two others
    ClipRequest("dup", 0, 30),  # identical window, other id
    ClipRequest("outer", 100, 200),
    ClipRequest("nested", 120, 130),
    ClipRequest("one_b", 150, 151),
    ClipRequest("tail", 270, 300),  # ends at n_frames
    ClipRequest("last", 299, 300),
]


@pytest.fixture(scope="module")
def mp4_runs(videos, tmp_path_factory):
    runs = []
    for _ in range(2):
        wd = tmp_path_factory.mktemp("wd")
        runs.append((list(extract_clips(videos["gp"], MP4_REQUESTS, ClipFormat(), workdir=str(wd))), wd))
    return runs


def test_mp4_clips_hold_exactly_their_frames(mp4_runs, tmp_path):
    clips, workdir = mp4_runs[0]
    assert [c.clip_id for c in clips] == [r.clip_id for r in MP4_REQUESTS]  # request order
    for req, clip in zip(MP4_REQUESTS, clips, strict=True):
        assert clip.kind == "mp4" and clip.frames == ()
        assert clip.source_frames == tuple(range(req.start_frame, req.end_frame))
        frames = read_frames(clip.data)
        assert frames.shape[1:] == (448, 796, 3)
        assert _stamps(frames) == [(GP, i) for i in range(req.start_frame, req.end_frame)], req.clip_id
    assert not _has_audio(clips[0].data, tmp_path)
    (tmp_path / "outer.mp4").write_bytes(clips[5].data)
    assert probe_video(str(tmp_path / "outer.mp4")) == VideoInfo(
        100, 30.0, "30/1", 796, 448, "h264"
    )  # dense 30 fps
    assert clips[0].data == clips[4].data  # identical window encoded once
    assert os.listdir(workdir) == []  # per-call temp dir removed


def test_mp4_clips_are_deterministic(mp4_runs):
    (a, _), (b, _) = mp4_runs
    assert [c.data for c in a] == [c.data for c in b]


def test_decoder_thread_count_does_not_change_bytes(mp4_runs, videos, tmp_path, monkeypatch):
    """Extraction decodes on one thread (cheaper per frame, see make bench); the bytes match ffmpeg's auto threads."""
    assert extract_mod.DECODE_THREADS == 1
    monkeypatch.setattr(extract_mod, "DECODE_THREADS", 0)  # 0: ffmpeg picks (frame threads)
    auto = list(extract_clips(videos["gp"], MP4_REQUESTS, ClipFormat(), workdir=str(tmp_path)))
    assert [c.data for c in auto] == [c.data for c in mp4_runs[0][0]]


@pytest.mark.parametrize("kind", ["mp4", "frames"])
def test_keep_dir_hands_out_files(mp4_runs, videos, tmp_path, kind):
    """keep_dir: the same outputs as files the caller owns, nothing read into memory, the temp dir removed."""
    fmt = ClipFormat() if kind == "mp4" else ClipFormat(kind="frames", n_frames=8, size=224)
    wd, keep = tmp_path / "wd", tmp_path / "keep"
    clips = list(extract_clips(videos["gp"], MP4_REQUESTS, fmt, workdir=str(wd), keep_dir=str(keep)))
    assert os.listdir(wd) == []
    assert all(c.data is None and c.frames == () and c.paths for c in clips)
    if kind == "mp4":
        in_memory = [c.data for c in mp4_runs[0][0]]
        assert [open(c.paths[0], "rb").read() for c in clips] == in_memory  # noqa: SIM115
        assert clips[0].paths == clips[4].paths  # identical windows share one file
    else:
        ref = list(extract_clips(videos["gp"], MP4_REQUESTS, fmt, workdir=str(tmp_path / "ref")))
        for c, r in zip(clips, ref, strict=True):
            assert len(c.paths) == 8 and c.source_frames == r.source_frames
            assert tuple(open(p, "rb").read() for p in c.paths) == r.frames  # noqa: SIM115
    assert len(os.listdir(keep)) == len({p for c in clips for p in c.paths})


def test_mp4_long_graph_goes_through_file(videos, tmp_path, monkeypatch):
    monkeypatch.setattr(extract_mod, "_MAX_INLINE_GRAPH", 0)  # force `-/filter_complex <file>`
    reqs = [ClipRequest(f"w{i}", i, i + 3) for i in range(0, 60, 2)]  # 30 windows, 2 lanes
    clips = list(extract_clips(videos["aria"], reqs, ClipFormat(preset="ultrafast"), workdir=str(tmp_path)))
    for req, clip in zip(reqs, clips, strict=True):
        assert _stamps(read_frames(clip.data)) == [(ARIA, i) for i in range(req.start_frame, req.end_frame)]


# ---------------------------------------------------------------- frames mode


@pytest.mark.parametrize("which,cam,n_frames,size", [("gp", GP, 8, 224), ("aria", ARIA, 16, 336)])
def test_frames_mode(videos, tmp_path, which, cam, n_frames, size):
    n = probe_video(videos[which]).n_frames
    reqs = [
        ClipRequest("a", 0, 30),
        ClipRequest("b", 15, 45),
        ClipRequest("short", n - 3, n),
        ClipRequest("c", 0, 30),
    ]
    fmt = ClipFormat(kind="frames", n_frames=n_frames, size=size)
    clips = list(extract_clips(videos[which], reqs, fmt, workdir=str(tmp_path)))
    assert [c.clip_id for c in clips] == ["a", "b", "short", "c"]
    for req, clip in zip(reqs, clips, strict=True):
        assert clip.kind == "frames" and clip.data is None
        assert len(clip.frames) == n_frames
        assert list(clip.source_frames) == sample_frame_indices(req.start_frame, req.end_frame, n_frames)
        for jpeg, src_index in zip(clip.frames, clip.source_frames, strict=True):
            img = read_frames(jpeg)
            assert (
                img.shape[0] == 1
                and min(img.shape[1:3]) == size
                and img.shape[1] % 2 == img.shape[2] % 2 == 0
            )
            assert decode_frame(img[0]) == (cam, src_index)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- validation and isolation


def test_windows_validated_before_ffmpeg(tmp_path):
    info = VideoInfo(300, 30.0, "30/1", 796, 448, "h264")
    missing = str(tmp_path / "not-there.mp4")  # would be an ExtractionError if ffmpeg ran
    for bad in [ClipRequest("neg", -1, 5), ClipRequest("past", 290, 301), ClipRequest("empty", 5, 5)]:
        with pytest.raises(ValueError, match=bad.clip_id):
            extract_clips(
                missing, [ClipRequest("ok", 0, 5), bad], ClipFormat(), workdir=str(tmp_path), info=info
            )
    assert list(extract_clips(missing, [], ClipFormat(), workdir=str(tmp_path), info=info)) == []


def test_hung_decoder_times_out(tmp_path):
    fifo = str(tmp_path / "never.mp4")
    os.mkfifo(fifo)  # ffmpeg blocks opening it: no writer ever comes
    t0 = time.monotonic()
    with pytest.raises(ExtractionError) as ei:
        probe_video(fifo, timeout_s=1)
    assert ei.value.reason == "decode timeout"
    info = VideoInfo(300, 30.0, "30/1", 796, 448, "h264")
    wd = tmp_path / "wd"
    with pytest.raises(ExtractionError) as ei:
        extract_clips(fifo, [ClipRequest("a", 0, 5)], ClipFormat(), workdir=str(wd), timeout_s=1, info=info)
    assert ei.value.reason == "decode timeout"
    assert time.monotonic() - t0 < 10
    assert os.listdir(wd) == []
    # the killed ffmpegs no longer hold the fifo open: a non-blocking writer finds no reader (ENXIO)
    with pytest.raises(OSError):
        os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)


def test_corrupt_source_raises(videos, tmp_path):
    for name in ("truncated", "truncated_fs"):
        with pytest.raises(ExtractionError) as ei:
            extract_clips(videos[name], [ClipRequest("a", 0, 30)], ClipFormat(), workdir=str(tmp_path))
        assert ei.value.reason in ("unreadable video", "corrupt video")
    # told (wrongly) that the file is whole: the cut into the damaged part must still fail, never come back short
    info = VideoInfo(300, 30.0, "30/1", 796, 448, "h264")
    for fmt in (ClipFormat(), ClipFormat(kind="frames")):
        with pytest.raises(ExtractionError) as ei:
            extract_clips(
                videos["truncated_fs"], [ClipRequest("a", 200, 300)], fmt, workdir=str(tmp_path), info=info
            )
        assert ei.value.reason in ("corrupt video", "frame count mismatch")
    assert os.listdir(tmp_path) == []


def test_read_frames_file_and_bytes(videos):
    frames = read_frames(videos["aria"])
    assert frames.shape == (90, 448, 448, 3) and frames.dtype == np.uint8
    assert _stamps(frames[[0, 45, 89]]) == [(ARIA, 0), (ARIA, 45), (ARIA, 89)]
    gray = read_frames(videos["aria"], pix_fmt="gray")
    assert gray.shape == (90, 448, 448, 1)
    with pytest.raises(ExtractionError) as ei:
        read_frames(b"not a video")
    assert ei.value.reason in ("unreadable video", "ffmpeg failed")
    assert re.fullmatch(r"[a-z ]+", ei.value.reason)
