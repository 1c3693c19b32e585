"""Reading annotation files row by row without raising: what every dataset reader (pipeline/<dataset>/sources/,
pipeline/egoclip/rows.py, pipeline/egoexoclip/release.py) shares.

Conventions every reader follows:
- Annotation files are local files. The video root may be remote ("gs://bucket/ego4d"): it is only joined as a
  string and probed through the caller's `exists`, never opened here.
- A row is numbered from 1 in the file's own unit: "line N" for text files, "row N" for CSV data rows (the header
  is not a row; a quoted field may span lines) and JSON list items, "key K" for JSON object entries.
- Bad input becomes a RecordFailure; a whole file that cannot be used is one failure with record "".

What costs a row, and only that row (the rest of the file is read as if it were not there):
- a value out of range or of the wrong type (pipeline/core/values.py: NaN, Infinity, 1e308 seconds, integers
  beyond 64 bits, negative times, ...): JSON number literals no reader can use are parsed to NonFinite markers,
  so even a 5,000-digit integer is one row's "bad time" / "bad id", not an unreadable file;
- bytes that are not UTF-8: files are decoded with surrogateescape and a row holding an undecodable byte is
  "not UTF-8" (only a first line that is not UTF-8, i.e. not a text file at all, fails the whole file);
- broken CSV quoting: a quoted field may span lines only when the record it ends has the header's number of
  fields and none of the lines it swallowed is a row by itself; otherwise its first line fails ("malformed
  row", an unclosed quote) and reading goes on at the next line. A CSV cut mid-row fails that row, once, also
  when the cut is inside a quoted field over several lines;
- a BOM (dropped), CRLF line ends (read as line ends);
- control, bidi and zero-width characters in text: removed (pipeline/core/text.py, through values.text_field).
A JSON file cut short is one file failure ("unreadable file", detail "truncated: ...").
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from pipeline.core import fs
from pipeline.core.records import RecordFailure, VideoRef
from pipeline.core.values import MAX_INT, BadRow, UnsafePath, join_root, shown

T = TypeVar("T")
Exists = Callable[[str], bool] | None
NOT_UTF8 = "not UTF-8"
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # what surrogateescape decodes an undecodable byte to


class SourceFileError(BadRow):
    """A whole annotation file cannot be used."""


class MalformedRow(BadRow):
    """A CSV row that is not one (wrong number of fields); `row` holds what it has, to name it by its id."""

    def __init__(self, reason: str, detail: str, row: dict):
        super().__init__(reason, detail)
        self.row = row


# ------------------------------------------------------------------------------------------------ files


def annotation_folder(annotations: Any, conventional: str) -> tuple[str, str]:
    """(folder holding the annotation files, the dataset's download root) for a folder argument.

    Accepts both the folder the dataset ships its annotations in (named `conventional`, e.g. EGTEA's
    "action_annotation") and the download root above it. The download root is the default video root."""
    folder = fs.normpath(os.fspath(annotations))
    nested = os.path.join(folder, conventional)
    if fs.is_dir(nested):
        return nested, folder
    if os.path.basename(folder) == conventional:
        return folder, os.path.dirname(folder) or "."
    return folder, folder


def file_or_folder(annotations: Any, conventional: str) -> tuple[str | None, str, str]:
    """(the annotation file given, or None for a folder; the annotation folder; the dataset's download root):
    annotation_folder of the folder given, or of the given file's folder."""
    if fs.is_file(annotations):
        path = os.fspath(annotations)
        return path, *annotation_folder(os.path.dirname(path) or ".", conventional)
    return None, *annotation_folder(annotations, conventional)


def split_path(annotations: Any, default_name: str, conventional: str = "") -> tuple[str, str]:
    """(annotation file, its folder) for a file or a folder argument. A folder may be the one holding the file
    or the download root above `conventional` (e.g. "retrieval_annotations")."""
    path = os.fspath(annotations)
    if fs.is_file(path):
        return path, os.path.dirname(path) or "."
    nested = os.path.join(path, conventional, default_name) if conventional else ""
    if nested and fs.is_file(nested):
        return nested, path
    return os.path.join(path, default_name), path


def decode(data: bytes, name: str = "", *, first_line: bool = True) -> str:
    """UTF-8 bytes -> text, a BOM dropped, every undecodable byte kept as a lone surrogate (surrogateescape) for
    the row that holds it to fail. With first_line, a first line that is not UTF-8 fails the whole file."""
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    if first_line and (bad := _ESCAPED_BYTE.search(text.split("\n", 1)[0])):
        raise SourceFileError(
            "unreadable file", f"{name}: {NOT_UTF8} (byte 0x{ord(bad[0]) - 0xDC00:02x} of line 1)"
        )
    return text


def read_text(path: str, *, first_line: bool = True) -> str:
    """The whole file as text (see decode); "missing file" / "unreadable file" as the file's failure."""
    if not fs.is_file(path):
        raise SourceFileError("missing file", path)
    try:
        data = fs.read_bytes(path)
    except OSError as e:
        raise SourceFileError("unreadable file", f"{path}: {e}") from e
    return decode(data, path, first_line=first_line)


def undecodable(value: Any) -> str | None:
    """The detail of the first undecodable byte in a row (any string in it, keys included), or None."""
    if isinstance(value, str):
        bad = _ESCAPED_BYTE.search(value)
        return None if bad is None else f"byte 0x{ord(bad[0]) - 0xDC00:02x} in {shown(value, 80)}"
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list | tuple):
        for v in value:
            if (detail := undecodable(v)) is not None:
                return detail
    return None


def text_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of every non-blank line (str.splitlines: CRLF and CR end lines too)."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if line.strip():
            yield number, line


# ------------------------------------------------------------------------------------------------ JSON


class NonFinite:
    """What a JSON number literal that no reader accepts parses to: `Infinity`, `NaN`, out-of-range floats such
    as `1e999`, and integers beyond 64 bits. Never a number, so that no schema's "number" accepts it, no
    arithmetic sees it and no coder overflows on it; a row holding one fails alone."""

    def __init__(self, literal: str):
        self.literal = literal

    def __repr__(self) -> str:
        return (
            self.literal if len(self.literal) <= 40 else f"{self.literal[:20]}...({len(self.literal)} chars)"
        )

    def __eq__(self, other) -> bool:
        return isinstance(other, NonFinite) and other.literal == self.literal

    def __hash__(self) -> int:
        return hash(self.literal)


def _parse_float(text: str):
    value = float(text)
    return value if math.isfinite(value) else NonFinite(text)


def _parse_int(text: str):
    if len(text) > 20:  # beyond 64 bits whatever the digits (and int() refuses 4,300 of them)
        return NonFinite(text)
    value = int(text)
    return value if -MAX_INT - 1 <= value <= MAX_INT else NonFinite(text)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def drop_surrogates(value):
    """Every string in value (keys too) without lone surrogates (which no UTF-8 encoder accepts)."""
    return _drop_surrogates(value)


def _drop_surrogates(value):
    if isinstance(value, str):
        return _SURROGATE.sub("", value)
    if isinstance(value, list):
        return [_drop_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_drop_surrogates(k): _drop_surrogates(v) for k, v in value.items()}
    return value


def parse_json(data: bytes | str, *, keep_surrogates: bool = False) -> Any:
    """UTF-8 JSON -> Python objects, unusable number literals as NonFinite, lone surrogates ("\\ud800", which no
    UTF-8 encoder, Beam's coders included, accepts) removed from every string unless keep_surrogates (the
    readers keep them: an undecodable byte, decoded by surrogateescape, must fail its row). Raises ValueError
    subclasses (json.JSONDecodeError with line and column, UnicodeDecodeError) or RecursionError."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    doc = json.loads(text, parse_constant=NonFinite, parse_float=_parse_float, parse_int=_parse_int)
    # only a file that escapes a surrogate can hold a lone one (a valid pair parses to one character)
    return doc if keep_surrogates or not _SURROGATE_ESCAPE.search(text) else _drop_surrogates(doc)


def read_json(path: str, kind: type) -> Any:
    """A JSON file whose top level must be `kind` (list or dict)."""
    text = read_text(path, first_line=False)
    try:
        data = parse_json(text, keep_surrogates=True)
    except json.JSONDecodeError as e:
        cut = e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string")
        raise SourceFileError(
            "unreadable file", f"{path}: {'truncated: ' if cut else ''}invalid JSON ({e})"
        ) from e
    except RecursionError as e:
        raise SourceFileError("unreadable file", f"{path}: invalid JSON (nested too deeply)") from e
    if not isinstance(data, kind):
        raise SourceFileError("schema violation", f"top level is {type(data).__name__}, not {kind.__name__}")
    return data


def json_rows(path: str) -> Iterator[tuple[int, Any]]:
    """(row number, item) of a JSON file whose top level is a list."""
    yield from enumerate(read_json(path, list), start=1)


# ------------------------------------------------------------------------------------------------ CSV


class _Lines:
    """The physical lines under a csv.reader: those of the record being read are kept, so that a record that
    swallowed lines can be given back and read again from its second line."""

    def __init__(self, lines: Iterable[str]):
        self.source = iter(lines)
        self.pending: list[str] = []  # given back, next first (reversed)
        self.taken: list[str] = []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.pending.pop() if self.pending else next(self.source)
        self.taken.append(line)
        return line

    def give_back(self, lines: Sequence[str]) -> None:
        self.pending.extend(reversed(lines))


def _ends_in_quote(text: str, delimiter: str) -> bool:
    """Whether csv's (non-strict, doublequote) reading of `text` ends inside a quoted field."""
    quoted, at_start, after_quote = False, True, False
    for ch in text:
        if quoted:
            if ch == '"':
                quoted, after_quote = False, True
            continue
        if ch == '"' and (at_start or after_quote):  # "" inside a quoted field, or a field's opening quote
            quoted, at_start, after_quote = True, False, False
            continue
        at_start, after_quote = ch in (delimiter, "\n", "\r"), False
    return quoted


def _row_width(line: str, delimiter: str) -> int:
    """The fields of `line` read alone as a strictly quoted row (quotes only around whole fields, doubled
    inside them), or 0 when its quotes are not a row's: a line a broken quote swallowed is a row by itself."""
    n, state = 1, "start"
    for ch in line.rstrip("\r\n"):
        if state == "quoted":
            state = "closed" if ch == '"' else state
        elif state == "closed" and ch == '"':
            state = "quoted"  # a doubled quote
        elif ch == delimiter:
            n, state = n + 1, "start"
        elif state == "closed" or (ch == '"' and state == "field"):
            return 0
        else:
            state = "quoted" if ch == '"' else "field"
    return 0 if state == "quoted" else n


def _broken_quote(
    taken: list[str], fields: list[str], width: int, delimiter: str, multiline: bool
) -> BadRow | None:
    """Why a record that spans lines (or ends the file) is not a record (None when it is one)."""
    if _ends_in_quote("".join(taken), delimiter):
        why = "the quote never closes"
    elif len(taken) == 1:
        return None
    elif swallowed := [
        n for n, line in enumerate(taken[1:], start=2) if _row_width(line, delimiter) == width
    ]:
        why = f"its line {swallowed[0]} is a row by itself"
    elif not multiline:
        why = "a quoted field spans lines"
    elif len(fields) != width:
        why = f"the record it makes has {len(fields)} fields, the header {width}"
    else:
        return None
    return BadRow("malformed row", f"unclosed quote over {len(taken)} line(s): {why}")


def _cut_at_end(taken: list[str], width: int, delimiter: str) -> bool:
    """Whether a record whose quote never closes is the file's last record cut inside a quoted field: none of
    the lines it swallowed is a row by itself, so they are the rest of that record, not rows to read again
    (a stray quote that swallowed rows to the end of the file gives them back)."""
    return _ends_in_quote("".join(taken), delimiter) and not any(
        _row_width(line, delimiter) == width for line in taken[1:]
    )


def csv_records(
    lines: Iterable[str], delimiter: str = ",", *, multiline: bool = True
) -> Iterator[tuple[int, list[str] | BadRow]]:
    """(number, fields) of every non-blank record: number 0 is the header (its fields define the row width),
    then data records from 1. A record that cannot be one comes as (number, BadRow): "malformed row" for a
    broken quote (see the module docstring; with multiline=False any quoted field that spans lines is one); a
    file cut inside a quoted field fails its last record once, the lines of that record included.
    Undecodable bytes are left in the fields (row_results fails the row). Lines keep their line ends (a file
    opened with newline='', or io.StringIO(text))."""
    src = _Lines(lines)
    reader = csv.reader(src, delimiter=delimiter)
    width, number = -1, -1
    while True:
        src.taken = []
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            fields, error = None, BadRow("malformed row", str(e)[:300])
        else:
            error = None
        if fields == [] and len(src.taken) <= 1:  # blank lines are not records
            continue
        taken = src.taken
        # a record over several lines, or one whose quote swallowed its line end or met the end of the file
        at_end = not taken[-1].endswith(("\n", "\r"))
        if error is None and width >= 0 and (len(taken) > 1 or at_end or fields[-1][-1:] in ("\n", "\r")):
            error = _broken_quote(taken, fields, width, delimiter, multiline)
        number += 1
        if error is not None:
            if len(taken) > 1 and not _cut_at_end(taken, width, delimiter):  # read swallowed rows again
                src.give_back(taken[1:])
                reader = csv.reader(src, delimiter=delimiter)
            yield number, error
            continue
        if number == 0:
            width = len(fields)
        yield number, fields


def csv_rows(
    text: str, required: Sequence[str], delimiter: str = ","
) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    """(row number, column -> value) of each data row, or (row number, BadRow) for a row that is not one:
    "schema violation" when it has not the header's number of fields, else as csv_records. Missing required
    columns fail the whole file."""
    records = csv_records(io.StringIO(text), delimiter)  # lines end at "\n" only, as csv reads them
    header: list[str] = []
    for number, fields in records:
        if number == 0:
            if isinstance(fields, BadRow):
                raise SourceFileError("unreadable file", f"header: {fields.detail}")
            header = [h.removeprefix("\ufeff") for h in fields]
            missing = [c for c in required if c not in header]
            if missing:
                raise SourceFileError("schema violation", f"missing columns {missing}")
            continue
        if isinstance(fields, list) and len(fields) != len(header):
            detail = f"{len(fields)} fields, the header has {len(header)}"
            fields = MalformedRow("schema violation", detail, dict(zip(header, fields, strict=False)))
        yield number, fields if isinstance(fields, BadRow) else dict(zip(header, fields, strict=True))
    if not header:
        raise SourceFileError("schema violation", f"missing columns {list(required)}")


# ------------------------------------------------------------------------------------------------ rows


def failure(source: str, path: str, record: str, reason: str, detail: str = "") -> RecordFailure:
    """A RecordFailure naming the file by its base name (as the records' source_file do)."""
    return RecordFailure(
        source=source, file=os.path.basename(path), record=record, reason=reason, detail=detail
    )


def where(number: int | str, ident: Any = None, unit: str = "row") -> str:
    """The `record` of a failure: "row 17" or "row 17 <id>" ("key K" for a JSON object entry); an unprintable
    or very long id (or key) is escaped and cut."""
    head = f"{unit} {_printable(str(number))}"
    if not isinstance(ident, str | int) or isinstance(ident, bool):
        return head
    text = shown(ident, 40) if isinstance(ident, int) and abs(ident) > MAX_INT else str(ident)
    return f"{head} {_printable(text)}"


def _printable(text: str) -> str:
    return text if text.isprintable() and len(text) <= 200 else ascii(text)[1:-1][:200]


def guarded(source: str, path: str, record: str, build: Callable[[], T]) -> T | RecordFailure:
    """build() or the failure it raised: BadRow -> its reason, UnsafePath -> "unsafe path", a missing key or a
    value of the wrong type -> "schema violation", a number beyond any range -> "bad number"."""
    try:
        return build()
    except BadRow as e:
        return failure(source, path, record, e.reason, e.detail)
    except UnsafePath as e:
        return failure(source, path, record, "unsafe path", str(e))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        return failure(source, path, record, "schema violation", f"{type(e).__name__}: {str(e)[:300]}")
    except (OverflowError, RecursionError) as e:
        return failure(source, path, record, "bad number", f"{type(e).__name__}: {str(e)[:300]}")


def row_results(
    source: str,
    path: str,
    rows: Iterable[tuple[int, Any]],
    build: Callable[[int, Any], T],
    ident: Callable[[Any], Any] | None = None,
    unit: str = "row",
) -> Iterator[T | RecordFailure]:
    """build(number, row) for each row, or the row's failure: a BadRow the row source gave (broken CSV
    quoting, wrong number of fields), an undecodable byte anywhere in the row, or what build raised (guarded).
    `ident(row)` names the row in its failure ("row 17 <id>")."""
    for number, row in rows:
        record = where(number, _safe_ident(ident, row), unit)

        def one(number=number, row=row):
            if isinstance(row, BadRow):
                raise row
            if (bad := undecodable(row)) is not None:
                raise BadRow(NOT_UTF8, bad)
            return build(number, row)

        yield guarded(source, path, record, one)


def _safe_ident(ident: Callable[[Any], Any] | None, row: Any) -> Any:
    row = row.row if isinstance(row, MalformedRow) else row
    if ident is None or isinstance(row, BadRow):
        return None
    try:
        return ident(row)
    except (KeyError, TypeError, AttributeError, IndexError):
        return None


def per_file(source: str, path: str, rows: Callable[[], Iterator[T]]) -> Iterator[T | RecordFailure]:
    """rows(), with a whole-file problem (missing, unreadable, wrong top level) as one failure."""
    try:
        yield from rows()
    except SourceFileError as e:
        yield failure(source, path, "", e.reason, e.detail)


# ------------------------------------------------------------------------------------------------ videos


def first_existing(root: str, candidates: Sequence[VideoRef], exists: Exists) -> VideoRef | None:
    """The first candidate whose file exists under `root`. With exists=None nothing is probed and the first
    candidate (the documented default layout) is trusted, e.g. when the videos are fetched later."""
    if exists is None:
        return candidates[0]
    for ref in candidates:
        if exists(join_root(root, ref.path)):
            return ref
    return None


def locate(root: str, candidates: Sequence[VideoRef], exists: Exists) -> VideoRef:
    """The first candidate found (with exists=None the first, unprobed); BadRow "video not found"."""
    video = first_existing(root, candidates, exists)
    if video is None:
        raise BadRow("video not found", " or ".join(c.path for c in candidates))
    return video


def uniform_indices(count: int, n: int) -> list[int]:
    """n indices into a sequence of `count` items: the centre of each of n equal bins (the rule of the core's
    clips.sample_frame_indices); a sequence shorter than n repeats indices, so there are always n."""
    if n < 1 or count < 1:
        raise ValueError(f"need n >= 1 and count >= 1, got count={count} n={n}")
    return [((2 * i + 1) * count) // (2 * n) for i in range(n)]
