"""Reading an EgoBench build for the evaluator: shards per task, samples, their clips, the EPIC sentence set."""

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
_SINGLE_MP4 = re.compile(r"^mp4$")
_SINGLE_JPG = re.compile(r"^(\d+)\.jpg$")
_MULTI_MP4 = re.compile(r"^v(\d+)\.mp4$")
_MULTI_JPG = re.compile(r"^v(\d+)\.(\d+)\.jpg$")
_SHARD = re.compile(r"^egobench-(?P<task>[a-z0-9_]+)-(?P<index>\d{6})\.tar$")


class ItemError(Exception):
    """Bad input for one item: recorded with its reason, never fatal."""


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
    first dot of the basename). A corrupt tar raises tarfile.TarError after the samples read before it."""
    key, members = None, {}
    with tarfile.open(path, "r|") as tar:
        for info in tar:
            if not info.isfile():
                continue
            k, _, member = os.path.basename(info.name).partition(".")
            if k != key:
                if key is not None:
                    yield key, members
                key, members = k, {}
            members[member] = tar.extractfile(info).read()
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
