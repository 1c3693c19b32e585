"""EgoSchema -> 5-way choice items over 3-minute windows of Ego4D videos.

Only 500 of the 5,031 answers are public (subset_answers.json); the other items are read with answer None, and
`has_answer` false in their JSON, so a run can score the 500 here and submit the rest to the organisers'
server. IG-VLM's EgoSchema.csv (the 500 public questions with the answer as text) is read too: the text is
mapped to its option index and checked against subset_answers.json.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.core import fs
from pipeline.core.ego4d import ego4d_videos
from pipeline.core.readers import (
    Exists,
    SourceFileError,
    csv_rows,
    failure,
    json_rows,
    locate,
    per_file,
    read_json,
    read_text,
    row_results,
)
from pipeline.core.records import RecordFailure, VideoRef
from pipeline.core.text import clean_text
from pipeline.core.values import BadRow, shown, text_field, window_seconds
from pipeline.egobench.records import BenchItem
from pipeline.egobench.sources.common import Result, check_id, first_of_id, nonempty

SOURCE = "egoschema"
QUESTIONS = "questions.json"
ANSWERS = "subset_answers.json"
WINDOWS = "uid_to_ego4d.json"
N_OPTIONS = 5
CSV_COLUMNS = ("video_name", "question_id", "question", "answer", *(f"a{i}" for i in range(N_OPTIONS)))

LAYOUT = """\
EgoSchema (`egoschema` -> task egoschema, 5-way choice)
  annotations: the egoschema/EgoSchema repository folder, or one questions file in it:
    questions.json       [{q_uid, google_drive_id, question, "option 0".."option 4"}]   (5,031 questions)
    subset_answers.json  {q_uid: 0-4}: the 500 public answers; every other item has answer None
                         (JSON has_answer false: score those through the organisers' server)
    uid_to_ego4d.json    {q_uid: {video_uid, starting_sec, ending_sec}}: the 180 s window in the Ego4D video
    EgoSchema.csv        (IG-VLM; questions=EgoSchema.csv or the file) `,video_name,question_id,question,
                         answer,a0..a4`: the 500 public questions, answer as text -> its option index, checked
                         against subset_answers.json
  videos root: default the annotation folder
    1. videos/<q_uid>.mp4              EgoSchema's 3-minute clips (download.py / Kaggle / Drive): whole file
    2. <q_uid>.mp4
    3. v2/full_scale/<video_uid>.mp4   the Ego4D video (ego4d CLI --datasets full_scale), cut at
       [starting_sec, ending_sec) from uid_to_ego4d.json; then full_scale/<video_uid>.mp4, <video_uid>.mp4
    ego4d=True: only the Ego4D candidates (pass the Ego4D download root as the videos root)
"""


def _entries(path: str, build) -> tuple[dict, list[RecordFailure]]:
    """{key: build(key, value)} of a JSON object file, and the failures of the entries build refused."""
    data = read_json(path, dict)
    table, failures = {}, []
    for key, result in zip(data, row_results(SOURCE, path, data.items(), build, unit="key"), strict=True):
        if isinstance(result, RecordFailure):
            failures.append(result)
        else:
            table[key] = result
    return table, failures


def _answer(key: str, value) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < N_OPTIONS:
        return value
    raise BadRow("bad answer", f"{shown(value)} is not an int 0-4")


def _window(key: str, value) -> tuple[str, float, float]:
    if not isinstance(value, dict):
        raise TypeError(f"entry is {type(value).__name__}")
    uid = check_id(text_field(value, "video_uid", clean=False), "video_uid")
    start, end = window_seconds(value["starting_sec"], value["ending_sec"])
    return uid, start, end


def load_answers(path: str) -> tuple[dict[str, int], list[RecordFailure]]:
    """subset_answers.json -> {q_uid: index}; entries that are not an int 0-4 are failures."""
    return _entries(path, _answer)


def load_windows(path: str) -> tuple[dict[str, tuple[str, float, float]], list[RecordFailure]]:
    """uid_to_ego4d.json -> {q_uid: (video_uid, starting_sec, ending_sec)}."""
    return _entries(path, _window)


def _aux(path: str, load) -> tuple[dict, list[RecordFailure]]:
    try:
        return load(path)
    except SourceFileError as e:
        return {}, [failure(SOURCE, path, "", e.reason, e.detail)]


class _Items:
    def __init__(self, path, root, exists, answers, windows, ego4d):
        self.path, self.root, self.exists = path, root, exists
        self.answers, self.windows, self.ego4d = answers, windows, ego4d
        self.seen: set = set()

    def item(self, q_uid, question, options, answer, drive_id) -> BenchItem:
        nonempty(question, *options)
        window = self.windows.get(q_uid)
        candidates = [] if self.ego4d else [VideoRef(f"videos/{q_uid}.mp4"), VideoRef(f"{q_uid}.mp4")]
        if window is not None:
            candidates += ego4d_videos(*window)
        if not candidates:
            raise BadRow("no ego4d window", f"{q_uid} is not in {WINDOWS}")
        uid, start, end = window or ("", -1.0, -1.0)
        item = BenchItem(
            task="egoschema",
            item_id=q_uid,
            source_file=os.path.basename(self.path),
            videos=(locate(self.root, candidates, self.exists),),
            question=question,
            options=tuple(options),
            answer=answer,
            metadata={
                "video_uid": uid,
                "google_drive_id": drive_id,
                "source_start_sec": start,
                "source_end_sec": end,
            },
        )
        return first_of_id(item, self.seen)

    def from_row(self, number: int, row) -> BenchItem:
        q_uid = check_id(text_field(row, "q_uid", clean=False), "q_uid")
        options = [text_field(row, f"option {i}") for i in range(N_OPTIONS)]
        drive_id = row.get("google_drive_id", "")
        question = text_field(row, "question")
        drive_id = clean_text(drive_id) if isinstance(drive_id, str) else ""
        return self.item(q_uid, question, options, self.answers.get(q_uid), drive_id)

    def from_csv_row(self, number: int, row: dict) -> BenchItem:
        q_uid = check_id(row["video_name"], "video_name")
        options = [clean_text(row[f"a{i}"], newlines=True) for i in range(N_OPTIONS)]
        answer = clean_text(row["answer"], newlines=True)
        matches = [i for i, text in enumerate(options) if text.strip() == answer.strip()]
        public = self.answers.get(q_uid)
        if not matches:
            raise BadRow("answer not in options", shown(row["answer"]))
        if public is not None and public not in matches:
            raise BadRow("answer mismatch", f"answer text is option {matches}, {ANSWERS} says {public}")
        if public is None and len(matches) > 1:
            raise BadRow("ambiguous answer", f"answer text is options {matches}")
        question = clean_text(row["question"], newlines=True)
        return self.item(
            q_uid, question, options, matches[0] if public is None else public, row["question_id"]
        )

    def from_json(self) -> Result:
        rows = json_rows(self.path)
        yield from row_results(SOURCE, self.path, rows, self.from_row, lambda row: row.get("q_uid"))

    def from_csv(self) -> Result:
        rows = csv_rows(read_text(self.path), CSV_COLUMNS)
        yield from row_results(SOURCE, self.path, rows, self.from_csv_row, lambda row: row.get("video_name"))


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = fs.exists,
    questions: str | None = None,
    ego4d: bool = False,
) -> Result:
    """The failures of subset_answers.json and uid_to_ego4d.json, then the items of the questions file in
    file order. `questions` names the questions file in the folder (default questions.json)."""
    path = os.fspath(annotations)
    if fs.is_file(path):
        folder = os.path.dirname(path) or "."
    else:
        folder, path = path, os.path.join(path, questions or QUESTIONS)
    root = os.fspath(videos) if videos is not None else folder
    answers, answer_failures = _aux(os.path.join(folder, ANSWERS), load_answers)
    windows, window_failures = _aux(os.path.join(folder, WINDOWS), load_windows)
    yield from answer_failures
    yield from window_failures
    items = _Items(path, root, exists, answers, windows, ego4d)
    yield from per_file(SOURCE, path, items.from_csv if path.endswith(".csv") else items.from_json)
