"""What the EgoBench readers share beyond the core's reader helpers (pipeline/core/readers.py: reading files and
rows without raising, failures, candidate videos; pipeline/core/values.py: typed values, safe paths).

Conventions (every reader's): annotation files are local, the video root may be remote and is only joined and
probed through `exists`; rows are numbered from 1 ("row N" for JSON list items and CSV data rows, "line N" for
text lines, "key K" for JSON dict entries); bad input becomes a RecordFailure, a whole unusable file one
failure with record "".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pipeline.core.values import BadRow, shown
from pipeline.egobench.records import BenchItem, RecordFailure

Result = Iterator[BenchItem | RecordFailure]

# item ids become sample keys downstream: ASCII letters, digits, '_' and '-' only (no '.', '/', spaces)
ITEM_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
LETTERS = "ABCDEFGHIJ"


def check_id(value: Any, what: str = "id") -> str:
    """A JSON id (string, or int as in EgoPlan v1 / EgoTaskQA) as a key-safe string; BadRow "bad id"."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**128:
        value = str(value)
    if not isinstance(value, str) or not ITEM_ID.fullmatch(value):
        raise BadRow("bad id", f"{what} {shown(value)} is not [A-Za-z0-9_-]{{1,128}}")
    return value


def choice_index(letter: Any, n_options: int) -> int:
    """The index of an answer letter ("A" -> 0) among n options; BadRow "bad answer" otherwise."""
    if (
        not isinstance(letter, str)
        or len(letter.strip()) != 1
        or letter.strip().upper() not in LETTERS[:n_options]
    ):
        raise BadRow("bad answer", f"answer {shown(letter)} is not a letter among {n_options} options")
    return LETTERS.index(letter.strip().upper())


def first_of_id(item: BenchItem, seen: set) -> BenchItem:
    """The item, its (task, id) now taken; BadRow "duplicate id" when it was taken before (the first row with an
    id keeps it, a later one is that row's failure)."""
    key = (item.task, item.item_id)
    if key in seen:
        raise BadRow("duplicate id", item.item_id)
    seen.add(key)
    return item


def nonempty(*texts: str) -> None:
    if not all(isinstance(t, str) and t.strip() for t in texts):
        raise BadRow("empty text", "an empty question, option or answer")
