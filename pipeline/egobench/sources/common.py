"""Helpers shared by the EgoBench readers, on top of EgoIT's (pipeline/egoit/sources/common.py: reading files
without raising, safe paths, probing candidate videos).

Conventions (the same as EgoIT's): annotation files are local, the video root may be remote and is only joined
and probed through `exists`; rows are numbered from 1 ("row N" for JSON list items and CSV data rows, "line N"
for text lines, "key K" for JSON dict entries); bad input becomes a RecordFailure, a whole unusable file one
failure with record "".
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pipeline.egobench.records import BenchItem, RecordFailure, VideoRef
from pipeline.egoit.sources.common import (
    BadRow,
    Exists,
    SourceFileError,
    UnsafePath,
    failure,
    finite_number,
    first_existing,
    safe_name,
)

Result = Iterator[BenchItem | RecordFailure]

# item ids become sample keys downstream: ASCII letters, digits, '_' and '-' only (no '.', '/', spaces)
ITEM_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
LETTERS = "ABCDEFGHIJ"
# where an Ego4D full-scale video is found under an Ego4D download root (ego4d CLI --datasets full_scale)
EGO4D_FULL = ("v2/full_scale/", "full_scale/", "")
# where an Ego4D canonical clip (NLQ clip uid) is found (--datasets clips)
EGO4D_CLIPS = ("v2/clips/", "clips/", "")


def check_id(value: Any, what: str = "id") -> str:
    """A JSON id (string, or int as in EgoPlan v1 / EgoTaskQA) as a key-safe string; BadRow "bad id"."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not ITEM_ID.fullmatch(value):
        raise BadRow("bad id", f"{what} {value!r} is not [A-Za-z0-9_-]{{1,128}}")
    return value


def choice_index(letter: Any, n_options: int) -> int:
    """The index of an answer letter ("A" -> 0) among n options; BadRow "bad answer" otherwise."""
    if (
        not isinstance(letter, str)
        or len(letter.strip()) != 1
        or letter.strip().upper() not in LETTERS[:n_options]
    ):
        raise BadRow("bad answer", f"answer {letter!r} is not a letter among {n_options} options")
    return LETTERS.index(letter.strip().upper())


def integer(value: Any, name: str) -> int:
    """A JSON integer >= 0 (a float with an integral value is accepted; bools are not); BadRow "bad time"."""
    number = finite_number(value) if not isinstance(value, str) else None
    if number is None or number < 0 or number != int(number):
        raise BadRow("bad time", f"{name}={value!r} is not a non-negative integer")
    return int(number)


def ego4d_videos(
    uid: str, start: float | None = None, end: float | None = None, folders: Sequence[str] = EGO4D_FULL
) -> list[VideoRef]:
    """The candidate files of an Ego4D video (or clip) uid, in probing order, each with the same window."""
    name = safe_name(uid) + ".mp4"
    return [VideoRef(f"{folder}{name}", start, end) for folder in folders]


def locate(root: str, candidates: Sequence[VideoRef], exists: Exists) -> VideoRef:
    """The first candidate found (with exists=None the first, unprobed); BadRow "video not found"."""
    video = first_existing(root, candidates, exists)
    if video is None:
        raise BadRow("video not found", " or ".join(c.path for c in candidates))
    return video


def where(number: int, ident: Any = None, unit: str = "row") -> str:
    """The `record` of a failure: "row 17" or "row 17 <id>"."""
    return f"{unit} {number}" + (
        f" {ident}" if isinstance(ident, str | int) and not isinstance(ident, bool) else ""
    )


def guarded(source: str, path: str, record: str, build: Callable[[], BenchItem]) -> BenchItem | RecordFailure:
    """build() or the failure it raised: BadRow -> its reason, UnsafePath -> "unsafe path", a missing key or a
    value of the wrong type -> "schema violation"."""
    try:
        return build()
    except BadRow as e:
        return failure(source, path, record, e.reason, e.detail)
    except UnsafePath as e:
        return failure(source, path, record, "unsafe path", str(e))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        return failure(source, path, record, "schema violation", f"{type(e).__name__}: {e}")


def per_file(source: str, path: str, rows: Callable[[], Result]) -> Result:
    """rows(), with a whole-file problem (missing, unreadable, wrong top level) as one failure."""
    try:
        yield from rows()
    except SourceFileError as e:
        yield failure(source, path, "", e.reason, e.detail)


def unique(
    result: BenchItem | RecordFailure, seen: set, source: str, path: str, record: str
) -> BenchItem | RecordFailure:
    """The item, or a "duplicate id" failure when its (task, id) was seen before (the first one is kept)."""
    if isinstance(result, BenchItem):
        key = (result.task, result.item_id)
        if key in seen:
            return failure(source, path, record, "duplicate id", result.item_id)
        seen.add(key)
    return result


def split_path(annotations: Any, default_name: str, conventional: str = "") -> tuple[str, str]:
    """(annotation file, its folder) for a file or a folder argument. A folder may be the one holding the file
    or the download root above `conventional` (e.g. "retrieval_annotations")."""
    path = os.fspath(annotations)
    if os.path.isfile(path):
        return path, os.path.dirname(path) or "."
    nested = os.path.join(path, conventional, default_name) if conventional else ""
    if nested and os.path.isfile(nested):
        return nested, path
    return os.path.join(path, default_name), path


def nonempty(*texts: str) -> None:
    if not all(isinstance(t, str) and t.strip() for t in texts):
        raise BadRow("empty text", "an empty question, option or answer")
