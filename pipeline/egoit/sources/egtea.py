"""EGTEA Gaze+ action clips -> action-recognition records.

The three official splits are alternative train/test partitions of the same 10,321 clips (checked on the
official release: train+test of each split list the same clip names, and the test sets are disjoint), so one
split is read at a time; reading all three would repeat every clip three times.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipeline.core import fs
from pipeline.core.keys import KeyClaims
from pipeline.core.readers import (
    Exists,
    SourceFileError,
    failure,
    file_or_folder,
    locate,
    per_file,
    row_results,
    text_lines,
)
from pipeline.core.records import VideoRef
from pipeline.core.text import clean_text
from pipeline.core.values import MAX_SECONDS, BadRow, decimal, shown
from pipeline.egoit.records import ReadResult, SourceRecord, item_key

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
MAX_MS = int(MAX_SECONDS * 1000)


def _read_index(path: str, failures: list) -> dict[int, str]:
    """`<name> <id>` lines ("Turn on 5") -> {id: name}; bad lines become failures, blank lines are skipped."""
    index: dict[int, str] = {}

    def entry(number: int, line: str) -> None:
        name, _, ident = line.strip().rpartition(" ")  # names may hold single spaces ("Turn on"), ids never
        name = clean_text(name).strip()
        try:
            key = decimal(ident, "id")
        except BadRow:
            key = 0
        if not name or key < 1:
            raise BadRow("schema violation", shown(line))
        if key in index:
            raise BadRow("duplicate id", ident)
        index[key] = name

    failures.extend(
        r for r in row_results(SOURCE, path, text_lines(path), entry, unit="line") if r is not None
    )
    return index


def _read_actions(
    folder: str, failures: list
) -> dict[int, tuple[str, str, int, list[str], list[int]]] | None:
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


class _Split:
    """The rows of one split file: each a record, or the failure of that line."""

    def __init__(self, path: str, split: str, actions: dict, root: str, exists: Exists, claims: KeyClaims):
        self.path, self.split, self.actions = path, split, actions
        self.root, self.exists, self.claims = root, exists, claims

    def record(self, number: int, line: str) -> SourceRecord:
        fields = line.split()
        if not 4 <= len(fields) <= 6 or not all(f.isascii() and f.isdecimal() for f in fields[1:]):
            raise BadRow("schema violation", f"{len(fields)} fields: {shown(line.strip())}")
        clip = fields[0]
        action_id, verb_id, *noun_ids = (decimal(f, "label id") for f in fields[1:])
        name = CLIP_NAME.fullmatch(clip)
        if name is None:
            raise BadRow("bad clip name", clip)
        start_ms = decimal(name["start_ms"], "start_ms", reason="bad time", maximum=MAX_MS)
        end_ms = decimal(name["end_ms"], "end_ms", reason="bad time", maximum=MAX_MS)
        if end_ms <= start_ms:
            raise BadRow("empty window", f"{start_ms}-{end_ms} ms")
        if action_id not in self.actions:
            raise BadRow("unknown label", f"action id {action_id}")
        action, verb, want_verb, nouns, want_nouns = self.actions[action_id]
        if (verb_id, noun_ids) != (want_verb, want_nouns):
            detail = (
                f"verb {verb_id} nouns {noun_ids}; action {action_id} {action!r} is {want_verb} {want_nouns}"
            )
            raise BadRow("label mismatch", detail)
        keys = [item_key(SOURCE, clip)]
        self.claims.check(clip, keys)
        session = name["session"]
        candidates = [
            VideoRef(f"cropped_clips/{session}/{clip}.mp4"),
            VideoRef(f"videos/{session}.mp4", start_ms / 1000, end_ms / 1000),
        ]
        video = locate(self.root, candidates, self.exists)
        self.claims.add(clip, keys)
        return SourceRecord(
            source=SOURCE,
            record_id=clip,
            source_file=os.path.basename(self.path),
            source_split=self.split,
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

    def rows(self) -> ReadResult:
        lines = text_lines(self.path)
        yield from row_results(SOURCE, self.path, lines, self.record, lambda line: line.split()[0], "line")


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = fs.exists,
    split: int = 1,
) -> ReadResult:
    """Records of train_split<split>.txt then test_split<split>.txt (or only the split file given)."""
    if split not in (1, 2, 3):
        raise ValueError(f"EGTEA has splits 1-3, not {split}")
    given, folder, root = file_or_folder(annotations, "action_annotation")
    split_files = (
        [given] if given else [os.path.join(folder, f"{p}_split{split}.txt") for p in ("train", "test")]
    )
    root = os.fspath(videos) if videos is not None else root
    index_failures: list = []
    actions = _read_actions(folder, index_failures)
    yield from index_failures
    claims = KeyClaims()
    for path in split_files:
        if actions is None:
            yield failure(SOURCE, path, "", "index unavailable", "an index file could not be read")
            continue
        part = SPLIT_FILE.fullmatch(os.path.basename(path))
        yield from per_file(
            SOURCE, path, _Split(path, part[1] if part else "", actions, root, exists, claims).rows
        )
