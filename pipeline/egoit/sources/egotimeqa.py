"""EgoTimeQA (GroundVQA) -> open-QA records on Ego4D clips, windowed on the answer's moment.

Every record is open QA at base (question + answer); the optional wrong answers are kept so that the converter
can also pose it as multiple choice.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.egoit.records import SourceRecord, VideoRef
from pipeline.egoit.sources.common import (
    BadRow,
    Exists,
    ReadResult,
    SourceFileError,
    UnsafePath,
    annotation_folder,
    failure,
    first_existing,
    read_json,
    safe_name,
    text_field,
    text_list,
    window_seconds,
)

SOURCE = "egotimeqa"
FILE_NAME = "annotations.EgoTimeQA.json"
FPS = 30  # GroundVQA writes moments as frame numbers at 30 fps (int(sec * 30), rescaled to floats on merge)

LAYOUT = """\
EgoTimeQA (`egotimeqa`, GroundVQA)
  annotations: annotations.EgoTimeQA.json (GroundVQA data.zip, data/unified/), or the folder holding it, or a
               folder holding `unified/`: [{video_id (Ego4D clip uid), sample_id, question, answer,
               moment_start_frame, moment_end_frame (float frames at 30 fps from the clip start),
               wrong_answers (optional, 3 distractors)}]
  videos root: the Ego4D download root (the ego4d CLI --output_directory; pass it: the default is the
               annotation folder, which holds no videos)
    1. v2/clips/<clip_uid>.mp4   (ego4d CLI, --datasets clips)
    2. clips/<clip_uid>.mp4
    3. <clip_uid>.mp4
  window: [moment_start_frame / 30 - context_sec (clamped at 0), moment_end_frame / 30 + context_sec),
          or the whole clip with whole_clip=True
"""


def _moment_seconds(item: dict) -> tuple[float, float]:
    """The answer's moment in seconds from the clip start (BadRow "bad time" / "empty window")."""
    frames = item.get("moment_start_frame"), item.get("moment_end_frame")
    if not all(isinstance(f, int | float) and not isinstance(f, bool) for f in frames):
        raise BadRow("bad time", f"moment frames are not JSON numbers: {frames!r}")
    start, end = window_seconds(*frames)
    return start / FPS, end / FPS


def _records(path: str, root: str, exists: Exists, context_sec: float, whole_clip: bool) -> ReadResult:
    seen: set[str] = set()
    for number, item in enumerate(read_json(path, list), start=1):
        sample_id = item.get("sample_id") if isinstance(item, dict) else None
        where = f"row {number}" + (f" {sample_id}" if isinstance(sample_id, str) else "")
        try:
            if not isinstance(item, dict):
                raise TypeError(f"item is {type(item).__name__}")
            sample_id, clip_uid = text_field(item, "sample_id"), text_field(item, "video_id")
            question, answer = text_field(item, "question"), text_field(item, "answer")
            wrong_answers = text_list(item, "wrong_answers")
            video_name = safe_name(clip_uid) + ".mp4"
            moment_start, moment_end = _moment_seconds(item)
        except BadRow as e:
            yield failure(SOURCE, path, where, e.reason, e.detail)
            continue
        except UnsafePath as e:
            yield failure(SOURCE, path, where, "unsafe path", str(e))
            continue
        except (KeyError, TypeError) as e:
            yield failure(SOURCE, path, where, "schema violation", f"{type(e).__name__}: {e}")
            continue
        if not sample_id.strip() or not question.strip() or not answer.strip():
            yield failure(SOURCE, path, where, "empty text", "empty sample_id, question or answer")
            continue
        options = [a.strip().lower() for a in [answer, *wrong_answers]]
        if "" in options or len(set(options)) != len(options):
            yield failure(SOURCE, path, where, "bad wrong answers", "empty, repeated or equal to the answer")
            continue
        if sample_id in seen:
            yield failure(SOURCE, path, where, "duplicate id", sample_id)
            continue
        folders = ("v2/clips/", "clips/", "")
        window = (None, None) if whole_clip else (max(0.0, moment_start - context_sec), moment_end + context_sec)
        candidates = [VideoRef(f"{folder}{video_name}", *window) for folder in folders]
        video = first_existing(root, candidates, exists)
        if video is None:
            yield failure(SOURCE, path, where, "video not found", " or ".join(c.path for c in candidates))
            continue
        seen.add(sample_id)
        yield SourceRecord(
            source=SOURCE,
            record_id=sample_id,
            source_file=os.path.basename(path),
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


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = os.path.exists,
    context_sec: float = 0.0,
    whole_clip: bool = False,
) -> ReadResult:
    """Records of annotations.EgoTimeQA.json in file order."""
    if context_sec < 0:
        raise ValueError(f"context_sec must be >= 0, got {context_sec}")
    if os.path.isfile(annotations):
        path = os.fspath(annotations)
        root = os.path.dirname(path) or "."
    else:
        folder, root = annotation_folder(annotations, "unified")
        path = os.path.join(folder, FILE_NAME)
    root = os.fspath(videos) if videos is not None else root
    try:
        yield from _records(path, root, exists, context_sec, whole_clip)
    except SourceFileError as e:
        yield failure(SOURCE, path, "", e.reason, e.detail)
