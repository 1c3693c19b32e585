"""How many training samples a set of shards holds for a stage, from the per-shard parquet manifests the
builder writes next to each tar (no clip is read). Remote shards: set data.epoch_samples instead."""

from __future__ import annotations

from pathlib import Path

import braceexpand
import pyarrow.parquet as pq

from exo2ego_model.config import ConfigError


def shard_urls(pattern: str) -> list[str]:
    urls = []
    for part in pattern.split("::"):
        urls.extend(braceexpand.braceexpand(part))
    return urls


def count_samples(pattern: str, kind: str) -> int:
    """exo: every exo view of a narration; pairs: every (ego, exo view); instruct: every narration."""
    total = 0
    for url in shard_urls(pattern):
        manifest = Path(url).with_suffix(".parquet")
        if "://" in url or url.startswith("pipe:") or not manifest.exists():
            raise ConfigError(f"data.shards: no manifest {manifest} next to {url}: set data.epoch_samples")
        rows = pq.read_table(
            manifest, columns=["key", "exo_cam", "exo_cams", "take_uid", "narration_index"]
        ).to_pylist()
        if kind == "instruct":
            total += len({(r["take_uid"], r["narration_index"]) for r in rows})
        else:  # a pairs-layout row is one pair; a moments row (exo_cam null) holds one per exo view
            total += sum(1 if r["exo_cam"] is not None else len(r["exo_cams"]) for r in rows)
    return total
