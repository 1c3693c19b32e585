"""Deterministic stamped test media: videos (H.264 mp4 or VP9 webm) and PNG frame folders whose every frame
carries a framecode stamp (pipeline/core/framecode.py: a code 0..255 + the frame index).

The bundled sample releases (Ego-ExoClip, EgoIT) write their videos with these, so a test can decode any output
frame and say which source file and which source frame it shows. Encodes are single-threaded with bit-exact
flags: the same arguments give byte-identical files.

    write_stamped_video(path, code, n_frames, width, height, fps=30)                 # H.264 yuv420p (+AAC) mp4
    write_stamped_video(path, code, n_frames, width, height, fps=12, container="webm")  # VP9 webm, no audio
    write_stamped_images(folder, code, n, width, height)                             # 0-rgb.png, 1-rgb.png, ...
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

from pipeline.core.framecode import (
    GRID_COLS,
    GRID_ROWS,
    MAX_FRAME_INDEX,
    _edges,
    block_levels,
    encode_frame,
)

CONTAINERS = ("mp4", "webm")


def _encoder_args(container: str, *, audio: bool, preset: str, crf: int | None, gop: int | None,
                  faststart: bool) -> list[str]:  # fmt: skip
    if container == "mp4":
        # 16 kHz mono with the fast AAC coder: the audio track only has to exist, and costs a third of 48 kHz
        audio_args = ["-map", "1:a", "-c:a", "aac", "-aac_coder", "fast", "-b:a", "32k"]
        args = ["-map", "0:v"] + (audio_args if audio else [])
        args += ["-c:v", "libx264", "-preset", preset, "-crf", str(23 if crf is None else crf)]
        args += ["-pix_fmt", "yuv420p", "-threads", "1"]
        args += ["-g", str(gop)] if gop else []
        args += ["-movflags", "+faststart"] if faststart else []
        return args + ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-f", "mp4"]
    # VP9 in WebM, as Something-Something-V2 ships: one thread, no row-mt or tiles, fixed deadline and speed
    # (constant-quality mode), so the bitstream depends on the frames only; bitexact muxing drops the random
    # segment UID and the encoder version string.
    args = ["-map", "0:v"] + (["-map", "1:a", "-c:a", "libopus", "-b:a", "24k"] if audio else [])
    args += ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-threads", "1", "-row-mt", "0"]
    args += ["-tile-columns", "0", "-frame-parallel", "0", "-auto-alt-ref", "0", "-lag-in-frames", "0"]
    args += ["-b:v", "0", "-crf", str(32 if crf is None else crf), "-pix_fmt", "yuv420p"]
    args += ["-g", str(gop)] if gop else []
    return args + ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-f", "webm"]


def write_stamped_video(
    path,
    code: int,
    n_frames: int,
    width: int,
    height: int,
    *,
    offset_frames: int = 0,
    fps: int = 30,
    container: str = "mp4",
    audio: bool | None = None,
    preset: str = "ultrafast",
    crf: int | None = None,
    gop: int | None = None,
    textured: bool = False,
    faststart: bool = True,
) -> None:
    """A video whose frame j is stamped with (code, j - offset_frames); frames before offset_frames carry
    MAX_FRAME_INDEX.

    container "mp4": H.264 yuv420p (crf 23 by default) + a 440 Hz AAC track (audio defaults to True).
    container "webm": VP9 yuv420p (crf 32 by default), no audio unless asked (then Opus); preset and faststart
    apply to mp4 only. Odd sizes are fine (yuv420p chroma is rounded up)."""
    if container not in CONTAINERS:
        raise ValueError(f"container={container!r}: must be one of {CONTAINERS}")
    if not 0 <= code <= 0xFF:
        raise ValueError(f"stamp code {code} outside 0..255")
    audio = container == "mp4" if audio is None else audio
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The stamp is achromatic, so plain frames go in as yuv420p: the stamp levels (16/235, limited-range luma
    # extremes) as the Y plane and constant neutral chroma. That is half the bytes of RGB and spares ffmpeg the
    # colour conversion, which together dominated the generation time. Textured frames carry colour: RGB.
    in_fmt = "rgb24" if textured else "yuv420p"
    chroma = bytes([128]) * (2 * ((width + 1) // 2) * ((height + 1) // 2))
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-y",
        "-v",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        in_fmt,
        "-s",
        f"{width}x{height}",
        "-r",
        str(fps),
        "-i",
        "-",
    ]
    if audio:  # exact duration rather than -shortest: the audio length then never depends on pipe timing
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={n_frames / fps}"]
    cmd += _encoder_args(container, audio=audio, preset=preset, crf=crf, gop=gop, faststart=faststart)
    cmd += [str(path)]

    ys, xs = _edges(height, GRID_ROWS), _edges(width, GRID_COLS)

    def frame_at(j: int) -> int:  # file frames before the first stamped instant carry MAX_FRAME_INDEX
        return j - offset_frames if j >= offset_frames else MAX_FRAME_INDEX

    plane = np.ascontiguousarray(encode_frame(code, frame_at(0), width, height)[:, :, 0])
    levels = block_levels(code, frame_at(0))
    texture = _Texture(width, height, ys, xs, code) if textured else None
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty ffmpeg cannot block our writes
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=err)
        with contextlib.suppress(OSError):  # bigger pipe: fewer wake-ups per frame (Linux only; best effort)
            fcntl.fcntl(proc.stdin.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        try:
            for j in range(n_frames):
                # Successive stamps differ in a few blocks only: repaint those instead of the whole frame.
                new = block_levels(code, frame_at(j))
                for r, c in zip(*np.nonzero(new != levels), strict=True):
                    plane[ys[r] : ys[r + 1], xs[c] : xs[c + 1]] = new[r, c]
                levels = new
                if texture:
                    proc.stdin.write(texture.frame(plane, j))
                else:
                    proc.stdin.write(plane)
                    proc.stdin.write(chroma)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        if proc.wait() != 0:
            err.seek(0)
            raise RuntimeError(f"ffmpeg failed writing {path}: {err.read().decode(errors='replace')[-2000:]}")


class _Texture:
    """Coloured, panning noise outside the block centres: gives a realistic bitrate and leaves the centre half
    of each block (what decode_frame reads), plus a safety margin, flat."""

    PAN = 256  # the texture slides 2 px per frame and wraps every PAN/2 frames

    def __init__(self, width, height, ys, xs, seed):
        rng = np.random.default_rng(seed)
        tile = rng.integers(16, 236, size=(height // 8 + 1, (width + self.PAN) // 8 + 1, 3), dtype=np.uint8)
        self.tex = np.repeat(np.repeat(tile, 8, axis=0), 8, axis=1)[:height]
        self.flat = np.zeros((height, width, 1), bool)
        for r in range(GRID_ROWS):
            for c in range(GRID_COLS):
                dy, dx = (ys[r + 1] - ys[r]) // 5, (xs[c + 1] - xs[c]) // 5
                self.flat[ys[r] + dy : ys[r + 1] - dy, xs[c] + dx : xs[c + 1] - dx] = True
        self.width = width

    def frame(self, plane: np.ndarray, j: int) -> np.ndarray:
        s = (2 * j) % self.PAN
        return np.where(self.flat, plane[:, :, None], self.tex[:, s : s + self.width])


def write_stamped_images(
    folder,
    code: int,
    n: int,
    width: int,
    height: int,
    name: Callable[[int], str] = lambda j: f"{j}-rgb.png",
) -> list[Path]:
    """n RGB PNG files in `folder`, file j (named name(j)) stamped with (code, j); returns their paths.

    PNG is lossless, so the stamps decode exactly. Written by Pillow with fixed settings and no metadata
    (no timestamps): the same arguments give byte-identical files."""
    if not 0 <= code <= 0xFF:
        raise ValueError(f"stamp code {code} outside 0..255")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for j in range(n):
        path = folder / name(j)
        Image.fromarray(encode_frame(code, j, width, height), "RGB").save(path, format="PNG", optimize=False,
                                                                         compress_level=6)  # fmt: skip
        paths.append(path)
    return paths
