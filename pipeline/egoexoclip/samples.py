"""The Ego-ExoClip sample format: keys, the json member, packing of pairs and moments, the manifest schema.

Layouts (member names are identical in every sample of a build, which HF's builder requires):

* pairs:          ``ego.mp4 exo.mp4 json txt``
* moments:        ``ego.mp4 exo.<cam_id>.mp4 ... json txt``
* frames (pairs): ``ego.00.jpg .. ego.NN.jpg exo.00.jpg .. exo.NN.jpg json txt``
* frames (moments): ``ego.00.jpg .. exo.<cam_id>.00.jpg .. json txt``

Keys, packing rules and tar writing are the core's (pipeline/core/shards.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pyarrow as pa

from pipeline.core import shards
from pipeline.core.shards import KEY_RE, check_key, frame_members, pack_sample, typed_meta

PAIR_MEMBERS = ("ego.mp4", "exo.mp4", "txt", "json")


def sample_key(take_name: str, narration_index: int, cam_id: str | None = None) -> str:
    """``<take_name>-n<idx:05d>`` (pairs add ``-<cam_id>``); 5 digits keep lexical order == numeric order."""
    if (
        isinstance(narration_index, bool)
        or not isinstance(narration_index, int)
        or not 0 <= narration_index < 100_000
    ):
        raise ValueError(f"narration_index {narration_index!r} outside 0..99999")
    if not isinstance(take_name, str) or not KEY_RE.match(take_name):
        raise ValueError(f"invalid take name {take_name!r}")
    key = f"{take_name}-n{narration_index:05d}"
    if cam_id is not None:
        key = f"{key}-{_check_cam(cam_id)}"
    return check_key(key)


# The json member of every sample: field -> (type, value used when absent). exo_cams must be non-empty
# (an all-empty list in HF's inference window infers list<null>).
META_FIELDS: dict[str, tuple[type, object]] = {
    "key": (str, ""),  # the narration's key (pair keys add "-<exo_cam>")
    "split": (str, ""),
    "take_uid": (str, ""),
    "take_name": (str, ""),
    "scenario": (str, ""),
    "narration_index": (int, -1),
    "annotation_uid": (str, ""),
    "annotator_id": (str, ""),
    "subject": (str, ""),
    "ego_visible": (bool, True),
    "unsure": (bool, False),
    "best_exo": (str, ""),
    "text": (str, ""),
    "raw_text": (str, ""),
    "timestamp": (float, -1.0),
    "window_start": (float, -1.0),
    "window_end": (float, -1.0),
    "ego_cam": (str, ""),
    "exo_cam": (str, ""),  # "" for moments
    "exo_cams": (list, []),
    "ego_start_frame": (int, -1),
    "ego_end_frame": (int, -1),
    "exo_start_frame": (int, -1),  # -1 for moments: see exo_frames
    "exo_end_frame": (int, -1),
    "exo_frames": (list, []),  # "<cam_id>:<start>:<end>" of every exo view of the narration
    "fps": (float, -1.0),
    "n_ego_frames": (int, -1),
}


def pair_meta(**fields) -> dict:
    """The json member with every META_FIELDS key (see core.shards.typed_meta)."""
    return typed_meta(META_FIELDS, **fields)


def pack_pair(
    key: str, ego: bytes, exo: bytes, text: str, meta: dict, ego_ext: str = "mp4"
) -> dict[str, bytes]:
    return pack_sample(key, {f"ego.{ego_ext}": ego, "exo.mp4": exo}, meta, text)


def _check_cam(cam_id: str) -> str:
    if not isinstance(cam_id, str) or not re.match(r"^[A-Za-z0-9_\-]+$", cam_id):
        raise ValueError(f"invalid camera id {cam_id!r}")
    return cam_id


def pack_moment(key: str, ego: bytes, exos: Mapping[str, bytes], text: str, meta: dict) -> dict[str, bytes]:
    if not exos:
        raise ValueError(f"{key}: a moment needs at least one exo view")
    members = {"ego.mp4": ego, **{f"exo.{_check_cam(cam)}.mp4": data for cam, data in sorted(exos.items())}}
    return pack_sample(key, members, meta, text)


def pack_pair_frames(
    key: str, ego_jpegs: Sequence[bytes], exo_jpegs: Sequence[bytes], text: str, meta: dict
) -> dict[str, bytes]:
    """Frames mode: ``ego.00.jpg``.. and ``exo.00.jpg``.. (same N for both views)."""
    n = len(ego_jpegs)
    if n == 0:
        raise ValueError(f"{key}: no frames")
    members = {**frame_members("ego", ego_jpegs, n), **frame_members("exo", exo_jpegs, n)}
    return pack_sample(key, members, meta, text)


def pack_moment_frames(
    key: str, ego_jpegs: Sequence[bytes], exos: Mapping[str, Sequence[bytes]], text: str, meta: dict
) -> dict[str, bytes]:
    """Frames mode for moments: ``ego.NN.jpg`` and ``exo.<cam_id>.NN.jpg``."""
    n = len(ego_jpegs)
    if n == 0 or not exos:
        raise ValueError(f"{key}: a moment needs frames and at least one exo view")
    members = frame_members("ego", ego_jpegs, n)
    for cam, jpegs in sorted(exos.items()):
        members.update(frame_members(f"exo.{_check_cam(cam)}", jpegs, n))
    return pack_sample(key, members, meta, text)


# --------------------------------------------------------------------------------------------- manifest


# exo_cam is null for moments (all exo views in one sample)
MANIFEST_SCHEMA = shards.manifest_schema(
    "take_uid", "take_name", "scenario", "narration_index", "annotation_uid", "annotator_id", "subject",
    "ego_visible", "unsure", "best_exo", "text", "raw_text", "timestamp", "window_start", "window_end", "ego_cam",
    "exo_cam", "ego_start_frame", "ego_end_frame", "exo_start_frame", "exo_end_frame", "exo_frames", "fps",
    "n_ego_frames", "exo_cams", "ego_bytes", "exo_bytes",
    nullable=frozenset({"exo_cam"}), narration_index="i32", ego_visible="bool", unsure="bool", timestamp="f64",
    window_start="f64", window_end="f64", ego_start_frame="i64", ego_end_frame="i64", exo_start_frame="i64",
    exo_end_frame="i64", exo_frames="strs", fps="f64", n_ego_frames="i32", exo_cams="strs", ego_bytes="i64", exo_bytes="i64",
)  # fmt: skip


def manifest_table(rows: list[dict]) -> pa.Table:
    """Rows -> table with exactly MANIFEST_SCHEMA; missing/extra columns or nulls in non-nullable ones raise."""
    return shards.table_from_rows(rows, MANIFEST_SCHEMA)
