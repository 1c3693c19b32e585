"""Reusable clip extraction: source video + frame windows -> mp4 clips or sampled JPEG frames, one decode.

    info = probe_video(path)
    for clip in extract_clips(path, [ClipRequest("c0", 0, 30)], ClipFormat(), workdir=tmp, info=info): ...

Failures of the (native, untrusted-input) decoder surface as ExtractionError with a stable `.reason`.
"""

from ._proc import ExtractionError, ffmpeg_exe
from .decode import read_frames
from .extract import Clip, ClipFormat, ClipRequest, check_decode_settings, extract_clips
from .plan import sample_frame_indices
from .probe import VideoInfo, probe_video

__all__ = [
    "Clip",
    "ClipFormat",
    "ClipRequest",
    "ExtractionError",
    "VideoInfo",
    "check_decode_settings",
    "extract_clips",
    "ffmpeg_exe",
    "probe_video",
    "read_frames",
    "sample_frame_indices",
]
