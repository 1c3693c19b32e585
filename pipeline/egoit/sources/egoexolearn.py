"""EgoExoLearn fine-grained captions -> description records (a narrated [start_sec, end_sec) window).

The captions come from the association benchmark's CSVs, one per view (ego_train.csv: the learners' egocentric
videos; exo_train.csv: the demonstration videos). Fields are quoted, some contain newlines, and narration_ch is
Chinese, so the file is decoded as UTF-8 and split by the csv module, never by lines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from pipeline.egoit.records import SourceRecord, VideoRef
from pipeline.egoit.sources.common import (
    BadRow,
    Exists,
    ReadResult,
    SourceFileError,
    UnsafePath,
    csv_rows,
    failure,
    first_existing,
    read_text,
    safe_name,
    window_seconds,
)

SOURCE = "egoexolearn"
DEFAULT_FILES = ("ego_train.csv", "exo_train.csv")
COLUMNS = ("annotation_id", "start_sec", "end_sec", "narration_en", "scenario", "video_uid")

LAYOUT = """\
EgoExoLearn (`egoexolearn`)
  annotations: the folder holding the fine-grained caption CSVs (the EgoExoLearn repo's
               association_benchmark/annotations/), or one such CSV:
                 ego_train.csv, exo_train.csv (default: both; a missing one is a "missing file" failure)
               columns used: annotation_id, start_sec, end_sec (seconds in the video), narration_en,
               scenario, video_uid; the view (ego / exo) is taken from the file name
  videos root: the folder of the downloaded mp4 videos (default: the annotation folder)
    1. <video_uid>.mp4          (the benchmark loaders join <root>/<video_uid>.mp4)
    2. <view>/<video_uid>.mp4   (ego and exo videos in separate sub-folders of one root)
"""

VIEW_FILE = re.compile(r"(ego|exo)_(\w+)\.csv")


def _records(path: str, root: str, exists: Exists, seen: set) -> ReadResult:
    named = VIEW_FILE.fullmatch(os.path.basename(path))
    view, split = (named[1], named[2]) if named else ("", "")
    for number, row in csv_rows(read_text(path), COLUMNS):
        ident = row.get("annotation_id") or ""
        where = f"row {number}" + (f" {ident}" if ident else "")
        try:
            if None in row or any(row[c] is None for c in COLUMNS):
                raise BadRow("schema violation", f"{len(row)} fields, expected {len(COLUMNS)}+ columns")
            if not ident.strip():
                raise BadRow("schema violation", "empty annotation_id")
            video_name = safe_name(row["video_uid"]) + ".mp4"
            start, end = window_seconds(row["start_sec"], row["end_sec"])
            if not row["narration_en"].strip():
                raise BadRow("empty text", "empty narration_en")
            if ident in seen:
                raise BadRow("duplicate id", ident)
        except UnsafePath as e:
            yield failure(SOURCE, path, where, "unsafe path", str(e))
            continue
        except BadRow as e:
            yield failure(SOURCE, path, where, e.reason, e.detail)
            continue
        candidates = [VideoRef(video_name, start, end)]
        if view:
            candidates.append(VideoRef(f"{view}/{video_name}", start, end))
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
            video_id=row["video_uid"],
            video=video,
            task="description",
            fields={"narration": row["narration_en"], "scenario": row["scenario"], "view": view},
        )


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = os.path.exists,
    files: Sequence[str] = DEFAULT_FILES,
) -> ReadResult:
    """Records of each caption CSV in `files` order (or of the one CSV given)."""
    if os.path.isfile(annotations):
        paths = [os.fspath(annotations)]
        folder = os.path.dirname(paths[0]) or "."
    else:
        folder = os.fspath(annotations)
        paths = [os.path.join(folder, name) for name in files]
    root = os.fspath(videos) if videos is not None else folder
    seen: set[str] = set()
    for path in paths:
        try:
            yield from _records(path, root, exists, seen)
        except SourceFileError as e:
            yield failure(SOURCE, path, "", e.reason, e.detail)
