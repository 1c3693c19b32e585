"""Reading an Ego-Exo4D release: takes, splits and atomic descriptions -> validated, typed records.

Pure functions (no Beam) so every quirk of the real files is tested directly. Each record is validated on its
own against the JSON Schemas in `schemas/`, so one bad record fails alone with a reason and the rest of the
release goes on. Paths come from files the user downloaded and are never allowed outside the release root.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
PSEUDO_CAMERAS = frozenset({"collage", "best_exo"})
ARIA_RGB_STREAMS = frozenset({"rgb", "214-1"})
RESOLUTIONS = ("448", "full")

# Leading subject letters of Ego-Exo4D narrations ("C picks up ...", "O hands C ...").
_SUBJECT_WORDS = {"C": "Camera-wearer", "O": "A person"}
_LEADING_SUBJECT = re.compile(r"^(?:#)?([CO])(?=[\s,.:;]|$)")
_WHITESPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")


class RecordError(ValueError):
    """A record of the release cannot be used; `reason` is short and groupable, `detail` says more."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class View:
    cam_id: str
    role: str  # "ego" | "exo"
    path: str  # absolute path or URL of the video file for the chosen resolution


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

    @property
    def ego(self) -> View:
        return self.views[0]


@dataclass(frozen=True)
class Narration:
    take_uid: str
    split: str
    annotation_uid: str
    annotator_id: str
    pass_index: int
    desc_index: int
    timestamp: float
    raw_text: str
    text: str
    subject: str
    ego_visible: bool
    unsure: bool
    best_exo: str  # "" when absent

    @property
    def source_id(self) -> str:
        """Identifies the input record in error reports: annotation pass and description position."""
        return f"{self.annotation_uid}:{self.desc_index}"


@dataclass(frozen=True)
class NarrationFilters:
    skip_unsure: bool = False
    require_ego_visible: bool = False


@cache
def _validator(ref: str) -> jsonschema.protocols.Validator:
    resources = [
        (p.name, Resource.from_contents(json.loads(p.read_text()))) for p in sorted(SCHEMA_DIR.glob("*.json"))
    ]
    registry = Registry().with_resources(resources)
    return jsonschema.Draft202012Validator({"$ref": ref}, registry=registry)


def validate(instance: Any, schema_ref: str) -> None:
    """Raise RecordError("schema violation") naming the schema and the first failing field."""
    error = jsonschema.exceptions.best_match(_validator(schema_ref).iter_errors(instance))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "<record>"
        raise RecordError("schema violation", f"{schema_ref} at {where}: {error.message}")


def parse_bool(value: Any, field_name: str, default: bool = False) -> bool:
    """Booleans occur as JSON booleans and as "1"/"0"/"true"/"false" strings in real files."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("1", "true"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false"):
        return False
    raise RecordError("schema violation", f"{field_name}={value!r} is not a boolean")


def join_under_root(root: str, *parts: str) -> str:
    """Join relative parts under `root` (a local path or URL); refuse any result outside `root`."""
    rel = posixpath.join(*parts)
    if rel.startswith("/") or "\\" in rel or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", rel):
        raise RecordError("path escapes root", rel)
    normal = posixpath.normpath(rel)
    if normal == ".." or normal.startswith("../"):
        raise RecordError("path escapes root", rel)
    return root.rstrip("/") + "/" + normal


def normalize_text(text: str) -> str:
    """Ego-Exo4D narration -> training caption: subject letters spelled out, whitespace collapsed."""
    text = _WHITESPACE.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    match = _LEADING_SUBJECT.match(text)
    if match:
        text = _SUBJECT_WORDS[match.group(1)] + text[match.end() :]
    # "C" and "O" as whole words later in the sentence ("O hands C the bowl") are the same subjects
    text = re.sub(r"(?<![\w'])C(?![\w'])", "the camera-wearer", text)
    text = re.sub(r"(?<![\w'])O(?![\w'])", "a person", text)
    return text


def _camera_table(record: dict) -> dict[str, dict]:
    cameras = (record.get("capture") or {}).get("cameras") or []
    return {c["cam_id"]: c for c in cameras if isinstance(c, dict) and "cam_id" in c}


def video_path(root: str, record: dict, relative_path: str, resolution: str) -> str:
    """Where a stream's file lives: 448 copies are under frame_aligned_videos/downscaled/448/."""
    if resolution == "448":
        relative_path = posixpath.join(
            posixpath.dirname(relative_path), "downscaled", "448", posixpath.basename(relative_path)
        )
    return join_under_root(root, record["root_dir"], relative_path)


def select_views(root: str, record: dict, resolution: str) -> tuple[list[View], list[tuple[str, str]]]:
    """Ego = the Aria RGB stream (or the capture's is_ego camera when no Aria); exo = non-egocentric GoPros.

    Returns (views, skipped) where skipped lists (cam_id, why) of cameras that are deliberately not views.
    """
    cameras = _camera_table(record)
    ego: list[View] = []
    exo: list[View] = []
    skipped: list[tuple[str, str]] = []
    for cam_id in sorted(record["frame_aligned_videos"]):
        streams = record["frame_aligned_videos"][cam_id]
        if cam_id in PSEUDO_CAMERAS:
            continue
        cam = cameras.get(cam_id, {})
        is_aria = cam.get("device_type") == "aria" or cam_id.startswith("aria")
        if is_aria:
            stream = next(
                (
                    s
                    for k, s in sorted(streams.items())
                    if k in ARIA_RGB_STREAMS or s.get("readable_stream_id") == "rgb"
                ),
                None,
            )
        else:
            stream = streams.get("0") or (next(iter(streams.values())) if len(streams) == 1 else None)
        if not stream or not stream.get("relative_path"):
            skipped.append((cam_id, "no video stream"))
            continue
        path = video_path(root, record, stream["relative_path"], resolution)
        is_ego = parse_bool(cam.get("is_ego"), f"capture.cameras[{cam_id}].is_ego", default=is_aria)
        if is_aria or (is_ego and not ego):
            if ego:  # a second Aria: keep the first (sorted) one as the ego view
                skipped.append((cam_id, "second egocentric camera"))
                continue
            ego.append(View(cam_id, "ego", path))
        elif is_ego:
            skipped.append((cam_id, "egocentric GoPro"))
        else:
            exo.append(View(cam_id, "exo", path))
    return ego + exo, skipped


def parse_take(record: Any, root: str, splits: dict[str, str], resolution: str = "448") -> Take:
    """One takes.json record -> Take (views not yet checked on disk). RecordError on a bad record."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution={resolution!r}: expected one of {RESOLUTIONS}")
    validate(record, "take.schema.json")
    views, skipped = select_views(root, record, resolution)
    return Take(
        take_uid=record["take_uid"],
        take_name=record["take_name"],
        split=splits.get(record["take_uid"], "unknown"),
        scenario=record.get("parent_task_name") or "",
        university=record.get("university_name") or "",
        duration_sec=float(record.get("duration_sec") or 0.0),
        best_exo=record.get("best_exo") or "",
        views=tuple(views),
        skipped_cameras=tuple(skipped),
    )


def take_exclusion(record: dict, take: Take, selected_splits: tuple[str, ...]) -> str | None:
    """Why a valid take is not built (None when it is): split filter, dropped, or no ego/exo view listed."""
    if take.split not in selected_splits:
        return f"split {take.split} not selected"
    if parse_bool(record.get("is_dropped"), "is_dropped"):
        return "take dropped"
    if not take.views or take.views[0].role != "ego":
        return "no ego view"
    if len(take.views) < 2:
        return "no exo view"
    return None


def parse_splits(doc: Any) -> dict[str, str]:
    validate(doc, "splits.schema.json")
    return dict(doc["take_uid_to_split"])


@dataclass
class ParsedDescriptions:
    narrations: list[Narration] = field(default_factory=list)
    # (take_uid, source_id, reason, detail) for records that are not narrations: rejected, bad, empty, filtered
    dropped: list[tuple[str, str, str, str]] = field(default_factory=list)


def parse_take_descriptions(
    take_uid: str, passes: Any, split: str, filters: NarrationFilters = NarrationFilters()
) -> ParsedDescriptions:
    """All annotator passes of one take -> narrations; every description not kept is listed with its reason."""
    out = ParsedDescriptions()
    if not isinstance(passes, list):
        out.dropped.append((take_uid, "*", "schema violation", "annotations entry is not a list of passes"))
        return out
    for pass_index, ann in enumerate(passes):
        ann_uid = str(ann.get("annotation_uid") or "") if isinstance(ann, dict) else ""
        ann_uid = ann_uid or f"pass{pass_index}"
        try:
            validate(ann, "atomic_descriptions.schema.json#/$defs/pass")
            rejected = parse_bool(ann.get("rejected"), "rejected")
        except RecordError as err:
            out.dropped.append((take_uid, f"{ann_uid}:*", err.reason, err.detail))
            continue
        for desc_index, desc in enumerate(ann["descriptions"]):
            source_id = f"{ann_uid}:{desc_index}"
            if rejected:
                out.dropped.append(
                    (take_uid, source_id, "rejected annotation pass", str(ann.get("reject_reason") or ""))
                )
                continue
            try:
                narration = _parse_description(take_uid, split, ann, ann_uid, pass_index, desc_index, desc)
            except RecordError as err:
                out.dropped.append((take_uid, source_id, err.reason, err.detail))
                continue
            if filters.skip_unsure and narration.unsure:
                out.dropped.append((take_uid, source_id, "filtered: unsure", ""))
            elif filters.require_ego_visible and not narration.ego_visible:
                out.dropped.append((take_uid, source_id, "filtered: ego not visible", ""))
            else:
                out.narrations.append(narration)
    return out


def _parse_description(
    take_uid: str, split: str, ann: dict, ann_uid: str, pass_index: int, desc_index: int, desc: Any
) -> Narration:
    if isinstance(desc, dict) and isinstance(desc.get("timestamp"), str):
        raise RecordError("bad timestamp", f"timestamp={desc['timestamp']!r} is not a number")
    validate(desc, "description.schema.json")
    timestamp = float(desc["timestamp"])
    if timestamp != timestamp or timestamp < 0:  # NaN or negative
        raise RecordError("bad timestamp", f"timestamp={timestamp!r}")
    text = normalize_text(desc["text"])
    if not text:
        raise RecordError("empty text", repr(desc["text"]))
    best_exo = desc.get("best_exo") or {}
    return Narration(
        take_uid=take_uid,
        split=split,
        annotation_uid=ann_uid,
        annotator_id=str(ann.get("annotator_id") or ""),
        pass_index=pass_index,
        desc_index=desc_index,
        timestamp=timestamp,
        raw_text=desc["text"],
        text=text,
        subject=str(desc.get("subject") or desc.get("narration_subject") or ""),
        ego_visible=parse_bool(desc.get("ego_visible"), "ego_visible", default=True),
        unsure=parse_bool(desc.get("unsure"), "unsure"),
        best_exo=str(best_exo.get("cam_id") or "") if isinstance(best_exo, dict) else "",
    )
