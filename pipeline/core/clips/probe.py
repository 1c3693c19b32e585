"""Exact frame count, frame rate and size of a video's first video stream, via ffmpeg stream copy.

Container headers lie (nb_frames is missing in some muxers and wrong after edits), and frame indices are the
unit of every clip request, so we count packets by remuxing the stream to the null muxer: no decoding, so it
runs at disk speed, and a truncated or damaged file shows up as demuxer errors here, before any cutting.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction

from ._proc import (
    CORRUPT_VIDEO,
    FFMPEG_FAILED,
    MISSING_FILE,
    NO_VIDEO_STREAM,
    UNREADABLE_VIDEO,
    ExtractionError,
    error_lines,
    run_ffmpeg,
    tail,
)


@dataclass(frozen=True)
class VideoInfo:
    n_frames: int
    fps: float
    fps_fraction: str  # "30/1", "30000/1001": exact, for ffmpeg expressions and container timescales
    width: int  # displayed size: after the stream's rotation (display matrix), as ffmpeg decodes it
    height: int
    codec: str
    rotation: int = 0  # degrees counterclockwise from the display matrix, 0/90/180/270 (ffmpeg autorotates)


# "  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 796x448 [SAR 1:1
#  DAR 199:112], 2398 kb/s, 30 fps, 30 tbr, 15360 tbn (default)"
_VIDEO_LINE = re.compile(r"Stream #0:\d+\S*: Video: (?P<codec>\w+)(?P<rest>.*)$", re.MULTILINE)
_SIZE = re.compile(r", (\d{1,5})x(\d{1,5})\b")
_FPS = re.compile(r", ([\d.]+)(k?) fps")
_TBR = re.compile(r", ([\d.]+)(k?) tbr")
# "      Display Matrix: rotation of -90.00 degrees" (side data of the stream; a flip may follow)
_ROTATION = re.compile(r"Display Matrix: rotation of (-?[\d.]+) degrees")


def fps_fraction(value: float) -> Fraction:
    """Exact rate for ffmpeg's rounded '29.97 fps': NTSC rates are N*1000/1001, everything else is N/D small."""
    for base in (24, 25, 30, 48, 50, 60, 100, 120, 240):
        ntsc = Fraction(base * 1000, 1001)
        if abs(value - float(ntsc)) < 0.006:
            return ntsc
    return Fraction(value).limit_denominator(1000)


def parse_stream_line(stderr: str) -> tuple[str, int, int, Fraction] | None:
    """(codec, width, height, fps) of the first video stream of input #0 in ffmpeg's stderr, or None."""
    input_part = stderr.split("Stream mapping:", 1)[0].split("Output #0", 1)[0]
    m = _VIDEO_LINE.search(input_part)
    if not m:
        return None
    rest = m.group("rest")
    size = _SIZE.search(rest)
    rate = _FPS.search(rest) or _TBR.search(rest)
    if not size or not rate:
        return None
    value = float(rate.group(1)) * (1000 if rate.group(2) else 1)
    return m.group("codec"), int(size.group(1)), int(size.group(2)), fps_fraction(value)


def parse_rotation(stderr: str) -> int:
    """Rotation (0, 90, 180 or 270) of input #0's first video stream, from its display matrix side data.

    Read from that stream's block only (up to the next stream line). ffmpeg autorotates decoded frames by the
    nearest multiple of 90 degrees (other angles are rotated within the same size), so a rotation of 90 or 270
    swaps the displayed width and height."""
    input_part = stderr.split("Stream mapping:", 1)[0].split("Output #0", 1)[0]
    m = _VIDEO_LINE.search(input_part)
    if not m:
        return 0
    block = input_part[m.end() :]
    nxt = re.search(r"Stream #\d+:\d+", block)
    rot = _ROTATION.search(block[: nxt.start()] if nxt else block)
    if not rot:
        return 0
    return round(float(rot.group(1)) / 90) % 4 * 90


def parse_progress_frames(stdout: str) -> int | None:
    """Final `frame=N` of ffmpeg's `-progress` key=value stream."""
    frames = re.findall(r"^frame=(\d+)\s*$", stdout, re.MULTILINE)
    return int(frames[-1]) if frames else None


def probe_video(path: str, *, timeout_s: float = 120) -> VideoInfo:
    """Count the frames of `path`'s first video stream exactly and read its rate and size.

    Raises ExtractionError: "missing file", "unreadable video" (not a video container), "no video stream",
    "corrupt video" (demuxer errors while reading packets, e.g. a truncated file), "decode timeout".
    """
    if not os.path.exists(path):
        raise ExtractionError(path, MISSING_FILE)
    # `level+info` tags each line with its level so demuxer errors can be told from chatter; `-progress`
    # gives a machine-readable final frame count on stdout.
    args = [
        "-loglevel",
        "level+info",
        "-nostats",
        "-i",
        path,
        "-map",
        "0:v:0",
        "-c",
        "copy",
        "-f",
        "null",
        "-",
    ]
    try:
        res = run_ffmpeg(["-progress", "pipe:1", *args], path=path, timeout_s=timeout_s)
    except ExtractionError as err:  # a container without a video stream (e.g. audio only): nothing to map
        if err.reason == FFMPEG_FAILED and "matches no streams" in err.detail:
            raise ExtractionError(path, NO_VIDEO_STREAM, err.detail) from None
        raise
    stream = parse_stream_line(res.stderr)
    if stream is None:
        reason = NO_VIDEO_STREAM if "Stream #0" in res.stderr else UNREADABLE_VIDEO
        raise ExtractionError(path, reason, tail(res.stderr))
    errors = error_lines(res.stderr)
    if errors:
        raise ExtractionError(path, CORRUPT_VIDEO, tail("\n".join(errors)))
    n_frames = parse_progress_frames(res.stdout.decode("utf-8", "replace"))
    if not n_frames:
        raise ExtractionError(path, UNREADABLE_VIDEO, "no video packets\n" + tail(res.stderr))
    codec, width, height, rate = stream
    rotation = parse_rotation(res.stderr)
    if rotation in (90, 270):  # decoded frames come out autorotated: report the size they have
        width, height = height, width
    return VideoInfo(
        n_frames, float(rate), f"{rate.numerator}/{rate.denominator}", width, height, codec, rotation
    )
