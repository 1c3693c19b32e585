"""EPIC-KITCHENS-100 multi-instance retrieval -> one retrieval item per test video segment, and the sentence
set.

The retrieval columns are the rows of EPIC_100_retrieval_test_sentence.csv in file order (3,842 rows, 3,835
distinct captions). As in the challenge's relevancy code (mwray/Joint-Part-of-Speech-Embeddings,
create_sentence_df), a sentence stands for one row of the test table: its verb class and noun classes are
those of the narration row it names. `sentence_set` returns them for the relevancy matrix, R[i, j] = (verb
match + noun IoU) / 2, which the metrics build.

Quirk of the released file: 7 sentence rows repeat a caption (added for action classes that the first clip of
the caption did not cover), and for 6 of those the caption is not the named row's narration (the texts are
shifted by one among them). They are kept as released, with `text_matches_row` False and the named row's
classes.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.core import fs
from pipeline.core.readers import (
    Exists,
    SourceFileError,
    csv_rows,
    failure,
    guarded,
    locate,
    read_text,
    row_results,
    split_path,
    where,
)
from pipeline.core.records import RecordFailure, VideoRef
from pipeline.core.text import clean_text
from pipeline.core.values import MAX_INT, MAX_SECONDS, BadRow, decimal, safe_name, shown
from pipeline.egobench.records import BenchItem
from pipeline.egobench.sources.common import check_id

SOURCE = "epic_mir"
TEST_CSV = "EPIC_100_retrieval_test.csv"
SENTENCE_CSV = "EPIC_100_retrieval_test_sentence.csv"
COLUMNS = (
    "narration_id",
    "participant_id",
    "video_id",
    "start_timestamp",
    "stop_timestamp",
    "start_frame",
    "stop_frame",
    "narration",
    "verb",
    "verb_class",
    "noun_class",
    "all_nouns",
    "all_noun_classes",
)
TIMESTAMP = re.compile(r"(\d+):([0-5]\d):([0-5]\d(?:\.\d+)?)")

LAYOUT = """\
EPIC-KITCHENS-100 multi-instance retrieval (`epic_mir` -> task epic_mir, retrieval)
  annotations: the epic-kitchens-100-annotations folder (or its retrieval_annotations/, or the test CSV):
    retrieval_annotations/EPIC_100_retrieval_test.csv            9,668 segments: narration_id, participant_id,
        video_id, start/stop_timestamp (HH:MM:SS.ss), start/stop_frame, narration, verb, verb_class, noun,
        noun_class, all_nouns, all_noun_classes (Python-literal lists)
    retrieval_annotations/EPIC_100_retrieval_test_sentence.csv   3,842 sentences: narration_id, narration
  item: question "", answer = the segment's own sentence id (a sentence with its caption, preferring one with
        its verb class and noun classes); the sentence set and its classes: epic_mir.sentence_set(annotations)
  videos root: the EPIC-KITCHENS download root (epic_downloader.py's EPIC-KITCHENS/; pass it)
    <participant_id>/videos/<video_id>.MP4   cut at [start_timestamp, stop_timestamp)
"""


@dataclass(frozen=True)
class Segment:
    narration_id: str
    participant_id: str
    video_id: str
    start_sec: float
    end_sec: float
    start_frame: int
    stop_frame: int
    narration: str
    verb: str
    verb_class: int
    noun_class: int
    nouns: tuple[str, ...]
    noun_classes: tuple[int, ...]


@dataclass(frozen=True)
class Sentence:
    """One retrieval column: the sentence file's row, with the classes of the test row it names."""

    sentence_id: str  # the narration_id it names
    text: str
    verb_class: int
    noun_classes: tuple[int, ...]
    text_matches_row: bool  # False: the caption is not the named row's narration (see the module docstring)


def seconds(timestamp: str) -> float:
    m = TIMESTAMP.fullmatch(timestamp.strip())
    if m is None or not m[1].isascii() or len(m[1]) > 5 or len(m[3]) > 32:
        raise BadRow("bad time", shown(timestamp))
    value = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    if value > MAX_SECONDS:
        raise BadRow("bad time", shown(timestamp))
    return value


def _literal(text: str, kind: type, name: str) -> tuple:
    """A Python-literal list ("['plate']", "[2]") of `kind`, non-empty; BadRow "bad label"."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, list) or not value or not all(type(v) is kind for v in value):
        raise BadRow("bad label", f"{name}={shown(text)}")
    if kind is int and not all(0 <= v <= MAX_INT for v in value):
        raise BadRow("bad label", f"{name}={shown(text)}")
    return tuple(clean_text(v) for v in value) if kind is str else tuple(value)


def _class(text: str, name: str) -> int:
    return decimal(text, name, reason="bad label")


def _frame(text: str, name: str) -> int:
    return decimal(text, name, reason="bad time")


def _decimal(text: str) -> bool:
    return text.isascii() and text.isdecimal()


def _segment(row: dict) -> Segment:
    start, end = seconds(row["start_timestamp"]), seconds(row["stop_timestamp"])
    if end <= start:
        raise BadRow("empty window", f"{row['start_timestamp']}-{row['stop_timestamp']}")
    if not _decimal(row["start_frame"]) or not _decimal(row["stop_frame"]):
        raise BadRow("bad time", f"frames {shown(row['start_frame'])}-{shown(row['stop_frame'])}")
    narration = clean_text(row["narration"], newlines=True)
    if not narration.strip():
        raise BadRow("empty text", "empty narration")
    return Segment(
        narration_id=check_id(row["narration_id"], "narration_id"),
        participant_id=safe_name(row["participant_id"]),
        video_id=check_id(row["video_id"], "video_id"),
        start_sec=start,
        end_sec=end,
        start_frame=_frame(row["start_frame"], "start_frame"),
        stop_frame=_frame(row["stop_frame"], "stop_frame"),
        narration=narration,
        verb=clean_text(row["verb"]),
        verb_class=_class(row["verb_class"], "verb_class"),
        noun_class=_class(row["noun_class"], "noun_class"),
        nouns=_literal(row["all_nouns"], str, "all_nouns"),
        noun_classes=_literal(row["all_noun_classes"], int, "all_noun_classes"),
    )


def read_segments(path: str) -> list[tuple[str, Segment | RecordFailure]]:
    """(record, segment or failure) per row of the test CSV, in row order (duplicates are failures)."""
    seen: set[str] = set()

    def build(number: int, row: dict) -> Segment:
        segment = _segment(row)
        if segment.narration_id in seen:
            raise BadRow("duplicate id", segment.narration_id)
        seen.add(segment.narration_id)
        return segment

    rows = list(csv_rows(read_text(path), COLUMNS))
    results = row_results(SOURCE, path, rows, build, _narration_id)
    return [
        (where(number, _narration_id(row)), result)
        for (number, row), result in zip(rows, results, strict=True)
    ]


def _narration_id(row) -> str | None:
    return row.get("narration_id") if isinstance(row, dict) else None


def read_sentences(path: str, segments: dict[str, Segment]) -> tuple[list[Sentence], list[RecordFailure]]:
    """The sentence CSV's rows in order; a row naming no usable test segment is an "unknown narration"."""
    seen: set[str] = set()

    def build(number: int, row: dict) -> Sentence:
        sentence_id, text = row["narration_id"], clean_text(row["narration"], newlines=True)
        if not text.strip():
            raise BadRow("empty text", "empty narration")
        if sentence_id not in segments:
            raise BadRow("unknown narration", sentence_id)
        if sentence_id in seen:
            raise BadRow("duplicate id", sentence_id)
        seen.add(sentence_id)
        named = segments[sentence_id]
        return Sentence(sentence_id, text, named.verb_class, named.noun_classes, text == named.narration)

    rows = csv_rows(read_text(path), ("narration_id", "narration"))
    sentences, failures = [], []
    for result in row_results(SOURCE, path, rows, build, _narration_id):
        (failures if isinstance(result, RecordFailure) else sentences).append(result)
    return sentences, failures


def _files(annotations: str | Path) -> tuple[str, str]:
    test, _ = split_path(annotations, TEST_CSV, "retrieval_annotations")
    return test, os.path.join(os.path.dirname(test) or ".", SENTENCE_CSV)


def _load(annotations: str | Path):
    """(test path, sentence path, segment rows, sentences, whole-file and sentence failures)."""
    test, sentence_path = _files(annotations)
    try:
        rows = read_segments(test)
    except SourceFileError as e:
        return test, sentence_path, [], [], [failure(SOURCE, test, "", e.reason, e.detail)]
    segments = {s.narration_id: s for _, s in rows if isinstance(s, Segment)}
    try:
        sentences, failures = read_sentences(sentence_path, segments)
    except SourceFileError as e:
        sentences, failures = [], [failure(SOURCE, sentence_path, "", e.reason, e.detail)]
    return test, sentence_path, rows, sentences, failures


def sentence_set(annotations: str | Path) -> tuple[list[Sentence], list[RecordFailure]]:
    """The retrieval columns (sentence file order) with their classes, and the failures of both files."""
    _, _, rows, sentences, failures = _load(annotations)
    return sentences, [r for _, r in rows if isinstance(r, RecordFailure)] + failures


def own_sentence(segment: Segment, by_text: dict[str, list[Sentence]]) -> str:
    """The sentence of the segment's caption, preferring one with the segment's classes; BadRow otherwise."""
    same_text = by_text.get(segment.narration, [])
    same_classes = [
        s
        for s in same_text
        if (s.verb_class, set(s.noun_classes)) == (segment.verb_class, set(segment.noun_classes))
    ]
    if not same_text:
        raise BadRow("no sentence", f"no sentence reads {segment.narration!r}")
    return (same_classes or same_text)[0].sentence_id


def read(
    annotations: str | Path, videos: str | Path | None = None, *, exists: Exists = fs.exists
) -> Iterator[BenchItem | RecordFailure]:
    """Items (and failures) of the test CSV in row order, then the failures of the sentence CSV."""
    test, sentence_path, rows, sentences, sentence_failures = _load(annotations)
    if not rows and sentence_failures:  # the test CSV itself is unusable
        yield from sentence_failures
        return
    if not sentences:
        yield from sentence_failures
        yield failure(
            SOURCE, test, "", "sentences unavailable", f"{os.path.basename(sentence_path)} is unusable"
        )
        return
    root = os.fspath(videos) if videos is not None else os.path.dirname(test) or "."
    by_text: dict[str, list[Sentence]] = {}
    for s in sentences:
        by_text.setdefault(s.text, []).append(s)
    for record, seg in rows:
        if isinstance(seg, RecordFailure):
            yield seg
            continue

        def build(seg=seg):
            video = VideoRef(f"{seg.participant_id}/videos/{seg.video_id}.MP4", seg.start_sec, seg.end_sec)
            return BenchItem(
                task="epic_mir",
                item_id=seg.narration_id,
                source_file=os.path.basename(test),
                videos=(locate(root, [video], exists),),
                question="",
                answer=own_sentence(seg, by_text),
                metadata={
                    "video_id": seg.video_id,
                    "participant_id": seg.participant_id,
                    "narration": seg.narration,
                    "verb": seg.verb,
                    "verb_class": seg.verb_class,
                    "noun_class": seg.noun_class,
                    "nouns": list(seg.nouns),
                    "noun_classes": list(seg.noun_classes),
                    "start_frame": seg.start_frame,
                    "end_frame": seg.stop_frame,
                },
            )

        yield guarded(SOURCE, test, record, build)
    yield from sentence_failures
