"""Ego-ExoClip's dataset-level outputs: the core's manifest / errors / wids files (pipeline/core/finalize.py)
plus stats.json (counts by split and scenario, clip lengths, alpha, narrations in and dropped).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa

from pipeline.core.finalize import by_scope_and_reason, clip_length_stats, finalize_dataset, split_totals
from pipeline.egoexoclip.plan import Failure
from pipeline.egoexoclip.samples import manifest_table
from pipeline.egoexoclip.writer import SHARD_PREFIX


def finalize(
    out: str,
    planned: list[tuple[str, str]],
    failures: list[Failure],
    inputs: list[tuple[str, int]],
    alpha: float,
    options: dict,
) -> dict:
    """planned: (shard name, split) of every shard of this build. Returns the dataset stats."""
    return finalize_dataset(out, SHARD_PREFIX, planned, failures, failure_type=Failure, manifest_table=manifest_table,
                            stats_of=lambda m, shards, fails: dataset_stats(m, shards, fails, inputs, alpha, options))  # fmt: skip


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
    per_split = split_totals(shard_stats)
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
        "splits": per_split,
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
        "failures_by_scope_and_reason": by_scope_and_reason(failures),
    }
