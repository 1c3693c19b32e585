"""Helpers shared by the EgoIT source readers: locating annotation files, reading them without raising,
keeping paths from annotation files inside the video root, finding a record's video, sampling frames.

Conventions every reader follows:
- Annotation files are local files. The video root may be remote ("gs://bucket/ego4d"): it is only joined as a
  string and probed through the caller's `exists` / `listdir`, never opened here.
- A row is numbered from 1 in the file's own unit: "line N" for text files, "row N" for CSV data rows (the header
  is not a row) and JSON list items.
- Bad input becomes a RecordFailure; a whole file that cannot be used is one failure with record "".
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.egoit.records import RecordFailure, SourceRecord, VideoRef

Exists = Callable[[str], bool] | None
ReadResult = Iterator[SourceRecord | RecordFailure]


class BadRow(Exception):
    """One row cannot be used; `reason` is the groupable RecordFailure reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SourceFileError(BadRow):
    """A whole annotation file cannot be used."""


class UnsafePath(ValueError):
    """A path taken from an annotation file would leave the video root (absolute, '..', a URL, ...)."""


def annotation_folder(annotations: str | Path, conventional: str) -> tuple[str, str]:
    """(folder holding the annotation files, the dataset's download root) for a folder argument.

    Accepts both the folder the dataset ships its annotations in (named `conventional`, e.g. EGTEA's
    "action_annotation") and the download root above it. The download root is the default video root."""
    folder = os.path.normpath(os.fspath(annotations))
    nested = os.path.join(folder, conventional)
    if os.path.isdir(nested):
        return nested, folder
    if os.path.basename(folder) == conventional:
        return folder, os.path.dirname(folder) or "."
    return folder, folder


def read_text(path: str) -> str:
    """The whole file as UTF-8 text (a BOM is dropped). Decoding all of it first means a bad byte fails the
    file before any of its rows were emitted, so a file is either read or reported, never half of each."""
    if not os.path.isfile(path):
        raise SourceFileError("missing file", path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise SourceFileError("unreadable file", f"{path}: {e}") from e


def read_json(path: str, kind: type) -> Any:
    """A JSON file whose top level must be `kind` (list or dict)."""
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise SourceFileError("unreadable file", f"{path}: invalid JSON ({e})") from e
    if not isinstance(data, kind):
        raise SourceFileError("schema violation", f"top level is {type(data).__name__}, not {kind.__name__}")
    return data


def csv_rows(text: str, required: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, row) for each data row. The csv module handles quoted fields with newlines (the text was
    read with newline=''). A short row has None values and a long one a None key: callers treat both as a
    schema violation. Missing required columns fail the whole file."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise SourceFileError("schema violation", f"missing columns {missing}")
    try:
        yield from enumerate(reader, start=1)
    except csv.Error as e:  # a malformed quote etc.: the rest of the file cannot be split into rows
        raise SourceFileError("unreadable file", f"CSV error after row {reader.line_num}: {e}") from e


def safe_relpath(rel: str) -> str:
    """`rel` as a normalised POSIX path that stays inside whatever root it is joined to.

    Rejects absolute paths (POSIX, Windows drive or UNC), URLs, backslashes, NUL and any '..' component, rather
    than resolving them: an annotation file has no business pointing anywhere else."""
    if not isinstance(rel, str) or not rel.strip():
        raise UnsafePath(f"empty path {rel!r}")
    if "\\" in rel or "\x00" in rel or "://" in rel or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        raise UnsafePath(f"not a relative POSIX path: {rel!r}")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UnsafePath(f"escapes the root: {rel!r}")
    return "/".join(parts)


def safe_name(name: str) -> str:
    """A single path component (a file stem or folder name from an annotation file)."""
    rel = safe_relpath(name)
    if "/" in rel or rel != name:
        raise UnsafePath(f"not a single path component: {name!r}")
    return rel


def join_root(root: str, rel: str) -> str:
    """root + "/" + rel, as a string so that remote roots ("gs://b/x") keep their double slash."""
    return f"{root.rstrip('/')}/{rel}" if root not in ("", ".") else rel


def first_existing(root: str, candidates: Sequence[VideoRef], exists: Exists) -> VideoRef | None:
    """The first candidate whose file exists under `root`. With exists=None nothing is probed and the first
    candidate (the documented default layout) is trusted, e.g. when the videos are fetched later."""
    if exists is None:
        return candidates[0]
    for ref in candidates:
        if exists(join_root(root, ref.path)):
            return ref
    return None


def window_seconds(start: Any, end: Any) -> tuple[float, float]:
    """(start, end) as finite numbers with 0 <= start < end; BadRow "bad time" / "empty window" otherwise."""
    start_num, end_num = finite_number(start), finite_number(end)
    if start_num is None or end_num is None or start_num < 0:
        raise BadRow("bad time", f"{start!r}-{end!r}")
    if end_num <= start_num:
        raise BadRow("empty window", f"{start!r}-{end!r}")
    return start_num, end_num


def finite_number(value: Any) -> float | None:
    """A JSON/CSV number as float, or None when it is missing, not a number (bools included) or not finite."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def uniform_indices(count: int, n: int) -> list[int]:
    """n indices into a sequence of `count` items: the centre of each of n equal bins.

    The same integer rule as the core's sample_frame_indices (pipeline clips plan), copied as one line because
    that module is being moved; a sequence shorter than n repeats indices, so there are always n."""
    if n < 1 or count < 1:
        raise ValueError(f"need n >= 1 and count >= 1, got count={count} n={n}")
    return [((2 * i + 1) * count) // (2 * n) for i in range(n)]


def failure(source: str, path: str, record: str, reason: str, detail: str = "") -> RecordFailure:
    """A RecordFailure naming the file by its base name (as SourceRecord.source_file does)."""
    return RecordFailure(source=source, file=os.path.basename(path), record=record, reason=reason, detail=detail)


def text_field(item: dict, key: str) -> str:
    """item[key] when it is a string; KeyError/TypeError (-> "schema violation") otherwise."""
    value = item[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is {type(value).__name__}, not str")
    return value


def text_list(item: dict, key: str) -> list[str]:
    """item[key] (absent = []) when it is a list of strings."""
    value = item.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{key} is not a list of strings")
    return value
