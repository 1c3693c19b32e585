"""EgoMCQ (EgoVLP) -> video_choice items: which of 5 Ego4D clips the query narration describes.

`types` keeps the DATA's meaning: 1 = inter-video (the 5 clips come from different videos), 2 = intra-video
(one video). EgoVLP's metric code prints the two accuracies swapped (EgoVLP issue 19); `type_name` spells it
out and `n_videos` (distinct videos among the choices) lets a check confirm it per item.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipeline.egobench.records import BenchItem
from pipeline.egobench.sources.common import Result, check_id, ego4d_videos, guarded, locate, per_file
from pipeline.egoit.sources.common import BadRow, Exists, finite_number, read_json, text_field

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


def caption(raw: str) -> str:
    """EgoClip's caption rule (pipeline/egoclip/rows.py), imported on first use: its package pulls in Beam."""
    from pipeline.egoclip.rows import caption as egoclip_caption

    return egoclip_caption(raw)


def _tags(value, name: str) -> list[int]:
    if isinstance(value, list) and all(type(v) is int and v >= 0 for v in value):
        return list(value)
    m = TAGS.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise BadRow("bad label", f"{name}={value!r}")
    return [int(x) for x in re.findall(r"\d+", m[1] or "")]


def _clip(clip) -> tuple[str, float, float, str]:
    """(video_uid, start, end, raw clip_text) of a clip; start clamped at 0 as EgoVLP does."""
    if not isinstance(clip, dict):
        raise TypeError(f"clip is {type(clip).__name__}")
    uid, text = check_id(text_field(clip, "video_uid"), "video_uid"), text_field(clip, "clip_text")
    start, end = finite_number(clip.get("clip_start")), finite_number(clip.get("clip_end"))
    if start is None or end is None or any(isinstance(clip.get(k), str) for k in ("clip_start", "clip_end")):
        raise BadRow("bad time", f"{clip.get('clip_start')!r}-{clip.get('clip_end')!r}")
    start = max(start, 0.0)
    if end <= start:
        raise BadRow("empty window", f"{start}-{end}")
    if not caption(text).strip():
        raise BadRow("empty text", repr(text))
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
        raise BadRow("bad answer", repr(answer))
    if types not in TYPES or isinstance(types, bool):
        raise BadRow("bad type", repr(types))
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


def _entries(path: str, root: str, exists: Exists) -> Result:
    data = read_json(path, dict)
    # numeric keys in numeric order (EgoVLP indexes the dict by str(i)), anything else after, in file order
    for key in sorted(data, key=lambda k: (0, int(k), "") if k.isdecimal() else (1, 0, "")):
        yield guarded(SOURCE, path, f"key {key}", lambda key=key: _item(key, data[key], path, root, exists))


def read(
    annotations: str | Path, videos: str | Path | None = None, *, exists: Exists = os.path.exists
) -> Result:
    """Items of egomcq.json by key. Keys are unique (a JSON object), so there are no duplicate ids."""
    path = os.fspath(annotations)
    if not os.path.isfile(path):
        path = os.path.join(path, FILE_NAME)
    root = os.fspath(videos) if videos is not None else os.path.dirname(path) or "."
    yield from per_file(SOURCE, path, lambda: _entries(path, root, exists))
