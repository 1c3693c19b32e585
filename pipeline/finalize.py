"""Dataset-level outputs, written once every shard is complete: manifest, stats, errors, wids indexes.

Everything here is derived from the shards' own manifests and stats files (so resumed shards, written by an
earlier run, count exactly like new ones) plus the failures of the planning stages, which every run recomputes.
All outputs are deterministic: sorted, no timestamps.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline import shards
from pipeline.plan import Failure
from pipeline.writer import SHARD_PREFIX, join, read_json, shard_files, write_bytes

_SHARD_FILE = re.compile(rf"^{SHARD_PREFIX}-[A-Za-z0-9_]+-\d{{6}}(\.tar|\.parquet|_stats\.json)(\.tmp)?$")
CLIP_LENGTH_BINS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, float("inf"))


def _read_parquet(path: str) -> pa.Table:
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return pq.read_table(io.BytesIO(f.read()))


def clip_length_stats(lengths: np.ndarray) -> dict:
    if len(lengths) == 0:
        return {"count": 0}
    counts, _ = np.histogram(lengths, bins=np.array(CLIP_LENGTH_BINS))
    return {
        "count": int(len(lengths)),
        "mean_sec": round(float(lengths.mean()), 4),
        "median_sec": round(float(np.median(lengths)), 4),
        "p90_sec": round(float(np.percentile(lengths, 90)), 4),
        "fraction_under_1s": round(float((lengths < 1.0).mean()), 4),
        "histogram_sec": [
            {"from": lo, "to": None if hi == float("inf") else hi, "count": int(c)}
            for lo, hi, c in zip(CLIP_LENGTH_BINS[:-1], CLIP_LENGTH_BINS[1:], counts, strict=True)
        ],
    }


def remove_stale_shards(out: str, planned: set[str]) -> list[str]:
    """Shard files of an earlier build that the current plan does not contain (e.g. fewer shards now)."""
    stale = []
    for meta in FileSystems.match([join(out, f"{SHARD_PREFIX}-*")])[0].metadata_list:
        name = meta.path.rstrip("/").rsplit("/", 1)[-1]
        stem = re.sub(r"(\.tar|\.parquet|_stats\.json)(\.tmp)?$", "", name)
        if _SHARD_FILE.match(name) and stem not in planned:
            stale.append(meta.path)
    if stale:
        FileSystems.delete(sorted(stale))
    return sorted(stale)


def finalize(
    out: str,
    planned: list[tuple[str, str]],
    failures: list[Failure],
    inputs: list[tuple[str, int]],
    alpha: float,
    options: dict,
) -> dict:
    """planned: (shard name, split) of every shard of this build. Returns the dataset stats."""
    planned = sorted(set(planned))
    stale = remove_stale_shards(out, {name for name, _ in planned})
    tables, shard_stats = [], []
    for name, _ in planned:
        files = shard_files(out, name)
        shard_stats.append(read_json(files["stats"]))
        tables.append(_read_parquet(files["parquet"]))
    manifest = pa.concat_tables(tables) if tables else shards.manifest_table([])
    buf = io.BytesIO()
    shards.write_parquet(manifest, buf)
    write_bytes(join(out, "manifest.parquet"), buf.getvalue())

    all_failures = [f.to_dict() for f in failures] + [f for s in shard_stats for f in s["failures"]]
    all_failures.sort(key=lambda f: Failure(**f).sort_key())
    write_bytes(
        join(out, "errors.jsonl"),
        "".join(json.dumps(f, sort_keys=True) + "\n" for f in all_failures).encode(),
    )

    by_split: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for s in shard_stats:
        by_split[s["split"]].append((s["shard"], s["n_samples"]))
    for split, entries in sorted(by_split.items()):
        index = shards.wids_index(entries, f"{SHARD_PREFIX}-{split}")
        write_bytes(join(out, f"{SHARD_PREFIX}-{split}.wids.json"), json.dumps(index, indent=1).encode())

    stats = dataset_stats(manifest, shard_stats, all_failures, inputs, alpha, options)
    stats["stale_files_removed"] = len(stale)
    write_bytes(join(out, "stats.json"), json.dumps(stats, sort_keys=True, indent=1).encode())
    return stats


def dataset_stats(
    manifest: pa.Table, shard_stats: list[dict], failures: list[dict], inputs, alpha: float, options: dict
) -> dict:
    columns = [
        "split",
        "scenario",
        "take_uid",
        "narration_index",
        "window_start",
        "window_end",
        "exo_cam",
        "exo_cams",
    ]
    rows = manifest.select(columns).to_pylist()
    # a pairs sample holds one pair; a moments sample (exo_cam null) holds one pair per exo view
    n_pairs = sum(1 if r["exo_cam"] is not None else len(r["exo_cams"]) for r in rows)
    narrations = {(r["take_uid"], r["narration_index"]): r for r in rows}
    per_split: dict[str, dict] = defaultdict(
        lambda: {"shards": 0, "samples": 0, "bytes": 0, "narrations": 0, "takes": 0}
    )
    for s in shard_stats:
        d = per_split[s["split"]]
        d["shards"] += 1
        d["samples"] += s["n_samples"]
        d["bytes"] += s["tar_bytes"]
    for split in per_split:
        per_split[split]["narrations"] = sum(1 for r in narrations.values() if r["split"] == split)
        per_split[split]["takes"] = len({r["take_uid"] for r in narrations.values() if r["split"] == split})
    scenarios: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        scenarios[r["split"]][r["scenario"]] += 1
    lengths = np.array([r["window_end"] - r["window_start"] for r in narrations.values()], dtype=np.float64)
    lost = [f for f in failures if f["scope"] == "narration"]
    n_input = sum(n for _, n in inputs)
    return {
        "options": options,
        "alpha": alpha,
        "splits": {k: per_split[k] for k in sorted(per_split)},
        "samples": len(rows),
        "pairs": n_pairs,
        "samples_by_split_and_scenario": {k: dict(sorted(v.items())) for k, v in sorted(scenarios.items())},
        "narrations": {
            "input": n_input,
            "in_shards": len(narrations),
            "dropped": len(lost),
            "unaccounted": n_input - len(narrations) - len(lost),
        },
        "clip_length": clip_length_stats(lengths),
        "narrations_dropped_by_reason": dict(sorted(Counter(f["reason"] for f in lost).items())),
        "failures_by_scope_and_reason": dict(
            sorted(Counter(f"{f['scope']}: {f['reason']}" for f in failures).items())
        ),
    }
