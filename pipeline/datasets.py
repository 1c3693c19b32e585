"""The public API of the builders for code outside `pipeline/` (exo2ego_model, tools): the names here are
stable; everything else under `pipeline.<dataset>` is a builder's internals and may move.

    BUILDERS                       builder name -> "module:attribute" of its Builder (pipeline.core.registry)
    EGOBENCH_TASKS                 EgoBench task name -> metric kind (pipeline/egobench/records.py)
    load_text_encoder(dir, sha)    the verified all-MiniLM-L6-v2 sentence encoder (or a given folder;
                                   pipeline/core/text_embed.py)
    embed_texts(encoder, texts)    unit-norm float32 embeddings, one row per text
"""

from __future__ import annotations

from pipeline.core.text_embed import embed as embed_texts
from pipeline.core.text_embed import load_encoder as load_text_encoder
from pipeline.egobench.records import TASKS as EGOBENCH_TASKS

__all__ = ["EGOBENCH_TASKS", "embed_texts", "load_text_encoder"]
