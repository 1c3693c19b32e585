"""Writing one shard, for every builder: decode each source video once, cut all of its clips, pack, write.

A shard is the unit of work and of resume. Its clips are extracted by the worker that writes it, into that
worker's own temporary directory, so clip bytes never travel through a shuffle and no step relies on a disk
shared with the driver. Files reach the output through Beam's filesystem layer (local, gs://, s3://): written
under a temporary name, renamed when complete, and the shard's `_stats.json` is written last as the commit marker: it records the
options fingerprint and the size and sha256 of the tar and the parquet, which resume checks (an old marker is
removed before a shard is rewritten). Temporary files go to the build's work directory (workdir.py).

A builder describes a shard as a sequence of *groups* (Ego-ExoClip: a take; EgoIT: a source video), each with
the sources to decode (`SourceClips`) and a function that turns the cut clips into samples:

    write_shard(out, plan, groups, fmt=..., layout=ShardLayout(sources_of=..., manifest=...), samples_of=...)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipeline.core import progress, shards
from pipeline.core.clips import ClipFormat, ClipRequest, ExtractionError, VideoInfo, extract_clips
from pipeline.core.clips.images import extract_image_clip
from pipeline.core.localize import local_copy
from pipeline.core.workdir import worker_dir


def join(out: str, name: str) -> str:
    return FileSystems.join(out, name)


def shard_files(out: str, name: str) -> dict[str, str]:
    return {
        "tar": join(out, f"{name}.tar"),
        "parquet": join(out, f"{name}.parquet"),
        "stats": join(out, f"{name}_stats.json"),
    }


def read_json(path: str):
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return json.loads(f.read().decode())


def write_bytes(path: str, data: bytes) -> None:
    """Whole-file write through the filesystem layer: temporary name, then rename."""
    tmp = f"{path}.tmp"
    with FileSystems.create(tmp, compression_type="uncompressed") as f:
        f.write(data)
    FileSystems.rename([tmp], [path])


def write_json(path: str, obj) -> None:
    write_bytes(path, json.dumps(obj, sort_keys=True, indent=1).encode())


def write_loose_file(out: str, rel: str, data: bytes, record: dict[str, str]) -> None:
    """A file of a shard kept outside its tar (EgoIT's clip files): written (temporary name, then rename) and
    its sha256 recorded in `record` under its path relative to OUT. A builder puts the record into the
    shard's stats as "loose_files" (ShardLayout.summarize), so resume verifies them (shard_is_complete)."""
    write_bytes(join(out, rel), data)
    record[rel] = hashlib.sha256(data).hexdigest()


HASH_CHUNK = 8 << 20


def file_sha256(path: str) -> str:
    """sha256 of a file read through the filesystem layer, in chunks."""
    sha = hashlib.sha256()
    with FileSystems.open(path, compression_type="uncompressed") as f:
        while chunk := f.read(HASH_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def shard_is_complete(out: str, name: str, fingerprint: str) -> bool:
    """A shard is complete when its commit marker exists and matches the plan (options fingerprint), and its
    tar and parquet have the sizes and sha256 digests the marker records, as have the shard's loose files
    (write_loose_file): a file replaced by another build's (even of the same size), truncated, damaged or
    deleted is found here and the shard rebuilt. Markers without the digests (written before they were
    recorded) count as incomplete."""
    files = shard_files(out, name)
    try:
        stats = read_json(files["stats"])
        if stats.get("fingerprint") != fingerprint or stats.get("shard") != f"{name}.tar":
            return False
        tar, parquet = (r.metadata_list for r in FileSystems.match([files["tar"], files["parquet"]]))
        return (
            len(tar) == 1 == len(parquet)
            and tar[0].size_in_bytes == stats["tar_bytes"]
            and parquet[0].size_in_bytes == stats["parquet_bytes"]
            and file_sha256(files["tar"]) == stats["tar_sha256"]
            and file_sha256(files["parquet"]) == stats["parquet_sha256"]
            and all(file_sha256(join(out, rel)) == sha for rel, sha in stats.get("loose_files", {}).items())
        )
    except Exception:  # missing, unreadable or truncated marker or file: rebuild
        return False


def default_tmp_root() -> str:
    """This worker's copy of the build's work directory (pipeline/core/workdir.py), on its own disk."""
    return worker_dir()


class _HashingWriter:
    def __init__(self, f):
        self.f, self.sha, self.n = f, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.n += len(data)
        return self.f.write(data)


@dataclass(frozen=True)
class SpilledClip:
    """A clip written to the worker's temporary directory: memory stays flat in source length."""

    kind: str
    paths: tuple[str, ...]  # one mp4, or the JPEG frames in order
    source_frames: tuple[int, ...] = ()  # source frame index of each output frame (images: index in the list)

    def payload(self) -> bytes | tuple[bytes, ...]:
        blobs = []
        for p in self.paths:
            with open(p, "rb") as f:
                blobs.append(f.read())
        return blobs[0] if self.kind == "mp4" else tuple(blobs)


def payload_bytes(payload: bytes | tuple[bytes, ...]) -> int:
    return len(payload) if isinstance(payload, bytes) else sum(map(len, payload))


@dataclass(frozen=True)
class SourceClips:
    """One source to decode once and the clips to cut from it.

    A video file (`path`, with `info` from the planning probe, or None to probe here), or an image sequence
    (`images`: image files in temporal order, all cut into one clip per request over image indices)."""

    source_id: str  # unique within its group; names the source in the returned maps
    path: str  # video file (local path or any Beam filesystem URL); for images, their folder (for reports)
    requests: tuple[ClipRequest, ...]
    info: VideoInfo | None = None
    images: tuple[str, ...] = field(default=())
    image_fps: float = 1.0  # frame rate given to an image sequence encoded as mp4


def extract_sources(
    sources: Sequence[SourceClips], fmt: ClipFormat, workdir: str, *, timeout_s: float, threads: int = 1
) -> tuple[dict[str, dict[str, SpilledClip]], dict[str, ExtractionError]]:
    """Decode each source once; returns source_id -> {clip_id -> clip on disk} and source_id -> error."""

    def run(src: SourceClips):
        view_dir = tempfile.mkdtemp(prefix="src-", dir=workdir)
        clip_dir = tempfile.mkdtemp(prefix="src-clips-", dir=workdir)
        try:
            if src.images:
                clips = [
                    extract_image_clip(src.images, r, fmt, workdir=view_dir, keep_dir=clip_dir,
                                       fps=src.image_fps, timeout_s=timeout_s)
                    for r in src.requests
                ]  # fmt: skip
            else:
                with local_copy(src.path, workdir) as local:
                    # keep_dir: clips stay on this worker's disk (flat memory), handed over without a copy
                    clips = extract_clips(local, src.requests, fmt, workdir=view_dir, timeout_s=timeout_s,
                                          info=src.info, keep_dir=clip_dir)  # fmt: skip
            return src.source_id, {c.clip_id: SpilledClip(c.kind, c.paths, c.source_frames) for c in clips}, None
        except ExtractionError as err:
            return src.source_id, {}, err

    clips: dict[str, dict[str, SpilledClip]] = {}
    errors: dict[str, ExtractionError] = {}
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for source_id, got, err in pool.map(run, sorted(sources, key=lambda s: s.source_id)):
            clips[source_id] = got
            if err is not None:
                errors[source_id] = err
    return clips, errors


# samples_of(group, clips, errors, failures) yields (sample, manifest row) and appends failure records
SamplesOf = Callable[
    [object, dict[str, dict[str, SpilledClip]], dict[str, ExtractionError], list],
    Iterator[tuple[dict, dict]],
]


@dataclass(frozen=True)
class ShardLayout:
    """How a builder turns its groups into a shard: the sources of a group to decode (`sources_of`), the
    manifest table of the rows (`manifest`), extra fields of the shard's stats (`summarize(rows)`), and
    what a group is called in progress events and log lines (`unit`, `group_name`, `samples_unit`)."""

    sources_of: Callable[[object], Sequence[SourceClips]]
    manifest: Callable[[list[dict]], pa.Table]
    summarize: Callable[[list[dict]], dict] | None = None
    unit: str = "group"
    group_name: Callable[[object], str] = str
    samples_unit: str = "samples"


def write_shard(
    out: str,
    plan,
    groups: Iterable,
    *,
    fmt,
    layout: ShardLayout,
    samples_of: SamplesOf,
    tmp_root: str | None = None,
    on_group: Callable[[str, int, float], None] | None = None,
) -> dict:
    """Write the shard of `plan` (its .name, .split, .fingerprint) from `groups`: the tar, the parquet
    manifest and the stats (last); returns the stats dict. fmt: the builder's output format (.clip, the
    ClipFormat; .decode_timeout_s; .decode_threads).

    Failure records appended by `samples_of` need `to_dict()` and `sort_key()`; they go into the stats file
    sorted. `layout.summarize(rows)` adds builder-specific fields to the stats. After each group (written,
    or lost with its failures reported) a progress event is recorded (pipeline.core.progress: the unit, the
    group's name, clips, samples) and on_group("<unit> <name> (<k> <samples_unit>)", clips cut, seconds) is
    called (the worker's log line)."""
    name, split, fingerprint = plan.name, plan.split, plan.fingerprint
    sources_of, manifest, summarize = layout.sources_of, layout.manifest, layout.summarize
    unit, group_name = layout.unit, layout.group_name
    files = shard_files(out, name)
    tmp_tar = f"{files['tar']}.tmp"
    failures: list = []
    rows: list[dict] = []
    if FileSystems.exists(files["stats"]):  # the old marker goes first: it must never vouch for new files
        FileSystems.delete([files["stats"]])
    if tmp_root:
        os.makedirs(tmp_root, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=f"{name}-", dir=tmp_root)
    try:
        with FileSystems.create(tmp_tar, compression_type="uncompressed") as raw:
            sink = _HashingWriter(raw)
            writer = shards.ShardWriter(sink)
            for group in groups:
                started = time.monotonic()
                group_dir = tempfile.mkdtemp(prefix="group-", dir=workdir)
                clips, errors = extract_sources(sources_of(group), fmt.clip, group_dir,
                                                timeout_s=fmt.decode_timeout_s, threads=fmt.decode_threads)  # fmt: skip
                n_samples = 0
                for sample, row in samples_of(group, clips, errors, failures):
                    writer.write(sample)
                    rows.append({**row, "shard": f"{name}.tar"})
                    n_samples += 1
                shutil.rmtree(group_dir, ignore_errors=True)
                n_clips, seconds, gname = sum(len(c) for c in clips.values()), time.monotonic() - started, group_name(group)
                progress.record("group", unit=unit, shard=name, group=gname, clips=n_clips, samples=n_samples,
                                seconds=round(seconds, 3))  # fmt: skip
                if on_group:
                    on_group(f"{unit} {gname} ({n_samples} {layout.samples_unit})", n_clips, seconds)
            writer.close()
        FileSystems.rename([tmp_tar], [files["tar"]])
        buf = io.BytesIO()
        shards.write_parquet(manifest(rows), buf)
        parquet = buf.getvalue()
        write_bytes(files["parquet"], parquet)
        stats = {
            "shard": f"{name}.tar",
            "split": split,
            "fingerprint": fingerprint,
            "n_samples": len(rows),
            **(summarize(rows) if summarize else {}),
            "tar_bytes": sink.n,
            "tar_sha256": sink.sha.hexdigest(),
            "parquet_bytes": len(parquet),
            "parquet_sha256": hashlib.sha256(parquet).hexdigest(),
            "failures": [f.to_dict() for f in sorted(failures, key=lambda f: f.sort_key())],
        }
        write_json(files["stats"], stats)
        return stats
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if FileSystems.exists(tmp_tar):
            FileSystems.delete([tmp_tar])
