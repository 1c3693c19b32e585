"""Reading an Ego-Exo4D release: takes, splits and atomic descriptions -> validated, typed records.

Pure functions (no Beam) so every quirk of the real files is tested directly. Each record is validated on its
own against the JSON Schemas in `schemas/`, so one bad record fails alone with a reason and the rest of the
release goes on; a bad camera of a take costs that view, a bad description that description. Paths come from
files the user downloaded and are never allowed outside the release root: the joined text is checked, and for
a local root the resolved path too (symlinks followed), unless the caller trusts symlinks. Identifiers that end
up in file or member names (take names, camera and stream ids, split names) must match SAFE_ID.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
import unicodedata
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

# Identifiers used in paths, sample keys and member names. Lengths keep "<take>-n00000-<cam>.ego.NN.jpg" and
# "<take>-n00000.exo.<cam>.NN.jpg" within the 100-byte tar name field that wids reads.
SAFE_ID = re.compile(r"^[A-Za-z0-9_\-]+$")
MAX_TAKE_NAME = 64
MAX_CAM_ID = 16
MAX_STREAM_ID = 32
MAX_SPLIT = 32
MAX_TEXT_CHARS = 2000

# Leading subject letters of Ego-Exo4D narrations ("C picks up ...", "O hands C ...").
_SUBJECT_WORDS = {"C": "Camera-wearer", "O": "A person"}
_LEADING_SUBJECT = re.compile(r"^(?:#)?([CO])(?=[\s,.:;]|$)")
_WHITESPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class RecordError(ValueError):
    """A record of the release cannot be used; `reason` is short and groupable, `detail` says more."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# ------------------------------------------------------------------------------------------------ JSON input


class NonFinite:
    """What `Infinity`, `NaN` and out-of-range literals such as `1e999` parse to: never a float, so that no
    schema's "number" accepts it and no arithmetic sees it."""

    def __init__(self, literal: str):
        self.literal = literal

    def __repr__(self) -> str:
        return self.literal

    def __eq__(self, other) -> bool:
        return isinstance(other, NonFinite) and other.literal == self.literal

    def __hash__(self) -> int:
        return hash(self.literal)


def _parse_float(text: str):
    value = float(text)
    return value if math.isfinite(value) else NonFinite(text)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _drop_surrogates(value):
    if isinstance(value, str):
        return _SURROGATE.sub("", value)
    if isinstance(value, list):
        return [_drop_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_drop_surrogates(k): _drop_surrogates(v) for k, v in value.items()}
    return value


def parse_json(data: bytes | str):
    """UTF-8 JSON -> Python objects, with non-finite numbers as NonFinite and lone surrogates ("\\ud800", which
    no UTF-8 encoder, Beam's coders included, accepts) removed from every string. Raises ValueError subclasses
    (json.JSONDecodeError with line and column, UnicodeDecodeError) or RecursionError."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    doc = json.loads(text, parse_constant=NonFinite, parse_float=_parse_float)
    # only a file that escapes a surrogate can hold a lone one (a valid pair parses to one character)
    return _drop_surrogates(doc) if _SURROGATE_ESCAPE.search(text) else doc


def load_error(err: BaseException) -> tuple[str, str]:
    """(reason, detail) for an input file that could not be read or parsed."""
    if isinstance(err, FileNotFoundError):
        return "missing file", str(err)
    if isinstance(err, PermissionError):
        return "permission denied", str(err)
    if isinstance(err, IsADirectoryError):
        return "not a regular file", str(err)
    if isinstance(err, json.JSONDecodeError):
        return "invalid json", f"line {err.lineno} column {err.colno}: {err.msg}"
    if isinstance(err, UnicodeDecodeError):
        return "invalid json", f"not UTF-8 text (byte {err.start})"
    if isinstance(err, RecursionError):
        return "invalid json", "nested too deeply"
    if isinstance(err, ValueError):
        return "invalid json", str(err)
    return "unreadable file", str(err)


# ------------------------------------------------------------------------------------------------ text


def clean_text(value: str) -> str:
    """Printable Unicode (str.isprintable() holds): every kind of whitespace becomes one space each, other
    control, format, surrogate, private-use and unassigned characters are removed; NFC."""
    if value.isascii() and value.isprintable():
        return value
    chars = []
    for ch in value:
        if ch.isspace():
            chars.append(" ")
        elif unicodedata.category(ch)[0] not in "CZ":
            chars.append(ch)
        elif unicodedata.category(ch) == "Zs":
            chars.append(" ")
    return unicodedata.normalize("NFC", "".join(chars))


def clean_field(value: Any) -> str:
    """A metadata string for the shards: None -> "", numbers as text, cleaned and stripped."""
    if value is None:
        return ""
    return clean_text(str(value)).strip()


def normalize_text(text: str) -> str:
    """Ego-Exo4D narration -> training caption: clean printable text, subject letters spelled out, whitespace
    collapsed."""
    text = _WHITESPACE.sub(" ", clean_text(text)).strip()
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    match = _LEADING_SUBJECT.match(text)
    if match:
        text = _SUBJECT_WORDS[match.group(1)] + text[match.end() :]
    # "C" and "O" as whole words later in the sentence ("O hands C the bowl") are the same subjects
    text = re.sub(r"(?<![\w'])C(?![\w'])", "the camera-wearer", text)
    text = re.sub(r"(?<![\w'])O(?![\w'])", "a person", text)
    return text


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
        raise RecordError("schema violation", f"{schema_ref} at {where}: {error.message[:300]}")


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


def finite_number(value: Any, field_name: str, reason: str = "schema violation") -> float:
    """A JSON number as a finite float (Infinity, NaN, 1e999 and integers beyond float range are errors)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(reason, f"{field_name}={value!r} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise RecordError(reason, f"{field_name} is not a finite number") from None
    if not math.isfinite(number):
        raise RecordError(reason, f"{field_name}={number!r} is not a finite number")
    return number


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


# ------------------------------------------------------------------------------------------------ descriptions


@dataclass
class ParsedDescriptions:
    narrations: list[Narration] = field(default_factory=list)
    # (take_uid, source_id, reason, detail): one per description that is not a narration (rejected pass, bad
    # record, empty text, filtered, duplicate pass); with `narrations`, exactly the descriptions read
    dropped: list[tuple[str, str, str, str]] = field(default_factory=list)
    # (take_uid, source_id, reason, detail) of passes (or a take's entry) with no readable descriptions list
    bad_passes: list[tuple[str, str, str, str]] = field(default_factory=list)

    @property
    def n_descriptions(self) -> int:
        return len(self.narrations) + len(self.dropped)


def parse_take_descriptions(
    take_uid: str, passes: Any, split: str, filters: NarrationFilters = NarrationFilters()
) -> ParsedDescriptions:
    """All annotator passes of one take -> narrations; every description not kept is listed with its reason.

    A pass whose own fields are bad (or that repeats an earlier pass's annotation_uid) costs its descriptions,
    each reported; a description costs only itself."""
    out = ParsedDescriptions()
    if not isinstance(passes, list):
        out.bad_passes.append(
            (take_uid, "*", "schema violation", "annotations entry is not a list of passes")
        )
        return out
    seen: dict[str, int] = {}
    for pass_index, ann in enumerate(passes):
        raw_uid = ann.get("annotation_uid") if isinstance(ann, dict) else None
        ann_uid = clean_field(raw_uid) if isinstance(raw_uid, str) else ""
        ann_uid = ann_uid or f"pass{pass_index}"
        descriptions = ann.get("descriptions") if isinstance(ann, dict) else None
        if not isinstance(descriptions, list):
            what = "pass is not an object" if not isinstance(ann, dict) else "no descriptions list"
            out.bad_passes.append(
                (take_uid, f"{ann_uid}:*", "schema violation", f"pass {pass_index}: {what}")
            )
            continue
        pass_error: RecordError | None = None
        rejected = False
        try:
            validate(ann, "atomic_descriptions.schema.json#/$defs/pass")
            rejected = parse_bool(ann.get("rejected"), "rejected")
        except RecordError as err:
            pass_error = err
        if pass_error is None and ann_uid in seen:
            pass_error = RecordError(
                "duplicate annotation pass",
                f"annotation_uid {ann_uid} of pass {pass_index} is pass {seen[ann_uid]}'s",
            )
        seen.setdefault(ann_uid, pass_index)
        for desc_index, desc in enumerate(descriptions):
            source_id = f"{ann_uid}:{desc_index}"
            if pass_error is not None:
                out.dropped.append((take_uid, source_id, pass_error.reason, pass_error.detail))
                continue
            if rejected:
                out.dropped.append(
                    (
                        take_uid,
                        source_id,
                        "rejected annotation pass",
                        clean_field(ann.get("reject_reason"))[:300],
                    )
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
    if isinstance(desc, dict) and "timestamp" in desc:
        value = desc["timestamp"]
        if isinstance(value, str):
            raise RecordError("bad timestamp", f"timestamp={value[:50]!r} is not a number")
        if isinstance(value, NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
            raise RecordError("bad timestamp", f"timestamp={value!r} is not a finite number")
    validate(desc, "description.schema.json")
    timestamp = finite_number(desc["timestamp"], "timestamp", "bad timestamp")
    if timestamp < 0:
        raise RecordError("bad timestamp", f"timestamp={timestamp!r} is negative")
    raw_text = clean_text(desc["text"])
    text = normalize_text(raw_text)
    if not text:
        raise RecordError("empty text", repr(desc["text"][:50]))
    if len(text) > MAX_TEXT_CHARS:
        raise RecordError("text too long", f"{len(text)} characters (at most {MAX_TEXT_CHARS})")
    best_exo = desc.get("best_exo") or {}
    return Narration(
        take_uid=take_uid,
        split=split,
        annotation_uid=ann_uid,
        annotator_id=clean_field(ann.get("annotator_id")),
        pass_index=pass_index,
        desc_index=desc_index,
        timestamp=timestamp,
        raw_text=raw_text,
        text=text,
        subject=clean_field(desc.get("subject") or desc.get("narration_subject")),
        ego_visible=parse_bool(desc.get("ego_visible"), "ego_visible", default=True),
        unsure=parse_bool(desc.get("unsure"), "unsure"),
        best_exo=clean_field(best_exo.get("cam_id")) if isinstance(best_exo, dict) else "",
    )
