"""EgoBench's dataset-level outputs: the core's manifest / errors / wids files (one wids index per task),
stats.json, and the sentence set of each EPIC-100 MIR benchmark (<benchmark>_sentences.json).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
from apache_beam.io.filesystems import FileSystems

from pipeline.core.finalize import (
    by_scope_and_reason,
    clip_length_stats,
    finalize_dataset,
    register_top_level,
    split_totals,
)
from pipeline.core.writer import join, write_bytes
from pipeline.egobench.plan import BenchFailure
from pipeline.egobench.samples import manifest_table
from pipeline.egobench.writer import SHARD_PREFIX, STAGING

# the sentence sets are dataset-level: removed when a build starts, written by finalize
register_top_level(SHARD_PREFIX, r"[A-Za-z0-9_\-]+_sentences\.json")


def sentences_file(benchmark: str) -> str:
    return f"{benchmark}_sentences.json"


def finalize(
    out: str,
    planned: list[tuple[str, str]],
    failures: list[BenchFailure],
    counts: list,
    sentence_sets: list[tuple[str, dict]],
    options: dict,
) -> dict:
    """planned: (shard name, task) of every shard of this build; counts: ((kind, name), n)."""

    def stats_of(manifest, shard_stats: list[dict], all_failures: list[dict]) -> dict:
        staging = join(out, STAGING)
        if FileSystems.exists(staging):  # every shard is complete: the staged clips of multi-clip tasks are spent
            FileSystems.delete([staging])
        for benchmark, doc in sorted(sentence_sets, key=lambda s: s[0]):
            write_bytes(
                join(out, sentences_file(benchmark)), json.dumps(doc, ensure_ascii=False, indent=1).encode()
            )
        rows = manifest.select(["task", "benchmark", "clip_seconds", "has_answer"]).to_pylist()
        stats = dataset_stats(rows, shard_stats, all_failures, counts, options)
        stats["sentence_sets"] = {
            b: {"file": sentences_file(b), "sentences": d["n_sentences"]} for b, d in sentence_sets
        }
        return stats

    return finalize_dataset(out, SHARD_PREFIX, planned, failures, failure_type=BenchFailure,
                            manifest_table=manifest_table, stats_of=stats_of)  # fmt: skip


def _sorted(counter: Counter) -> dict:
    return {k: counter[k] for k in sorted(counter)}


def dataset_stats(
    rows: list[dict], shard_stats: list[dict], failures: list[dict], counts: list, options: dict
) -> dict:
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for (kind, name), n in counts:
        by_kind[kind][name] += n
    item_failures = [f for f in failures if f["scope"] == "item"]
    row_failures = [f for f in failures if f["scope"] == "record"]
    in_shards = Counter(r["task"] for r in rows)
    failed = Counter(f["task"] for f in item_failures)
    read = sum(by_kind["items"].values())
    n_rows = sum(by_kind["rows"].values())
    return {
        "options": options,
        "samples": len(rows),
        # annotation rows of the files read, per benchmark entry: an item each, or a row failure
        "rows": _sorted(by_kind["rows"]),
        "row_failures": _sorted(Counter(f["benchmark"] for f in row_failures)),
        "items": {
            "read": _sorted(by_kind["items"]),
            "in_shards": _sorted(in_shards),
            "in_shards_by_benchmark": _sorted(Counter(r["benchmark"] for r in rows)),
            "failed": _sorted(failed),
            "without_answer": _sorted(Counter(r["task"] for r in rows if not r["has_answer"])),
            # every item read is in a shard or in errors.jsonl (scope item); 0 in a correct build
            "unaccounted": read - len(rows) - len(item_failures),
        },
        # every row read is an item in a shard, an item failure or a row failure; 0 in a correct build
        "unaccounted_rows": n_rows - len(rows) - len(item_failures) - len(row_failures),
        "tasks": split_totals(shard_stats),
        "clip_length": clip_length_stats(np.array([r["clip_seconds"] for r in rows], dtype=np.float64)),
        "failures_by_scope_and_reason": by_scope_and_reason(failures),
        "item_failures_by_task_and_reason": _sorted(
            Counter(f"{f['task']}: {f['reason']}" for f in item_failures)
        ),
        "row_failures_by_benchmark_and_reason": _sorted(
            Counter(f"{f['benchmark']}: {f['reason']}" for f in row_failures)
        ),
    }
