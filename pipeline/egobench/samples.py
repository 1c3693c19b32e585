"""The EgoBench sample format: members, the json member, the manifest schema.

One sample per item, in the shards of its task (``egobench-<task>-NNNNNN.tar``):

    <key>.mp4                    the item's clip (every task but EgoMCQ), or in frames mode
    <key>.00.jpg .. <key>.NN.jpg
    <key>.v0.mp4 .. <key>.v4.mp4 EgoMCQ (video_choice): the 5 candidate clips in option order, or in frames
                                 mode
    <key>.v0.00.jpg ..
    <key>.json                   item_json(item) (schemas/egobench.schema.json) + "clips"

``clips`` (one entry per entry of ``videos``, same order) says which frames were cut: ``start_frame`` /
``end_frame`` ([start, end) source frames, or image indices into ``videos[k].frames`` for an image sequence),
``fps`` (the source's rate; the rate given to an image sequence) and ``n_frames`` (frames stored: end - start
for an mp4, N in frames mode, sampled uniformly over [start, end) as
pipeline.core.clips.sample_frame_indices; for EgoPlan (records.LAST_FRAME_TASKS) with `last`: the window's last
frame, the observation, is the last one). The key is the item id made tar-safe
(pipeline.egobench.plan.sample_key); ``id`` in the json is the item id.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from pipeline.core import shards
from pipeline.core.shards import canonical_json, check_key, frame_members, pack_sample
from pipeline.egobench.records import TASKS, BenchItem
from pipeline.egobench.records_json import item_json, validate_item_json

CLIP_FIELDS = ("start_frame", "end_frame", "fps", "n_frames")



def multi_clip(task: str) -> bool:
    """Whether the task's samples carry several clips (v0.., in option order): EgoMCQ's candidate videos."""
    return TASKS[task] == "video_choice"


def member_names(task: str, n_videos: int, kind: str, n_frames: int) -> list[str]:
    """The clip members of one sample (without json)."""
    width = max(2, len(str(n_frames - 1)))
    frames = [f"{i:0{width}d}.jpg" for i in range(n_frames)]
    prefixes = [f"v{k}." for k in range(n_videos)] if multi_clip(task) else [""]
    return [p + m for p in prefixes for m in (["mp4"] if kind == "mp4" else frames)]


def longest_member(kind: str, n_frames: int) -> int:
    """Length of the longest member name any sample of the build can have ("json" included)."""
    return max(len("json"), *(len(m) for m in member_names("egomcq", 5, kind, n_frames)))


def sample_json(item: BenchItem, clips: Sequence[dict]) -> dict:
    """The json member: the item's JSON form plus the frames of each clip."""
    if len(clips) != len(item.videos):
        raise ValueError(f"{item.task}/{item.item_id}: {len(clips)} clips for {len(item.videos)} videos")
    doc = item_json(item)
    doc["clips"] = [
        {
            "start_frame": int(c["start_frame"]),
            "end_frame": int(c["end_frame"]),
            "fps": float(c["fps"]),
            "n_frames": int(c["n_frames"]),
        }
        for c in clips
    ]
    return doc


def validate_sample_json(doc: dict) -> None:
    """Raise ValueError naming the item and the first failing field: against schemas/egobench.schema.json
    (whose optional `clips` the shards fill), plus one clip per video, each non-empty."""
    if "clips" not in doc:
        raise ValueError(f"item {doc.get('task', '?')}/{doc.get('id', '?')}: no clips")
    validate_item_json(doc)
    if len(doc["clips"]) != len(doc["videos"]):
        raise ValueError(
            f"item {doc['task']}/{doc['id']}: {len(doc['clips'])} clips for {len(doc['videos'])} videos"
        )
    for c in doc["clips"]:
        if c["end_frame"] <= c["start_frame"]:
            raise ValueError(f"item {doc['task']}/{doc['id']}: empty clip {c}")


def pack_item(
    key: str, doc: dict, payloads: Sequence[bytes | Sequence[bytes]], n_frames: int
) -> dict[str, bytes]:
    """The sample: one payload per clip (mp4 bytes, or its JPEGs) + json."""
    multi = multi_clip(doc["task"])
    if not multi and len(payloads) != 1:
        raise ValueError(f"{doc['task']}/{doc['id']}: {len(payloads)} clips for a single-clip task")
    members: dict[str, bytes] = {}
    for k, payload in enumerate(payloads):
        prefix = f"v{k}" if multi else ""
        if isinstance(payload, bytes):
            members[f"{prefix}.mp4" if prefix else "mp4"] = payload
        else:
            members.update(frame_members(prefix, payload, n_frames))
    return pack_sample(check_key(key), members, doc)


# benchmark: the config entry (reader) of the item; videos: JSON list of the clips' source paths; clips: JSON
# of the json member's clips; clip_seconds: the sum over the item's clips
MANIFEST_SCHEMA = shards.manifest_schema(
    "id", "benchmark", "metric", "source_file", "n_clips", "videos", "clips", "clip_seconds", "clip_bytes",
    "has_answer",
    group="task", n_clips="i64", clip_seconds="f64", clip_bytes="i64", has_answer="bool",
)  # fmt: skip


def manifest_row(key: str, benchmark: str, doc: dict, clip_bytes: int) -> dict:
    return {
        "key": key,
        "shard": "",
        "task": doc["task"],
        "id": doc["id"],
        "benchmark": benchmark,
        "metric": doc["metric"],
        "source_file": doc["source_file"],
        "n_clips": len(doc["clips"]),
        "videos": canonical_json([v["path"] for v in doc["videos"]]).decode(),
        "clips": canonical_json(doc["clips"]).decode(),
        "clip_seconds": sum((c["end_frame"] - c["start_frame"]) / c["fps"] for c in doc["clips"]),
        "clip_bytes": clip_bytes,
        "has_answer": doc["has_answer"],
    }


def manifest_table(rows: list[dict]) -> pa.Table:
    return shards.table_from_rows(rows, MANIFEST_SCHEMA)
