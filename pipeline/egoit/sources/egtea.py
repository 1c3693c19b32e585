"""EGTEA Gaze+ action clips -> action-recognition records.

The three official splits are alternative train/test partitions of the same 10,321 clips (checked on the
official release: train+test of each split list the same clip names, and the test sets are disjoint), so one
split is read at a time; reading all three would repeat every clip three times.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipeline.egoit.records import SourceRecord, VideoRef
from pipeline.egoit.sources.common import (
    Exists,
    ReadResult,
    SourceFileError,
    annotation_folder,
    failure,
    first_existing,
    read_text,
)

SOURCE = "egtea"

LAYOUT = """\
EGTEA Gaze+ (`egtea`)
  annotations: the `action_annotation/` folder of the official action_annotation.zip, or the download root
               holding it, or one split file (its index files are read from the same folder):
                 train_split<N>.txt, test_split<N>.txt   N = 1 (default), 2 or 3: one partition at a time
                 action_idx.txt, verb_idx.txt, noun_idx.txt   1-based ids
               split line: `<clip> <action_id> <verb_id> <noun_id> [<noun_id> [<noun_id>]]`
  videos root: default the download root (the folder above `action_annotation/`, else the given folder)
    1. cropped_clips/<session>/<clip>.mp4     official trimmed clips (video_clips.tar); the whole file
    2. videos/<session>.mp4                   raw session video (video_links.txt), cut at
                                              [start_ms / 1000, end_ms / 1000) s from the clip name
  clip = <participant>-<recipe-session>-<start_ms>-<end_ms>-F<start frame>-F<end frame>,
  e.g. P21-R04-ContinentalBreakfast-291175-294945-F006979-F007088 (session P21-R04-ContinentalBreakfast)
"""

CLIP_NAME = re.compile(
    r"(?P<session>[A-Za-z]+\d+-R\d+-[A-Za-z]+)-(?P<start_ms>\d+)-(?P<end_ms>\d+)-F(?P<start_frame>\d+)-F(?P<end_frame>\d+)"
)
SPLIT_FILE = re.compile(r"(train|test)_split\d\.txt")
INDEX_FILES = ("action_idx.txt", "verb_idx.txt", "noun_idx.txt")


def _read_index(path: str, failures: list) -> dict[int, str]:
    """`<name> <id>` lines ("Turn on 5") -> {id: name}; bad lines become failures, blank lines are skipped."""
    index: dict[int, str] = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        name, _, ident = line.strip().rpartition(" ")  # names may hold single spaces ("Turn on"), ids never
        if not name.strip() or not ident.isdecimal() or int(ident) < 1:
            failures.append(failure(SOURCE, path, f"line {number}", "schema violation", repr(line)))
        elif int(ident) in index:
            failures.append(failure(SOURCE, path, f"line {number}", "duplicate id", ident))
        else:
            index[int(ident)] = name.strip()
    return index


def _read_actions(folder: str, failures: list) -> dict[int, tuple[str, str, int, list[str], list[int]]] | None:
    """action id -> (action text, verb, verb id, nouns, noun ids), resolved through verb_idx / noun_idx.
    None when an index file is missing or unreadable (then no split row can be checked)."""
    indexes = []
    for name in INDEX_FILES:
        try:
            indexes.append(_read_index(os.path.join(folder, name), failures))
        except SourceFileError as e:
            failures.append(failure(SOURCE, name, "", e.reason, e.detail))
    if len(indexes) < len(INDEX_FILES):
        return None
    action_names, verb_names, noun_names = indexes
    verb_ids = {name: i for i, name in verb_names.items()}
    noun_ids = {name: i for i, name in noun_names.items()}
    actions = {}
    for action_id, text in action_names.items():
        verb, _, noun_text = text.rpartition(" ")  # "Pour oil,oil_container,pan": nouns never contain spaces
        nouns = noun_text.split(",")
        if verb not in verb_ids or any(n not in noun_ids for n in nouns):
            failures.append(failure(SOURCE, "action_idx.txt", f"id {action_id}", "unknown label", text))
            continue
        actions[action_id] = (text, verb, verb_ids[verb], nouns, [noun_ids[n] for n in nouns])
    return actions


def _split_records(path: str, split: str, actions: dict, root: str, exists: Exists, seen: set) -> ReadResult:
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:  # blank lines are not rows
            continue
        where = f"line {number} {fields[0]}"
        if not 4 <= len(fields) <= 6 or not all(f.isdecimal() for f in fields[1:]):
            yield failure(SOURCE, path, where, "schema violation", f"{len(fields)} fields: {line.strip()!r}")
            continue
        clip = fields[0]
        action_id, verb_id, *noun_ids = (int(f) for f in fields[1:])
        name = CLIP_NAME.fullmatch(clip)
        if name is None:
            yield failure(SOURCE, path, where, "bad clip name", clip)
            continue
        start_ms, end_ms = int(name["start_ms"]), int(name["end_ms"])
        if end_ms <= start_ms:
            yield failure(SOURCE, path, where, "empty window", f"{start_ms}-{end_ms} ms")
            continue
        if action_id not in actions:
            yield failure(SOURCE, path, where, "unknown label", f"action id {action_id}")
            continue
        action, verb, want_verb, nouns, want_nouns = actions[action_id]
        if (verb_id, noun_ids) != (want_verb, want_nouns):
            detail = f"verb {verb_id} nouns {noun_ids}; action {action_id} {action!r} is {want_verb} {want_nouns}"
            yield failure(SOURCE, path, where, "label mismatch", detail)
            continue
        if clip in seen:
            yield failure(SOURCE, path, where, "duplicate id", clip)
            continue
        session = name["session"]
        candidates = [
            VideoRef(f"cropped_clips/{session}/{clip}.mp4"),
            VideoRef(f"videos/{session}.mp4", start_ms / 1000, end_ms / 1000),
        ]
        video = first_existing(root, candidates, exists)
        if video is None:
            yield failure(SOURCE, path, where, "video not found", " or ".join(c.path for c in candidates))
            continue
        seen.add(clip)
        yield SourceRecord(
            source=SOURCE,
            record_id=clip,
            source_file=os.path.basename(path),
            source_split=split,
            video_id=session,
            video=video,
            task="action_recognition",
            fields={
                "verb": verb,
                "nouns": nouns,
                "action": action,
                "action_id": action_id,
                "verb_id": verb_id,
                "noun_ids": noun_ids,
                "session": session,
                "start_ms": start_ms,
                "end_ms": end_ms,
            },
        )


def read(
    annotations: str | Path, videos: str | Path | None = None, *, exists: Exists = os.path.exists, split: int = 1
) -> ReadResult:
    """Records of train_split<split>.txt then test_split<split>.txt (or only the split file given)."""
    if split not in (1, 2, 3):
        raise ValueError(f"EGTEA has splits 1-3, not {split}")
    if os.path.isfile(annotations):
        split_files = [os.fspath(annotations)]
        folder, root = annotation_folder(os.path.dirname(split_files[0]) or ".", "action_annotation")
    else:
        folder, root = annotation_folder(annotations, "action_annotation")
        split_files = [os.path.join(folder, f"{part}_split{split}.txt") for part in ("train", "test")]
    root = os.fspath(videos) if videos is not None else root
    index_failures: list = []
    actions = _read_actions(folder, index_failures)
    yield from index_failures
    seen: set[str] = set()
    for path in split_files:
        if actions is None:
            yield failure(SOURCE, path, "", "index unavailable", "an index file could not be read")
            continue
        part = SPLIT_FILE.fullmatch(os.path.basename(path))
        try:
            yield from _split_records(path, part[1] if part else "", actions, root, exists, seen)
        except SourceFileError as e:
            yield failure(SOURCE, path, "", e.reason, e.detail)
