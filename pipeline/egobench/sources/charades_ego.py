"""Charades-Ego -> one multilabel item per first-person video: its positive classes among the 157 Charades
classes.

A video whose action list is empty is kept, with no positive class (keep_unlabelled=True, the default): the
test set is the whole CSV, and the usual Charades mAP (EgoVLP's charades_map) gives such videos -inf for every
class, so they rank last everywhere and change no AP. keep_unlabelled=False makes them "no actions" failures
instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipeline.core import fs
from pipeline.core.readers import (
    Exists,
    SourceFileError,
    csv_rows,
    failure,
    file_or_folder,
    locate,
    per_file,
    read_text,
    row_results,
    text_lines,
)
from pipeline.core.records import RecordFailure, VideoRef
from pipeline.core.text import clean_text
from pipeline.core.values import BadRow, seconds, shown
from pipeline.egobench.records import BenchItem
from pipeline.egobench.sources.common import Result, check_id, first_of_id

SOURCE = "charades_ego"
CSV_NAME = "CharadesEgo_v1_test_only1st.csv"
CLASSES_NAME = "Charades_v1_classes.txt"
CLASS_LINE = re.compile(r"c(\d{3}) (.*)")
ACTION = re.compile(r"c(\d{3}) (\S+) (\S+)")

LAYOUT = """\
Charades-Ego (`charades_ego` -> task charades_ego, multilabel over 157 classes)
  annotations: the CharadesEgo/ folder of CharadesEgo.zip, or the download root holding it, or one CSV file:
    CharadesEgo_v1_test_only1st.csv   id,subject,scene,quality,relevance,verified,script,objects,descriptions,
                                      actions,length: id `<5 chars>EGO`,
                                      actions `c<NNN> <start_s> <end_s>;...`,
                                      length in seconds (only id, actions and length are read)
    Charades_v1_classes.txt           157 lines `c<NNN> <label>` (label = the text after the 5-character id,
                                      trailing spaces dropped), read from the CSV's folder (or classes=<path>)
  options = the 157 labels in class order; answer = the sorted distinct classes of the video's actions
  videos root: default the download root (the folder above CharadesEgo/, else the annotation folder)
    1. CharadesEgo_v1_480/<id>.mp4    (CharadesEgo_v1_480.tar)   2. <id>.mp4      the whole video
"""


def read_classes(path: str) -> tuple[tuple[str, ...], list[RecordFailure]]:
    """Charades_v1_classes.txt -> the labels in class order (c000 first). Lines must number the classes
    c000, c001, ... in order; any bad line is a failure (and the caller cannot use the list)."""
    labels: list[str] = []
    failures: list[RecordFailure] = []

    def label(number: int, line: str) -> None:
        m = CLASS_LINE.fullmatch(line.rstrip())
        if m is None or not clean_text(m[2]).strip():
            raise BadRow("schema violation", shown(line))
        if int(m[1]) != len(labels) + len(failures):
            raise BadRow("class out of order", f"c{m[1]}")
        labels.append(clean_text(m[2]).strip())

    for result in row_results(SOURCE, path, text_lines(path), label, unit="line"):
        if result is not None:
            failures.append(result)
    return tuple(labels), failures


def parse_actions(text: str, n_classes: int) -> list[tuple[int, float, float]]:
    """`c127 18.93 24.09;c107 0.0 21.94` -> [(127, 18.93, 24.09), ...]; empty pieces are skipped."""
    actions = []
    for piece in text.split(";"):
        if not piece.strip():
            continue
        m = ACTION.fullmatch(piece.strip())
        try:
            times = (
                (seconds(m[2], "start", negative=True), seconds(m[3], "end", negative=True)) if m else None
            )
        except BadRow:
            times = None
        if m is None or times is None:
            raise BadRow("bad action", shown(piece))
        if int(m[1]) >= n_classes:
            raise BadRow("unknown label", f"c{m[1]} (there are {n_classes} classes)")
        actions.append((int(m[1]), *times))
    return actions


def _rows(path: str, labels: tuple[str, ...], root: str, exists: Exists, keep_unlabelled: bool) -> Result:
    seen: set = set()

    def build(number: int, row: dict) -> BenchItem:
        video_id = check_id(row["id"], "id")
        if not video_id.endswith("EGO"):
            raise BadRow("not egocentric", f"{video_id} does not end in EGO")
        try:
            length = seconds(row["length"], "length")
        except BadRow:
            length = 0.0
        if length <= 0:
            raise BadRow("bad time", f"length {shown(row['length'])}")
        actions = parse_actions(row["actions"], len(labels))
        if not actions and not keep_unlabelled:
            raise BadRow("no actions", video_id)
        candidates = [VideoRef(f"CharadesEgo_v1_480/{video_id}.mp4"), VideoRef(f"{video_id}.mp4")]
        item = BenchItem(
            task="charades_ego",
            item_id=video_id,
            source_file=os.path.basename(path),
            videos=(locate(root, candidates, exists),),
            question="",
            options=labels,
            answer=tuple(sorted({a[0] for a in actions})),
            metadata={"video_id": video_id, "length_sec": length, "n_actions": len(actions)},
        )
        return first_of_id(item, seen)

    rows = csv_rows(read_text(path), ("id", "actions", "length"))
    yield from row_results(SOURCE, path, rows, build, lambda row: row.get("id"))


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = fs.exists,
    classes: str | Path | None = None,
    keep_unlabelled: bool = True,
) -> Result:
    """The failures of the classes file, then one item per CSV row in row order."""
    given, folder, download_root = file_or_folder(annotations, "CharadesEgo")
    path = given or os.path.join(folder, CSV_NAME)
    root = os.fspath(videos) if videos is not None else download_root
    classes_path = os.fspath(classes) if classes is not None else os.path.join(folder, CLASSES_NAME)
    try:
        labels, class_failures = read_classes(classes_path)
    except SourceFileError as e:
        labels, class_failures = (), [failure(SOURCE, classes_path, "", e.reason, e.detail)]
    yield from class_failures
    if class_failures or not labels:
        yield failure(
            SOURCE, path, "", "classes unavailable", f"{os.path.basename(classes_path)} is unusable"
        )
        return
    yield from per_file(SOURCE, path, lambda: _rows(path, labels, root, exists, keep_unlabelled))
