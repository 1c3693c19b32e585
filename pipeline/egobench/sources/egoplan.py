"""EgoPlan-Bench (v1 validation and test) and EgoPlan-Bench2 -> 4-way choice items: the next action, given the
task progress.

The clip is the task's progress up to and including the current observation frame, in frames
[task_start_frame (Bench2) or the first shown step's start_frame (v1), current_observation_frame + 1), turned
into seconds at the frame rate of the video's frame numbering; the observation frame is the clip's last frame,
and the evaluator always samples it last (the question says "my current observation in the last frame"):
- Ego4D: 30 fps (Ego4D canonical videos; EgoPlan's eval seeks the same frame numbers with OpenCV, and
  EgoPlan-Bench2's eval.py cuts the same frame range from the video).
- EpicKitchens (v1 only): videos with a two-digit number (EPIC-55, P01-P31, and P32's Pxx_yy) at 60.0 fps
  exactly: EPIC numbers their frames at 60 fps whatever the camera's rate (on the real v1 validation file, all
  1,437 steps on videos listed in EPIC_100_validation.csv match EPIC's frames, and EPIC's start_frame is
  start_timestamp x 60 within a frame on all 6,748 of its rows past 100 s on these videos, P32's included, also
  for P09_07 at 29.97 fps, P17_02 at 47.95, P18_09 at 90). The EPIC-100 extension videos (Pxx_1yy) are numbered
  at the video's own rate: `epic_fps[video_id]` when given (EPIC_100_video_info.csv's fps), else 50 (what that
  file lists for every one of them).

Steps (task_progress_metadata; `narration_text`, or `narration` as in real v1 item 60): as EgoPlan's own
loader (load_video in ChenYi99/EgoPlan's egoplan_video_processor.py) only the steps that end at or before the
observation frame are shown; the others are left out of the clip and of `progress`, each counted by
`dropped_steps` ("step starts after the observation frame", e.g. real item 2390, or "step ends after the
observation frame"). An item with no step shown (498 good real v1 items have no step, 4 more show none) is
valid: EgoPlan then shows the model the observation frame alone, and so does its clip here (Bench2: from
task_start_frame). A negative observation frame (real item 3244: -26) makes the item bad ("negative
observation frame").

The answer is golden_choice_idx; an `answer` text that is not that choice is an "answer mismatch" failure. The v1
test file's items have neither (hidden for the challenge; they also lack video_source: Ego4D): they become items
without an answer (BenchItem.answer None: predicted, not scored) with ids "test_<sample_id>", so that the
validation and test files can be in one build; the evaluator writes their predictions in the challenge's
submission format (exo2ego_model/eval/submission.py).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from pipeline.core import fs
from pipeline.core.ego4d import FULL_SCALE, ego4d_videos
from pipeline.core.readers import Exists, json_rows, locate, per_file, row_results, split_path
from pipeline.core.records import VideoRef
from pipeline.core.text import clean_text
from pipeline.core.values import BadRow, finite_number, integer, safe_name, shown, text_field
from pipeline.egobench.records import BenchItem
from pipeline.egobench.sources.common import Result, check_id, choice_index, first_of_id, nonempty

SOURCE = "egoplan"
FILE_NAME = "EgoPlan_validation.json"
EGO4D_FPS = 30.0
EPIC55_FPS, EPIC100_FPS = 60.0, 50.0
TEST_PREFIX = "test_"  # item ids of v1 test items (no answer): "test_<sample_id>"
QUESTION = (
    "Considering the progress shown in the video and my current observation in the last frame, "
    "what action should I take next in order to {}?"
)
EGO4D_FOLDERS = ("Ego4D/v1_288p/", "v1_288p/", *(f"Ego4D/{f}" for f in FULL_SCALE), *FULL_SCALE)
EPIC_VIDEO = re.compile(r"P(\d\d)_(\d\d\d?)")
STEP_TEXT = ("narration_text", "narration")  # real v1 item 60 keys some steps "narration"
STARTS_AFTER, ENDS_AFTER = "step starts after the observation frame", "step ends after the observation frame"

LAYOUT = """\
EgoPlan (`egoplan` -> task egoplan, 4-way choice): EgoPlan-Bench v1 validation / test or EgoPlan-Bench2
  annotations: EgoPlan_validation.json (v1, ChenYi99/EgoPlan data/) or its folder, EgoPlan_test.json, or an
  EgoPlan-Bench2 json:
    v1     [{sample_id (int), video_source (EpicKitchens | Ego4D), video_id, task_goal, question, choice_a..d,
             golden_choice_idx (A-D), answer, current_observation_frame, task_progress_metadata
             [{narration_text (or narration), start_frame, stop_frame}]}]
    v1 test the same without video_source (Ego4D), golden_choice_idx and answer: items without an answer, ids
           test_<sample_id>
    Bench2 the same without video_source/video_id/question, plus domain, scenario, task_start_frame;
           sample_id "<Ego4D video uid>_<n>";
           question = "Considering the progress ... in order to <task_goal>?" (EgoPlan-Bench2's eval.py)
  clip: frames [task_start_frame or the first shown step's start_frame, current_observation_frame] (inclusive;
        steps ending after the observation are not shown; no step shown: the observation frame alone) in
        seconds at 30 fps (Ego4D) or EPIC's frame numbering (60 for Pxx_yy; Pxx_1yy: epic_fps, else 50)
  videos root: the folder holding Ego4D/ and EPIC-KITCHENS/ (EgoPlan's README trees); default: the json's
    Ego4D:        Ego4D/v1_288p/<uid>.mp4, v1_288p/<uid>.mp4, then [Ego4D/]v2/full_scale/<uid>.mp4,
                  [Ego4D/]full_scale/<uid>.mp4, [Ego4D/]<uid>.mp4
    EpicKitchens: EPIC-KITCHENS/<Pxx>/videos/<video_id>.MP4, <Pxx>/videos/<video_id>.MP4
"""


def epic_frame_rate(video_id: str, table: Mapping[str, float] | None = None) -> float:
    """The rate of an EPIC video's frame numbers (see the module docstring): 60.0 for a two-digit video number
    whatever the table says (those frames are numbered at 60 fps, not at the camera's rate), else the table's,
    else 50."""
    m = EPIC_VIDEO.fullmatch(video_id)
    if m is None:
        raise BadRow("bad id", f"{shown(video_id)} is not an EPIC-KITCHENS video id")
    if len(m[2]) == 2:
        return EPIC55_FPS
    if table and video_id in table:
        return float(table[video_id])
    return EPIC100_FPS


def _frame(value, name: str, reason: str) -> int:
    """A frame number (an integer, possibly negative: the caller says what a negative one means)."""
    number = finite_number(value) if not isinstance(value, str) else None
    if number is None or number != int(number):
        raise BadRow(reason, f"{name}={shown(value)} is not an integer")
    return int(number)


def _steps(row: dict) -> list[tuple[str, int, int]]:
    """Every annotated step (text, start, stop) in the file's order; BadRow "bad progress" on a broken one."""
    steps = row["task_progress_metadata"]
    if not isinstance(steps, list):
        raise BadRow("bad progress", "task_progress_metadata is not a list")
    out = []
    for step in steps:
        key = next((k for k in STEP_TEXT if isinstance(step, dict) and k in step), None)
        if key is None or not isinstance(step[key], str):
            raise BadRow("bad progress", repr(step)[:200])
        start, stop = (
            integer(step.get("start_frame"), "start_frame"),
            integer(step.get("stop_frame"), "stop_frame"),
        )
        if stop < start:
            raise BadRow("bad progress", f"{start}-{stop}")
        out.append((clean_text(step[key]), start, stop))
    return out


def _split_steps(
    steps: list[tuple[str, int, int]], observation: int
) -> tuple[list[tuple[str, int, int]], Counter]:
    """(the steps shown: those ending at or before the observation frame, as EgoPlan's load_video filters them;
    the others counted by reason)."""
    shown_steps, dropped = [], Counter()
    for step in steps:
        if step[2] <= observation:
            shown_steps.append(step)
        else:
            dropped[STARTS_AFTER if step[1] > observation else ENDS_AFTER] += 1
    return shown_steps, dropped


def dropped_steps(row: dict) -> Counter:
    """reason -> steps of a v1 / Bench2 row left out of its item (not shown: they end after the observation
    frame). Counter() for a row that is not a usable item's."""
    try:
        observation = _frame(row["current_observation_frame"], "current_observation_frame", "bad time")
        return _split_steps(_steps(row), observation)[1]
    except (BadRow, KeyError, TypeError):
        return Counter()


def _answer(row: dict, options: tuple[str, ...]) -> int | None:
    """golden_choice_idx (its `answer` text, when given, must be that choice); None when the row has neither
    (the v1 test file: answers hidden for the challenge)."""
    if "golden_choice_idx" not in row:
        if "answer" in row:
            raise BadRow("bad answer", "an answer text without golden_choice_idx")
        return None
    answer = choice_index(row["golden_choice_idx"], len(options))
    if "answer" in row and text_field(row, "answer").strip() != options[answer].strip():
        raise BadRow("answer mismatch", f"answer {row['answer']!r} is not choice {row['golden_choice_idx']}")
    return answer


def _item(row: dict, path: str, root: str, exists: Exists, epic_fps) -> BenchItem:
    sample_id = check_id(row["sample_id"], "sample_id")
    goal = text_field(row, "task_goal")
    options = tuple(text_field(row, f"choice_{c}") for c in "abcd")
    question = text_field(row, "question") if "question" in row else QUESTION.format(goal)
    nonempty(goal, question, *options)
    answer = _answer(row, options)
    source, domain, scenario = (
        row.get(k, d) for k, d in (("video_source", "Ego4D"), ("domain", ""), ("scenario", ""))
    )
    if not all(isinstance(v, str) for v in (source, domain, scenario)):
        raise TypeError("video_source, domain and scenario must be strings")
    domain, scenario = clean_text(domain), clean_text(scenario)
    video_id = row["video_id"] if "video_id" in row else sample_id.rpartition("_")[0]
    video_id = safe_name(check_id(video_id, "video_id"))
    observation = _frame(row["current_observation_frame"], "current_observation_frame", "bad time")
    if observation < 0:
        raise BadRow(
            "negative observation frame",
            f"current_observation_frame {observation} is before the video's start",
        )
    steps, _ = _split_steps(_steps(row), observation)
    if "task_start_frame" in row:
        start = integer(row["task_start_frame"], "task_start_frame")
    else:
        start = min((s for _, s, _ in steps), default=observation)
    if start > observation:
        raise BadRow("bad time", f"task starts at {start}, after the observation frame {observation}")
    if source == "Ego4D":
        fps, names = EGO4D_FPS, [ref.path for ref in ego4d_videos(video_id, folders=EGO4D_FOLDERS)]
    elif source == "EpicKitchens":
        fps = epic_frame_rate(video_id, epic_fps)
        names = [f"{prefix}{video_id[:3]}/videos/{video_id}.MP4" for prefix in ("EPIC-KITCHENS/", "")]
    else:
        raise BadRow("unknown video source", shown(source))
    candidates = [VideoRef(name, start / fps, (observation + 1) / fps) for name in names]
    v1_test = answer is None and "task_start_frame" not in row
    return BenchItem(
        task="egoplan",
        item_id=check_id(TEST_PREFIX + sample_id) if v1_test else sample_id,
        source_file=os.path.basename(path),
        videos=(locate(root, candidates, exists),),
        question=question,
        options=options,
        answer=answer,
        metadata={
            "video_id": video_id,
            "video_source": source,
            "task_goal": goal,
            "fps": fps,
            "start_frame": start,
            "end_frame": observation + 1,
            "domain": domain,
            "scenario": scenario,
            "progress": [s[0] for s in steps],
            "progress_start_frames": [s[1] for s in steps],
            "progress_stop_frames": [s[2] for s in steps],
        },
    )


def _rows(path: str, root: str, exists: Exists, epic_fps) -> Result:
    seen: set = set()

    def build(number: int, row) -> BenchItem:
        return first_of_id(_item(row, path, root, exists, epic_fps), seen)

    yield from row_results(SOURCE, path, json_rows(path), build, lambda row: row.get("sample_id"))


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = fs.exists,
    epic_fps: Mapping[str, float] | None = None,
) -> Result:
    """Items of the EgoPlan json in row order."""
    path, folder = split_path(annotations, FILE_NAME)
    root = os.fspath(videos) if videos is not None else folder
    yield from per_file(SOURCE, path, lambda: _rows(path, root, exists, epic_fps))
