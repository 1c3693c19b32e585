"""VLN-QA (MVBench's egocentric navigation, EgoBench copy) -> 4-way choice items: the agent's next action.

The question and the options are embedded in `text` (a prompt: preamble, "Question: ...", "Option:", "A: ..."
lines, a closing instruction) and are parsed out of it; the instruction inside the question may hold line
breaks ("\\r\\n", normalised to "\\n"). The top folder of `video_path` is the gold action (left / right /
forward / stop); the option `gt` names must be that action, or the item is an "answer mismatch".
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipeline.core import fs
from pipeline.core.readers import Exists, json_rows, locate, per_file, row_results, split_path
from pipeline.core.records import VideoRef
from pipeline.core.values import BadRow, safe_relpath, text_field
from pipeline.egobench.records import BenchItem
from pipeline.egobench.sources.common import Result, check_id, choice_index, first_of_id, nonempty

SOURCE = "vlnqa"
FILE_NAME = "vlnqa.json"
PROMPT = re.compile(
    r"(?P<head>[^\n]*)\nQuestion: (?P<question>.+?)\nOption:\n(?P<options>(?:[A-Z]: [^\n]*\n)+)"
    r"(?P<tail>[^\n]*)",
    re.DOTALL,
)
OPTION = re.compile(r"([A-Z]): ([^\n]*)")
ACTIONS = {
    "left": "Turn left and move forward",
    "right": "Turn right and move forward",
    "forward": "Move forward",
    "stop": "Stop",
}

LAYOUT = """\
VLN-QA (`vlnqa` -> task vlnqa, 4-way choice; MVBench egocentric navigation, EgoThinker lmms-eval copy)
  annotations: vlnqa.json or its folder: [{text, video_path "<action>/<n>_frame<k>.mp4", gt (A-D)}]
    text = "<preamble>\\nQuestion: <question>\\nOption:\\nA: ..\\nB: ..\\nC: ..\\nD: ..\\n<closing line>"
    action folder = the gold answer: left, right, forward, stop = "Turn left and move forward",
                    "Turn right and move forward", "Move forward", "Stop"
  videos root: default the json's folder (the EgoBench vln_qa/ folder)
    1. <video_path>    2. vlnqa/<video_path>   (MVBench video/vlnqa.zip; unverified)   the whole clip
"""


def parse_text(text: str) -> tuple[str, tuple[str, ...]]:
    """(question, options) of a VLN-QA prompt; BadRow "bad prompt" when it has not that shape."""
    m = PROMPT.fullmatch(text.replace("\r\n", "\n").strip())
    if m is None:
        raise BadRow("bad prompt", repr(text[:120]))
    lines = m["options"].splitlines()
    letters = [OPTION.fullmatch(line)[1] for line in lines]
    if letters != list("ABCDEFGHIJ"[: len(letters)]) or len(letters) < 2:
        raise BadRow("bad prompt", f"option letters {letters}")
    return m["question"].strip(), tuple(OPTION.fullmatch(line)[2].strip() for line in lines)


def _item(row: dict, path: str, root: str, exists: Exists) -> BenchItem:
    question, options = parse_text(text_field(row, "text"))
    nonempty(question, *options)
    answer = choice_index(row["gt"], len(options))
    video_path = safe_relpath(text_field(row, "video_path", clean=False))
    folder, _, name = video_path.rpartition("/")
    action = folder.rsplit("/", 1)[-1] if folder else ""
    if action in ACTIONS and options[answer] != ACTIONS[action]:
        raise BadRow(
            "answer mismatch", f"{row['gt']} = {options[answer]!r}, folder {action}/ = {ACTIONS[action]!r}"
        )
    stem = name.rsplit(".", 1)[0]
    ident = check_id(f"{action}_{stem}" if action else stem, "video_path")
    candidates = [VideoRef(video_path), VideoRef(f"vlnqa/{video_path}")]
    return BenchItem(
        task="vlnqa",
        item_id=ident,
        source_file=os.path.basename(path),
        videos=(locate(root, candidates, exists),),
        question=question,
        options=options,
        answer=answer,
        metadata={"action": action},
    )


def _rows(path: str, root: str, exists: Exists) -> Result:
    seen: set = set()

    def build(number: int, row) -> BenchItem:
        return first_of_id(_item(row, path, root, exists), seen)

    yield from row_results(SOURCE, path, json_rows(path), build, lambda row: row.get("video_path"))


def read(
    annotations: str | Path, videos: str | Path | None = None, *, exists: Exists = fs.exists
) -> Result:
    """Items of vlnqa.json in row order."""
    path, folder = split_path(annotations, FILE_NAME)
    root = os.fspath(videos) if videos is not None else folder
    yield from per_file(SOURCE, path, lambda: _rows(path, root, exists))
