"""The public API of the builders for code outside `pipeline/` (exo2ego_model, tools): the names here are
stable; everything else under `pipeline.<dataset>` is a builder's internals and may move.

    BUILDERS                       builder name -> "module:attribute" of its Builder (pipeline/core/builder.py)
    builder(name)                  that Builder, imported on demand
    EGOBENCH_TASKS                 EgoBench task name -> metric kind (pipeline/egobench/records.py)
    EGOBENCH_LAST_FRAME_TASKS      EgoBench tasks whose clip's last frame must be the last frame shown (EgoPlan:
                                   the current observation)
    load_text_encoder(dir, sha)    the verified all-MiniLM-L6-v2 sentence encoder (or a given folder;
                                   pipeline/core/text_embed.py)
    embed_texts(encoder, texts)    unit-norm float32 embeddings, one row per text
"""

from __future__ import annotations

import importlib

from pipeline.core.text_embed import embed as embed_texts
from pipeline.core.text_embed import load_encoder as load_text_encoder

# EGOBENCH_*: resolved by __getattr__
__all__ = ["BUILDERS", "builder", "embed_texts", "load_text_encoder"]
__all__ += ["EGOBENCH_LAST_FRAME_TASKS", "EGOBENCH_TASKS"]  # noqa: F822

# The registry of builders (as lmms-eval finds its tasks by name): `python -m pipeline.<name>` runs one, tools
# (benches, reports) find them here. A fifth dataset is a package with a builder.py and one line here.
BUILDERS = {
    name: f"pipeline.{name}.builder:BUILDER" for name in ("egoexoclip", "egoit", "egobench", "egoclip")
}


# Names that live in a dataset package, resolved when first asked for (like BUILDERS): this module imports no
# dataset at import time.
_DATASET_NAMES = {
    "EGOBENCH_TASKS": "pipeline.egobench.records:TASKS",
    "EGOBENCH_LAST_FRAME_TASKS": "pipeline.egobench.records:LAST_FRAME_TASKS",
}


def __getattr__(name: str):
    if name not in _DATASET_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _DATASET_NAMES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def builder(name: str):
    """The Builder registered under `name` (KeyError naming the known ones otherwise)."""
    if name not in BUILDERS:
        raise KeyError(f"no builder {name!r} (known: {', '.join(BUILDERS)})")
    module, attr = BUILDERS[name].split(":")
    return getattr(importlib.import_module(module), attr)
