"""Cut many clips out of one source video with ONE ffmpeg process that decodes the source once.

mp4 mode: the source is decoded once, frames outside every window are dropped, the rest is split into
"lanes" of non-overlapping windows (plan.assign_lanes); each lane is encoded by one x264 instance with
keyframes forced at window starts, and the segment muxer cuts the lane at exactly those frames. One process
per clip would instead re-open, re-seek and re-decode a whole GOP per clip (see ../shared/docs/verified-here.md:
23.5 s vs ~7 s decode-only for 90 clips of a 180 s video).

frames mode: the union of sampled source frames is decoded once, scaled and written as JPEGs via image2;
the JPEG of a source frame is shared by every clip (and position) that samples it.

Every output is verified against the plan (frame counts, JPEG sizes) before anything is returned.

Command lines are plain argument lists rather than ffmpeg-python graphs: the work is in per-output muxer
options (segment lists, forced keyframes) and a filtergraph string we also unit-test, which ffmpeg-python
would only wrap, and a list reads one-to-one against ffmpeg's documentation.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from . import plan
from ._mp4 import jpeg_size, video_sample_count
from ._proc import CORRUPT_VIDEO, FRAME_COUNT_MISMATCH, ExtractionError, error_lines, run_ffmpeg, tail
from .probe import VideoInfo, probe_video

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
# Graphs longer than this go through a file (`-/filter_complex`): Linux caps one argv string at 128 KiB.
_MAX_INLINE_GRAPH = 32_000
# Output options that make bytes depend only on input + settings (no version strings, dates, metadata).
_BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1", "-map_chapters", "-1"]
# H.264 decoding on one thread: frame threading costs ~10-20% more CPU per frame (make bench), and workers get
# their parallelism from concurrent views / shards. Decoding is bit-exact at any thread count. 0 = ffmpeg's auto.
DECODE_THREADS = 1
# Packets queued between demuxing and decoding (ffmpeg's default for one input; set so the bound is ours).
DEMUX_QUEUE_PACKETS = 8


@dataclass(frozen=True)
class ClipRequest:
    clip_id: str
    start_frame: int  # inclusive source frame index
    end_frame: int  # exclusive
    last: bool = False  # frames mode: the window's last frame is sampled last (plan.sample_frame_indices)


@dataclass(frozen=True)
class ClipFormat:
    kind: str = "mp4"  # "mp4" | "frames"
    preset: str = "veryfast"  # x264 (mp4)
    crf: int = 23
    threads: int = 1  # x264 threads: fixed => byte-identical output run to run
    n_frames: int = 16  # frames mode: frames sampled uniformly per window
    size: int = 336  # frames mode: short side after scaling (even)
    jpeg_quality: int = 3  # frames mode: mjpeg -q:v, 1 (best) .. 31

    def __post_init__(self):
        checks = [
            ("kind", self.kind in ("mp4", "frames"), "'mp4' or 'frames'"),
            ("preset", self.preset in X264_PRESETS, "an x264 preset"),
            ("crf", _is_int(self.crf) and 0 <= self.crf <= 51, "an int in 0..51"),
            ("threads", _is_int(self.threads) and self.threads >= 1, "an int >= 1"),
            ("n_frames", _is_int(self.n_frames) and self.n_frames >= 1, "an int >= 1"),
            ("size", _is_int(self.size) and self.size >= 2 and self.size % 2 == 0, "an even int >= 2"),
            ("jpeg_quality", _is_int(self.jpeg_quality) and 1 <= self.jpeg_quality <= 31, "an int in 1..31"),
        ]
        for name, ok, want in checks:
            if not ok:
                raise ValueError(f"ClipFormat.{name}={getattr(self, name)!r}: must be {want}")

    def content_options(self) -> dict:
        """The settings that change the bytes of a clip (for shard fingerprints)."""
        return {
            "kind": self.kind,
            "preset": self.preset,
            "crf": self.crf,
            "x264_threads": self.threads,
            "n_frames": self.n_frames,
            "size": self.size,
            "jpeg_quality": self.jpeg_quality,
        }


def check_decode_settings(owner: str, timeout_s: float, threads: int) -> None:
    """Validation shared by the builders' output formats (errors name the field)."""
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"{owner}.decode_threads={threads!r}: must be an int >= 1")
    if not timeout_s > 0:
        raise ValueError(f"{owner}.decode_timeout_s={timeout_s!r}: must be > 0")


@dataclass(frozen=True)
class Clip:
    clip_id: str
    kind: str
    data: bytes | None = None  # mp4 bytes (mp4 mode)
    frames: tuple[bytes, ...] = ()  # JPEG bytes (frames mode)
    source_frames: tuple[int, ...] = field(default=())  # source frame index of each output frame
    paths: tuple[str, ...] = ()  # with extract_clips(keep_dir=...): the files instead of data/frames


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_requests(requests: Sequence[ClipRequest], n_frames: int) -> None:
    seen: set[str] = set()
    for r in requests:
        if not (
            _is_int(r.start_frame) and _is_int(r.end_frame) and 0 <= r.start_frame < r.end_frame <= n_frames
        ):
            raise ValueError(
                f"clip {r.clip_id!r}: window [{r.start_frame}, {r.end_frame}) not within [0, {n_frames}) or empty"
            )
        if r.clip_id in seen:
            raise ValueError(f"clip {r.clip_id!r}: duplicate clip_id")
        seen.add(r.clip_id)


def extract_clips(
    src: str,
    requests: Sequence[ClipRequest],
    fmt: ClipFormat,
    *,
    workdir: str,
    timeout_s: float = 600,
    info: VideoInfo | None = None,
    keep_dir: str | None = None,
) -> Iterator[Clip]:
    """Yield one Clip per request, in request order.

    The ffmpeg run and all verification happen eagerly in this call (bad windows -> ValueError, ffmpeg or
    verification failures -> ExtractionError, all before the first clip); the iterator then reads outputs one
    at a time from a per-call temp directory under `workdir`, deleting them as it goes, and removes the
    directory when exhausted or closed. Pass `info` from an earlier probe_video to skip probing.

    With `keep_dir`, nothing is read into memory: the verified outputs are moved (renamed) into `keep_dir`,
    which then belongs to the caller, and each Clip carries `paths` (one mp4, or its JPEGs in order; identical
    windows and shared frames point to the same file) with `data=None`, `frames=()`. Use it to keep memory
    flat in video length without writing every clip a second time.
    """
    requests = list(requests)
    if info is None:
        info = probe_video(src, timeout_s=timeout_s)
    validate_requests(requests, info.n_frames)
    if not requests:
        return iter(())
    os.makedirs(workdir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="clips-", dir=workdir)
    try:
        if fmt.kind == "mp4":
            files = _run_mp4(src, requests, fmt, info, tmp, timeout_s)
            if keep_dir is not None:
                return _kept(requests, files, fmt, tmp, keep_dir)
            return _yield_mp4(requests, files, tmp)
        files = _run_frames(src, requests, fmt, info, tmp, timeout_s)
        if keep_dir is not None:
            return _kept(requests, files, fmt, tmp, keep_dir)
        return _yield_frames(requests, files, fmt, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _kept(requests, files: dict, fmt: ClipFormat, tmp: str, keep_dir: str) -> Iterator[Clip]:
    """Move every output into keep_dir (a rename on one filesystem) and hand out paths, not bytes."""
    os.makedirs(keep_dir, exist_ok=True)
    moved: dict = {}

    def keep(key) -> str:
        if key not in moved:
            dst = os.path.join(keep_dir, os.path.basename(tmp) + "-" + os.path.basename(files[key]))
            shutil.move(files[key], dst)
            moved[key] = dst
        return moved[key]

    clips = []
    for r in requests:
        if fmt.kind == "mp4":
            key = (r.start_frame, r.end_frame)
            clips.append(Clip(r.clip_id, "mp4", paths=(keep(key),), source_frames=tuple(range(*key))))
        else:
            idx = plan.sample_frame_indices(r.start_frame, r.end_frame, fmt.n_frames, r.last)
            clips.append(Clip(r.clip_id, "frames", paths=tuple(map(keep, idx)), source_frames=tuple(idx)))
    shutil.rmtree(tmp, ignore_errors=True)
    return iter(clips)


def _graph_args(graph: str, tmp: str) -> list[str]:
    if len(graph) <= _MAX_INLINE_GRAPH:
        return ["-filter_complex", graph]
    path = os.path.join(tmp, "graph.txt")
    with open(path, "w") as f:
        f.write(graph)
    return ["-/filter_complex", path]  # ffmpeg >= 7: "-/opt file" reads the option value from a file


def _decoder_args() -> list[str]:
    # -thread_queue_size: packets queued from the demuxer to the decoder. With it, every hand-over inside the
    # one ffmpeg process is a bounded queue (ffmpeg's scheduler: decoder -> filtergraph -> each encoder, a few
    # frames each, blocking the sender when full), so a slow encoder (busy cores, slow preset) stalls decoding
    # instead of letting decoded frames pile up: memory stays flat in video length (test_clip_edges measures
    # how far reading runs ahead of encoding). Queue sizes change no output byte.
    return ["-threads", str(DECODE_THREADS), "-thread_queue_size", str(DEMUX_QUEUE_PACKETS)]


def _check_clean(src: str, stderr: str) -> None:
    """ffmpeg exits 0 on many damaged inputs (it conceals and carries on): treat logged errors as fatal."""
    errors = error_lines(stderr)
    if errors:
        raise ExtractionError(src, CORRUPT_VIDEO, tail("\n".join(errors)))


def _run_mp4(src, requests, fmt: ClipFormat, info: VideoInfo, tmp: str, timeout_s: float) -> dict:
    # Identical windows are encoded once: the encoder is deterministic, so a copy is byte-identical anyway.
    windows = sorted({(r.start_frame, r.end_frame) for r in requests})
    lanes = [[windows[i] for i in lane] for lane in plan.assign_lanes(windows)]
    graph = plan.mp4_filtergraph(lanes, info.fps_fraction, (info.width, info.height))
    args = ["-loglevel", "level+error", "-nostats", *_decoder_args(), "-i", src, *_graph_args(graph, tmp)]
    for k, lane in enumerate(lanes):
        starts = plan.lane_segment_starts(lane)
        length = starts[-1] + lane[-1][1] - lane[-1][0]
        # A one-window lane still needs a split list (else the muxer cuts every 2 s): one it never reaches.
        cuts = ",".join(map(str, starts[1:])) or str(length)
        keyframes = plan.membership_expr((s, s + 1) for s in starts)
        args += [
            "-map", f"[l{k}]", "-an", "-sn", "-dn",
            "-c:v", "libx264", "-preset", fmt.preset, "-crf", str(fmt.crf), "-threads", str(fmt.threads),
            "-pix_fmt", "yuv420p", "-force_key_frames:v", f"expr:{keyframes}",
            "-fps_mode", "passthrough", *_BITEXACT,
            "-f", "segment", "-segment_format", "mp4", "-segment_frames", cuts, "-reset_timestamps", "1",
            "-segment_format_options", "movflags=+faststart",
            os.path.join(tmp, f"l{k}_%05d.mp4"),
        ]  # fmt: skip
    res = run_ffmpeg(args, path=src, timeout_s=timeout_s)
    _check_clean(src, res.stderr)

    files: dict[tuple[int, int], str] = {}
    expected = set()
    for k, lane in enumerate(lanes):
        for j, (start, end) in enumerate(lane):
            path = os.path.join(tmp, f"l{k}_{j:05d}.mp4")
            expected.add(os.path.basename(path))
            count = None
            if os.path.exists(path):
                with open(path, "rb") as f:
                    count = video_sample_count(f.read())
            if count != end - start:
                raise ExtractionError(
                    src,
                    FRAME_COUNT_MISMATCH,
                    f"clip [{start}, {end}) has {count} frames, expected {end - start}",
                )
            files[(start, end)] = path
    extra = sorted(set(os.listdir(tmp)) - expected - {"graph.txt"})
    if extra:  # more segments than windows: a cut landed somewhere unplanned
        raise ExtractionError(src, FRAME_COUNT_MISMATCH, f"unexpected outputs {extra[:5]}")
    return files


def _yield_mp4(requests, files: dict, tmp: str) -> Iterator[Clip]:
    remaining = {}
    for r in requests:
        key = (r.start_frame, r.end_frame)
        remaining[key] = remaining.get(key, 0) + 1
    try:
        for r in requests:
            key = (r.start_frame, r.end_frame)
            with open(files[key], "rb") as f:
                data = f.read()
            remaining[key] -= 1
            if not remaining[key]:
                os.unlink(files[key])  # keep disk use at "not yet yielded"
            yield Clip(r.clip_id, "mp4", data=data, source_frames=tuple(range(*key)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_frames(src, requests, fmt: ClipFormat, info: VideoInfo, tmp: str, timeout_s: float) -> dict:
    needed = sorted(
        {
            i
            for r in requests
            for i in plan.sample_frame_indices(r.start_frame, r.end_frame, fmt.n_frames, r.last)
        }
    )
    out_w, out_h = plan.scaled_size(info.width, info.height, fmt.size)
    args = [
        "-loglevel", "level+error", "-nostats", *_decoder_args(), "-i", src,
        *_graph_args(plan.frames_filtergraph(needed, out_w, out_h), tmp),
        "-map", "[f]", "-an", "-sn", "-dn", "-fps_mode", "passthrough",
        "-c:v", "mjpeg", "-q:v", str(fmt.jpeg_quality), "-pix_fmt", "yuvj420p", *_BITEXACT,
        "-f", "image2", "-start_number", "0", os.path.join(tmp, "f_%07d.jpg"),
    ]  # fmt: skip
    res = run_ffmpeg(args, path=src, timeout_s=timeout_s)
    _check_clean(src, res.stderr)

    files = {}
    for k, index in enumerate(needed):  # image2 numbers outputs densely in decode order = sorted source order
        path = os.path.join(tmp, f"f_{k:07d}.jpg")
        size = None
        if os.path.exists(path):
            with open(path, "rb") as f:  # the SOF sits in the first few hundred bytes of an ffmpeg JPEG
                head = f.read(1 << 12)
                size = jpeg_size(head) or jpeg_size(head + f.read(1 << 16))
        if size != (out_w, out_h):
            raise ExtractionError(src, FRAME_COUNT_MISMATCH, f"frame {index}: output {path} is {size}")
        files[index] = path
    if os.path.exists(os.path.join(tmp, f"f_{len(needed):07d}.jpg")):
        raise ExtractionError(src, FRAME_COUNT_MISMATCH, f"more than the {len(needed)} frames selected")
    return files


def _yield_frames(requests, files: dict, fmt: ClipFormat, tmp: str) -> Iterator[Clip]:
    try:
        for r in requests:
            idx = plan.sample_frame_indices(r.start_frame, r.end_frame, fmt.n_frames, r.last)
            jpegs = []
            for i in idx:
                with open(files[i], "rb") as f:
                    jpegs.append(f.read())
            yield Clip(r.clip_id, "frames", frames=tuple(jpegs), source_frames=tuple(idx))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
