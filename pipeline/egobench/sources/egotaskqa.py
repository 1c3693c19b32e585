"""EgoTaskQA -> items over LEMMA first-person intervals.

Two readers:
- `read`: the original direct / indirect splits ({split}_qas.json), posed as the original: OPEN answer over the
  answer vocabulary. The baselines (Buzz-Beater/EgoTaskQA baselines/: preprocess_vocab.py, train_*.py) build
  one answer vocabulary per split type from train_qas.json (the ANSWER_TOP = 4000 most frequent answers, lower
  case; yes/no among them) and classify every question over it (argmax), whatever its kind. Here every item's
  options are that vocabulary (sorted) plus the evaluated file's own answers (lower case), so no question is
  dropped and the answer is always a candidate; `answer_group` says whether the original's classifier could
  name it ("in_train"), could not ("not_in_train": its answer is not in the train vocabulary, the original
  scores it wrong), or no train_qas.json was found beside the file ("no_train_file": the vocabulary is the
  file's own answers). The evaluator ranks all candidates and matches a generated answer exactly
  (exo2ego_model/eval: OPEN_VOCABULARY), never as a lettered choice.
- `read_mcq`: the third-party 5-way MCQ variant (EgoThinker's lmms-eval egotaskqa.json), no direct/indirect
  flag.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from pipeline.core import fs
from pipeline.core.readers import (
    Exists,
    SourceFileError,
    failure,
    json_rows,
    locate,
    per_file,
    read_json,
    row_results,
    split_path,
    undecodable,
    uniform_indices,
)
from pipeline.core.records import VideoRef
from pipeline.core.text import clean_text
from pipeline.core.values import MAX_INT, BadRow, decimal, safe_name, shown, text_field, text_list
from pipeline.egobench.records import BenchItem, RecordFailure
from pipeline.egobench.sources.common import Result, check_id, choice_index, first_of_id, nonempty

SOURCE, SOURCE_MCQ = "egotaskqa", "egotaskqa_mcq"
MCQ_FILE = "egotaskqa.json"
ANSWER_TOP = 4000  # the baselines' answer vocabulary: the most frequent train answers (preprocess_vocab.py)
DEFAULT_FRAMES = 16
INTERVAL = re.compile(r"(?P<video>[A-Za-z0-9_-]+)\|(?:P|fpv)(?P<view>\d)\|(?P<start>\d+)\|(?P<end>\d+)")

_VIDEOS = """\
  videos root: default the annotation folder (the original splits: the folder holding direct/ and indirect/)
    1. <interval>.mp4                     a clip cut to the interval, named by it (as the MCQ variant ships)
    2. <video>/fpv<N>/img_<k+1:05d>.jpg   LEMMA RGB frames (LEMMA/videos/): n_frames (16) of frames k in
                                          [start, end) at the centres of n equal bins (an image sequence)
  interval = "<LEMMA video>|<P1|P2 or fpv1|fpv2>|<start>|<end>", LEMMA frame indices, [start, end), 0-based
"""
LAYOUT = f"""\
EgoTaskQA (`egotaskqa` -> tasks egotaskqa_direct, egotaskqa_indirect; open answer over the vocabulary)
  annotations: the folder holding direct/ and indirect/ (the release's data/qa, the baselines' $SAVE_BASE),
               or one of them, or one file (its folder names the task):
    <direct|indirect>/<split>_qas.json   split = test (default), val or train:
      [{{question, answer, interval, question_id, type [..], category [..], semantic, structural,
        reasoning_type, ...}}]
  options: the answer vocabulary, sorted, lower case: the 4000 most frequent answers of <direct|indirect>/
           train_qas.json beside the file (the baselines' vocabulary) + the file's own answers; every question
           is an item, whatever the vocabulary's size; metadata answer_group: in_train | not_in_train (the
           original's classifier cannot name it) | no_train_file (vocabulary = the file's answers)
{_VIDEOS}"""
LAYOUT_MCQ = f"""\
EgoTaskQA MCQ variant (`egotaskqa_mcq` -> task egotaskqa_mcq, 5-way choice)
  annotations: egotaskqa.json (EgoThinker lmms-eval/anno/) or its folder:
    [{{q, video_path "<interval>.mp4", a (letter A-E), option {{"A": .., "E": ..}}}}]
    item id = the row number (00001, ...)
{_VIDEOS}"""


def interval_video(interval: str, n_frames: int) -> tuple[list[VideoRef], dict]:
    """The candidate videos of an interval and its metadata; BadRow "bad interval" / "empty window"."""
    m = INTERVAL.fullmatch(interval)
    if m is None:
        raise BadRow("bad interval", shown(interval))
    start = decimal(m["start"], "start", reason="bad interval", maximum=MAX_INT // 2)
    end = decimal(m["end"], "end", reason="bad interval", maximum=MAX_INT // 2)
    if end <= start:
        raise BadRow("empty window", shown(interval))
    frames = tuple(f"img_{start + k + 1:05d}.jpg" for k in uniform_indices(end - start, n_frames))
    candidates = [
        VideoRef(safe_name(interval + ".mp4")),
        VideoRef(f"{m['video']}/fpv{m['view']}", frames=frames),
    ]
    meta = {
        "interval": interval,
        "video_id": m["video"],
        "view": f"P{m['view']}",
        "start_frame": start,
        "end_frame": end,
    }
    return candidates, meta


def answer_key(answer: str) -> str:
    """An answer as the vocabulary holds it: clean text, lower case (preprocess_vocab.py lower-cases)."""
    return " ".join(clean_text(answer, newlines=True).split()).lower()


def _answers(rows: list) -> list[str]:
    """The rows' usable answers, as written."""
    out = []
    for row in rows:
        answer = row.get("answer") if isinstance(row, dict) and undecodable(row) is None else None
        if isinstance(answer, str) and answer_key(answer):
            out.append(answer)
    return out


def train_vocabulary(path: str) -> list[str]:
    """The baselines' answer vocabulary of a train_qas.json: its ANSWER_TOP most frequent answers, lower case."""
    counts = Counter(_answers(read_json(path, list)))
    return sorted({answer_key(a) for a, _ in counts.most_common(ANSWER_TOP)})


def _original_rows(
    path: str, task: str, split: str, root: str, exists: Exists, n_frames: int, train: list[str] | None
) -> Result:
    rows = read_json(path, list)
    own = {answer_key(a) for a in _answers(rows)}
    known = set(train or ())
    options = tuple(sorted(known | own))
    seen: set = set()

    def build(number: int, row) -> BenchItem:
        question, answer = text_field(row, "question"), text_field(row, "answer")
        nonempty(question, answer)
        ident = row.get("question_id")
        ident = check_id(ident, "question_id") if ident is not None else f"row{number:05d}"
        candidates, meta = interval_video(text_field(row, "interval", clean=False), n_frames)
        key = answer_key(answer)
        group = "no_train_file" if train is None else "in_train" if key in known else "not_in_train"
        if len(options) < 2:
            raise BadRow("too few options", f"the vocabulary has no other answer than {shown(answer)}")
        meta.update(
            split=split,
            question_type=text_list(row, "type"),
            category=text_list(row, "category"),
            semantic=row.get("semantic", ""),
            structural=row.get("structural", ""),
            reasoning_type=row.get("reasoning_type", ""),
            answer_group=group,
        )
        if not all(isinstance(meta[k], str) for k in ("semantic", "structural", "reasoning_type")):
            raise TypeError("semantic, structural and reasoning_type must be strings")
        meta.update({k: clean_text(meta[k]) for k in ("semantic", "structural", "reasoning_type")})
        item = BenchItem(
            task=task,
            item_id=ident,
            source_file=os.path.basename(path),
            videos=(locate(root, candidates, exists),),
            question=question,
            options=options,
            answer=options.index(key),
            metadata=meta,
        )
        return first_of_id(item, seen)

    yield from row_results(SOURCE, path, enumerate(rows, start=1), build, lambda row: row.get("question_id"))


def _train(file: str) -> tuple[list[str] | None, list[RecordFailure]]:
    """The train vocabulary beside `file` (None when there is no train_qas.json, or it is unreadable)."""
    path = os.path.join(os.path.dirname(file), "train_qas.json")
    if not fs.is_file(path):
        return None, []
    try:
        return train_vocabulary(path), []
    except SourceFileError as e:
        return None, [failure(SOURCE, path, "", e.reason, e.detail)]


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = fs.exists,
    split: str = "test",
    n_frames: int = DEFAULT_FRAMES,
) -> Result:
    """egotaskqa_direct items (direct/<split>_qas.json), then egotaskqa_indirect items, each in row order."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    path = os.fspath(annotations)
    if fs.is_file(path):
        files = [path]
        root = os.path.dirname(os.path.dirname(fs.abspath(path)))
    elif os.path.basename(fs.normpath(path)) in ("direct", "indirect"):
        files, root = (
            [os.path.join(path, f"{split}_qas.json")],
            os.path.dirname(fs.normpath(path)) or ".",
        )
    else:
        files, root = [os.path.join(path, kind, f"{split}_qas.json") for kind in ("direct", "indirect")], path
    root = os.fspath(videos) if videos is not None else root
    for file in files:
        kind = os.path.basename(os.path.dirname(fs.abspath(file)))
        if kind not in ("direct", "indirect"):
            yield failure(
                SOURCE, file, "", "unknown split type", f"{file} is not in a direct/ or indirect/ folder"
            )
            continue
        train, bad = _train(file)
        yield from bad
        yield from per_file(
            SOURCE,
            file,
            lambda f=file, k=kind, t=train: _original_rows(
                f, f"egotaskqa_{k}", split, root, exists, n_frames, t
            ),
        )


def _mcq_rows(path: str, root: str, exists: Exists, n_frames: int) -> Result:
    seen: set = set()
    asked: set[tuple[str, str]] = set()

    def build(number: int, row) -> BenchItem:
        question, video_path = text_field(row, "q"), text_field(row, "video_path", clean=False)
        option = row["option"]
        if not isinstance(option, dict) or list(option) != list("ABCDE"[: len(option)]) or len(option) < 2:
            raise BadRow("bad options", f"option keys {list(option) if isinstance(option, dict) else option}")
        options = tuple(text_field(option, k) for k in option)
        nonempty(question, *options)
        if len(set(options)) != len(options):
            raise BadRow("bad options", "repeated option")
        answer = choice_index(row["a"], len(options))
        if not video_path.endswith(".mp4"):
            raise BadRow("bad interval", shown(video_path))
        candidates, meta = interval_video(video_path[: -len(".mp4")], n_frames)
        if (question, video_path) in asked:
            raise BadRow("duplicate question", f"{question!r} on {video_path}")
        asked.add((question, video_path))
        item = BenchItem(
            task="egotaskqa_mcq",
            item_id=f"{number:05d}",
            source_file=os.path.basename(path),
            videos=(locate(root, candidates, exists),),
            question=question,
            options=options,
            answer=answer,
            metadata=meta,
        )
        return first_of_id(item, seen)

    yield from row_results(SOURCE_MCQ, path, json_rows(path), build)


def read_mcq(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = fs.exists,
    n_frames: int = DEFAULT_FRAMES,
) -> Result:
    """egotaskqa_mcq items of egotaskqa.json in row order."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    path, folder = split_path(annotations, MCQ_FILE)
    root = os.fspath(videos) if videos is not None else folder
    yield from per_file(SOURCE_MCQ, path, lambda: _mcq_rows(path, root, exists, n_frames))
