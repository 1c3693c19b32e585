"""The EgoClip sample format: the json member, packing, the manifest schema.

A sample is ``<key>.ego.mp4`` (or ``<key>.ego.00.jpg`` .. ``<key>.ego.NN.jpg`` in frames mode), ``<key>.txt``
(the caption) and ``<key>.json``: the ego member names of Ego-ExoClip's shards, without an exo view. The json has
the same keys and value types in every sample (HF ``datasets`` infers one schema from the first samples).
Keys, packing rules and tar writing are the core's (pipeline/core/shards.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from pipeline.core import shards
from pipeline.core.shards import check_key, frame_members, pack_sample, typed_meta
from pipeline.egoclip.plan import PlannedClip, VideoPlan

MP4_MEMBERS = ("ego.mp4", "txt", "json")

# Every json field but the tag lists: field -> (type, value used when absent)
META_FIELDS: dict[str, tuple[type, object]] = {
    "key": (str, ""),
    "split": (str, ""),
    "video_uid": (str, ""),
    "video": (str, ""),  # the full-scale video, relative to the Ego4D root
    "video_dur": (float, -1.0),  # the csv's video_dur (s)
    "narration_source": (str, ""),
    "narration_ind": (int, -1),
    "narration_time": (float, -1.0),  # s in the full video, as in the csv
    "clip_start": (float, -1.0),  # s in the full video, as in the csv (may be < 0: the cut starts at frame 0)
    "clip_end": (float, -1.0),
    "text": (str, ""),  # the caption (also the txt member)
    "raw_text": (str, ""),  # clip_text as written
    "start_frame": (int, -1),  # the frames cut: [start_frame, end_frame) of the video
    "end_frame": (int, -1),
    "fps": (float, -1.0),
}
TAG_FIELDS = ("tag_verb", "tag_noun")  # lists of ints (Ego4D taxonomy indices)


def clip_json(video: VideoPlan, clip: PlannedClip) -> dict:
    r = clip.row
    meta = typed_meta(
        META_FIELDS,
        key=check_key(r.key),
        split=video.split,
        video_uid=r.video_uid,
        video=video.path,
        video_dur=r.video_dur,
        narration_source=r.narration_source,
        narration_ind=r.narration_ind,
        narration_time=r.narration_time,
        clip_start=r.clip_start,
        clip_end=r.clip_end,
        text=r.text,
        raw_text=r.raw_text,
        start_frame=clip.start_frame,
        end_frame=clip.end_frame,
        fps=video.info.fps,
    )
    return {**meta, "tag_verb": [int(t) for t in r.tag_verb], "tag_noun": [int(t) for t in r.tag_noun]}


def pack_clip(doc: dict, clip: bytes | Sequence[bytes], n_frames: int) -> dict[str, bytes]:
    """mp4 mode: ``ego.mp4`` + ``txt`` + ``json``; frames mode: ``ego.00.jpg``.. + ``txt`` + ``json``."""
    members = {"ego.mp4": clip} if isinstance(clip, bytes) else frame_members("ego", clip, n_frames)
    return pack_sample(doc["key"], members, doc, doc["text"])


MANIFEST_SCHEMA = shards.manifest_schema(
    "video_uid", "video", "narration_source", "narration_ind", "narration_time", "clip_start", "clip_end", "text",
    "raw_text", "start_frame", "end_frame", "fps", "clip_seconds", "clip_bytes",
    narration_ind="i64", narration_time="f64", clip_start="f64", clip_end="f64", start_frame="i64", end_frame="i64",
    fps="f64", clip_seconds="f64", clip_bytes="i64",
)  # fmt: skip


def manifest_row(doc: dict, clip_bytes: int) -> dict:
    row = {name: doc[name] for name in MANIFEST_SCHEMA.names if name in doc}
    return {**row, "shard": "", "clip_seconds": (doc["end_frame"] - doc["start_frame"]) / doc["fps"],
            "clip_bytes": clip_bytes}  # fmt: skip


def manifest_table(rows: list[dict]) -> pa.Table:
    return shards.table_from_rows(rows, MANIFEST_SCHEMA)
