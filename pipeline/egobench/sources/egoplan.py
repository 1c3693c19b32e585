"""EgoPlan-Bench (v1 validation) and EgoPlan-Bench2 -> 4-way choice items: the next action, given the task
progress.

The clip is the task's progress up to and including the current observation frame: [task_start_frame (Bench2)
or the first progress action's start_frame (v1), current_observation_frame + 1) in frames, turned into seconds
at the frame rate of the video's frame numbering:
- Ego4D: 30 fps (Ego4D canonical videos; EgoPlan-Bench2's eval.py cuts the same frame range from the video).
- EpicKitchens (v1 only): `epic_fps[video_id]` when given, else 59.94 for EPIC-55 video ids (Pxx_yy) and 50
  for the EPIC-100 extension (Pxx_yyy). EPIC numbers the frames of EPIC-55 videos at ~60 fps whatever the
  camera's rate (EPIC_100_validation.csv: stop_frame / stop time ~ 60 for P09_07 at 29.97, P17_02 at 47.95,
  P18_09 at 90), so EPIC_100_video_info.csv's native fps is NOT the right table for those.

The answer is golden_choice_idx; an `answer` text that is not that choice is an "answer mismatch" failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from pipeline.core import fs
from pipeline.core.ego4d import FULL_SCALE, ego4d_videos
from pipeline.core.readers import Exists, json_rows, locate, per_file, row_results, split_path
from pipeline.core.records import VideoRef
from pipeline.core.text import clean_text
from pipeline.core.values import BadRow, integer, safe_name, shown, text_field
from pipeline.egobench.records import BenchItem
from pipeline.egobench.sources.common import Result, check_id, choice_index, first_of_id, nonempty

SOURCE = "egoplan"
FILE_NAME = "EgoPlan_validation.json"
EGO4D_FPS = 30.0
EPIC55_FPS, EPIC100_FPS = 60000 / 1001, 50.0
QUESTION = (
    "Considering the progress shown in the video and my current observation in the last frame, "
    "what action should I take next in order to {}?"
)
EGO4D_FOLDERS = ("Ego4D/v1_288p/", "v1_288p/", *(f"Ego4D/{f}" for f in FULL_SCALE), *FULL_SCALE)
EPIC_VIDEO = re.compile(r"(P\d\d)_(\d+)")

LAYOUT = """\
EgoPlan (`egoplan` -> task egoplan, 4-way choice): EgoPlan-Bench v1 validation or EgoPlan-Bench2
  annotations: EgoPlan_validation.json (v1, ChenYi99/EgoPlan data/) or its folder, or an EgoPlan-Bench2 json:
    v1     [{sample_id (int), video_source (EpicKitchens | Ego4D), video_id, task_goal, question, choice_a..d,
             golden_choice_idx (A-D), answer, current_observation_frame, task_progress_metadata
             [{narration_text, start_frame, stop_frame}]}]
    Bench2 the same without video_source/video_id/question, plus domain, scenario, task_start_frame;
           sample_id "<Ego4D video uid>_<n>";
           question = "Considering the progress ... in order to <task_goal>?" (EgoPlan-Bench2's eval.py)
  clip: frames [task_start_frame or the first progress start_frame, current_observation_frame] (inclusive)
        in seconds at 30 fps (Ego4D) or the EPIC frame-numbering rate (epic_fps: 59.94 EPIC-55, 50 extension)
  videos root: the folder holding Ego4D/ and EPIC-KITCHENS/ (EgoPlan's README trees); default: the json's
    Ego4D:        Ego4D/v1_288p/<uid>.mp4, v1_288p/<uid>.mp4, then [Ego4D/]v2/full_scale/<uid>.mp4,
                  [Ego4D/]full_scale/<uid>.mp4, [Ego4D/]<uid>.mp4
    EpicKitchens: EPIC-KITCHENS/<Pxx>/videos/<video_id>.MP4, <Pxx>/videos/<video_id>.MP4
"""


def epic_frame_rate(video_id: str, table: Mapping[str, float] | None = None) -> float:
    """The rate of an EPIC video's frame numbers (see the module docstring)."""
    m = EPIC_VIDEO.fullmatch(video_id)
    if m is None:
        raise BadRow("bad id", f"{shown(video_id)} is not an EPIC-KITCHENS video id")
    if table and video_id in table:
        return float(table[video_id])
    return EPIC55_FPS if len(m[2]) == 2 else EPIC100_FPS


def _progress(row: dict) -> list[tuple[str, int, int]]:
    steps = row["task_progress_metadata"]
    if not isinstance(steps, list):
        raise BadRow("bad progress", "task_progress_metadata is not a list")
    out = []
    for step in steps:
        if not isinstance(step, dict) or not isinstance(step.get("narration_text"), str):
            raise BadRow("bad progress", repr(step)[:200])
        start, stop = (
            integer(step.get("start_frame"), "start_frame"),
            integer(step.get("stop_frame"), "stop_frame"),
        )
        if stop < start:
            raise BadRow("bad progress", f"{start}-{stop}")
        out.append((clean_text(step["narration_text"]), start, stop))
    return out


def _item(row: dict, path: str, root: str, exists: Exists, epic_fps) -> BenchItem:
    sample_id = check_id(row["sample_id"], "sample_id")
    goal = text_field(row, "task_goal")
    options = tuple(text_field(row, f"choice_{c}") for c in "abcd")
    question = text_field(row, "question") if "question" in row else QUESTION.format(goal)
    nonempty(goal, question, *options)
    answer = choice_index(row["golden_choice_idx"], len(options))
    if text_field(row, "answer").strip() != options[answer].strip():
        raise BadRow("answer mismatch", f"answer {row['answer']!r} is not choice {row['golden_choice_idx']}")
    source, domain, scenario = (
        row.get(k, d) for k, d in (("video_source", "Ego4D"), ("domain", ""), ("scenario", ""))
    )
    if not all(isinstance(v, str) for v in (source, domain, scenario)):
        raise TypeError("video_source, domain and scenario must be strings")
    domain, scenario = clean_text(domain), clean_text(scenario)
    video_id = row["video_id"] if "video_id" in row else sample_id.rpartition("_")[0]
    video_id = safe_name(check_id(video_id, "video_id"))
    steps = _progress(row)
    observation = integer(row["current_observation_frame"], "current_observation_frame")
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
    return BenchItem(
        task="egoplan",
        item_id=sample_id,
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
