"""Ego4D conventions shared by the datasets built on it (Ego-Exo4D narrations, EgoClip, EgoMCQ, EgoTimeQA,
QAEgo4D, EgoSchema, EgoPlan): Ego-Exo4D's caption rule and where the ego4d CLI puts videos. Ego4D's tagged
narrations ("#C C picks a bag", "#O man X ...") are read by narration.py (captions and first person).

    normalize_text(text)     Ego-Exo4D narration -> caption: "C picks" -> "Camera-wearer picks", "O" -> "a person"
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


def ego4d_videos(
    uid: str, start: float | None = None, end: float | None = None, folders: Sequence[str] = FULL_SCALE
) -> list[VideoRef]:
    """The candidate files of an Ego4D video (or clip) uid, in probing order, each with the same window."""
    name = safe_name(uid) + ".mp4"
    return [VideoRef(f"{folder}{name}", start, end) for folder in folders]
