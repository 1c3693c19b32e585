"""Something-Something-V2 -> action-recognition records (one whole short clip each, no timestamps).

The test split ships without labels (test.json has only ids), so it is not read by default; when it is asked
for, each of its rows is accounted for as a "no label" failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from pipeline.egoit.records import SourceRecord, VideoRef
from pipeline.egoit.sources.common import (
    Exists,
    ReadResult,
    SourceFileError,
    UnsafePath,
    annotation_folder,
    failure,
    first_existing,
    read_json,
    safe_name,
    text_field,
    text_list,
)

SOURCE = "ssv2"
SPLITS = ("train", "validation", "test")
VIDEO_FOLDER = "20bn-something-something-v2"
OLD_PREFIX = "something-something-v2-"  # the 20BN-era file names

LAYOUT = """\
Something-Something-V2 (`ssv2`)
  annotations: the `labels/` folder of the label download, or the download root holding it, or one split file
               (labels.json is read from the same folder). Either naming is accepted:
                 labels.json, train.json, validation.json, test.json                      (Qualcomm download)
                 something-something-v2-{labels,train,validation,test}.json              (20BN-era download)
               labels.json: template without brackets -> class index as a string ("Approaching something
               with your camera": "0"); split files: [{id, label, template, placeholders}]; test: [{id}]
               splits read: train, validation (default); test has no labels: its rows are "no label" failures
  videos root: default the download root (the folder above `labels/`, else the given folder)
    1. 20bn-something-something-v2/<id>.webm   (the official video archive's folder)
    2. <id>.webm                               (videos directly in the root)
"""

SLOT = re.compile(r"\[[^\[\]]*\]")  # "[something]", "[Something]", "[somewhere]", "[number of]", ...


def _prefix(folder: str) -> str:
    """The folder's naming scheme, told by its labels file (Qualcomm's plain names when neither is there)."""
    return OLD_PREFIX if os.path.isfile(os.path.join(folder, f"{OLD_PREFIX}labels.json")) else ""


def _split_of(path: str) -> str:
    stem = os.path.basename(path).removesuffix(".json").removeprefix(OLD_PREFIX)
    return stem if stem in SPLITS else ""


def _read_labels(path: str) -> dict[str, int]:
    labels = read_json(path, dict)
    try:
        return {template: int(index) for template, index in labels.items()}
    except (TypeError, ValueError) as e:
        raise SourceFileError("schema violation", f"class index is not an integer: {e}") from e


def _records(path: str, labels: dict[str, int], root: str, exists: Exists, seen: set) -> ReadResult:
    split = _split_of(path)
    for number, item in enumerate(read_json(path, list), start=1):
        ident = item.get("id") if isinstance(item, dict) else None
        where = f"row {number}" + (f" {ident}" if ident is not None else "")
        if isinstance(item, dict) and not isinstance(ident, bool) and isinstance(ident, int):
            ident = str(ident)  # ids are strings in the release; an int id is the same video
        if not isinstance(item, dict) or not isinstance(ident, str):
            yield failure(SOURCE, path, where, "schema violation", "not an object with a string id")
            continue
        if not {"label", "template", "placeholders"} & item.keys():
            yield failure(SOURCE, path, where, "no label", "only an id (unlabelled split)")
            continue
        try:
            template, label = text_field(item, "template"), text_field(item, "label")
            if "placeholders" not in item:  # text_list treats an absent list as []; here it is required
                raise KeyError("placeholders")
            placeholders = text_list(item, "placeholders")
            video_name = safe_name(ident) + ".webm"
        except UnsafePath as e:
            yield failure(SOURCE, path, where, "unsafe path", str(e))
            continue
        except (KeyError, TypeError) as e:
            yield failure(SOURCE, path, where, "schema violation", f"{type(e).__name__}: {e}")
            continue
        slots = SLOT.findall(template)
        if len(slots) != len(placeholders):
            yield failure(SOURCE, path, where, "placeholder mismatch", f"{len(slots)} slots, {placeholders}")
            continue
        class_name = template.replace("[", "").replace("]", "")
        if class_name not in labels:
            yield failure(SOURCE, path, where, "unknown label", class_name)
            continue
        if ident in seen:
            yield failure(SOURCE, path, where, "duplicate id", ident)
            continue
        candidates = [VideoRef(f"{VIDEO_FOLDER}/{video_name}"), VideoRef(video_name)]
        video = first_existing(root, candidates, exists)
        if video is None:
            yield failure(SOURCE, path, where, "video not found", " or ".join(c.path for c in candidates))
            continue
        seen.add(ident)
        yield SourceRecord(
            source=SOURCE,
            record_id=ident,
            source_file=os.path.basename(path),
            source_split=split,
            video_id=ident,
            video=video,
            task="action_recognition",
            fields={
                "template": template,
                "placeholders": placeholders,
                "label": label,
                "class_index": labels[class_name],
            },
        )


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = os.path.exists,
    splits: Sequence[str] = ("train", "validation"),
) -> ReadResult:
    """Records of each split file in `splits` order (or of the one split file given)."""
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown SSv2 splits {unknown}; choose from {SPLITS}")
    if os.path.isfile(annotations):
        paths = [os.fspath(annotations)]
        folder, root = annotation_folder(os.path.dirname(paths[0]) or ".", "labels")
    else:
        folder, root = annotation_folder(annotations, "labels")
        paths = [os.path.join(folder, f"{_prefix(folder)}{split}.json") for split in splits]
    root = os.fspath(videos) if videos is not None else root
    labels_path = os.path.join(folder, f"{_prefix(folder)}labels.json")
    try:
        labels = _read_labels(labels_path)
    except SourceFileError as e:
        yield failure(SOURCE, labels_path, "", e.reason, e.detail)
        yield from (failure(SOURCE, p, "", "index unavailable", "labels.json could not be read") for p in paths)
        return
    seen: set[str] = set()
    for path in paths:
        try:
            yield from _records(path, labels, root, exists, seen)
        except SourceFileError as e:
            yield failure(SOURCE, path, "", e.reason, e.detail)
