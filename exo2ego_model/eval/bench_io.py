"""Reading an EgoBench build for the evaluator: what the build wrote (stats.json, manifest.parquet, the shards'
stats), shards per task, samples, their clips, the EPIC sentence set.

What the build says it wrote is the yardstick of a run: stats.json (required: a folder without it is not a
finished EgoBench build) gives the items per task; manifest.parquet gives each shard's item ids in tar order
(only its task / id / shard columns are read), else each shard's `<shard>_stats.json` its item count. A damaged or
missing manifest costs only the names of lost items (a warning): they are still counted from the shards' stats,
or from stats.json per task.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SENTENCES_FILE = "epic_mir_sentences.json"
STATS_FILE = "stats.json"
MANIFEST_FILE = "manifest.parquet"
_SINGLE_MP4 = re.compile(r"^mp4$")
_SINGLE_JPG = re.compile(r"^(\d+)\.jpg$")
_MULTI_MP4 = re.compile(r"^v(\d+)\.mp4$")
_MULTI_JPG = re.compile(r"^v(\d+)\.(\d+)\.jpg$")
_SHARD = re.compile(r"^egobench-(?P<task>[a-z0-9_]+)-(?P<index>\d{6})\.tar$")


class ItemError(Exception):
    """Bad input for one item: recorded with its reason, never fatal."""


class BenchError(ValueError):
    """The --bench folder is not a usable EgoBench build (the message is one line naming the file and why)."""


@dataclass
class BuildIndex:
    """What the build at `bench` says it wrote (module doc)."""

    tasks: dict[str, int]  # task -> items in its shards (stats.json)
    shards: dict[str, list[str]]  # task -> its shard file names, in order
    shard_items: dict[str, int]  # shard file name -> items in it
    shard_ids: dict[str, list[str]]  # shard file name -> item ids in tar order ({} without a manifest)
    warnings: list[str]


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:300]


def read_build(bench: Path) -> BuildIndex:
    """The BuildIndex of an EgoBench build; BenchError when the folder is missing or has no usable stats.json."""
    if not bench.exists():
        raise BenchError(f"--bench {bench}: no such folder (make build-egobench, or --bench DIR)")
    if not bench.is_dir():
        raise BenchError(f"--bench {bench}: not a folder")
    path = bench / STATS_FILE
    if not path.exists():
        raise BenchError(
            f"--bench {bench}: no {STATS_FILE}, so not a finished EgoBench build (the build writes it last; "
            "rerun make build-egobench)"
        )
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BenchError(f"{path}: unreadable ({_one_line(e)})") from None
    per_task = stats.get("tasks") if isinstance(stats, dict) else None
    if not isinstance(per_task, dict) or not all(
        isinstance(d, dict) and isinstance(d.get("samples"), int) for d in per_task.values()
    ):
        raise BenchError(f"{path}: not the stats of an EgoBench build (no tasks.<task>.samples counts)")
    index = BuildIndex({t: d["samples"] for t, d in per_task.items()}, {}, {}, {}, [])

    manifest = bench / MANIFEST_FILE
    try:
        import pyarrow.parquet as pq

        cols = pq.read_table(manifest, columns=["task", "id", "shard"]).to_pydict()
        for task, item_id, shard in zip(cols["task"], cols["id"], cols["shard"], strict=True):
            if shard not in index.shard_ids:
                index.shards.setdefault(task, []).append(shard)
                index.shard_ids[shard] = []
            index.shard_ids[shard].append(item_id)
        index.shard_items = {s: len(ids) for s, ids in index.shard_ids.items()}
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, KeyError, ... on a damaged file
        index.shards, index.shard_ids = {}, {}
        index.warnings.append(
            f"{manifest} unreadable ({_one_line(e)}): lost items are counted from the shards' stats, not named"
        )
    for p in sorted(bench.glob("egobench-*_stats.json")):  # each shard's own stats: shards with no item too
        m = _SHARD.match(p.name[: -len("_stats.json")] + ".tar")
        if not m:
            continue
        shard = p.name[: -len("_stats.json")] + ".tar"
        try:
            n = json.loads(p.read_text())["n_samples"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            index.warnings.append(f"{p} unreadable ({_one_line(e)})")
            continue
        if shard not in index.shard_items:
            index.shard_items[shard] = n
            index.shards.setdefault(m["task"], []).append(shard)
        elif index.shard_items[shard] != n:
            index.warnings.append(f"{p}: {n} samples, {MANIFEST_FILE} lists {index.shard_items[shard]}")
    for task, names in index.shards.items():
        names.sort()
        listed = sum(index.shard_items[s] for s in names)
        if task in index.tasks and listed != index.tasks[task]:
            index.warnings.append(
                f"{task}: {STATS_FILE} counts {index.tasks[task]} items, its shards {listed}"
            )
    return index


# ------------------------------------------------------------------------------------------------ reading


def find_shards(bench: Path) -> dict[str, list[Path]]:
    """task -> its shards in index order."""
    found: dict[str, list[Path]] = {}
    for path in sorted(bench.glob("egobench-*.tar")):
        m = _SHARD.match(path.name)
        if m:
            found.setdefault(m["task"], []).append(path)
    return found


def iter_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {member: bytes}) in tar order, streaming (a sample's members are consecutive, keys split at the
    first dot of the basename). A corrupt tar raises tarfile.TarError after the samples read before it; so does
    one cut at a member boundary (no end-of-archive blocks), before its last sample, which may lack members."""
    key, members = None, {}
    with open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for info in tar:
            if not info.isfile():
                continue
            k, _, member = os.path.basename(info.name).partition(".")
            if k != key:
                if key is not None:
                    yield key, members
                key, members = k, {}
            members[member] = tar.extractfile(info).read()
        # tarfile ends quietly at the end of the data; a whole tar has two zero blocks there
        raw.seek(tar.offset)
        if raw.read(2 * tarfile.BLOCKSIZE) != bytes(2 * tarfile.BLOCKSIZE):
            raise tarfile.ReadError(f"truncated: no end-of-archive marker after {tar.offset} bytes")
    if key is not None:
        yield key, members


def clips_of(members: dict[str, bytes]) -> dict[int, bytes | list[bytes]]:
    """Clip index -> mp4 bytes or the JPEG frames in order ('mp4' / 'NN.jpg' are clip 0)."""
    mp4: dict[int, bytes] = {}
    jpgs: dict[int, dict[int, bytes]] = {}
    for name, data in members.items():
        if _SINGLE_MP4.match(name):
            mp4[0] = data
        elif m := _MULTI_MP4.match(name):
            mp4[int(m[1])] = data
        elif m := _SINGLE_JPG.match(name):
            jpgs.setdefault(0, {})[int(m[1])] = data
        elif m := _MULTI_JPG.match(name):
            jpgs.setdefault(int(m[1]), {})[int(m[2])] = data
    clips: dict[int, bytes | list[bytes]] = {k: [f[i] for i in sorted(f)] for k, f in jpgs.items()}
    clips.update(mp4)
    return clips


@dataclass(frozen=True)
class SentenceSet:
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    verb_classes: tuple[int, ...]
    noun_classes: tuple[tuple[int, ...], ...]


def _pick(row: dict, names: Sequence[str], what: str):
    for n in names:
        if n in row:
            return row[n]
    raise ValueError(f"{SENTENCES_FILE}: a sentence has none of {list(names)} ({what})")


def sentences_path(bench: Path) -> Path:
    """BENCH/epic_mir_sentences.json, else the one <benchmark>_sentences.json whose "task" is epic_mir (the build
    names the file after its config entry)."""
    default = bench / SENTENCES_FILE
    if default.exists():
        return default
    found = []
    for p in sorted(bench.glob("*_sentences.json")):
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("task") == "epic_mir":
            found.append(p)
    if len(found) == 1:
        return found[0]
    raise FileNotFoundError(
        f"no {SENTENCES_FILE} in {bench}" + (f" and {len(found)} epic_mir sentence files" if found else "")
    )


def load_sentences(path: Path) -> SentenceSet:
    """The EPIC-100 sentence set: a list of {sentence_id|id|narration_id, text|narration, verb_class,
    noun_classes|all_noun_classes} objects, or {"sentences": that list}, or columns of those names."""
    doc = json.loads(path.read_text())
    if isinstance(doc, dict) and "sentences" in doc:
        doc = doc["sentences"]
    if isinstance(doc, dict):  # columnar
        n = len(next(iter(doc.values())))
        doc = [{k: v[i] for k, v in doc.items() if isinstance(v, list)} for i in range(n)]
    if not isinstance(doc, list) or not doc:
        raise ValueError(f"{path}: no sentences")
    ids, texts, verbs, nouns = [], [], [], []
    for row in doc:
        ids.append(str(_pick(row, ("sentence_id", "id", "narration_id", "ids"), "id")))
        texts.append(str(_pick(row, ("text", "narration", "sentence", "texts"), "text")))
        verbs.append(int(_pick(row, ("verb_class", "verb_classes"), "verb class")))
        nc = _pick(row, ("noun_classes", "all_noun_classes"), "noun classes")
        nouns.append(tuple(int(c) for c in (nc if isinstance(nc, list | tuple) else [nc])))
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate sentence ids")
    return SentenceSet(tuple(ids), tuple(texts), tuple(verbs), tuple(nouns))


def digest_of(items: Sequence[str]) -> str:
    """A short stable digest of a candidate list (class names, sentence ids), recorded with each prediction."""
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]
