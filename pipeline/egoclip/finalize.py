"""EgoClip's dataset-level outputs: the core's manifest / errors / wids files, and stats.json."""

from __future__ import annotations

from collections import Counter

import numpy as np

from pipeline.core.finalize import by_scope_and_reason, clip_length_stats, finalize_dataset, split_totals
from pipeline.egoclip.rows import ClipFailure
from pipeline.egoclip.samples import manifest_table
from pipeline.egoclip.writer import SHARD_PREFIX


def finalize(out: str, planned: list[tuple[str, str]], failures: list[ClipFailure], counts: list,
             options: dict) -> dict:  # fmt: skip
    """planned: (shard name, split) of every shard of this build; counts: (name, n) of the reading step."""

    def stats_of(manifest, shard_stats: list[dict], all_failures: list[dict]) -> dict:
        rows = manifest.select(["split", "video_uid", "clip_seconds"]).to_pylist()
        return dataset_stats(rows, shard_stats, all_failures, counts, options)

    return finalize_dataset(out, SHARD_PREFIX, planned, failures, failure_type=ClipFailure,
                            manifest_table=manifest_table, stats_of=stats_of)  # fmt: skip


def dataset_stats(
    rows: list[dict], shard_stats: list[dict], failures: list[dict], counts: list, options: dict
) -> dict:
    totals: Counter = Counter()
    for name, n in counts:
        totals[name] += n
    row_failures = [f for f in failures if f["scope"] == "row"]
    return {
        "options": options,
        "splits": split_totals(shard_stats, videos="n_videos"),
        "samples": len(rows),
        "rows": {
            "input": totals["rows"],  # data rows of the csv
            "in_shards": len(rows),
            "failed": len(row_failures),
            # every csv row is in a shard or in errors.jsonl (scope row); 0 in a correct build
            "unaccounted": totals["rows"] - len(rows) - len(row_failures),
        },
        "videos": {
            "in_shards": len({r["video_uid"] for r in rows}),
            "failed": sum(1 for f in failures if f["scope"] == "video"),
        },
        "clip_length": clip_length_stats(np.array([r["clip_seconds"] for r in rows], dtype=np.float64)),
        "failures_by_scope_and_reason": by_scope_and_reason(failures),
    }
