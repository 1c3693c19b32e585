"""The EgoIT sample format: the json member (schemas/egoit.schema.json), packing, the manifest schema.

A sample is ``<id>.mp4`` (or ``<id>.00.jpg`` .. ``<id>.NN.jpg`` in frames mode) + ``<id>.json``. The json
has the same keys and value types in every sample (HF ``datasets`` infers one schema from the first
samples), so the per-source metadata is one union of typed fields, absent ones "" / -1 / -1.0 / [].
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from pipeline.core import shards
from pipeline.core.schemas import schema_problem
from pipeline.core.shards import canonical_json, check_key, frame_members, pack_sample, typed_meta
from pipeline.egoit.records import EgoITItem

# metadata of every item: the union of what the converter keeps of each source (see SourceRecord.fields)
META_FIELDS: dict[str, tuple[type, object]] = {
    "record_id": (str, ""),
    "source_file": (str, ""),
    "source_split": (str, ""),
    "template_index": (int, -1),
    "template_version": (str, ""),
    # egtea
    "verb": (str, ""),
    "nouns": (list, []),
    "action": (str, ""),
    "action_id": (int, -1),
    "verb_id": (int, -1),
    "noun_ids": (list, []),
    "session": (str, ""),
    "start_ms": (int, -1),
    "end_ms": (int, -1),
    # ssv2
    "template": (str, ""),
    "placeholders": (list, []),
    "label": (str, ""),
    "class_index": (int, -1),
    # egotimeqa, openeqa
    "question": (str, ""),
    "answer": (str, ""),
    "wrong_answers": (list, []),
    "category": (str, ""),
    "extra_answers": (list, []),
    "moment_start_sec": (float, -1.0),  # egotimeqa: the annotated moment, also when the clip is the whole clip
    "moment_end_sec": (float, -1.0),
    # egoexolearn
    "narration": (str, ""),
    "scenario": (str, ""),
    "view": (str, ""),  # ego | exo (the caption file's view)
    # multiple choice
    "options": (list, []),
    "option_order": (list, []),
    "answer_index": (int, -1),
    "answer_letter": (str, ""),
}


def item_json(item: EgoITItem, start_frame: int, end_frame: int, fps: float, n_images: int) -> dict:
    """The json member: the record as schemas/egoit.schema.json describes it."""
    v = item.video
    return {
        "id": check_key(item.id),
        "source": item.source,
        "task": item.task,
        "split": item.split,
        "video_id": item.video_id,
        "video": {
            "path": v.path,
            "start_sec": -1.0 if v.start_sec is None else float(v.start_sec),
            "end_sec": -1.0 if v.end_sec is None else float(v.end_sec),
            "start_frame": start_frame,
            "end_frame": end_frame,
            "fps": float(fps),
            "n_images": n_images,
        },
        "conversations": [{"from": t.speaker, "value": t.text} for t in item.conversations],
        "metadata": typed_meta(META_FIELDS, **item.metadata),
    }


def validate_item_json(doc: dict) -> None:
    """Raise ValueError naming the item and the first failing field."""
    problem = schema_problem(doc, "egoit.schema.json")
    if problem is not None:
        raise ValueError(f"item {doc.get('id', '?')}: {problem}")


def pack_item(doc: dict, clip: bytes | Sequence[bytes], n_frames: int) -> dict[str, bytes]:
    """mp4 mode: ``mp4`` + ``json``; frames mode: ``00.jpg``.. + ``json``."""
    members = {"mp4": clip} if isinstance(clip, bytes) else frame_members("", clip, n_frames)
    return pack_sample(doc["id"], members, {k: v for k, v in doc.items()})


# clip_file: the per-sample clip for egoit.json ("" when not exported); conversations: JSON of the turns
MANIFEST_SCHEMA = shards.manifest_schema(
    "source", "task", "video_id", "video", "start_frame", "end_frame", "fps", "clip_seconds", "clip_bytes",
    "clip_file", "conversations",
    start_frame="i64", end_frame="i64", fps="f64", clip_seconds="f64", clip_bytes="i64",
)  # fmt: skip


def manifest_row(doc: dict, clip_bytes: int, clip_file: str) -> dict:
    v = doc["video"]
    return {
        "key": doc["id"],
        "shard": "",
        "split": doc["split"],
        "source": doc["source"],
        "task": doc["task"],
        "video_id": doc["video_id"],
        "video": v["path"],
        "start_frame": v["start_frame"],
        "end_frame": v["end_frame"],
        "fps": v["fps"],
        "clip_seconds": (v["end_frame"] - v["start_frame"]) / v["fps"],
        "clip_bytes": clip_bytes,
        "clip_file": clip_file,
        "conversations": canonical_json(doc["conversations"]).decode(),
    }


def manifest_table(rows: list[dict]) -> pa.Table:
    return shards.table_from_rows(rows, MANIFEST_SCHEMA)
