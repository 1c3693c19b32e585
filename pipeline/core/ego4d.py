"""Ego4D conventions shared by the datasets built on it (Ego-Exo4D narrations, EgoClip, EgoMCQ, EgoTimeQA,
QAEgo4D, EgoSchema, EgoPlan): narration tags, the caption rule, and where the ego4d CLI puts videos.

    normalize_text(text)     Ego-Exo4D narration -> caption: "C picks" -> "Camera-wearer picks", "O" -> "a person"
    caption(raw)             EgoClip narration -> caption: "#C C picks a bag" -> "Camera-wearer picks a bag",
                             "#O man X hands C a cup" -> "Man X hands the camera-wearer a cup", "#unsure" ->
                             "something"
    FULL_SCALE, CLIPS        folders (relative to an Ego4D download root) that may hold a full-scale video
                             (ego4d CLI --datasets full_scale) or a canonical clip (--datasets clips), in
                             probing order
    ego4d_videos(uid, ...)   the candidate VideoRefs of a video or clip uid, in that order
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pipeline.core.records import VideoRef
from pipeline.core.text import clean_text
from pipeline.core.values import safe_name

FULL_SCALE = ("v2/full_scale/", "full_scale/", "")
CLIPS = ("v2/clips/", "clips/", "")

# Leading subject letters of Ego-Exo4D narrations ("C picks up ...", "O hands C ...").
_SUBJECT_WORDS = {"C": "Camera-wearer", "O": "A person"}
_LEADING_SUBJECT = re.compile(r"^(?:#)?([CO])(?=[\s,.:;]|$)")
_WHITESPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")
_NARRATION_TAG = re.compile(r"^#\s*[CO](?![\w'])\s*")  # Ego4D's "#C" / "#O" in front of the narration
_UNSURE = re.compile(r"#\s*unsure\b", re.IGNORECASE)


def normalize_text(text: str) -> str:
    """Ego-Exo4D narration -> training caption: clean printable text, subject letters spelled out, whitespace
    collapsed."""
    text = _WHITESPACE.sub(" ", clean_text(text)).strip()
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    match = _LEADING_SUBJECT.match(text)
    if match:
        text = _SUBJECT_WORDS[match.group(1)] + text[match.end() :]
    # "C" and "O" as whole words later in the sentence ("O hands C the bowl") are the same subjects
    text = re.sub(r"(?<![\w'])C(?![\w'])", "the camera-wearer", text)
    text = re.sub(r"(?<![\w'])O(?![\w'])", "a person", text)
    return text


def caption(raw: str) -> str:
    """EgoClip narration -> training caption, as Ego-ExoClip's (see the module docstring); "" when nothing is
    left."""
    text = _NARRATION_TAG.sub("", clean_text(raw).strip(), count=1)
    text = normalize_text(_UNSURE.sub("something", text))
    return text[:1].upper() + text[1:]


def ego4d_videos(
    uid: str, start: float | None = None, end: float | None = None, folders: Sequence[str] = FULL_SCALE
) -> list[VideoRef]:
    """The candidate files of an Ego4D video (or clip) uid, in probing order, each with the same window."""
    name = safe_name(uid) + ".mp4"
    return [VideoRef(f"{folder}{name}", start, end) for folder in folders]
