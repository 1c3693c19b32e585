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

from pipeline.egobench.records import BenchItem, RecordFailure, VideoRef
from pipeline.egobench.sources.common import Result, check_id, guarded, locate, per_file, unique, where
from pipeline.egoit.sources.common import (
    BadRow,
    Exists,
    SourceFileError,
    annotation_folder,
    csv_rows,
    failure,
    finite_number,
    read_text,
)

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
    failures = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        m = CLASS_LINE.fullmatch(line.rstrip())
        if m is None or not m[2].strip():
            failures.append(failure(SOURCE, path, f"line {number}", "schema violation", repr(line)))
        elif int(m[1]) != len(labels) + len(failures):
            failures.append(failure(SOURCE, path, f"line {number}", "class out of order", f"c{m[1]}"))
        else:
            labels.append(m[2].strip())
    return tuple(labels), failures


def parse_actions(text: str, n_classes: int) -> list[tuple[int, float, float]]:
    """`c127 18.93 24.09;c107 0.0 21.94` -> [(127, 18.93, 24.09), ...]; empty pieces are skipped."""
    actions = []
    for piece in text.split(";"):
        if not piece.strip():
            continue
        m = ACTION.fullmatch(piece.strip())
        times = (finite_number(m[2]), finite_number(m[3])) if m else (None, None)
        if m is None or None in times:
            raise BadRow("bad action", repr(piece))
        if int(m[1]) >= n_classes:
            raise BadRow("unknown label", f"c{m[1]} (there are {n_classes} classes)")
        actions.append((int(m[1]), *times))
    return actions


def _rows(path: str, labels: tuple[str, ...], root: str, exists: Exists, keep_unlabelled: bool) -> Result:
    seen: set = set()
    for number, row in csv_rows(read_text(path), ("id", "actions", "length")):
        record = where(number, row.get("id"))

        def build(row=row):
            if None in row or None in row.values():
                raise BadRow("schema violation", "not the header's number of fields")
            video_id = check_id(row["id"], "id")
            if not video_id.endswith("EGO"):
                raise BadRow("not egocentric", f"{video_id} does not end in EGO")
            length = finite_number(row["length"])
            if length is None or length <= 0:
                raise BadRow("bad time", f"length {row['length']!r}")
            actions = parse_actions(row["actions"], len(labels))
            if not actions and not keep_unlabelled:
                raise BadRow("no actions", video_id)
            candidates = [VideoRef(f"CharadesEgo_v1_480/{video_id}.mp4"), VideoRef(f"{video_id}.mp4")]
            return BenchItem(
                task="charades_ego",
                item_id=video_id,
                source_file=os.path.basename(path),
                videos=(locate(root, candidates, exists),),
                question="",
                options=labels,
                answer=tuple(sorted({a[0] for a in actions})),
                metadata={"video_id": video_id, "length_sec": length, "n_actions": len(actions)},
            )

        yield unique(guarded(SOURCE, path, record, build), seen, SOURCE, path, record)


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = os.path.exists,
    classes: str | Path | None = None,
    keep_unlabelled: bool = True,
) -> Result:
    """The failures of the classes file, then one item per CSV row in row order."""
    if os.path.isfile(annotations):
        path = os.fspath(annotations)
        folder, download_root = annotation_folder(os.path.dirname(path) or ".", "CharadesEgo")
    else:
        folder, download_root = annotation_folder(annotations, "CharadesEgo")
        path = os.path.join(folder, CSV_NAME)
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
