"""Clips from image sequences (OpenEQA's episode folders of RGB frames): the same outputs as from a video.

A request's [start_frame, end_frame) indexes the image list. mp4 mode encodes those images, in order, with the
x264 settings of video clips at a given frame rate; frames mode samples `n_frames` of them uniformly (the rule
of video clips) and writes scaled JPEGs. The images are handed to ffmpeg's image2 demuxer through a folder of
numbered symlinks, so one process reads exactly the chosen files in order, whatever their names.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Sequence
from fractions import Fraction

from PIL import Image, UnidentifiedImageError

from pipeline.core import fs
from pipeline.core.localize import is_local

from . import plan
from ._mp4 import jpeg_size, video_sample_count
from ._proc import FRAME_COUNT_MISMATCH, MISSING_FILE, UNREADABLE_VIDEO, ExtractionError, run_ffmpeg
from .extract import _BITEXACT, Clip, ClipFormat, ClipRequest, _check_clean


def image_size(path: str) -> tuple[int, int]:
    """(width, height) from the image header (Pillow reads no pixels for this); a remote image (gs://, s3://,
    ...) is read through Beam's filesystems."""
    try:
        with Image.open(path if is_local(path) else io.BytesIO(fs.read_bytes(path))) as im:
            return im.size
    except FileNotFoundError:
        raise ExtractionError(path, MISSING_FILE) from None
    except (UnidentifiedImageError, OSError) as err:
        raise ExtractionError(path, UNREADABLE_VIDEO, str(err)) from None


def _link_sequence(images: Sequence[str], folder: str) -> str:
    """Numbered symlinks 000000.<ext>.. to `images`; returns the image2 pattern. One extension per sequence:
    image2 picks one decoder for the whole pattern."""
    exts = {os.path.splitext(p)[1].lower() for p in images}
    if len(exts) != 1:
        raise ExtractionError(folder, UNREADABLE_VIDEO, f"mixed image types {sorted(exts)}")
    ext = exts.pop()
    for i, src in enumerate(images):
        link = os.path.join(folder, f"{i:06d}{ext}")
        if not fs.exists(src):
            raise ExtractionError(src, MISSING_FILE)
        if is_local(src):
            os.symlink(os.path.abspath(src.removeprefix("file://")), link)
        else:  # a remote image: copied to this worker's disk, where ffmpeg reads it
            with open(link, "wb") as f:
                f.write(fs.read_bytes(src))
    return os.path.join(folder, f"%06d{ext}")


def extract_image_clip(
    images: Sequence[str],
    request: ClipRequest,
    fmt: ClipFormat,
    *,
    workdir: str,
    keep_dir: str,
    fps: float = 1.0,
    timeout_s: float = 600,
) -> Clip:
    """One clip from images[start_frame:end_frame]; its files are moved into keep_dir (Clip.paths)."""
    if not 0 <= request.start_frame < request.end_frame <= len(images):
        raise ValueError(
            f"clip {request.clip_id!r}: images [{request.start_frame}, {request.end_frame}) "
            f"not within the {len(images)} images"
        )
    if fmt.kind == "mp4":
        chosen = list(range(request.start_frame, request.end_frame))
    else:
        chosen = plan.sample_frame_indices(request.start_frame, request.end_frame, fmt.n_frames, request.last)
    unique = sorted(set(chosen))
    os.makedirs(keep_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="images-", dir=workdir)
    try:
        pattern = _link_sequence([images[i] for i in unique], tmp)
        width, height = image_size(images[unique[0]])
        rate = Fraction(fps).limit_denominator(1000)
        args = ["-loglevel", "level+error", "-nostats", "-framerate", f"{rate.numerator}/{rate.denominator}",
                "-start_number", "0", "-i", pattern]  # fmt: skip
        if fmt.kind == "mp4":
            w, h = plan.even_size(width, height)
            out = os.path.join(tmp, "clip.mp4")
            args += ["-vf", f"scale={w}:{h}:flags=bicubic,setsar=1", "-an",
                     "-c:v", "libx264", "-preset", fmt.preset, "-crf", str(fmt.crf), "-threads", str(fmt.threads),
                     "-pix_fmt", "yuv420p", *_BITEXACT, "-movflags", "+faststart", out]  # fmt: skip
            _check_clean(pattern, run_ffmpeg(args, path=pattern, timeout_s=timeout_s).stderr)
            with open(out, "rb") as f:
                count = video_sample_count(f.read())
            if count != len(unique):
                raise ExtractionError(pattern, FRAME_COUNT_MISMATCH, f"{count} frames, expected {len(unique)}")
            dst = os.path.join(keep_dir, f"{os.path.basename(tmp)}-clip.mp4")
            shutil.move(out, dst)
            return Clip(request.clip_id, "mp4", paths=(dst,), source_frames=tuple(chosen))
        out_w, out_h = plan.scaled_size(width, height, fmt.size)
        args += ["-vf", f"scale={out_w}:{out_h}:flags=bicubic,setsar=1", "-an", "-c:v", "mjpeg",
                 "-q:v", str(fmt.jpeg_quality), "-pix_fmt", "yuvj420p", *_BITEXACT,
                 "-f", "image2", "-start_number", "0", os.path.join(tmp, "f_%06d.jpg")]  # fmt: skip
        _check_clean(pattern, run_ffmpeg(args, path=pattern, timeout_s=timeout_s).stderr)
        by_index = {}
        for k, index in enumerate(unique):
            path = os.path.join(tmp, f"f_{k:06d}.jpg")
            size = None
            if os.path.exists(path):
                with open(path, "rb") as f:
                    size = jpeg_size(f.read(1 << 16))
            if size != (out_w, out_h):
                raise ExtractionError(pattern, FRAME_COUNT_MISMATCH, f"image {index}: output is {size}")
            by_index[index] = os.path.join(keep_dir, f"{os.path.basename(tmp)}-{k:06d}.jpg")
            shutil.move(path, by_index[index])
        return Clip(request.clip_id, "frames", paths=tuple(by_index[i] for i in chosen), source_frames=tuple(chosen))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
