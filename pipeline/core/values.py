"""Typed values of annotation rows: numbers in range, times, integers, identifiers, text fields, safe paths.

Every parser here raises BadRow (a groupable `reason` + `detail`) or UnsafePath, never OverflowError: a value a
row cannot use costs that row (pipeline/core/readers.py turns the exception into its RecordFailure), and no
value that passes can overflow later (seconds x fps, int64 columns of Arrow and Beam coders).

    finite_number(v)            float of a JSON/CSV number, or None (missing, not a number, NaN, +-Infinity,
                                1e999, beyond +-2**53, the JSON reader's out-of-range markers)
    seconds(v, name)            a time in seconds, 0 <= t <= MAX_SECONDS (negative only where allowed)
    window_seconds(a, b)        (start, end) with 0 <= start < end <= MAX_SECONDS
    integer(v, name)            a JSON integer (or integral float), 0 <= n <= MAX_INT (64-bit signed)
    decimal(text, name)         an ASCII decimal string as an int, 0 <= n <= MAX_INT
    ident(v, what)              a record id as the file writes it (str, or int): printable, <= 256 characters
    text_field(item, key)       a string field, cleaned (pipeline/core/text.py; line breaks kept)
    id_field(item, key)         a string id field as written, printable
    text_list(item, key)        a list of string fields, cleaned
    safe_relpath / safe_name    a relative POSIX path (one component) that cannot leave the root it is joined to
    join_root(root, rel)        root + "/" + rel as a string (remote roots keep their "//")
"""

from __future__ import annotations

import math
import re
from typing import Any

from pipeline.core.text import clean_text

# No annotated time is longer than this (115 days); it keeps seconds x any fps exact in a float and inside int64.
MAX_SECONDS = 1e7
MAX_INT = 2**63 - 1  # Arrow int64 / Beam's varint coder
MAX_MAGNITUDE = 2.0**53  # beyond it a float no longer holds every integer: no annotation number is that large
MAX_ID_CHARS = 256


class BadRow(Exception):
    """One row cannot be used; `reason` is the groupable RecordFailure reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class UnsafePath(ValueError):
    """A path taken from an annotation file would leave the video root (absolute, '..', a URL, ...)."""


def shown(value: Any, limit: int = 120) -> str:
    """repr() of a value for a failure's detail, cut to `limit` characters (a 400-digit number, a megabyte of
    text)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...)" + text[-1]


# ------------------------------------------------------------------------------------------------ numbers


def finite_number(value: Any) -> float | None:
    """A JSON/CSV number as float, or None when it is missing, not a number (bools included), not finite, or
    beyond +-2**53."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str) and len(value) > 64:  # no number in range is written that long
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and abs(number) <= MAX_MAGNITUDE else None


def seconds(value: Any, name: str, *, negative: bool = False, reason: str = "bad time") -> float:
    """A time in seconds: finite, at most MAX_SECONDS, and >= 0 unless `negative`; BadRow(reason) otherwise."""
    number = finite_number(value)
    if number is None or abs(number) > MAX_SECONDS or (number < 0 and not negative):
        raise BadRow(reason, f"{name}={shown(value)} is not a time in [0, {MAX_SECONDS:g}] s")
    return number


def window_seconds(start: Any, end: Any) -> tuple[float, float]:
    """(start, end) in seconds with 0 <= start < end <= MAX_SECONDS; BadRow "bad time" / "empty window"."""
    start_num, end_num = finite_number(start), finite_number(end)
    if start_num is None or end_num is None or start_num < 0 or end_num > MAX_SECONDS:
        raise BadRow("bad time", f"{shown(start, 60)}-{shown(end, 60)}")
    if end_num <= start_num:
        raise BadRow("empty window", f"{shown(start, 60)}-{shown(end, 60)}")
    return start_num, end_num


def integer(value: Any, name: str, *, reason: str = "bad time", maximum: int = MAX_INT) -> int:
    """A JSON integer 0 <= n <= maximum (a float with an integral value is accepted; bools and strings are
    not); BadRow(reason) otherwise."""
    number = finite_number(value) if not isinstance(value, str) else None
    if number is None or number < 0 or number != int(number) or number > maximum:
        raise BadRow(reason, f"{name}={shown(value)} is not an integer in [0, {maximum}]")
    return int(number)


def decimal(text: Any, name: str, *, reason: str = "schema violation", maximum: int = MAX_INT) -> int:
    """An ASCII decimal string ("0042") as an int 0 <= n <= maximum; BadRow(reason) otherwise."""
    digits = text.strip() if isinstance(text, str) else ""
    if not (digits.isascii() and digits.isdecimal()) or len(digits.lstrip("0")) > len(str(maximum)):
        raise BadRow(reason, f"{name}={shown(text)} is not an integer in [0, {maximum}]")
    number = int(digits)
    if number > maximum:
        raise BadRow(reason, f"{name}={shown(text)} is not an integer in [0, {maximum}]")
    return number


# ------------------------------------------------------------------------------------------------ text, ids


def ident(value: Any, what: str = "id") -> str:
    """A record id as the annotation file writes it (a string, or an int as some files do): printable, no
    surrounding spaces, 1-256 characters. Ids are checked, never cleaned (a cleaned id could become another
    row's); BadRow "bad id" otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT:
        value = str(value)
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_ID_CHARS
        or not value.isprintable()
        or value != value.strip()
    ):
        raise BadRow("bad id", f"{what} {shown(value)} is not a printable id of 1-{MAX_ID_CHARS} characters")
    return value


def text_field(item: dict, key: str, *, clean: bool = True) -> str:
    """item[key], a string, cleaned (control, bidi and zero-width characters removed; line breaks kept as
    "\\n"; clean=False: as written, for paths and ids that are checked instead); KeyError / TypeError
    (-> "schema violation") when it is missing or not a string."""
    value = item[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is {type(value).__name__}, not str")
    return clean_text(value, newlines=True) if clean else value


def id_field(item: dict, key: str) -> str:
    """item[key], a string id as written ("" passes, for the reader's own "empty" check); BadRow "bad id" when
    it holds control characters or is over 256 characters, KeyError / TypeError when missing or not a string."""
    value = text_field(item, key, clean=False)
    if len(value) > MAX_ID_CHARS or not value.isprintable():
        raise BadRow("bad id", f"{key} {shown(value)} is not a printable id of 1-{MAX_ID_CHARS} characters")
    return value


def text_list(item: dict, key: str) -> list[str]:
    """item[key] (absent = []) when it is a list of strings, each cleaned."""
    value = item.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{key} is not a list of strings")
    return [clean_text(v, newlines=True) for v in value]


# ------------------------------------------------------------------------------------------------ paths


def safe_relpath(rel: str) -> str:
    """`rel` as a normalised POSIX path that stays inside whatever root it is joined to.

    Rejects absolute paths (POSIX, Windows drive or UNC), URLs, backslashes, control characters and any '..'
    component, rather than resolving them: an annotation file has no business pointing anywhere else."""
    if not isinstance(rel, str) or not rel.strip():
        raise UnsafePath(f"empty path {rel!r}")
    if "\\" in rel or "://" in rel or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        raise UnsafePath(f"not a relative POSIX path: {shown(rel)}")
    if not rel.isprintable():  # NUL, ESC, bidi overrides, line breaks: never part of a file name we open
        raise UnsafePath(f"control characters in the path {shown(rel)}")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UnsafePath(f"escapes the root: {shown(rel)}")
    return "/".join(parts)


def safe_name(name: str) -> str:
    """A single path component (a file stem or folder name from an annotation file)."""
    rel = safe_relpath(name)
    if "/" in rel or rel != name:
        raise UnsafePath(f"not a single path component: {shown(name)}")
    return rel


def join_root(root: str, rel: str) -> str:
    """root + "/" + rel, as a string so that remote roots ("gs://b/x") keep their double slash."""
    return f"{root.rstrip('/')}/{rel}" if root not in ("", ".") else rel
