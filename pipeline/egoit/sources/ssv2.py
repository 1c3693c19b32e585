"""Something-Something-V2 -> action-recognition records (one whole short clip each, no timestamps).

The test split ships without labels (test.json has only ids), so it is not read by default; when it is asked
for, each of its rows is accounted for as a "no label" failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from pipeline.core import fs
from pipeline.core.keys import KeyClaims
from pipeline.core.readers import (
    Exists,
    SourceFileError,
    failure,
    file_or_folder,
    json_rows,
    locate,
    per_file,
    read_json,
    row_results,
)
from pipeline.core.records import VideoRef
from pipeline.core.values import MAX_INT, BadRow, ident, safe_name, text_field, text_list
from pipeline.egoit.records import ReadResult, SourceRecord, item_key

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
    return OLD_PREFIX if fs.is_file(os.path.join(folder, f"{OLD_PREFIX}labels.json")) else ""


def _split_of(path: str) -> str:
    stem = os.path.basename(path).removesuffix(".json").removeprefix(OLD_PREFIX)
    return stem if stem in SPLITS else ""


def _read_labels(path: str) -> dict[str, int]:
    labels = read_json(path, dict)
    try:
        table = {template: int(index) for template, index in labels.items()}
    except (TypeError, ValueError) as e:
        raise SourceFileError("schema violation", f"class index is not an integer: {e}") from e
    if not all(0 <= i <= MAX_INT for i in table.values()):
        raise SourceFileError("schema violation", "class index out of range")
    return table


def _id_of(item) -> object:
    return item.get("id") if isinstance(item, dict) else None


class _Split:
    def __init__(self, path: str, labels: dict[str, int], root: str, exists: Exists, claims: KeyClaims):
        self.path, self.labels, self.root, self.exists, self.claims = path, labels, root, exists, claims

    def record(self, number: int, item) -> SourceRecord:
        raw_id = _id_of(item)
        if not isinstance(item, dict) or isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
            raise BadRow("schema violation", "not an object with a string id")
        record_id = ident(raw_id)  # ids are strings in the release; an int id is the same video
        if not {"label", "template", "placeholders"} & item.keys():
            raise BadRow("no label", "only an id (unlabelled split)")
        template, label = text_field(item, "template"), text_field(item, "label")
        if "placeholders" not in item:  # text_list treats an absent list as []; here it is required
            raise KeyError("placeholders")
        placeholders = text_list(item, "placeholders")
        video_name = safe_name(record_id) + ".webm"
        slots = SLOT.findall(template)
        if len(slots) != len(placeholders):
            raise BadRow("placeholder mismatch", f"{len(slots)} slots, {placeholders}")
        class_name = template.replace("[", "").replace("]", "")
        if class_name not in self.labels:
            raise BadRow("unknown label", class_name)
        keys = [item_key(SOURCE, record_id)]
        self.claims.check(record_id, keys)
        video = locate(
            self.root, [VideoRef(f"{VIDEO_FOLDER}/{video_name}"), VideoRef(video_name)], self.exists
        )
        self.claims.add(record_id, keys)
        return SourceRecord(
            source=SOURCE,
            record_id=record_id,
            source_file=os.path.basename(self.path),
            source_split=_split_of(self.path),
            video_id=record_id,
            video=video,
            task="action_recognition",
            fields={
                "template": template,
                "placeholders": placeholders,
                "label": label,
                "class_index": self.labels[class_name],
            },
        )

    def rows(self) -> ReadResult:
        yield from row_results(SOURCE, self.path, json_rows(self.path), self.record, _id_of)


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = fs.exists,
    splits: Sequence[str] = ("train", "validation"),
) -> ReadResult:
    """Records of each split file in `splits` order (or of the one split file given)."""
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown SSv2 splits {unknown}; choose from {SPLITS}")
    given, folder, root = file_or_folder(annotations, "labels")
    paths = [given] if given else [os.path.join(folder, f"{_prefix(folder)}{split}.json") for split in splits]
    root = os.fspath(videos) if videos is not None else root
    labels_path = os.path.join(folder, f"{_prefix(folder)}labels.json")
    try:
        labels = _read_labels(labels_path)
    except SourceFileError as e:
        yield failure(SOURCE, labels_path, "", e.reason, e.detail)
        yield from (
            failure(SOURCE, p, "", "index unavailable", "labels.json could not be read") for p in paths
        )
        return
    claims = KeyClaims()
    for path in paths:
        yield from per_file(SOURCE, path, _Split(path, labels, root, exists, claims).rows)
