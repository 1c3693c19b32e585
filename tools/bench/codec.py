"""Codec-limit measurement: what ffmpeg alone costs for a build's work, in CPU seconds of the measured process.

    run_measured(cmd)                   one command's own CPU (wait4 rusage of exactly that child)
    decoded_frames / window_frames      raw yuv420p frames of chosen source frames, one unmeasured decoder
    encode_fed(encoder, feed)           an encoder fed raw frames on stdin; only the encoder is measured
    encode_only(view, windows, ...)     x264 over every window back to back + scale/mjpeg of every output JPEG
    naive_clip(view, k, window, ...)    the naive method: one ffmpeg per clip, input seek, re-encode

Used by the Ego-ExoClip bench (tools/bench/egoexoclip.py) and the builders' harness (tools/bench/builders.py).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from pipeline.core.clips import ClipFormat, ffmpeg_exe
from pipeline.core.clips import plan as clip_plan
from tools.bench.settings import FPS


@dataclasses.dataclass
class Run:
    cpu: float  # user + sys of the process (and the children it waited for), s
    wall: float
    maxrss_mb: float
    stderr: str = ""


def _ff(*args: str) -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args]


def _reap(proc: subprocess.Popen, started: float, err) -> Run:
    """wait4 on exactly this child: its own rusage, whatever else runs concurrently in this process."""
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    text = err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{proc.args[:8]}... exited {proc.returncode}: {text[-1500:]}")
    return Run(ru.ru_utime + ru.ru_stime, time.perf_counter() - started, ru.ru_maxrss / 1024, text)


def run_measured(cmd: Sequence[str]) -> Run:
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        return _reap(proc, started, err)


def encode_fed(encoder: Sequence[str], feed) -> Run:
    """Run `encoder` (reading raw frames on stdin) fed by the generator `feed`; measure the encoder alone."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(encoder, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        try:
            for chunk in feed:
                proc.stdin.write(chunk)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        return _reap(proc, started, err)


def decoded_frames(src: str, indices: Sequence[int], w: int, h: int):
    """Yield the raw yuv420p frames of sorted unique source `indices`, from a -threads 1 decoder (not measured)."""
    sel = clip_plan.membership_expr((i, i + 1) for i in indices)
    graph = f"[0:v:0]trim=end_frame={indices[-1] + 1},select='{sel}',setpts=N/TB[o]"
    with tempfile.TemporaryDirectory() as d:
        gpath = os.path.join(d, "g.txt")
        Path(gpath).write_text(graph)
        cmd = _ff("-threads", "1", "-i", src, "-/filter_complex", gpath, "-map", "[o]", "-fps_mode", "passthrough",
                  "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1")  # fmt: skip
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        size = w * h * 3 // 2
        try:
            for i in indices:
                buf = proc.stdout.read(size)
                if len(buf) != size:
                    raise RuntimeError(f"decoder of {src} ended before frame {i}")
                yield i, buf
        finally:
            proc.stdout.close()
            proc.kill()
            proc.wait()


def x264_args(fmt: ClipFormat) -> list[str]:
    return ["-c:v", "libx264", "-preset", fmt.preset, "-crf", str(fmt.crf), "-threads", str(fmt.threads),
            "-pix_fmt", "yuv420p"]  # fmt: skip


def raw_input(w: int, h: int) -> list[str]:
    return ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}", "-r", str(FPS), "-i", "pipe:0"]


def window_frames(src: str, windows: Sequence[tuple[int, int]], w: int, h: int, *, extra: Iterable[int] = (),
                  on_decoded=None):
    """Raw frames of every window back to back (overlapping windows repeat frames), each source frame decoded once.
    `extra` frames are decoded too; `on_decoded(index, data)` sees every decoded frame exactly once."""
    needed = sorted({i for a, b in windows for i in range(a, b)} | set(extra))
    frames = decoded_frames(src, needed, w, h)
    buf: dict[int, bytes] = {}

    def pull() -> None:
        j, data = next(frames)
        if on_decoded:
            on_decoded(j, data)
        buf[j] = data

    for k, (a, b) in enumerate(windows):
        for i in range(a, b):
            while i not in buf:
                pull()
            yield buf[i]
        nxt = windows[k + 1][0] if k + 1 < len(windows) else b
        for j in [j for j in buf if j < nxt]:
            del buf[j]
    for j, data in frames:  # extra frames past the last window
        if on_decoded:
            on_decoded(j, data)


def _mp4_encoder(view: dict, windows: list[tuple[int, int]], fmt: ClipFormat, d: str) -> list[str]:
    starts = clip_plan.lane_segment_starts(windows)
    kpath = os.path.join(d, "k.txt")
    Path(kpath).write_text("expr:" + clip_plan.membership_expr((s, s + 1) for s in starts))
    return _ff(*raw_input(view["width"], view["height"]), *x264_args(fmt), "-/force_key_frames:v", kpath,
               "-fps_mode", "passthrough", "-f", "null", "-")  # fmt: skip


def _jpeg_encoder(view: dict, fmt: ClipFormat) -> list[str]:
    ow, oh = clip_plan.scaled_size(view["width"], view["height"], fmt.size)
    return _ff(*raw_input(view["width"], view["height"]), "-vf", f"scale={ow}:{oh}:flags=bicubic,setsar=1",
               "-c:v", "mjpeg", "-q:v", str(fmt.jpeg_quality), "-pix_fmt", "yuvj420p", "-f", "null", "-")  # fmt: skip


def encode_only(view: dict, windows: list[tuple[int, int]], jpeg_idx: list[int], mp4_fmt, frames_fmt):
    """Encoder CPU of exactly the output frames: x264 over every window back to back (keyframe at each start),
    and scale + mjpeg of every output JPEG. One unmeasured decoder feeds both (each source frame decoded once)."""
    want = set(jpeg_idx)
    with tempfile.TemporaryDirectory() as d, tempfile.TemporaryFile() as ea, tempfile.TemporaryFile() as eb:
        t0 = time.perf_counter()
        procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
                 for cmd, err in ((_mp4_encoder(view, windows, mp4_fmt, d), ea), (_jpeg_encoder(view, frames_fmt), eb))]  # fmt: skip
        mp4_in, jpg_in = procs[0].stdin, procs[1].stdin

        def to_jpeg(j: int, data: bytes) -> None:
            if j in want:
                jpg_in.write(data)

        for data in window_frames(view["path"], windows, view["width"], view["height"], extra=want,
                                  on_decoded=to_jpeg):  # fmt: skip
            mp4_in.write(data)
        mp4_in.close()
        jpg_in.close()
        return _reap(procs[0], t0, ea), _reap(procs[1], t0, eb)


def naive_clip(view: dict, k: int, window: tuple[int, int], fmt: ClipFormat, tmp: str) -> tuple[Run, int]:
    """What public scripts do: one ffmpeg per clip, input seek (`-ss` before `-i`: jump to the keyframe before,
    decode and drop up to the start), re-encode with the same x264 settings."""
    a, b = window
    out = os.path.join(tmp, f"{view['take']}_{view['cam']}_{k}.mp4")
    r = run_measured(_ff("-threads", "1", "-ss", f"{a / FPS:.6f}", "-i", view["path"], "-map", "0:v:0", "-an",
                         "-frames:v", str(b - a), *x264_args(fmt), "-movflags", "+faststart", "-y", out))  # fmt: skip
    size = os.path.getsize(out)
    os.unlink(out)
    return r, size
