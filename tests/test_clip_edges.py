"""Video edge cases of pipeline.core.clips against real ffmpeg: rotated views, odd sizes, error details."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import subprocess
import threading
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
)
from pipeline.core.clips._proc import run_ffmpeg, tail
from pipeline.core.clips.plan import scaled_size
from pipeline.core.framecode import decode_frame
from tools.samples.stamped_video import write_stamped_video

CODE = 37
FRAMES = ClipFormat(kind="frames", n_frames=4, size=192)


@pytest.fixture(scope="module")
def rotated(tmp_path_factory):
    """A portrait view as phones record it: 320x192 coded, display matrix rotation 90 (shown 192x320)."""
    d = tmp_path_factory.mktemp("rot")
    coded = d / "coded.mp4"
    write_stamped_video(coded, CODE, 30, 320, 192, audio=False)
    rot = d / "rot.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-display_rotation", "90", "-i", str(coded), "-c", "copy",
                    str(rot)], check=True)  # fmt: skip
    return str(rot)


def _unrotate(frame: np.ndarray) -> np.ndarray:
    """Displayed frame -> coded orientation (rotation 90 = counterclockwise: turn it back clockwise)."""
    return np.rot90(frame, k=-1)


def test_probe_reports_displayed_size(rotated):
    info = probe_video(rotated)
    assert (info.width, info.height, info.rotation, info.n_frames) == (192, 320, 90, 30)


def test_frames_mode_honours_rotation_like_mp4(rotated, tmp_path):
    info = probe_video(rotated)
    req = [ClipRequest("c", 4, 20)]
    mp4 = next(extract_clips(rotated, req, ClipFormat(), workdir=str(tmp_path), info=info))
    video = read_frames(mp4.data)
    assert video.shape == (16, 320, 192, 3)  # portrait, as displayed
    assert [decode_frame(_unrotate(f)) for f in video] == [(CODE, i) for i in range(4, 20)]

    clip = next(extract_clips(rotated, req, FRAMES, workdir=str(tmp_path), info=info))
    for jpeg, index in zip(clip.frames, clip.source_frames, strict=True):
        img = read_frames(jpeg)[0]
        assert img.shape == (320, 192, 3)  # not the coded 320x192 landscape squeezed
        assert decode_frame(_unrotate(img)) == (CODE, index)
        same = video[index - 4].astype(int)
        assert np.abs(img.astype(int) - same).mean() < 8  # same pixels, same orientation as mp4 mode
        assert np.abs(img.astype(int) - same[::-1, ::-1]).mean() > 30  # and not upside down


@pytest.mark.parametrize("kind", ["mp4", "frames"])
def test_odd_size_scaled_to_even(tmp_path, kind):
    src = tmp_path / "odd.webm"  # VP9 carries odd sizes (x264's yuv420p refuses them)
    write_stamped_video(src, CODE, 12, 797, 449, container="webm")
    info = probe_video(str(src))
    assert (info.width, info.height) == (797, 449)
    fmt = ClipFormat() if kind == "mp4" else ClipFormat(kind="frames", n_frames=3, size=224)
    clip = next(extract_clips(str(src), [ClipRequest("c", 2, 10)], fmt, workdir=str(tmp_path), info=info))
    frames = read_frames(clip.data) if kind == "mp4" else np.concatenate([read_frames(j) for j in clip.frames])
    want = (796, 448) if kind == "mp4" else scaled_size(797, 449, 224)
    assert (frames.shape[2], frames.shape[1]) == want and want[0] % 2 == 0 and want[1] % 2 == 0
    assert [decode_frame(f) for f in frames] == [(CODE, i) for i in clip.source_frames]


def test_failure_detail_keeps_first_and_last_lines():
    """A real ffmpeg failure with a long log (x264 refusing 797x449 at verbose level): the kept detail holds the
    log's first line, the cause in the middle and the last line, and stays bounded."""
    args = ["-loglevel", "level+verbose", "-f", "lavfi", "-i", "testsrc=size=797x449:rate=30", "-frames:v", "2",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "null", "-"]  # fmt: skip
    full = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *args], capture_output=True, text=True)
    assert full.returncode != 0
    lines = re.sub(r" @ 0x[0-9a-fA-F]+", "", full.stderr).strip().splitlines()
    assert len("\n".join(lines)) > 2000  # long enough to be cut
    with pytest.raises(ExtractionError) as err:
        run_ffmpeg(args, path="lavfi", timeout_s=60)
    detail = err.value.detail
    assert len(detail) <= 2000
    assert detail.startswith(lines[0]) and detail.endswith(lines[-1])
    assert "width not divisible by 2" in detail and "lines elided ..." in detail


def test_tail_bounds():
    log = "\n".join(f"[info] line {i} " + "x" * 40 for i in range(400)) + "\n[error] the end"
    kept = tail(log, 600)
    assert len(kept) <= 600 and kept.startswith("[info] line 0 ") and kept.endswith("[error] the end")
    one = "a" * 5000 + "Z"
    kept = tail(one, 600)
    assert len(kept) <= 600 and kept.startswith("aaa") and kept.endswith("Z")
    assert tail("short log\n", 600) == "short log"


def test_decoding_waits_for_a_slow_encoder(tmp_path):
    """Bounded memory: decoded frames do not pile up ahead of a slower encoder. The source (raw y4m, a fixed
    number of bytes per frame) reaches the extraction through a FIFO we feed frame by frame; the encoder is made
    slow for real (every frame scaled up to 1920x1080 and JPEG-encoded). After each frame written we count the
    JPEGs already on disk: if decoding ran ahead unboundedly, the whole source would be read almost at once."""
    n, w, h = 240, 320, 180
    y4m = tmp_path / "src.y4m"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={w}x{h}:rate=30",
                    "-frames:v", str(n), "-pix_fmt", "yuv420p", str(y4m)], check=True)  # fmt: skip
    data = y4m.read_bytes()
    header = data.index(b"\n") + 1
    frame_bytes = (len(data) - header) // n
    fifo = str(tmp_path / "feed.y4m")
    os.mkfifo(fifo)
    work = tmp_path / "work"
    work.mkdir()
    lead: list[int] = []

    def feed():
        deadline = time.monotonic() + 60
        while True:  # non-blocking open: a failed ffmpeg that never opens the FIFO must not hang the test
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)
        os.set_blocking(fd, True)
        with contextlib.suppress(BrokenPipeError), os.fdopen(fd, "wb") as f:
            f.write(data[:header])
            for k in range(n):
                f.write(data[header + k * frame_bytes : header + (k + 1) * frame_bytes])
                f.flush()
                lead.append(k + 1 - len(glob.glob(str(work / "clips-*" / "f_*.jpg"))))

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    info = VideoInfo(n, 30.0, "30/1", w, h, "rawvideo")
    fmt = ClipFormat(kind="frames", n_frames=10, size=1080)
    requests = [ClipRequest(f"c{i}", 10 * i, 10 * i + 10) for i in range(n // 10)]
    clips = list(extract_clips(fifo, requests, fmt, workdir=str(work), info=info, keep_dir=str(tmp_path / "k")))
    feeder.join(10)
    assert sum(len(c.paths) for c in clips) == n and len(lead) == n
    # ffmpeg's bounded queues (demuxer -> decoder -> filtergraph -> encoder, a few frames each) measured ~25 here
    assert max(lead) <= 48, max(lead)
