"""EgoIT's dataset-level outputs: the core's manifest / errors / wids files, stats.json, and the VideoLLaMA2 /
LLaVA training JSON (egoit.json for train, egoit-val.json for val) pointing at the per-sample clip files.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np

from pipeline.core.finalize import (
    by_scope_and_reason,
    clip_length_stats,
    finalize_dataset,
    register_top_level,
    split_totals,
)
from pipeline.core.writer import join, write_bytes
from pipeline.egoit.plan import ItemFailure
from pipeline.egoit.samples import manifest_table
from pipeline.egoit.writer import SHARD_PREFIX

STAGES = ("input", "records", "converted", "deduplicated", "mixed")
# the training JSON files are dataset-level: removed when a build starts, written by finalize
register_top_level(SHARD_PREFIX, rf"{SHARD_PREFIX}(?:-[A-Za-z0-9_]+)?\.json")


def training_json_name(split: str) -> str:
    return "egoit.json" if split == "train" else f"egoit-{split}.json"


def videollama2_entries(rows: list[dict]) -> list[dict]:
    """VideoLLaMA2's training JSON: [{id, video, conversations: [{from, value}, ...]}], video relative to OUT."""
    return [
        {"id": r["key"], "video": r["clip_file"], "conversations": json.loads(r["conversations"])}
        for r in sorted(rows, key=lambda r: r["key"])
    ]


def finalize(out: str, planned: list[tuple[str, str]], failures: list[ItemFailure], counts: list,
             options: dict, write_training_json: bool) -> dict:  # fmt: skip
    """planned: (shard name, split) of every shard of this build; counts: ((source, stage, task), n)."""

    def stats_of(manifest, shard_stats: list[dict], all_failures: list[dict]) -> dict:
        rows = manifest.select(["key", "split", "source", "task", "clip_seconds", "clip_file", "conversations"])
        rows = rows.to_pylist()
        if write_training_json:
            by_split = defaultdict(list)
            for r in rows:
                by_split[r["split"]].append(r)
            for split, split_rows in sorted(by_split.items()):
                doc = json.dumps(videollama2_entries(split_rows), ensure_ascii=False, indent=1)
                write_bytes(join(out, training_json_name(split)), doc.encode())
        return dataset_stats(rows, shard_stats, all_failures, counts, options)

    return finalize_dataset(out, SHARD_PREFIX, planned, failures, failure_type=ItemFailure,
                            manifest_table=manifest_table, stats_of=stats_of)  # fmt: skip


def _nested(counter: Counter) -> dict:
    """{(source, task): n} -> {source: {task: n, "all": n}}."""
    out: dict[str, dict] = defaultdict(dict)
    for (source, task), n in sorted(counter.items()):
        if task:
            out[source][task] = n
        out[source]["all"] = out[source].get("all", 0) + n
    return {k: out[k] for k in sorted(out)}


def dataset_stats(rows: list[dict], shard_stats: list[dict], failures: list[dict], counts: list, options: dict) -> dict:
    stage_counts: dict[str, Counter] = defaultdict(Counter)
    for (source, stage, task), n in counts:
        stage_counts[stage][(source, task)] += n
    in_shards = Counter((r["source"], r["task"]) for r in rows)
    item_failures = [f for f in failures if f["scope"] == "item"]
    converted = sum(stage_counts["converted"].values())
    accounted = len(rows) + len([f for f in item_failures])
    near = Counter(f["source"] for f in item_failures if f["reason"] == "near duplicate")
    return {
        "options": options,
        "splits": split_totals(shard_stats),
        "samples": len(rows),
        # rows of the annotation files: records + rows reported unusable (file-level failures have no rows)
        "input_rows": _nested(stage_counts["input"]),
        "records": _nested(stage_counts["records"]),
        "items": {
            "converted": _nested(stage_counts["converted"]),
            "after_dedup": _nested(stage_counts["deduplicated"]),
            "after_mixing": _nested(stage_counts["mixed"]),
            "in_shards": _nested(in_shards),
            # every converted item is in a shard or in errors.jsonl (scope item); 0 in a correct build
            "unaccounted": converted - accounted,
        },
        "near_duplicates_removed": {"by_source": dict(sorted(near.items())), "total": sum(near.values())},
        "clip_length": clip_length_stats(np.array([r["clip_seconds"] for r in rows], dtype=np.float64)),
        "failures_by_scope_and_reason": by_scope_and_reason(failures),
        "item_failures_by_source_and_reason": dict(
            sorted(Counter(f"{f['source']}: {f['reason']}" for f in item_failures).items())
        ),
    }
