"""The EgoClip build plan: where each Ego4D video is, which frames each row's clip gets, which shard it goes into.

Pure and cheap (paths, frame counts, arithmetic): shard membership is decided before any decoding, so a re-run
recognises complete shards by their fingerprint and skips them (resume).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from pipeline.core.clips import VideoInfo
from pipeline.core.planning import add_json, fingerprint_start
from pipeline.egoclip.rows import ClipFailure, ClipRow

# Bumped whenever the bytes a given plan produces change, so old shards are not taken as complete.
FORMAT_VERSION = 1
# Where a full-scale video may be, relative to the Ego4D root, in the order tried: the ego4d CLI's
# `--datasets full_scale` download (<root>/v2/full_scale/<uid>.mp4), that folder given as the root's child, and
# a flat folder of <uid>.mp4 files.
LAYOUTS = ("v2/full_scale/{uid}.mp4", "full_scale/{uid}.mp4", "{uid}.mp4")
MISSING_VIDEO = "missing video"
OUTSIDE = "clip outside the video"
DUPLICATE = "duplicate row"


def join_root(root: str, rel: str) -> str:
    """root + "/" + rel, as a string so that remote roots ("gs://b/x") keep their double slash."""
    return f"{root.rstrip('/')}/{rel}" if root not in ("", ".") else rel


def locate_video(root: str, uid: str, exists: Callable[[str], bool]) -> tuple[str, str] | None:
    """(path relative to root, full location) of the first layout holding the video, or None."""
    for layout in LAYOUTS:
        rel = layout.format(uid=uid)
        if exists(join_root(root, rel)):
            return rel, join_root(root, rel)
    return None


def split_of(uid: str, val_fraction: float, seed: int) -> str:
    """Splits are drawn per video (by hash), so no clip of a validation video is trained on."""
    digest = hashlib.sha256(f"split:{seed}:{uid}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < val_fraction else "train"


def clip_window(start_sec: float, end_sec: float, fps: float, n_frames: int) -> tuple[int, int]:
    """[start, end) source frames of a clip in seconds: start clamped at 0 (EgoVLP reads max(clip_start, 0)),
    end at the video's last frame, at least one frame. ValueError when the clip does not meet the video."""
    start = max(0, round(start_sec * fps))
    end = min(n_frames, round(end_sec * fps))
    if start >= n_frames or end_sec <= 0:
        raise ValueError(f"clip {start_sec:g}-{end_sec:g} s, the video has {n_frames} frames at {fps:g} fps")
    return start, max(end, start + 1)


@dataclass(frozen=True)
class PlannedClip:
    row: ClipRow
    start_frame: int
    end_frame: int  # exclusive


@dataclass(frozen=True)
class VideoPlan:
    """Every clip cut from one video: the unit of decoding (one pass over the video) and of shard packing."""

    video_uid: str
    path: str  # relative to the Ego4D root
    location: str  # the file the worker reads (absolute path or URL)
    split: str
    info: VideoInfo
    clips: tuple[PlannedClip, ...]

    @property
    def order_key(self) -> str:
        """Videos are packed in hash order: each shard holds a spread of videos, not a run of one recorder's."""
        return hashlib.sha256(self.video_uid.encode()).hexdigest()

    def pack_unit(self) -> tuple[str, list[str], list[tuple[int, int]]]:
        """(key, sample keys, frame ranges) for the core's shard packing (pipeline.core.planning.pack_groups)."""
        return self.video_uid, [c.row.key for c in self.clips], [(c.start_frame, c.end_frame) for c in self.clips]


def plan_video(
    uid: str, path: str, location: str, split: str, info: VideoInfo, rows: Sequence[ClipRow]
) -> tuple[VideoPlan | None, list[ClipFailure]]:
    """Frame ranges of every row of one video. A repeated key keeps its first row (the others are reported
    "duplicate row"); a clip that misses the video fails alone."""
    planned, failures, seen = [], [], {}
    for row in sorted(rows, key=lambda r: (r.key, r.row)):
        if row.key in seen:
            why = f"same video, pass and narration_ind as row {seen[row.key]}"
            failures.append(ClipFailure(DUPLICATE, "row", row.row, row.key, uid, path, detail=why))
            continue
        seen[row.key] = row.row
        try:
            start, end = clip_window(row.clip_start, row.clip_end, info.fps, info.n_frames)
        except ValueError as err:
            failures.append(ClipFailure(OUTSIDE, "row", row.row, row.key, uid, path, detail=str(err)))
            continue
        planned.append(PlannedClip(row, start, end))
    if not planned:
        return None, failures
    return VideoPlan(uid, path, location, split, info, tuple(planned)), failures


def by_split(video: VideoPlan):
    yield video.split, video


def fingerprint(content_options: dict, videos: Sequence[VideoPlan]) -> str:
    """Hash of everything that determines a shard's bytes (not the rows' line numbers), so resume can trust a
    finished shard."""
    h = fingerprint_start(content_options, FORMAT_VERSION)
    for v in videos:
        add_json(h, [v.video_uid, v.path, v.split, asdict(v.info)])
        for c in v.clips:
            add_json(h, [{k: val for k, val in asdict(c.row).items() if k != "row"}, c.start_frame, c.end_frame])
    return h.hexdigest()
