"""EgoTimeQA (GroundVQA) -> open-QA records on Ego4D clips, windowed on the answer's moment.

Every record is open QA at base (question + answer); the optional wrong answers are kept so that the converter
can also pose it as multiple choice.

Record ids: in the real file `sample_id` is the clip uid, the same for every QA of a clip (GroundVQA issue 9
quotes a record with sample_id == video_id; its generator writes one QA per narration window, so a clip has
many). The id of a QA is therefore derived from what makes it one: `<clip uid>_<12 hex of sha256(clip uid,
moment frames, question)>` (qa_id). Two rows with the same clip, moment and question (the question compared
with its case and spacing folded) are one QA asked twice: the later one is a "duplicate question" failure that
names the first row, so nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pipeline.core import fs
from pipeline.core.ego4d import CLIPS, ego4d_videos
from pipeline.core.keys import KeyClaims
from pipeline.core.readers import Exists, annotation_folder, json_rows, locate, per_file, row_results
from pipeline.core.values import BadRow, shown, text_field, text_list, window_seconds
from pipeline.egoit.records import ReadResult, SourceRecord, item_key

SOURCE = "egotimeqa"
FILE_NAME = "annotations.EgoTimeQA.json"
FPS = 30  # GroundVQA writes moments as frame numbers at 30 fps (int(sec * 30), rescaled to floats on merge)

LAYOUT = """\
EgoTimeQA (`egotimeqa`, GroundVQA)
  annotations: annotations.EgoTimeQA.json (GroundVQA data.zip, data/unified/), or the folder holding it, or a
               folder holding `unified/`: [{video_id (Ego4D clip uid), sample_id (not used: the clip uid in
               the real file), question, answer, moment_start_frame, moment_end_frame (float frames at
               30 fps from the clip start), wrong_answers (optional, 3 distractors)}]
  record id:   <clip uid>_<12 hex of sha256(clip uid, moment frames, question)>, one per QA
  videos root: the Ego4D download root (the ego4d CLI --output_directory; pass it: the default is the
               annotation folder, which holds no videos)
    1. v2/clips/<clip_uid>.mp4   (ego4d CLI, --datasets clips)
    2. clips/<clip_uid>.mp4
    3. <clip_uid>.mp4
  window: [moment_start_frame / 30 - context_sec (clamped at 0), moment_end_frame / 30 + context_sec),
          or the whole clip with whole_clip=True
"""


def _moment_frames(item: dict) -> tuple[float, float]:
    """The answer's moment in frames at 30 fps from the clip start (BadRow "bad time" / "empty window")."""
    frames = item.get("moment_start_frame"), item.get("moment_end_frame")
    if not all(isinstance(f, int | float) and not isinstance(f, bool) for f in frames):
        raise BadRow("bad time", f"moment frames are not JSON numbers: {frames!r}")
    return window_seconds(*frames)


def qa_id(clip_uid: str, start_frame: float, end_frame: float, question: str) -> str:
    """The record id of one QA: the clip uid and 12 hex digits of sha256 over the clip uid, the moment frames
    (as floats: 300 and 300.0 are one moment) and the question with case and spacing folded."""
    folded = " ".join(question.split()).casefold()
    text = "\n".join((clip_uid, repr(float(start_frame)), repr(float(end_frame)), folded))
    return f"{clip_uid}_{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _row_name(item) -> str | None:
    """The row's name in its failure: its sample_id (in the real file, the clip uid), else its video_id."""
    for key in ("sample_id", "video_id"):
        value = item.get(key) if isinstance(item, dict) else None
        if isinstance(value, str):
            return value
    return None


class _File:
    def __init__(self, path: str, root: str, exists: Exists, context_sec: float, whole_clip: bool):
        self.path, self.root, self.exists = path, root, exists
        self.context_sec, self.whole_clip = context_sec, whole_clip
        self.claims = KeyClaims()
        self.first_row: dict[str, int] = {}  # qa_id -> the row that asked it first

    def record(self, number: int, item) -> SourceRecord:
        if not isinstance(item, dict):
            raise TypeError(f"item is {type(item).__name__}")
        clip_uid = text_field(item, "video_id", clean=False)
        question, answer = text_field(item, "question"), text_field(item, "answer")
        wrong_answers = text_list(item, "wrong_answers")
        ego4d_videos(clip_uid, folders=CLIPS)  # the uid must be a file name
        start_frame, end_frame = _moment_frames(item)
        moment_start, moment_end = start_frame / FPS, end_frame / FPS
        if not question.strip() or not answer.strip():
            raise BadRow("empty text", "empty question or answer")
        options = [a.strip().lower() for a in [answer, *wrong_answers]]
        if "" in options or len(set(options)) != len(options):
            raise BadRow("bad wrong answers", "empty, repeated or equal to the answer")
        record_id = qa_id(clip_uid, start_frame, end_frame, question)
        if record_id in self.first_row:
            raise BadRow("duplicate question", f"{shown(question)} on clip {shown(clip_uid)} frames "
                         f"{start_frame}-{end_frame}: asked before in row {self.first_row[record_id]}")  # fmt: skip
        # the converter also poses a record with wrong answers as multiple choice, under the key <id>-mc
        keys = [item_key(SOURCE, record_id)] + ([item_key(SOURCE, record_id, "mc")] if wrong_answers else [])
        self.claims.check(record_id, keys)
        if self.whole_clip:
            window = (None, None)
        else:
            window = (max(0.0, moment_start - self.context_sec), moment_end + self.context_sec)
        self.first_row[record_id] = number
        video = locate(self.root, ego4d_videos(clip_uid, *window, folders=CLIPS), self.exists)
        self.claims.add(record_id, keys)
        return SourceRecord(
            source=SOURCE,
            record_id=record_id,
            source_file=os.path.basename(self.path),
            source_split="",
            video_id=clip_uid,
            video=video,
            task="open_qa",
            fields={
                "question": question,
                "answer": answer,
                "wrong_answers": wrong_answers,
                # the moment itself (seconds in the clip), also when the window is the whole clip or widened
                "moment_start_sec": moment_start,
                "moment_end_sec": moment_end,
            },
        )

    def rows(self) -> ReadResult:
        yield from row_results(SOURCE, self.path, json_rows(self.path), self.record, _row_name)


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = fs.exists,
    context_sec: float = 0.0,
    whole_clip: bool = False,
) -> ReadResult:
    """Records of annotations.EgoTimeQA.json in file order."""
    if context_sec < 0:
        raise ValueError(f"context_sec must be >= 0, got {context_sec}")
    if fs.is_file(annotations):
        path = os.fspath(annotations)
        root = os.path.dirname(path) or "."
    else:
        folder, root = annotation_folder(annotations, "unified")
        path = os.path.join(folder, FILE_NAME)
    root = os.fspath(videos) if videos is not None else root
    yield from per_file(SOURCE, path, _File(path, root, exists, context_sec, whole_clip).rows)
