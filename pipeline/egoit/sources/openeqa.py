"""OpenEQA -> open-QA records over episode histories (folders of RGB frames, not videos).

Each question's episode folder is listed once (many questions share an episode) and n_frames of its RGB frames
are picked uniformly. 16 by default: the number of frames per clip the Exo2Ego model is trained with, so an
episode becomes a clip like any other.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from pipeline.core import fs
from pipeline.core.keys import KeyClaims
from pipeline.core.readers import Exists, json_rows, per_file, row_results, uniform_indices
from pipeline.core.records import VideoRef
from pipeline.core.values import BadRow, id_field, join_root, safe_relpath, text_field, text_list
from pipeline.egoit.records import ReadResult, SourceRecord, item_key

SOURCE = "openeqa"
FILE_NAME = "open-eqa-v0.json"
DEFAULT_FRAMES = 16

LAYOUT = """\
OpenEQA (`openeqa`)
  annotations: open-eqa-v0.json (the open-eqa repo's data/), or the folder holding it:
               [{question_id, question, answer, category, episode_history, extra_answers (optional)}]
  frames root: default `frames/` beside the json (the repo's data/frames/, where its download and
               extraction steps put the episode histories)
    <episode_history>/<N>-rgb.png   e.g. hm3d-v0/000-hm3d-BFRyYbPCCPE/00000-rgb.png,
                                    scannet-v0/002-scannet-scene0709_00/000000-rgb.png
    frames ordered by N; only *-rgb.png are used (depth PNGs, pose and intrinsics files are ignored);
    n_frames (default 16) picked at the centres of n equal bins
"""

RGB_FRAME = re.compile(r"(\d+)-rgb\.png")


def _rgb_frames(names: list[str]) -> list[str]:
    """The RGB frame files among `names` (base names; a listing of full paths is cut to them), in temporal
    order: by frame number, so that unpadded names (2, 9, 10) sort right too."""
    names = [name.rstrip("/").rsplit("/", 1)[-1] for name in names]
    frames = [(int(m[1]), name) for name in names if (m := RGB_FRAME.fullmatch(name))]
    return [name for _, name in sorted(frames)]


def _episode_frames(root: str, episode: str, n_frames: int, listdir: Callable) -> tuple[str, ...] | BadRow:
    """The sampled frame names, or why the episode cannot be used (returned, not raised: it is cached and
    reported for every question of the episode)."""
    try:
        frames = _rgb_frames(list(listdir(join_root(root, episode))))
    except OSError as e:
        return BadRow("episode not found", f"{episode}: {e.strerror or e}")
    if not frames:
        return BadRow("no frames", f"no <N>-rgb.png in {episode}")
    return tuple(frames[i] for i in uniform_indices(len(frames), n_frames))


def _question_id(item) -> str | None:
    question_id = item.get("question_id") if isinstance(item, dict) else None
    return question_id if isinstance(question_id, str) else None


class _File:
    def __init__(self, path: str, root: str, n_frames: int, listdir: Callable):
        self.path, self.root, self.n_frames, self.listdir = path, root, n_frames, listdir
        self.episodes: dict[str, tuple[str, ...] | BadRow] = {}
        self.claims = KeyClaims()

    def record(self, number: int, item) -> SourceRecord:
        if not isinstance(item, dict):
            raise TypeError(f"item is {type(item).__name__}")
        question_id, question = id_field(item, "question_id"), text_field(item, "question")
        answer, category = text_field(item, "answer"), text_field(item, "category")
        extra_answers = text_list(item, "extra_answers")
        episode = safe_relpath(text_field(item, "episode_history", clean=False))
        if not all(s.strip() for s in (question_id, question, answer, category)):
            raise BadRow("empty text", "empty question_id, question, answer or category")
        keys = [item_key(SOURCE, question_id)]
        self.claims.check(question_id, keys)
        if episode not in self.episodes:
            self.episodes[episode] = _episode_frames(self.root, episode, self.n_frames, self.listdir)
        frames = self.episodes[episode]
        if isinstance(frames, BadRow):  # cached: a fresh exception per question
            raise BadRow(frames.reason, frames.detail)
        self.claims.add(question_id, keys)
        return SourceRecord(
            source=SOURCE,
            record_id=question_id,
            source_file=os.path.basename(self.path),
            source_split="",
            video_id=episode,
            video=VideoRef(path=episode, frames=frames),
            task="open_qa",
            fields={
                "question": question,
                "answer": answer,
                "category": category,
                "extra_answers": extra_answers,
            },
        )

    def rows(self) -> ReadResult:
        yield from row_results(SOURCE, self.path, json_rows(self.path), self.record, _question_id)


def read(
    annotations: str | Path,
    videos: str | Path | None = None,
    *,
    exists: Exists = fs.exists,
    n_frames: int = DEFAULT_FRAMES,
    listdir: Callable[[str], list[str]] = fs.listdir,
) -> ReadResult:
    """Records of open-eqa-v0.json in file order. `videos` is the frames root; an episode is found by listing
    its folder (`listdir`, e.g. a wrapper of Beam's FileSystems.match for remote roots), so `exists` is unused
    and only kept for the common reader interface."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    path = os.fspath(annotations)
    if not fs.is_file(path):
        path = os.path.join(path, FILE_NAME)
    root = os.fspath(videos) if videos is not None else os.path.join(os.path.dirname(path) or ".", "frames")
    yield from per_file(SOURCE, path, _File(path, root, n_frames, listdir).rows)
