"""QAEgo4D -> open QA (qaego4d_open) and 4-way closed QA (qaego4d_closed) over Ego4D NLQ clips.

What the model sees is the WHOLE NLQ clip (`video_id`), as GroundVQA and QAEgo4D evaluate it (GroundVQA's
QADataset loads the features of `video_id`, the whole clip); the answer's moment is metadata only (for
grounding metrics). GroundVQA's closed file also carries `video_uid`, `video_start_sec`, `video_end_sec`:
those are the ANSWER MOMENT in full-video seconds (their difference is (moment_end_frame - moment_start_frame)
/ 30 in the record quoted in GroundVQA issue 7), not the clip; cutting the full video there would show the
model exactly the answering moment. The clip's window in the full video is not in QAEgo4D's files (its start
is video_start_sec - moment_start_frame / 30, its length is not given): it comes from Ego4D's NLQ annotations
(nlq_<split>.json: videos[].clips[] {clip_uid, video_start_sec, video_end_sec}), read when present, so a
download with only full-scale videos can still be cut to the clip; without them a missing clip file is
"video not found".

The closed form (GroundVQA's QaEgo4D_test_close) poses the answer among 3 wrong answers. GroundVQA shuffles
the four with `random.shuffle` at every evaluation; here the order is a function of (seed, sample_id) through
sha256, so every run and every machine poses the same item the same way, and several seeds can be averaged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from pipeline.core import fs
from pipeline.core.ego4d import CLIPS, ego4d_videos
from pipeline.core.readers import (
    Exists,
    SourceFileError,
    annotation_folder,
    failure,
    json_rows,
    locate,
    per_file,
    read_json,
    row_results,
)
from pipeline.core.values import BadRow, finite_number, shown, text_field, text_list, window_seconds
from pipeline.egobench.records import BenchItem, RecordFailure
from pipeline.egobench.sources.common import Result, check_id, first_of_id, nonempty

SOURCE = "qaego4d"
FPS = 30  # moment_*_frame are frame numbers at 30 fps from the clip start (QAEgo4D: clip_start_sec * 30)
N_WRONG = 3
NLQ_FILES = ("nlq_train.json", "nlq_val.json", "nlq_test_unannotated.json")  # Ego4D's NLQ annotations
NLQ_FOLDERS = (
    "v2/annotations/",
    "annotations/",
    "",
)  # under the videos root (ego4d CLI --datasets annotations)
CLIP_TOLERANCE_SEC = 1.0  # closed rows: video_start_sec - moment start vs the NLQ clip's video_start_sec

LAYOUT = """\
QAEgo4D (`qaego4d` -> tasks qaego4d_open (free text) and qaego4d_closed (4-way choice))
  annotations: GroundVQA's data/unified/ folder (or the folder above it, or one file):
    annotations.QaEgo4D_<split>.json        open: [{video_id (Ego4D NLQ clip uid), sample_id, question,
                                             answer, moment_start_frame, moment_end_frame (frames at 30 fps
                                             from the clip start)}]
      (or QAEgo4D's own annotations.<split>.json, made by its tools/create_pure_videoqa_json.py)
    annotations.QaEgo4D_<split>_close.json  closed: the same + wrong_answers (3), video_uid, video_start_sec,
                                             video_end_sec (the ANSWER MOMENT in the Ego4D video: metadata)
    split = test (default); a single file is open, or closed when its name contains "close"
  closed options: [answer, *wrong_answers] in the order sorted by sha256("<seed>|<sample_id>|<i>") (seed 0)
  the clip shown: the whole NLQ clip; the answer moment is metadata (moment_start_sec, moment_end_sec)
  videos root: the Ego4D download root (pass it; the default is the annotation folder)
    1. v2/clips/<clip_uid>.mp4, clips/<clip_uid>.mp4, <clip_uid>.mp4    the whole clip
    2. v2/full_scale/<video_uid>.mp4, full_scale/..., <video_uid>.mp4 cut at the clip's [video_start_sec,
       video_end_sec) from Ego4D's NLQ annotations, when they list the clip:
       option nlq (a file or a list), default v2/annotations/, annotations/ or the root of the videos root
       (then the annotation folder): nlq_train.json, nlq_val.json, nlq_test_unannotated.json
       {videos: [{video_uid, clips: [{clip_uid, video_start_sec, video_end_sec}]}]}
       (a closed row whose video_uid or clip start disagrees with them: "clip mismatch")
"""

ClipIndex = dict[str, tuple[str, float, float]]  # clip uid -> (video uid, start, end) in the full video


def option_order(sample_id: str, seed: int, n: int = N_WRONG + 1) -> list[int]:
    """A permutation of range(n) fixed by (seed, sample_id): option k is [answer, *wrong][order[k]]."""
    return sorted(range(n), key=lambda i: hashlib.sha256(f"{seed}|{sample_id}|{i}".encode()).hexdigest())


def nlq_clips(path: str) -> ClipIndex:
    """clip uid -> (video uid, clip start, clip end) of an Ego4D nlq_<split>.json; SourceFileError when its
    shape is not {videos: [{video_uid, clips: [{clip_uid, video_start_sec, video_end_sec}]}]}."""
    data = read_json(path, dict)
    out: ClipIndex = {}
    try:
        for video in data["videos"]:
            for clip in video["clips"]:
                start, end = window_seconds(clip["video_start_sec"], clip["video_end_sec"])
                out[check_id(clip["clip_uid"], "clip_uid")] = (
                    check_id(video["video_uid"], "video_uid"),
                    start,
                    end,
                )
    except (KeyError, TypeError, BadRow) as e:
        raise SourceFileError(
            "bad file", f"{path}: not Ego4D NLQ annotations ({type(e).__name__}: {e})"
        ) from e
    return out


def _clip_index(nlq, folders: Sequence[str]) -> tuple[ClipIndex, list[RecordFailure]]:
    """The NLQ clips of the given files (or of the first folder holding any NLQ_FILES), with failures."""
    if nlq is None:
        paths = []
        for folder in folders:
            for sub in NLQ_FOLDERS:
                paths += [p for n in NLQ_FILES if fs.is_file(p := os.path.join(folder, sub + n))]
            if paths:
                break
    else:
        paths = [os.fspath(nlq)] if isinstance(nlq, str | Path) else [os.fspath(p) for p in nlq]
    index: ClipIndex = {}
    failures = []
    for path in paths:
        try:
            index.update(nlq_clips(path))
        except SourceFileError as e:
            failures.append(failure(SOURCE, path, "", e.reason, e.detail))
    return index, failures


def _moment(row: dict) -> tuple[float, float]:
    frames = row.get("moment_start_frame"), row.get("moment_end_frame")
    if any(finite_number(f) is None or isinstance(f, str) for f in frames):
        raise BadRow("bad time", f"moment frames are not JSON numbers: {shown(frames)}")
    start, end = window_seconds(*frames)
    return start / FPS, end / FPS


def _clip_window(row: dict, clip_uid: str, moment_start: float, index: ClipIndex) -> dict:
    """The clip's window in the full video (from the NLQ index), checked against a closed row's fields."""
    video_uid = row.get("video_uid")
    if video_uid is not None:
        video_uid = check_id(video_uid, "video_uid")
        window_seconds(row.get("video_start_sec"), row.get("video_end_sec"))  # the moment, in video seconds
    known = index.get(clip_uid)
    if known is None:
        return {} if video_uid is None else {"video_uid": video_uid}
    uid, start, end = known
    if video_uid is not None:
        clip_start = row["video_start_sec"] - moment_start
        if uid != video_uid or abs(clip_start - start) > CLIP_TOLERANCE_SEC:
            raise BadRow(
                "clip mismatch",
                f"the row puts clip {clip_uid} at {clip_start:.3f} s in {video_uid}; Ego4D's NLQ annotations "
                f"at {start:.3f} s in {uid}",
            )
    return {"video_uid": uid, "source_start_sec": start, "source_end_sec": end}


def _item(
    row: dict, path: str, root: str, exists: Exists, closed: bool, split: str, seed: int, index: ClipIndex
) -> BenchItem:
    sample_id = check_id(text_field(row, "sample_id", clean=False), "sample_id")
    clip_uid = check_id(text_field(row, "video_id", clean=False), "video_id")
    question, answer = text_field(row, "question"), text_field(row, "answer")
    nonempty(question, answer)
    moment_start, moment_end = _moment(row)
    meta = {
        "split": split,
        "video_id": clip_uid,
        "moment_start_sec": moment_start,
        "moment_end_sec": moment_end,
        **_clip_window(row, clip_uid, moment_start, index),
    }
    candidates = ego4d_videos(clip_uid, folders=CLIPS)  # the whole clip
    if "source_start_sec" in meta:  # the full video cut at the clip (never at the answer moment)
        candidates += ego4d_videos(meta["video_uid"], meta["source_start_sec"], meta["source_end_sec"])
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


def _rows(
    path: str, root: str, exists: Exists, closed: bool, split: str, seed: int, index: ClipIndex
) -> Result:
    seen: set = set()

    def build(number: int, row) -> BenchItem:
        return first_of_id(_item(row, path, root, exists, closed, split, seed, index), seen)

    yield from row_results(SOURCE, path, json_rows(path), build, lambda row: row.get("sample_id"))


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = fs.exists,
    split: str = "test",
    seed: int = 0,
    nlq: str | Path | Sequence[str | Path] | None = None,
) -> Result:
    """Open items then closed items, each file in row order (a bad NLQ annotation file first, as a failure)."""
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
    index, bad = _clip_index(nlq, [root, folder] if root != folder else [root])
    yield from bad
    for path, closed in files:
        yield from per_file(
            SOURCE, path, lambda p=path, c=closed: _rows(p, root, exists, c, split, seed, index)
        )
