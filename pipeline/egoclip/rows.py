"""Reading EgoVLP's ``egoclip.csv``: every data row -> a validated ClipRow, or a ClipFailure with its reason.

The file (EgoVLP, data_loader/EgoClip_EgoMCQ_dataset.py reads it with ``pd.read_csv(path, sep="\\t",
error_bad_lines=False)``) is TAB-separated with a header; the columns used here:

    video_uid          Ego4D video uid: the full-scale video is <ego4d root>/v2/full_scale/<video_uid>.mp4
    video_dur          the video's duration in s (informative: the probe gives the real length)
    narration_source   narration_pass_1 | narration_pass_2
    narration_ind      index of the narration within its pass (int)
    narration_time     the narration's timestamp in s, in the full video
    clip_start, clip_end   the clip window in s, in the full video (clip_start may be negative: clamped to 0)
    clip_text          "#C C picks a bag of clothes from the floor"
    tag_verb, tag_noun     stringified int lists ("[93]", "[192, 115]") of the Ego4D taxonomy

Other columns (an index column, say) are ignored; columns are found by their header name. Pure functions, no Beam:
the tests count rows and failures directly.

Every bad input costs only its row (pipeline/core/readers.py): a line is a row (narrations hold no line breaks),
so a caption that opens a quote and never closes it is one "malformed row", not the 19 rows its quote would
swallow; a row holding a byte that is not UTF-8 (the caller decodes with errors="replace" or
"surrogateescape") is "not UTF-8"; times must be finite and within +-MAX_SECONDS, narration_ind and tags within
64 bits; control, bidi and zero-width characters are removed from clip_text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

from pipeline.core.narration import caption
from pipeline.core.readers import NOT_UTF8, csv_records, undecodable
from pipeline.core.text import clean_text
from pipeline.core.values import MAX_SECONDS, BadRow

COLUMNS = (
    "video_uid",
    "video_dur",
    "narration_source",
    "narration_ind",
    "narration_time",
    "clip_start",
    "clip_end",
    "clip_text",
    "tag_verb",
    "tag_noun",
)
# Stable reasons (errors.jsonl and stats count by these strings).
BAD_HEADER = "bad header"
MALFORMED_ROW = "malformed row"  # not the header's number of fields, or not parsable as TSV
BAD_FIELD = "bad field"  # video_uid / narration_ind / tags unusable
BAD_TIMES = "bad times"  # a time is not a finite number, or clip_end <= clip_start
EMPTY_TEXT = "empty text"
NOT_UTF8_ROW = NOT_UTF8  # a byte that is not UTF-8 (U+FFFD after a decode with errors="replace")
PATH_ESCAPE = "path escape"  # a video_uid that names a path, not a file under the video root

_UID = re.compile(r"^[A-Za-z0-9_\-]+$")
_PASS = re.compile(r"^narration_pass_(\d+)$")
_TAGS = re.compile(r"^\[?\s*(-?[0-9]+(?:\s*,\s*-?[0-9]+)*)?\s*,?\s*\]?$")


@dataclass(frozen=True)
class ClipFailure:
    """A row (scope "row"), the whole file ("file") or a video ("video") that did not make it, and why.
    `row` is the data row's number in the csv (1 = the first row after the header), -1 when not a row."""

    reason: str
    scope: str
    row: int = -1
    key: str = ""
    video_uid: str = ""
    video: str = ""  # the video file, relative to the Ego4D root
    file: str = ""
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def sort_key(self) -> tuple:
        return (
            self.scope,
            self.row,
            self.video_uid,
            self.key,
            self.reason,
            self.video,
            self.file,
            self.detail,
        )


@dataclass(frozen=True)
class ClipRow:
    row: int
    key: str  # <video_uid>-<pass>-<narration_ind>: unique per narration, no dots
    video_uid: str
    video_dur: float  # -1.0 when the column is empty or not a number
    narration_source: str
    narration_ind: int
    narration_time: float
    clip_start: float
    clip_end: float
    raw_text: str  # clip_text as written
    text: str  # the caption (see caption())
    tag_verb: tuple[int, ...]
    tag_noun: tuple[int, ...]


__all__ = ["COLUMNS", "BadRow", "ClipFailure", "ClipRow", "caption", "parse_row", "read_rows"]


def source_tag(narration_source: str) -> str:
    """narration_pass_1 -> p1 (the key part naming the pass); anything else as a key-safe string."""
    m = _PASS.match(narration_source)
    if m:
        return f"p{m.group(1)}"
    return re.sub(r"[^A-Za-z0-9_]", "_", narration_source) or "none"


def seconds(value: str, name: str) -> float:
    """A time in s, finite and within +-MAX_SECONDS (clip_start may be negative: EgoVLP clamps it)."""
    try:
        number = float(value) if len(value) <= 64 else math.inf
    except ValueError:
        raise BadRow(BAD_TIMES, f"{name}={value!r}") from None
    if not math.isfinite(number) or abs(number) > MAX_SECONDS:
        raise BadRow(BAD_TIMES, f"{name}={value[:60]!r}")
    return number


def tags(value: str, name: str) -> tuple[int, ...]:
    m = _TAGS.match(value.strip())
    if not m:
        raise BadRow(BAD_FIELD, f"{name}={value[:120]!r}: not a list of ints")
    numbers = re.findall(r"-?[0-9]+", m.group(1) or "")
    if any(len(x.lstrip("-0")) > 18 for x in numbers):
        raise BadRow(BAD_FIELD, f"{name}={value[:120]!r}: an int beyond 64 bits")
    return tuple(int(x) for x in numbers)


def check_uid(uid: str) -> str:
    if _UID.match(uid):
        return uid
    if "/" in uid or "\\" in uid or uid in (".", "..") or uid.startswith("~"):
        raise BadRow(PATH_ESCAPE, f"video_uid={uid!r}")
    raise BadRow(BAD_FIELD, f"video_uid={uid!r}: not a file name of letters, digits, '-' and '_'")


def parse_row(row: int, fields: dict[str, str]) -> ClipRow:
    """One data row (column -> value) -> ClipRow; raises BadRow. Checked in this order: uid, index, times, text,
    tags, so a row with several problems reports the first."""
    uid = check_uid(fields["video_uid"].strip())
    ind_text = fields["narration_ind"].strip()
    m = re.fullmatch(r"([0-9]+)(?:\.0*)?", ind_text)  # "12", or "12.0" from a float column
    if not m or len(m.group(1).lstrip("0")) > 18:  # within 64 bits
        raise BadRow(BAD_FIELD, f"narration_ind={ind_text[:60]!r}")
    ind = int(m.group(1))
    start = seconds(fields["clip_start"].strip(), "clip_start")
    end = seconds(fields["clip_end"].strip(), "clip_end")
    at = seconds(fields["narration_time"].strip(), "narration_time")
    if end <= start:
        raise BadRow(BAD_TIMES, f"clip_end {end:g} <= clip_start {start:g}")
    raw = clean_text(fields["clip_text"])
    text = caption(raw)
    if not text:
        raise BadRow(EMPTY_TEXT, repr(raw[:120]))
    try:
        dur = float(fields["video_dur"]) if len(fields["video_dur"]) <= 64 else -1.0
    except ValueError:
        dur = -1.0
    dur = dur if math.isfinite(dur) and 0 <= dur <= MAX_SECONDS else -1.0
    source = clean_text(fields["narration_source"]).strip()
    return ClipRow(row, f"{uid}-{source_tag(source)}-{ind:06d}", uid, dur, source, ind, at, start, end, raw, text,
                   tags(fields["tag_verb"], "tag_verb"), tags(fields["tag_noun"], "tag_noun"))  # fmt: skip


def read_rows(lines: Iterable[str], file: str) -> Iterator[ClipRow | ClipFailure]:
    """Every data row of the csv text as a ClipRow or a row-scope ClipFailure (blank lines are not rows); a
    header without the needed columns gives one file-scope failure and nothing else."""
    records = csv_records(lines, "\t", multiline=False)
    first = next(records, None)
    if first is None:
        yield ClipFailure(BAD_HEADER, "file", file=file, detail="empty file")
        return
    if isinstance(first[1], BadRow):
        yield ClipFailure(BAD_HEADER, "file", file=file, detail=first[1].detail)
        return
    header = [h.strip().lstrip("\ufeff") for h in first[1]]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        yield ClipFailure(
            BAD_HEADER, "file", file=file, detail=f"missing columns {missing}; header {header[:12]}"
        )
        return
    for row, fields in records:
        if isinstance(fields, BadRow):
            yield ClipFailure(fields.reason, "row", row, file=file, detail=fields.detail[:300])
            continue
        if len(fields) != len(header):
            yield ClipFailure(MALFORMED_ROW, "row", row, video_uid=fields[0][:100], file=file,
                              detail=f"{len(fields)} fields, the header has {len(header)}")  # fmt: skip
            continue
        values = dict(zip(header, fields, strict=True))
        if any("\ufffd" in f for f in fields) or undecodable(
            fields
        ):  # the caller's decode replaced / escaped it
            detail = undecodable(fields) or "U+FFFD (a byte that is not UTF-8, replaced)"
            yield ClipFailure(
                NOT_UTF8_ROW, "row", row, video_uid=_shown_uid(values), file=file, detail=detail
            )
            continue
        try:
            yield parse_row(row, values)
        except BadRow as err:
            yield ClipFailure(err.reason, "row", row, video_uid=_shown_uid(values), file=file,
                              detail=err.detail[:300])  # fmt: skip


def _shown_uid(values: dict[str, str]) -> str:
    uid = values["video_uid"].strip()[:100]
    return uid if uid.isprintable() else ascii(uid)[1:-1][:100]
