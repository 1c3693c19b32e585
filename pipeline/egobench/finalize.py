"""EgoBench's dataset-level outputs: the core's manifest / errors / wids files (one wids index per task),
stats.json, and the sentence set of each EPIC-100 MIR benchmark (<benchmark>_sentences.json).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
from apache_beam.io.filesystems import FileSystems

from pipeline.core.finalize import clip_length_stats, finalize_shards, register_top_level
from pipeline.core.writer import join, write_bytes, write_json
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
    manifest, shard_stats, all_failures, n_stale = finalize_shards(
        out,
        SHARD_PREFIX,
        planned,
        [f.to_dict() for f in failures],
        failure_sort_key=lambda f: BenchFailure(**f).sort_key(),
        empty_manifest=lambda: manifest_table([]),
    )
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
    stats["stale_files_removed"] = n_stale
    write_json(join(out, "stats.json"), stats)
    return stats


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
    per_task: dict[str, dict] = defaultdict(lambda: {"shards": 0, "samples": 0, "bytes": 0})
    for s in shard_stats:
        d = per_task[s["split"]]
        d["shards"] += 1
        d["samples"] += s["n_samples"]
        d["bytes"] += s["tar_bytes"]
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
            "failed": _sorted(failed),
            "without_answer": _sorted(Counter(r["task"] for r in rows if not r["has_answer"])),
            # every item read is in a shard or in errors.jsonl (scope item); 0 in a correct build
            "unaccounted": read - len(rows) - len(item_failures),
        },
        # every row read is an item in a shard, an item failure or a row failure; 0 in a correct build
        "unaccounted_rows": n_rows - len(rows) - len(item_failures) - len(row_failures),
        "tasks": {k: per_task[k] for k in sorted(per_task)},
        "clip_length": clip_length_stats(np.array([r["clip_seconds"] for r in rows], dtype=np.float64)),
        "failures_by_scope_and_reason": _sorted(Counter(f"{f['scope']}: {f['reason']}" for f in failures)),
        "item_failures_by_task_and_reason": _sorted(
            Counter(f"{f['task']}: {f['reason']}" for f in item_failures)
        ),
        "row_failures_by_benchmark_and_reason": _sorted(
            Counter(f"{f['benchmark']}: {f['reason']}" for f in row_failures)
        ),
    }
