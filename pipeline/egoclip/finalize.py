"""EgoClip's dataset-level outputs: the core's manifest / errors / wids files, and stats.json."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from pipeline.core.finalize import clip_length_stats, finalize_shards
from pipeline.core.writer import join, write_json
from pipeline.egoclip.rows import ClipFailure
from pipeline.egoclip.samples import manifest_table
from pipeline.egoclip.writer import SHARD_PREFIX


def finalize(out: str, planned: list[tuple[str, str]], failures: list[ClipFailure], counts: list,
             options: dict) -> dict:  # fmt: skip
    """planned: (shard name, split) of every shard of this build; counts: (name, n) of the reading step."""
    manifest, shard_stats, all_failures, n_stale = finalize_shards(
        out,
        SHARD_PREFIX,
        planned,
        [f.to_dict() for f in failures],
        failure_sort_key=lambda f: ClipFailure(**f).sort_key(),
        empty_manifest=lambda: manifest_table([]),
    )
    rows = manifest.select(["split", "video_uid", "clip_seconds"]).to_pylist()
    stats = dataset_stats(rows, shard_stats, all_failures, counts, options)
    stats["stale_files_removed"] = n_stale
    write_json(join(out, "stats.json"), stats)
    return stats


def dataset_stats(
    rows: list[dict], shard_stats: list[dict], failures: list[dict], counts: list, options: dict
) -> dict:
    totals: Counter = Counter()
    for name, n in counts:
        totals[name] += n
    per_split: dict[str, dict] = defaultdict(lambda: {"shards": 0, "samples": 0, "bytes": 0, "videos": 0})
    for s in shard_stats:
        d = per_split[s["split"]]
        d["shards"] += 1
        d["samples"] += s["n_samples"]
        d["bytes"] += s["tar_bytes"]
        d["videos"] += s["n_videos"]
    row_failures = [f for f in failures if f["scope"] == "row"]
    by = Counter(f"{f['scope']}: {f['reason']}" for f in failures)
    return {
        "options": options,
        "splits": {k: per_split[k] for k in sorted(per_split)},
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
        "failures_by_scope_and_reason": dict(sorted(by.items())),
    }
