"""The records every EgoIT source reader produces, and the items the converter makes of them.

    reader (one per source)      annotation files -> SourceRecord | RecordFailure      (pipeline/egoit/sources/)
    converter                    SourceRecord -> EgoITItem(s): first-person conversation (pipeline/egoit/convert.py)
    the Beam job                 items -> dedup -> mix -> clips cut by the core -> shards + egoit.json

Readers are pure functions over the annotation files (no Beam, no decoding): every row of every file ends up
either as a SourceRecord or as a RecordFailure with a reason, so the tests can count both on the real files.
VideoRef and RecordFailure are the core's (pipeline/core/records.py), shared with EgoBench.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.keys import safe_key
from pipeline.core.records import RecordFailure, VideoRef

__all__ = [
    "SOURCES",
    "TASKS",
    "EgoITItem",
    "ReadResult",
    "RecordFailure",
    "SourceRecord",
    "Turn",
    "VideoRef",
    "item_key",
]

SOURCES = ("egtea", "ssv2", "egotimeqa", "openeqa", "egoexolearn")
TASKS = ("action_recognition", "open_qa", "multiple_choice", "description")


@dataclass(frozen=True)
class SourceRecord:
    """One usable annotation row.

    fields (by source):
      egtea        verb (str, e.g. "Inspect/Read"), nouns (list[str], e.g. ["trash", "trash_container"]),
                   action (str, "Put trash,trash_container"), action_id / verb_id (int, 1-based),
                   noun_ids (list[int]), session (str), start_ms / end_ms (int)
      ssv2         template (str, with "[something]"), placeholders (list[str]), label (str), class_index (int)
      egotimeqa    question (str), answer (str), wrong_answers (list[str], [] for the open-only variant),
                   moment_start_sec / moment_end_sec (float: the annotated moment, whatever the clip window)
      openeqa      question (str), answer (str), category (str), extra_answers (list[str])
      egoexolearn  narration (str, narration_en as written), scenario (str), view (str: ego | exo)
    """

    source: str  # one of SOURCES
    record_id: str  # unique within the source (used in sample keys and error reports)
    source_file: str  # annotation file name the row came from
    source_split: str  # the source's own split name ("train", "test", "validation", ...; "" if none)
    video_id: str  # the source video the record is cut from (near-duplicate removal works within one video)
    video: VideoRef
    task: str  # the record's base task (one of TASKS)
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Turn:
    speaker: str  # "human" | "gpt" (VideoLLaMA2 / LLaVA naming)
    text: str


@dataclass(frozen=True)
class EgoITItem:
    """One instruction sample: a clip reference and a first-person conversation.

    The first human turn starts with "<video>\\n" (VideoLLaMA2's placeholder); the gpt turns are the answers."""

    id: str  # unique over the whole build; also the sample key (no '.', '/', spaces)
    source: str
    task: str
    split: str  # EgoIT split ("train" | "val")
    video_id: str
    video: VideoRef
    conversations: tuple[Turn, ...]
    metadata: dict[str, Any] = field(
        default_factory=dict
    )  # source fields kept for reference (no None values)


# What a reader yields: every row of every file read as exactly one record or one failure.
ReadResult = Iterator[SourceRecord | RecordFailure]


def item_key(source: str, record_id: str, suffix: str = "") -> str:
    """The id (and sample key) of a record's item: `<source>-<record_id>[-<suffix>]` made key-safe by the core's
    sanitiser (pipeline/core/keys.py). Readers claim these keys (KeyClaims) so that no two records of a
    source share one; the converter names its items with them."""
    return safe_key(f"{source}-{record_id}" + (f"-{suffix}" if suffix else ""))
