"""Decode every frame of a video file, or of in-memory mp4/JPEG bytes, to a numpy array via an ffmpeg pipe.

Used by tests (to check which source frames a clip holds) and by training loaders. Decoding happens in an
ffmpeg child process for the same isolation reasons as extraction (see _proc.py).
"""

from __future__ import annotations

import re

import numpy as np

from ._proc import UNREADABLE_VIDEO, ExtractionError, run_ffmpeg, tail

_CHANNELS = {"rgb24": 3, "bgr24": 3, "rgba": 4, "gray": 1}
# Output stream line of the rawvideo output, e.g. "Stream #0:0: Video: rawvideo (...), rgb24(...), 336x188, ..."
_OUT_SIZE = re.compile(r"Video: rawvideo.*?, (\d{1,5})x(\d{1,5})\b")


def read_frames(src: str | bytes, *, pix_fmt: str = "rgb24", timeout_s: float = 300) -> np.ndarray:
    """All frames as a (T, H, W, C) uint8 array (C = 3 for rgb24/bgr24, 4 for rgba, 1 for gray).

    `src` is a path, or the bytes of an mp4 (moov first, as extract_clips writes them: a pipe cannot seek
    back to a trailing moov) or of a JPEG. Raises ExtractionError on unreadable input or timeout.
    """
    if pix_fmt not in _CHANNELS:
        raise ValueError(f"pix_fmt={pix_fmt!r}: must be one of {sorted(_CHANNELS)}")
    from_pipe = isinstance(src, bytes | bytearray | memoryview)
    path = "pipe:0" if from_pipe else str(src)
    # level+info: we need the output stream line for the frame size (one process, no separate probe).
    args = ["-loglevel", "info", "-nostats", "-i", path, "-map", "0:v:0", "-an", "-sn", "-dn",
            "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1"]  # fmt: skip
    res = run_ffmpeg(args, path=path, timeout_s=timeout_s, stdin_data=bytes(src) if from_pipe else None)
    out_part = res.stderr.split("Output #0", 1)[-1]
    m = _OUT_SIZE.search(out_part)
    if not m:
        raise ExtractionError(path, UNREADABLE_VIDEO, "no video output\n" + tail(res.stderr))
    w, h, c = int(m.group(1)), int(m.group(2)), _CHANNELS[pix_fmt]
    frame_bytes = w * h * c
    if len(res.stdout) % frame_bytes:
        raise ExtractionError(
            path, UNREADABLE_VIDEO, f"{len(res.stdout)} bytes is not a whole number of {w}x{h} frames"
        )
    return np.frombuffer(res.stdout, np.uint8).reshape(-1, h, w, c)
