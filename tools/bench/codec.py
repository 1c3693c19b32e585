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


def yuv420p_size(w: int, h: int) -> int:
    """Bytes of one raw yuv420p frame (odd sizes: the chroma planes round up)."""
    return w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)


def decoded_frames(src: str, indices: Sequence[int], w: int, h: int, *, input_args: Sequence[str] = ()):
    """Yield the raw yuv420p frames of sorted unique source `indices`, from a -threads 1 decoder (not measured).
    `input_args`: options before -i (an image sequence's -framerate / -start_number)."""
    sel = clip_plan.membership_expr((i, i + 1) for i in indices)
    graph = f"[0:v:0]trim=end_frame={indices[-1] + 1},select='{sel}',setpts=N/TB[o]"
    with tempfile.TemporaryDirectory() as d:
        gpath = os.path.join(d, "g.txt")
        Path(gpath).write_text(graph)
        cmd = _ff("-threads", "1", *input_args, "-i", src, "-/filter_complex", gpath, "-map", "[o]", "-fps_mode", "passthrough",
                  "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1")  # fmt: skip
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        size = yuv420p_size(w, h)
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


def raw_input(w: int, h: int, fps: float | str = FPS) -> list[str]:
    return ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}", "-r", str(fps), "-i", "pipe:0"]


def window_frames(src: str, windows: Sequence[tuple[int, int]], w: int, h: int, *, extra: Iterable[int] = (),
                  on_decoded=None, input_args: Sequence[str] = ()):
    """Raw frames of every window back to back (overlapping windows repeat frames), each source frame decoded once.
    `extra` frames are decoded too; `on_decoded(index, data)` sees every decoded frame exactly once."""
    needed = sorted({i for a, b in windows for i in range(a, b)} | set(extra))
    frames = decoded_frames(src, needed, w, h, input_args=input_args)
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


def mp4_encoder(w: int, h: int, windows: Sequence[tuple[int, int]], fmt: ClipFormat, d: str, *,
                fps: float | str = FPS, out_size: tuple[int, int] | None = None) -> list[str]:  # fmt: skip
    """x264 with the pipeline's settings over raw w x h frames of `windows` back to back, a keyframe at each
    window start (as each clip starts with one); scaled to `out_size` first where the output size differs."""
    starts = clip_plan.lane_segment_starts(windows)
    kpath = os.path.join(d, "k.txt")
    Path(kpath).write_text("expr:" + clip_plan.membership_expr((s, s + 1) for s in starts))
    scale = ["-vf", "scale={}:{}:flags=bicubic,setsar=1".format(*out_size)] if out_size and out_size != (w, h) else []
    return _ff(*raw_input(w, h, fps), *scale, *x264_args(fmt), "-/force_key_frames:v", kpath,
               "-fps_mode", "passthrough", "-f", "null", "-")  # fmt: skip


def jpeg_encoder(w: int, h: int, fmt: ClipFormat, out_size: tuple[int, int] | None = None) -> list[str]:
    """scale + mjpeg with the pipeline's settings over raw w x h frames (default size: the frames mode's)."""
    ow, oh = out_size or clip_plan.scaled_size(w, h, fmt.size)
    return _ff(*raw_input(w, h), "-vf", f"scale={ow}:{oh}:flags=bicubic,setsar=1",
               "-c:v", "mjpeg", "-q:v", str(fmt.jpeg_quality), "-pix_fmt", "yuvj420p", "-f", "null", "-")  # fmt: skip


def _mp4_encoder(view: dict, windows: list[tuple[int, int]], fmt: ClipFormat, d: str) -> list[str]:
    return mp4_encoder(view["width"], view["height"], windows, fmt, d)


def _jpeg_encoder(view: dict, fmt: ClipFormat) -> list[str]:
    return jpeg_encoder(view["width"], view["height"], fmt)


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


# ------------------------------------------------------------------------------------------- any source


def decode_range(src: str, first: int, last: int, fps: float, *, input_args: Sequence[str] = ()) -> Run:
    """One -threads 1 decode of source frames [first, last]: input seek to `first` (decoding from the keyframe
    before it, as any reader must), stop after `last`. An image sequence (`input_args`): every image of it."""
    if input_args:
        return run_measured(_ff(*input_args, "-i", src, "-map", "0:v:0", "-f", "null", "-"))
    seek = ["-ss", f"{first / fps:.6f}"] if first else []
    return run_measured(_ff("-threads", "1", *seek, "-i", src, "-map", "0:v:0", "-frames:v", str(last - first + 1),
                            "-f", "null", "-"))  # fmt: skip


def encode_windows(src: str, w: int, h: int, windows: Sequence[tuple[int, int]], fmt: ClipFormat, *, fps: float,
                   out_size: tuple[int, int], input_args: Sequence[str] = ()) -> Run:  # fmt: skip
    """Encoder CPU of mp4 clips of `windows` (sorted by start), fed by an unmeasured decoder."""
    with tempfile.TemporaryDirectory() as d:
        cmd = mp4_encoder(w, h, windows, fmt, d, fps=fps, out_size=out_size)
        return encode_fed(cmd, window_frames(src, windows, w, h, input_args=input_args))


def encode_jpegs(src: str, w: int, h: int, indices: Sequence[int], fmt: ClipFormat, *,
                 out_size: tuple[int, int], input_args: Sequence[str] = ()) -> Run:  # fmt: skip
    """Encoder CPU of one JPEG per sorted unique source frame in `indices`, fed by an unmeasured decoder."""
    frames = decoded_frames(src, indices, w, h, input_args=input_args)
    return encode_fed(jpeg_encoder(w, h, fmt, out_size), (data for _, data in frames))
