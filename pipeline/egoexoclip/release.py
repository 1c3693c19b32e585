"""Reading an Ego-Exo4D release: takes, splits and atomic descriptions -> validated, typed records.

Takes, views and splits here; atomic descriptions in descriptions.py, the checks both use in checks.py.
Pure functions (no Beam) so every quirk of the real files is tested directly. Each record is validated on its
own against the JSON Schemas in `schemas/`, so one bad record fails alone with a reason and the rest of the
release goes on; a bad camera of a take costs that view, a bad description that description. Paths come from
files the user downloaded and are never allowed outside the release root: the joined text is checked, and for
a local root the resolved path too (symlinks followed), unless the caller trusts symlinks. Identifiers that end
up in file or member names (take names, camera and stream ids, split names) must match SAFE_ID.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from typing import Any

# The `as` imports stay importable from here, where the Beam transforms, the CLI and the tests find them: JSON
# input (the core's), record checks (checks.py) and descriptions (descriptions.py).
from pipeline.core.readers import NonFinite as NonFinite
from pipeline.core.readers import parse_json as parse_json
from pipeline.core.text import clean_field
from pipeline.core.values import MAX_SECONDS
from pipeline.egoexoclip.checks import RecordError, finite_number, parse_bool, validate
from pipeline.egoexoclip.checks import load_error as load_error
from pipeline.egoexoclip.descriptions import Narration as Narration
from pipeline.egoexoclip.descriptions import NarrationFilters as NarrationFilters
from pipeline.egoexoclip.descriptions import parse_take_descriptions as parse_take_descriptions

PSEUDO_CAMERAS = frozenset({"collage", "best_exo"})
ARIA_RGB_STREAMS = frozenset({"rgb", "214-1"})
RESOLUTIONS = ("448", "full")

# Identifiers used in paths, sample keys and member names. Lengths keep "<take>-n00000-<cam>.ego.NN.jpg" and
# "<take>-n00000.exo.<cam>.NN.jpg" within the 100-byte tar name field that wids reads.
SAFE_ID = re.compile(r"^[A-Za-z0-9_\-]+$")
MAX_TAKE_NAME = 64
MAX_CAM_ID = 16
MAX_STREAM_ID = 32
MAX_SPLIT = 32

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def check_id(value: Any, what: str, max_len: int) -> str:
    """An identifier that is used in a path or name: letters, digits, '_' and '-' only, bounded length."""
    if not isinstance(value, str) or not SAFE_ID.match(value) or len(value) > max_len:
        raise RecordError(
            f"unsafe {what}", f"{value!r}: allowed are letters, digits, '_' and '-', at most {max_len}"
        )
    return value


# ------------------------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class View:
    cam_id: str
    role: str  # "ego" | "exo"
    path: str  # absolute path or URL of the video file for the chosen resolution


@dataclass(frozen=True)
class RejectedView:
    """A camera that would have been a view but whose own record is unusable (reported as a view failure)."""

    cam_id: str
    role: str  # "ego" | "exo": what it would have been
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Take:
    take_uid: str
    take_name: str
    split: str
    scenario: str
    university: str
    duration_sec: float
    best_exo: str
    views: tuple[View, ...]  # the ego view first, then exo views sorted by cam_id
    skipped_cameras: tuple[tuple[str, str], ...] = ()  # (cam_id, why) of cameras that are not views
    rejected_views: tuple[RejectedView, ...] = ()

    @property
    def ego(self) -> View:
        return self.views[0]


def join_under_root(root: str, *parts: str) -> str:
    """Join relative parts under `root` (a local path or URL); refuse any result outside `root`."""
    rel = posixpath.join(*parts)
    if rel.startswith("/") or "\\" in rel or "\x00" in rel or _URL.match(rel):
        raise RecordError("path escapes root", rel)
    normal = posixpath.normpath(rel)
    if normal == ".." or normal.startswith("../"):
        raise RecordError("path escapes root", rel)
    return root.rstrip("/") + "/" + normal


def local_root(root: str) -> str | None:
    """The resolved (symlink-free, absolute) form of a local root; None for gs://, s3://, ... roots."""
    if _URL.match(root) and not root.startswith("file://"):
        return None
    return os.path.realpath(root.removeprefix("file://") or ".")


def check_resolved(path: str, real_root: str, trust_symlinks: bool = False) -> None:
    """A local path must resolve (symlinks followed) to a place under the resolved root."""
    real = os.path.realpath(path.removeprefix("file://"))
    inside = real_root.rstrip(os.sep) + os.sep
    if real != real_root and not real.startswith(inside) and not trust_symlinks:
        raise RecordError(
            "path escapes root",
            f"{path} resolves to {real}, outside the root {real_root} (--trust-symlinks allows it)",
        )


def video_path(
    root: str,
    record: dict,
    relative_path: str,
    resolution: str,
    real_root: str | None = None,
    trust_symlinks: bool = False,
) -> str:
    """Where a stream's file lives: 448 copies are under frame_aligned_videos/downscaled/448/."""
    if resolution == "448":
        relative_path = posixpath.join(
            posixpath.dirname(relative_path), "downscaled", "448", posixpath.basename(relative_path)
        )
    path = join_under_root(root, record["root_dir"], relative_path)
    if real_root is not None:
        check_resolved(path, real_root, trust_symlinks)
    return path


def _camera_table(record: dict) -> dict[str, Any]:
    cameras = (record.get("capture") or {}).get("cameras") or []
    table: dict[str, Any] = {}
    for c in cameras:
        if isinstance(c, dict) and isinstance(c.get("cam_id"), str):
            table.setdefault(c["cam_id"], c)
    return table


def _pick_stream(streams: dict, is_aria: bool) -> tuple[str, dict] | tuple[None, None]:
    """The Aria RGB stream of an Aria; the "0" (or only) stream of a GoPro."""
    usable = {k: s for k, s in streams.items() if isinstance(s, dict)}
    if is_aria:
        for k, s in sorted(usable.items()):
            if k in ARIA_RGB_STREAMS or s.get("readable_stream_id") == "rgb":
                return k, s
        return None, None
    if "0" in usable:
        return "0", usable["0"]
    if len(streams) == 1 and usable:
        return next(iter(usable.items()))
    return None, None


def select_views(
    root: str, record: dict, resolution: str, trust_symlinks: bool = False
) -> tuple[list[View], list[tuple[str, str]], list[RejectedView]]:
    """Ego = the Aria RGB stream (or the capture's is_ego camera when no Aria); exo = non-egocentric GoPros.

    Returns (views, skipped, rejected): skipped lists (cam_id, why) of cameras that are deliberately not views;
    rejected the cameras that would have been views but whose own entry is unusable (unsafe id, schema
    violation, path outside the root). A rejected ego camera keeps its place: no other camera becomes the ego.
    """
    cameras = _camera_table(record)
    real_root = local_root(root)
    ego: list[View] = []
    exo: list[View] = []
    skipped: list[tuple[str, str]] = []
    rejected: list[RejectedView] = []
    ego_taken = False
    for cam_id in sorted(record["frame_aligned_videos"]):
        streams = record["frame_aligned_videos"][cam_id]
        if cam_id in PSEUDO_CAMERAS:
            continue
        cam = cameras.get(cam_id, {})
        is_aria = cam.get("device_type") == "aria" or cam_id.startswith("aria")
        problem: RecordError | None = None
        is_ego = is_aria
        path = ""
        try:
            check_id(cam_id, "camera id", MAX_CAM_ID)
            validate(streams, "take.schema.json#/$defs/streams")
            validate(cam, "take.schema.json#/$defs/camera")
            is_ego = parse_bool(cam.get("is_ego"), f"capture.cameras[{cam_id}].is_ego", default=is_aria)
        except RecordError as err:
            problem = err
        if problem is None:
            key, stream = _pick_stream(streams, is_aria)
            if not stream or not stream.get("relative_path"):
                skipped.append((cam_id, "no video stream"))
                continue
            try:
                validate(stream, "take.schema.json#/$defs/stream")
                check_id(key, "stream id", MAX_STREAM_ID)
                path = video_path(
                    root, record, stream["relative_path"], resolution, real_root, trust_symlinks
                )
            except RecordError as err:
                problem = err
        if is_aria or (is_ego and not ego_taken):
            if ego_taken:  # a second Aria: keep the first (sorted) one as the ego view
                skipped.append((cam_id, "second egocentric camera"))
                continue
            role, ego_taken = "ego", True
        elif is_ego:
            skipped.append((cam_id, "egocentric GoPro"))
            continue
        else:
            role = "exo"
        if problem is not None:
            rejected.append(RejectedView(cam_id, role, problem.reason, problem.detail))
        else:
            (ego if role == "ego" else exo).append(View(cam_id, role, path))
    return ego + exo, skipped, rejected


def parse_take(
    record: Any, root: str, splits: dict[str, str], resolution: str = "448", trust_symlinks: bool = False
) -> Take:
    """One takes.json record -> Take (views not yet checked on disk). RecordError on a bad record; a bad
    camera only costs its view (Take.rejected_views)."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution={resolution!r}: expected one of {RESOLUTIONS}")
    validate(record, "take.schema.json")
    duration = record.get("duration_sec")
    duration = 0.0 if duration is None else finite_number(duration, "duration_sec")
    if not 0 <= duration <= MAX_SECONDS:
        raise RecordError("schema violation", f"duration_sec={duration!r} is not in [0, {MAX_SECONDS:g}] s")
    views, skipped, rejected = select_views(root, record, resolution, trust_symlinks)
    return Take(
        take_uid=record["take_uid"],
        take_name=record["take_name"],
        split=splits.get(record["take_uid"], "unknown"),
        scenario=clean_field(record.get("parent_task_name")),
        university=clean_field(record.get("university_name")),
        duration_sec=duration,
        best_exo=clean_field(record.get("best_exo")),
        views=tuple(views),
        skipped_cameras=tuple(skipped),
        rejected_views=tuple(rejected),
    )


def take_exclusion(record: dict, take: Take, selected_splits: tuple[str, ...]) -> str | None:
    """Why a valid take is not built (None when it is): split filter, dropped, or no usable ego/exo view."""
    if take.split not in selected_splits:
        return f"split {take.split} not selected"
    if parse_bool(record.get("is_dropped"), "is_dropped"):
        return "take dropped"
    if not take.views or take.views[0].role != "ego":
        return "no usable ego video" if any(r.role == "ego" for r in take.rejected_views) else "no ego view"
    if len(take.views) < 2:
        return "no usable exo video" if take.rejected_views else "no exo view"
    return None


def parse_splits(doc: Any) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """splits.json -> ({take_uid: split}, [(take_uid, why) of entries that are not usable])."""
    validate(doc, "splits.schema.json")
    splits, bad = {}, []
    for uid, split in sorted(doc["take_uid_to_split"].items()):
        if isinstance(split, str) and SAFE_ID.match(split) and len(split) <= MAX_SPLIT:
            splits[uid] = split
        else:
            bad.append((uid, f"take_uid_to_split[{uid!r}]={split!r} is not a split name"))
    return splits, bad
