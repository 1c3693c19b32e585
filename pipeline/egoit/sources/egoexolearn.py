"""EgoExoLearn fine-grained captions -> description records (a narrated [start_sec, end_sec) window).

The captions come from the association benchmark's CSVs, one per view (ego_train.csv: the learners' egocentric
videos; exo_train.csv: the demonstration videos). Fields are quoted, some contain newlines, and narration_ch is
Chinese, so the file is split by the csv module, never by lines; it is decoded row by row (a byte that is not
UTF-8 costs its row, pipeline/core/readers.py).

Multi-video cells: a few real cells caption two videos at once, one caption per line labelled "Video 1:" /
"Video 2:" (narration_ch: "视频一：" / "视频二："). In exo_train.csv these are 3 of 6,270 rows (rows 3463
8pRbwiLJ, 3464 yCMpB0Mx and 3469 OEz8OyEw in the reader's numbering), all in the first 40 s of one demonstration,
2d79404a-…: in one [start_sec, end_sec) window of that one video_uid, "Video 1" cuts an eggplant while "Video 2"
cuts a potato, each with both hands, so the window shows two demonstrations at once, not one person. The row
names no other video and neither caption alone describes the window (the third cell adds a shared lead sentence,
"Divide the prepared garlic cloves into two parts."), so there is no caption to pick: such a row is a
"multi-video caption" failure, and no EgoIT answer ever says "Video 1:".
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from pipeline.core import fs
from pipeline.core.keys import KeyClaims
from pipeline.core.readers import Exists, csv_rows, locate, per_file, read_text, row_results
from pipeline.core.records import VideoRef
from pipeline.core.text import clean_text
from pipeline.core.values import BadRow, id_field, safe_name, window_seconds
from pipeline.egoit.records import ReadResult, SourceRecord, item_key

SOURCE = "egoexolearn"
DEFAULT_FILES = ("ego_train.csv", "exo_train.csv")
COLUMNS = ("annotation_id", "start_sec", "end_sec", "narration_en", "scenario", "video_uid")

LAYOUT = """\
EgoExoLearn (`egoexolearn`)
  annotations: the folder holding the fine-grained caption CSVs (the EgoExoLearn repo's
               association_benchmark/annotations/), or one such CSV:
                 ego_train.csv, exo_train.csv (default: both; a missing one is a "missing file" failure)
               columns used: annotation_id, start_sec, end_sec (seconds in the video), narration_en,
               scenario, video_uid; the view (ego / exo) is taken from the file name
  videos root: the folder of the downloaded mp4 videos (default: the annotation folder)
    1. <video_uid>.mp4          (the benchmark loaders join <root>/<video_uid>.mp4)
    2. <view>/<video_uid>.mp4   (ego and exo videos in separate sub-folders of one root)
"""

VIEW_FILE = re.compile(r"(ego|exo)_(\w+)\.csv")
# "Video 1:", "video 2 :", "Video one:" in narration_en; "视频一：", "视频2:" in narration_ch
VIDEO_LABEL = re.compile(
    r"\bvideo\s*(?:\d+|one|two|three|four)\s*[:：]|视频\s*[一二三四0-9０-９]+\s*[:：]", re.IGNORECASE
)


def multi_video_labels(*cells: str) -> list[str]:
    """The "Video N:" labels in the caption cells (none for a caption of one video)."""
    return [m[0] for cell in cells for m in VIDEO_LABEL.finditer(cell)]


class _File:
    def __init__(self, path: str, root: str, exists: Exists, claims: KeyClaims):
        self.path, self.root, self.exists, self.claims = path, root, exists, claims
        named = VIEW_FILE.fullmatch(os.path.basename(path))
        self.view, self.split = (named[1], named[2]) if named else ("", "")

    def record(self, number: int, row: dict) -> SourceRecord:
        ident = id_field(row, "annotation_id")
        if not ident.strip():
            raise BadRow("schema violation", "empty annotation_id")
        video_name = safe_name(row["video_uid"]) + ".mp4"
        start, end = window_seconds(row["start_sec"], row["end_sec"])
        narration = clean_text(row["narration_en"], newlines=True)
        if not narration.strip():
            raise BadRow("empty text", "empty narration_en")
        if labels := multi_video_labels(narration, row.get("narration_ch") or ""):
            raise BadRow("multi-video caption", f"captions of several videos at once ({', '.join(map(repr, labels))}),"
                         " none of them alone the window's caption")  # fmt: skip
        keys = [item_key(SOURCE, ident)]
        self.claims.check(ident, keys)
        candidates = [VideoRef(video_name, start, end)]
        if self.view:
            candidates.append(VideoRef(f"{self.view}/{video_name}", start, end))
        video = locate(self.root, candidates, self.exists)
        self.claims.add(ident, keys)
        return SourceRecord(
            source=SOURCE,
            record_id=ident,
            source_file=os.path.basename(self.path),
            source_split=self.split,
            video_id=row["video_uid"],
            video=video,
            task="description",
            fields={"narration": narration, "scenario": clean_text(row["scenario"]), "view": self.view},
        )

    def rows(self) -> ReadResult:
        rows = csv_rows(read_text(self.path), COLUMNS)
        yield from row_results(
            SOURCE, self.path, rows, self.record, lambda row: row.get("annotation_id") or None
        )


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = fs.exists,
    files: Sequence[str] = DEFAULT_FILES,
) -> ReadResult:
    """Records of each caption CSV in `files` order (or of the one CSV given)."""
    if fs.is_file(annotations):
        paths = [os.fspath(annotations)]
        folder = os.path.dirname(paths[0]) or "."
    else:
        folder = os.fspath(annotations)
        paths = [os.path.join(folder, name) for name in files]
    root = os.fspath(videos) if videos is not None else folder
    claims = KeyClaims()
    for path in paths:
        yield from per_file(SOURCE, path, _File(path, root, exists, claims).rows)
