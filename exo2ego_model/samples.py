"""How many training samples a set of shards holds for a stage, from the per-shard parquet manifests the
builder writes next to each tar (no clip is read). Remote shards: set data.epoch_samples instead."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from exo2ego_model.config import ConfigError
from exo2ego_model.data import expand_urls


def manifest_kind(names: list[str]) -> str:
    """Which builder wrote a manifest, from its columns: "egoit", "egoclip" or "egoexoclip"."""
    if "conversations" in names:
        return "egoit"
    if "video_uid" in names and "take_uid" not in names:
        return "egoclip"
    return "egoexoclip"


def count_samples(pattern, kind: str) -> int:
    """exo: every exo view of a narration; pairs: every (ego, exo view); instruct and ego: every narration
    (Ego-ExoClip) or every row (EgoClip: one clip per csv row; EgoIT: instruct only)."""
    total = 0
    for url in expand_urls(pattern):  # brace patterns, wids indexes, list files, globs (data.expand_urls)
        manifest = Path(url).with_suffix(".parquet")
        if "://" in url or url.startswith("pipe:") or not manifest.exists():
            raise ConfigError(f"data.shards: no manifest {manifest} next to {url}: set data.epoch_samples")
        source = manifest_kind(pq.read_schema(manifest).names)
        if source == "egoit" and kind != "instruct":
            raise ConfigError(f"data.shards: {url} holds EgoIT samples, which feed data_kind instruct only")
        if source == "egoclip" and kind not in ("ego", "instruct"):
            raise ConfigError(f"data.shards: {url} holds EgoClip clips (no exo view): data_kind ego or instruct")
        if source != "egoexoclip":  # one sample per row
            total += pq.read_metadata(manifest).num_rows
            continue
        rows = pq.read_table(
            manifest, columns=["key", "exo_cam", "exo_cams", "take_uid", "narration_index"]
        ).to_pylist()
        if kind in ("instruct", "ego"):
            total += len({(r["take_uid"], r["narration_index"]) for r in rows})
        else:  # a pairs-layout row is one pair; a moments row (exo_cam null) holds one per exo view
            total += sum(1 if r["exo_cam"] is not None else len(r["exo_cams"]) for r in rows)
    return total
