"""EgoMCQ (EgoVLP) -> video_choice items: which of 5 Ego4D clips the query narration describes.

`types` keeps the DATA's meaning: 1 = inter-video (the 5 clips come from different videos), 2 = intra-video
(one video). EgoVLP's metric code prints the two accuracies swapped (EgoVLP issue 19); `type_name` spells it
out and `n_videos` (distinct videos among the choices) lets a check confirm it per item.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipeline.core import fs
from pipeline.core.ego4d import ego4d_videos
from pipeline.core.narration import caption
from pipeline.core.readers import Exists, locate, per_file, read_json, row_results, split_path
from pipeline.core.values import MAX_INT, BadRow, seconds, shown, text_field
from pipeline.egobench.records import BenchItem
from pipeline.egobench.sources.common import Result, check_id

SOURCE = "egomcq"
FILE_NAME = "egomcq.json"
N_CHOICES = 5
TYPES = {1: "inter", 2: "intra"}
TAGS = re.compile(r"\[\s*(\d+(?:\s*,\s*\d+)*)?\s*,?\s*\]")

LAYOUT = """\
EgoMCQ (`egomcq` -> task egomcq, video_choice: 5 candidate clips)
  annotations: egomcq.json (EgoVLP's dataset/, Google Drive) or its folder:
    {"<i>": {query: <clip>, choices: {"0".."4": <clip>}, answer: 0-4,
             types: 1 (inter-video) | 2 (intra-video)}}
    clip = {video_uid, clip_start, clip_end (s in the Ego4D video), clip_text "#C C picks ...",
            tag_verb, tag_noun ("[93]")}
  question = the query's narration normalised as Ego-ExoClip captions ("#C C picks" -> "Camera-wearer picks");
  options = the 5 choices' normalised narrations (reference); videos = the 5 choice clips; answer = the index
  videos root: the Ego4D download root (pass it; the default is the json's folder)
    v2/full_scale/<video_uid>.mp4, full_scale/<video_uid>.mp4, <video_uid>.mp4   cut at [max(clip_start, 0),
    clip_end)
"""


def _tags(value, name: str) -> list[int]:
    if isinstance(value, list) and all(type(v) is int and 0 <= v <= MAX_INT for v in value):
        return list(value)
    m = TAGS.fullmatch(value.strip()) if isinstance(value, str) and value.isascii() else None
    digits = re.findall(r"\d+", m[1] or "") if m else []
    if m is None or any(len(d.lstrip("0")) > 18 for d in digits):
        raise BadRow("bad label", f"{name}={shown(value)}")
    return [int(d) for d in digits]


def _clip(clip) -> tuple[str, float, float, str]:
    """(video_uid, start, end, raw clip_text) of a clip; start clamped at 0 as EgoVLP does."""
    if not isinstance(clip, dict):
        raise TypeError(f"clip is {type(clip).__name__}")
    uid, text = (
        check_id(text_field(clip, "video_uid", clean=False), "video_uid"),
        text_field(clip, "clip_text"),
    )
    try:
        if any(isinstance(clip.get(k), str) for k in ("clip_start", "clip_end")):
            raise BadRow("bad time")
        start = seconds(clip.get("clip_start"), "clip_start", negative=True)
        end = seconds(clip.get("clip_end"), "clip_end", negative=True)
    except BadRow:
        raise BadRow(
            "bad time", f"{shown(clip.get('clip_start'), 60)}-{shown(clip.get('clip_end'), 60)}"
        ) from None
    start = max(start, 0.0)
    if end <= start:
        raise BadRow("empty window", f"{start}-{end}")
    if not caption(text).strip():
        raise BadRow("empty text", shown(text))
    return uid, start, end, text


def _item(key: str, entry, path: str, root: str, exists: Exists) -> BenchItem:
    ident = check_id(key, "key")
    if not isinstance(entry, dict):
        raise TypeError(f"entry is {type(entry).__name__}")
    choices = entry["choices"]
    if not isinstance(choices, dict) or sorted(choices) != [str(i) for i in range(N_CHOICES)]:
        raise BadRow(
            "bad choices", f"choice keys {sorted(choices) if isinstance(choices, dict) else choices}"
        )
    answer, types = entry["answer"], entry["types"]
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < N_CHOICES:
        raise BadRow("bad answer", shown(answer))
    if isinstance(types, bool) or types not in TYPES:
        raise BadRow("bad type", shown(types))
    query = entry["query"]
    _, _, _, query_text = _clip(query)
    clips = [_clip(choices[str(i)]) for i in range(N_CHOICES)]
    videos = tuple(locate(root, ego4d_videos(uid, start, end), exists) for uid, start, end, _ in clips)
    return BenchItem(
        task="egomcq",
        item_id=ident,
        source_file=os.path.basename(path),
        videos=videos,
        question=caption(query_text),
        options=tuple(caption(c[3]) for c in clips),
        answer=answer,
        metadata={
            "types": types,
            "type_name": TYPES[types],
            "video_uids": [c[0] for c in clips],
            "n_videos": len({c[0] for c in clips}),
            "query_text": query_text,
            "tag_verb": _tags(query.get("tag_verb", "[]"), "tag_verb"),
            "tag_noun": _tags(query.get("tag_noun", "[]"), "tag_noun"),
        },
    )


def _order(key: str) -> tuple:
    """Numeric keys in numeric order (EgoVLP indexes the dict by str(i)), anything else after, in file order."""
    return (0, int(key), "") if key.isascii() and key.isdecimal() and len(key) <= 18 else (1, 0, "")


def _entries(path: str, root: str, exists: Exists) -> Result:
    data = read_json(path, dict)
    rows = ((key, data[key]) for key in sorted(data, key=_order))
    yield from row_results(
        SOURCE, path, rows, lambda key, entry: _item(key, entry, path, root, exists), unit="key"
    )


def read(
    annotations: str | Path, videos: str | Path | None = None, *, exists: Exists = fs.exists
) -> Result:
    """Items of egomcq.json by key. Keys are unique (a JSON object), so there are no duplicate ids."""
    path, folder = split_path(annotations, FILE_NAME)
    root = os.fspath(videos) if videos is not None else folder
    yield from per_file(SOURCE, path, lambda: _entries(path, root, exists))
