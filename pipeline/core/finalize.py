"""Dataset-level outputs common to every builder, written once every shard is complete: the concatenated
manifest, errors.jsonl and the wids indexes, derived from the shards' own files (so resumed shards, written by
an earlier run, count exactly like new ones) plus the failures of the planning stages, which every run
recomputes. Everything is deterministic: sorted, no timestamps.

These top-level files claim a complete dataset, so a build removes them before it checks or writes any shard
(`remove_top_level`, stats.json first; pipeline.core.transforms.WriteShards runs it) and its finalize step
writes them again once every shard is complete, the builder's stats.json last. A builder whose finalize step
writes files of its own registers their names (`register_top_level`).
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline.core import shards
from pipeline.core.writer import join, read_json, shard_files, write_bytes, write_json

CLIP_LENGTH_BINS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, float("inf"))
_SHARD_SUFFIX = re.compile(r"(\.tar|\.parquet|_stats\.json)(\.tmp)?$")
# stats.json first: it is the dataset's own "complete" marker, removed before anything it describes
TOP_LEVEL = ("stats.json", "manifest.parquet", "errors.jsonl")
_EXTRA_TOP_LEVEL: dict[str, tuple[str, ...]] = {}  # shard prefix -> regexes of its builder's own files


def register_top_level(prefix: str, *patterns: str) -> None:
    """File names (full-match regexes) that `prefix`'s finalize step writes besides the common ones."""
    _EXTRA_TOP_LEVEL[prefix] = tuple(sorted(set(_EXTRA_TOP_LEVEL.get(prefix, ()) + patterns)))


def top_level_patterns(prefix: str) -> list[re.Pattern]:
    names = [re.escape(n) for n in TOP_LEVEL]
    names.append(rf"{re.escape(prefix)}-[A-Za-z0-9_\-]+\.wids\.json")
    return [re.compile(rf"^(?:{p})(?:\.tmp)?$") for p in (*names, *_EXTRA_TOP_LEVEL.get(prefix, ()))]


def top_level_files(out: str, prefix: str, patterns: list[re.Pattern] | None = None) -> list[str]:
    """The dataset-level files present in OUT (with their half-written .tmp), stats.json first."""
    patterns = patterns if patterns is not None else top_level_patterns(prefix)
    try:
        found = FileSystems.match([join(out, "*")])[0].metadata_list
    except Exception:  # OUT does not exist yet
        return []
    names = {meta.path.rstrip("/").rsplit("/", 1)[-1]: meta.path for meta in found}
    chosen = [n for n in names if any(p.match(n) for p in patterns)]
    order = {n: i for i, n in enumerate(TOP_LEVEL)}
    return [names[n] for n in sorted(chosen, key=lambda n: (order.get(n.removesuffix(".tmp"), len(order)), n))]


def remove_top_level(out: str, prefix: str, patterns: list[re.Pattern] | None = None) -> list[str]:
    """Remove the dataset-level files of an earlier build (stats.json first); returns their paths."""
    removed = top_level_files(out, prefix, patterns)
    for path in removed:  # one by one, in order: an interruption leaves no stats.json beside fewer files
        FileSystems.delete([path])
    return removed


def read_parquet(path: str) -> pa.Table:
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


def remove_stale_shards(out: str, prefix: str, planned: set[str]) -> list[str]:
    """Shard files of an earlier build that the current plan does not contain (e.g. fewer shards now)."""
    shard_file = re.compile(rf"^{re.escape(prefix)}-[A-Za-z0-9_]+-\d{{6}}(\.tar|\.parquet|_stats\.json)(\.tmp)?$")
    stale = []
    for meta in FileSystems.match([join(out, f"{prefix}-*")])[0].metadata_list:
        name = meta.path.rstrip("/").rsplit("/", 1)[-1]
        if shard_file.match(name) and _SHARD_SUFFIX.sub("", name) not in planned:
            stale.append(meta.path)
    if stale:
        FileSystems.delete(sorted(stale))
    return sorted(stale)


def finalize_shards(
    out: str,
    prefix: str,
    planned: list[tuple[str, str]],
    failures: list[dict],
    *,
    failure_sort_key: Callable[[dict], tuple],
    empty_manifest: Callable[[], pa.Table],
) -> tuple[pa.Table, list[dict], list[dict], int]:
    """planned: (shard name, split) of every shard of this build; failures: the planning stages' records.

    Writes manifest.parquet, errors.jsonl (planning failures + every shard's own, sorted) and one wids index
    per split; removes shard files the plan no longer has. Returns (manifest, shard stats, all failures,
    number of stale files removed) for the builder's own stats."""
    planned = sorted(set(planned))
    stale = remove_stale_shards(out, prefix, {name for name, _ in planned})
    tables, shard_stats = [], []
    for name, _ in planned:
        files = shard_files(out, name)
        shard_stats.append(read_json(files["stats"]))
        tables.append(read_parquet(files["parquet"]))
    manifest = pa.concat_tables(tables) if tables else empty_manifest()
    buf = io.BytesIO()
    shards.write_parquet(manifest, buf)
    write_bytes(join(out, "manifest.parquet"), buf.getvalue())

    all_failures = list(failures) + [f for s in shard_stats for f in s["failures"]]
    all_failures.sort(key=failure_sort_key)
    write_failures(out, all_failures)

    by_split: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for s in shard_stats:
        by_split[s["split"]].append((s["shard"], s["n_samples"]))
    for split, entries in sorted(by_split.items()):
        index = shards.wids_index(entries, f"{prefix}-{split}")
        write_bytes(join(out, f"{prefix}-{split}.wids.json"), json.dumps(index, indent=1).encode())
    return manifest, shard_stats, all_failures, len(stale)


def write_failures(out: str, failures: list[dict]) -> None:
    """OUT/errors.jsonl: one sorted-key JSON line per failure, in the order given (builds and validations)."""
    lines = "".join(json.dumps(f, sort_keys=True, ensure_ascii=False) + "\n" for f in failures)
    write_bytes(join(out, "errors.jsonl"), lines.encode())


def finalize_dataset(
    out: str,
    prefix: str,
    planned: list[tuple[str, str]],
    failures: list,
    *,
    failure_type: type,
    manifest_table: Callable[[list[dict]], pa.Table],
    stats_of: Callable[[pa.Table, list[dict], list[dict]], dict],
) -> dict:
    """A builder's finalize step: the core's manifest / errors / wids files (finalize_shards), then
    stats_of(manifest, shard stats, every failure as a dict) (which may write the builder's own files), and
    stats.json last. failures: the planning stages' records (failure_type instances); returns the stats."""
    manifest, shard_stats, all_failures, n_stale = finalize_shards(
        out,
        prefix,
        planned,
        [f.to_dict() for f in failures],
        failure_sort_key=lambda f: failure_type(**f).sort_key(),
        empty_manifest=lambda: manifest_table([]),
    )
    stats = stats_of(manifest, shard_stats, all_failures)
    stats["stale_files_removed"] = n_stale
    write_json(join(out, "stats.json"), stats)
    return stats


def split_totals(shard_stats: list[dict], **summed: str) -> dict:
    """{split: {"shards", "samples", "bytes", name: sum of each shard's stats[key] for name=key}}, sorted."""
    per_split: dict[str, dict] = defaultdict(lambda: {"shards": 0, "samples": 0, "bytes": 0, **dict.fromkeys(summed, 0)})
    for s in shard_stats:
        d = per_split[s["split"]]
        d["shards"] += 1
        d["samples"] += s["n_samples"]
        d["bytes"] += s["tar_bytes"]
        for name, key in summed.items():
            d[name] += s[key]
    return {k: per_split[k] for k in sorted(per_split)}


def by_scope_and_reason(failures: list[dict]) -> dict:
    """{"<scope>: <reason>": count}, sorted: the stats' failures_by_scope_and_reason."""
    return dict(sorted(Counter(f"{f['scope']}: {f['reason']}" for f in failures).items()))
