"""The public API of the builders for code outside `pipeline/` (exo2ego_model, tools): the names here are
stable; everything else under `pipeline.<dataset>` is a builder's internals and may move.

    BUILDERS                       builder name -> "module:attribute" of its Builder (pipeline/core/builder.py)
    builder(name)                  that Builder, imported on demand
    EGOBENCH_TASKS                 EgoBench task name -> metric kind (pipeline/egobench/records.py)
    load_text_encoder(dir, sha)    the verified all-MiniLM-L6-v2 sentence encoder (or a given folder;
                                   pipeline/core/text_embed.py)
    embed_texts(encoder, texts)    unit-norm float32 embeddings, one row per text
"""

from __future__ import annotations

from pipeline.core.text_embed import embed as embed_texts
from pipeline.core.text_embed import load_encoder as load_text_encoder
from pipeline.egobench.records import TASKS as EGOBENCH_TASKS

__all__ = ["BUILDERS", "EGOBENCH_TASKS", "builder", "embed_texts", "load_text_encoder"]

# The registry of builders (as lmms-eval finds its tasks by name): `python -m pipeline.<name>` runs one, tools
# (benches, reports) find them here. A fifth dataset is a package with a builder.py and one line here.
BUILDERS = {
    name: f"pipeline.{name}.builder:BUILDER" for name in ("egoexoclip", "egoit", "egobench", "egoclip")
}


def builder(name: str):
    """The Builder registered under `name` (KeyError naming the known ones otherwise)."""
    import importlib

    if name not in BUILDERS:
        raise KeyError(f"no builder {name!r} (known: {', '.join(BUILDERS)})")
    module, attr = BUILDERS[name].split(":")
    return getattr(importlib.import_module(module), attr)
