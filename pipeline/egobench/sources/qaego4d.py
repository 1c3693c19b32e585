"""QAEgo4D -> open QA (qaego4d_open) and 4-way closed QA (qaego4d_closed) over Ego4D NLQ clips.

The closed form (GroundVQA's QaEgo4D_test_close) poses the answer among 3 wrong answers. GroundVQA shuffles
the four with `random.shuffle` at every evaluation; here the order is a function of (seed, sample_id) through
sha256, so every run and every machine poses the same item the same way, and several seeds can be averaged.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pipeline.core import fs
from pipeline.core.ego4d import CLIPS, ego4d_videos
from pipeline.core.readers import Exists, annotation_folder, failure, json_rows, locate, per_file, row_results
from pipeline.core.values import BadRow, finite_number, shown, text_field, text_list, window_seconds
from pipeline.egobench.records import BenchItem
from pipeline.egobench.sources.common import Result, check_id, first_of_id, nonempty

SOURCE = "qaego4d"
FPS = 30  # moment_*_frame are frame numbers at 30 fps from the clip start (QAEgo4D: clip_start_sec * 30)
N_WRONG = 3

LAYOUT = """\
QAEgo4D (`qaego4d` -> tasks qaego4d_open (free text) and qaego4d_closed (4-way choice))
  annotations: GroundVQA's data/unified/ folder (or the folder above it, or one file):
    annotations.QaEgo4D_<split>.json        open: [{video_id (Ego4D NLQ clip uid), sample_id, question,
                                             answer, moment_start_frame, moment_end_frame (frames at 30 fps
                                             from the clip start)}]
      (or QAEgo4D's own annotations.<split>.json, made by its tools/create_pure_videoqa_json.py)
    annotations.QaEgo4D_<split>_close.json  closed: the same + wrong_answers (3), video_uid, video_start_sec,
                                             video_end_sec (the clip in the Ego4D video)
    split = test (default); a single file is open, or closed when its name contains "close"
  closed options: [answer, *wrong_answers] in the order sorted by sha256("<seed>|<sample_id>|<i>") (seed 0)
  videos root: the Ego4D download root (pass it; the default is the annotation folder)
    1. v2/clips/<clip_uid>.mp4, clips/<clip_uid>.mp4, <clip_uid>.mp4    the whole clip
    2. (closed items with video_uid) v2/full_scale/<video_uid>.mp4, full_scale/..., <video_uid>.mp4 cut at
       [video_start_sec, video_end_sec)
"""


def option_order(sample_id: str, seed: int, n: int = N_WRONG + 1) -> list[int]:
    """A permutation of range(n) fixed by (seed, sample_id): option k is [answer, *wrong][order[k]]."""
    return sorted(range(n), key=lambda i: hashlib.sha256(f"{seed}|{sample_id}|{i}".encode()).hexdigest())


def _moment(row: dict) -> tuple[float, float]:
    frames = row.get("moment_start_frame"), row.get("moment_end_frame")
    if any(finite_number(f) is None or isinstance(f, str) for f in frames):
        raise BadRow("bad time", f"moment frames are not JSON numbers: {shown(frames)}")
    start, end = window_seconds(*frames)
    return start / FPS, end / FPS


def _item(row: dict, path: str, root: str, exists: Exists, closed: bool, split: str, seed: int) -> BenchItem:
    sample_id = check_id(text_field(row, "sample_id", clean=False), "sample_id")
    clip_uid = check_id(text_field(row, "video_id", clean=False), "video_id")
    question, answer = text_field(row, "question"), text_field(row, "answer")
    nonempty(question, answer)
    moment_start, moment_end = _moment(row)
    candidates = ego4d_videos(clip_uid, folders=CLIPS)
    meta = {
        "split": split,
        "video_id": clip_uid,
        "moment_start_sec": moment_start,
        "moment_end_sec": moment_end,
    }
    if not closed:
        return BenchItem(
            task="qaego4d_open",
            item_id=sample_id,
            source_file=os.path.basename(path),
            videos=(locate(root, candidates, exists),),
            question=question,
            answer=answer,
            metadata=meta,
        )
    wrong = text_list(row, "wrong_answers")
    choices = [answer, *wrong]
    folded = [c.strip().lower() for c in choices]
    if len(wrong) != N_WRONG or "" in folded or len(set(folded)) != len(folded):
        raise BadRow(
            "bad wrong answers", f"need {N_WRONG} distinct non-empty wrong answers unlike the answer"
        )
    video_uid = row.get("video_uid")
    if video_uid is not None:
        start, end = window_seconds(row.get("video_start_sec"), row.get("video_end_sec"))
        candidates += ego4d_videos(check_id(video_uid, "video_uid"), start, end)
        meta.update(video_uid=video_uid, source_start_sec=start, source_end_sec=end)
    order = option_order(sample_id, seed)
    meta.update(wrong_answers=wrong, option_order=order, seed=seed)
    return BenchItem(
        task="qaego4d_closed",
        item_id=sample_id,
        source_file=os.path.basename(path),
        videos=(locate(root, candidates, exists),),
        question=question,
        options=tuple(choices[i] for i in order),
        answer=order.index(0),
        metadata=meta,
    )


def _rows(path: str, root: str, exists: Exists, closed: bool, split: str, seed: int) -> Result:
    seen: set = set()

    def build(number: int, row) -> BenchItem:
        return first_of_id(_item(row, path, root, exists, closed, split, seed), seen)

    yield from row_results(SOURCE, path, json_rows(path), build, lambda row: row.get("sample_id"))


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = fs.exists,
    split: str = "test",
    seed: int = 0,
) -> Result:
    """Open items then closed items, each file in row order."""
    if fs.is_file(annotations):
        path = os.fspath(annotations)
        folder = os.path.dirname(path) or "."
        files = [(path, "close" in os.path.basename(path))]
    else:
        folder, _ = annotation_folder(annotations, "unified")
        open_names = [f"annotations.QaEgo4D_{split}.json", f"annotations.{split}.json"]
        found = [os.path.join(folder, n) for n in open_names if fs.is_file(os.path.join(folder, n))]
        closed = os.path.join(folder, f"annotations.QaEgo4D_{split}_close.json")
        files = [(p, False) for p in found[:1]] + ([(closed, True)] if fs.is_file(closed) else [])
        if not files:
            yield failure(SOURCE, open_names[0], "", "missing file", f"no QAEgo4D {split} file in {folder}")
            return
    root = os.fspath(videos) if videos is not None else folder
    for path, closed in files:
        yield from per_file(SOURCE, path, lambda p=path, c=closed: _rows(p, root, exists, c, split, seed))
