"""Building one shard: decode each view of each take once, cut all of its clips, pack samples, write the tar.

A shard is the unit of work and of resume. Its clips are extracted by the worker that writes it, into that
worker's own temporary directory, so clip bytes never travel through a shuffle and no step relies on a disk
shared with the driver. Files reach the output through Beam's filesystem layer (local, gs://, s3://): written
under a temporary name, renamed when complete, and the shard's `_stats.json` is written last as the commit marker.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems

from pipeline import shards
from pipeline.clips import ClipFormat, ClipRequest, ExtractionError, VideoInfo, extract_clips
from pipeline.localize import local_copy
from pipeline.plan import Failure, NarrationPlan, ShardPlan, TakePlan, ViewClip

LOG = logging.getLogger(__name__)
SHARD_PREFIX = "egoexoclip"
LAYOUTS = ("pairs", "moments")


@dataclass(frozen=True)
class OutputFormat:
    layout: str = "pairs"
    clip: ClipFormat = field(default_factory=ClipFormat)
    decode_timeout_s: float = 1800.0
    decode_threads: int = 1  # views of a take decoded concurrently inside one worker

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"OutputFormat.layout={self.layout!r}: expected one of {LAYOUTS}")
        if self.decode_threads < 1:
            raise ValueError(f"OutputFormat.decode_threads={self.decode_threads!r}: must be >= 1")
        if not self.decode_timeout_s > 0:
            raise ValueError(f"OutputFormat.decode_timeout_s={self.decode_timeout_s!r}: must be > 0")

    def content_options(self) -> dict:
        """What changes the bytes of a shard (for its fingerprint); threads and timeouts do not."""
        c = self.clip
        return {
            "layout": self.layout,
            "kind": c.kind,
            "preset": c.preset,
            "crf": c.crf,
            "x264_threads": c.threads,
            "n_frames": c.n_frames,
            "size": c.size,
            "jpeg_quality": c.jpeg_quality,
        }


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


def shard_is_complete(out: str, plan: ShardPlan) -> bool:
    """A shard is complete when its commit marker exists, matches the plan, and its files have their sizes."""
    files = shard_files(out, plan.name)
    try:
        stats = read_json(files["stats"])
        if stats.get("fingerprint") != plan.fingerprint:
            return False
        tar, parquet = (r.metadata_list for r in FileSystems.match([files["tar"], files["parquet"]]))
        return (
            len(tar) == 1 == len(parquet)
            and tar[0].size_in_bytes == stats["tar_bytes"]
            and parquet[0].size_in_bytes == stats["parquet_bytes"]
        )
    except Exception:  # missing, unreadable or truncated marker: rebuild
        return False


class _HashingWriter:
    def __init__(self, f):
        self.f, self.sha, self.n = f, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.n += len(data)
        return self.f.write(data)


@dataclass(frozen=True)
class SpilledClip:
    """A clip written to the worker's temporary directory: memory stays flat in take length."""

    kind: str
    paths: tuple[str, ...]  # one mp4, or the JPEG frames in order

    def payload(self) -> bytes | tuple[bytes, ...]:
        blobs = []
        for p in self.paths:
            with open(p, "rb") as f:
                blobs.append(f.read())
        return blobs[0] if self.kind == "mp4" else tuple(blobs)


def _extract_take(
    take: TakePlan, fmt: OutputFormat, workdir: str
) -> tuple[dict[str, dict[str, SpilledClip]], list[Failure]]:
    """Decode each view of the take once; returns cam_id -> {narration key -> clip on disk} and the view failures."""
    requests: dict[str, list[ClipRequest]] = {take.take.ego.cam_id: []}
    for n in take.narrations:
        requests[n.ego.cam_id].append(ClipRequest(n.key, n.ego.start_frame, n.ego.end_frame))
        for e in n.exos:
            requests.setdefault(e.cam_id, []).append(ClipRequest(n.key, e.start_frame, e.end_frame))
    paths = {v.cam_id: v.path for v in take.take.views}

    def run(cam_id: str):
        view_dir = tempfile.mkdtemp(prefix=f"{cam_id}-", dir=workdir)
        clip_dir = tempfile.mkdtemp(prefix=f"{cam_id}-clips-", dir=workdir)
        meta = take.videos[cam_id]
        # the probe of the planning stage is reused: no second pass over the file
        info = VideoInfo(meta.n_frames, meta.fps, meta.fps_fraction, meta.width, meta.height, meta.codec)
        try:
            with local_copy(paths[cam_id], workdir) as src:
                # keep_dir: clips stay on this worker's disk (flat memory), handed over without a copy
                clips = extract_clips(
                    src,
                    requests[cam_id],
                    fmt.clip,
                    workdir=view_dir,
                    timeout_s=fmt.decode_timeout_s,
                    info=info,
                    keep_dir=clip_dir,
                )
                return cam_id, {c.clip_id: SpilledClip(c.kind, c.paths) for c in clips}, None
        except ExtractionError as err:
            return cam_id, {}, err

    clips: dict[str, dict[str, SpilledClip]] = {}
    failures: list[Failure] = []
    t = take.take
    with ThreadPoolExecutor(max_workers=fmt.decode_threads) as pool:
        for cam_id, got, err in pool.map(run, sorted(requests)):
            clips[cam_id] = got
            if err is not None:
                failures.append(
                    Failure(
                        err.reason,
                        "view",
                        t.split,
                        t.take_uid,
                        t.take_name,
                        cam_id,
                        file=paths[cam_id],
                        detail=err.detail[-500:],
                    )
                )
    return clips, failures


def _meta(take: TakePlan, n: NarrationPlan, exo: ViewClip | None, exos: list[ViewClip]) -> dict:
    nar, t = n.narration, take.take
    return shards.pair_meta(
        key=n.key,
        split=t.split,
        take_uid=t.take_uid,
        take_name=t.take_name,
        scenario=t.scenario,
        narration_index=n.index,
        annotation_uid=nar.annotation_uid,
        annotator_id=nar.annotator_id,
        subject=nar.subject,
        ego_visible=nar.ego_visible,
        unsure=nar.unsure,
        best_exo=nar.best_exo,
        text=nar.text,
        raw_text=nar.raw_text,
        timestamp=nar.timestamp,
        window_start=n.window_sec[0],
        window_end=n.window_sec[1],
        ego_cam=n.ego.cam_id,
        exo_cam=exo.cam_id if exo else "",
        exo_cams=[e.cam_id for e in exos],
        ego_start_frame=n.ego.start_frame,
        ego_end_frame=n.ego.end_frame,
        exo_start_frame=exo.start_frame if exo else -1,
        exo_end_frame=exo.end_frame if exo else -1,
        exo_frames=[f"{e.cam_id}:{e.start_frame}:{e.end_frame}" for e in exos],
        fps=take.fps,
        n_ego_frames=n.ego.end_frame - n.ego.start_frame,
    )


def _row(key: str, meta: dict, exo: ViewClip | None, ego_bytes: int, exo_bytes: int) -> dict:
    """Manifest row: the json member plus where the sample is and how big its clips are."""
    return {
        **meta,
        "key": key,
        "shard": "",
        "exo_cam": exo.cam_id if exo else None,
        "ego_bytes": ego_bytes,
        "exo_bytes": exo_bytes,
    }


def _n_bytes(payload: bytes | tuple[bytes, ...]) -> int:
    return len(payload) if isinstance(payload, bytes) else sum(map(len, payload))


def _samples(take: TakePlan, clips: dict, fmt: OutputFormat, failures: list[Failure]):
    """(sample, manifest row) for every planned sample whose clips exist; a failure record for every other."""
    t = take.take
    frames = fmt.clip.kind == "frames"

    def lost(reason: str, scope: str, n: NarrationPlan, cam_id: str = "", key: str = "") -> None:
        failures.append(
            Failure(
                reason, scope, t.split, t.take_uid, t.take_name, cam_id, n.narration.source_id, key or n.key
            )
        )

    for n in take.narrations:
        ego = clips.get(n.ego.cam_id, {}).get(n.key)
        if ego is None:
            lost("no ego clip", "narration", n, n.ego.cam_id)
            continue
        exos = {}
        for e in n.exos:
            clip = clips.get(e.cam_id, {}).get(n.key)
            if clip is None:
                lost("no exo clip", "pair", n, e.cam_id, f"{n.key}-{e.cam_id}")
            else:
                exos[e.cam_id] = clip
        if not exos:
            lost("no exo clip", "narration", n)
            continue
        kept = [e for e in n.exos if e.cam_id in exos]
        cams = [e.cam_id for e in kept]
        ego_data = ego.payload()
        ego_bytes = _n_bytes(ego_data)
        if fmt.layout == "moments":
            meta = _meta(take, n, None, kept)
            exo_data = {c: exos[c].payload() for c in cams}
            sample = (shards.pack_moment_frames if frames else shards.pack_moment)(
                n.key, ego_data, exo_data, n.narration.text, meta
            )
            exo_bytes = sum(map(_n_bytes, exo_data.values()))
            yield sample, _row(n.key, meta, None, ego_bytes, exo_bytes)
            continue
        for exo in kept:
            key = f"{n.key}-{exo.cam_id}"
            meta = _meta(take, n, exo, kept)
            exo_data = exos[exo.cam_id].payload()
            sample = (shards.pack_pair_frames if frames else shards.pack_pair)(
                key, ego_data, exo_data, n.narration.text, meta
            )
            exo_bytes = _n_bytes(exo_data)
            yield sample, _row(key, meta, exo, ego_bytes, exo_bytes)


def build_shard(
    plan: ShardPlan,
    out: str,
    fmt: OutputFormat,
    *,
    tmp_root: str | None = None,
    on_take: Callable[[str, int, float], None] | None = None,
) -> dict:
    """Write the shard's tar, parquet manifest and stats (last). Returns the stats dict."""
    files = shard_files(out, plan.name)
    tmp_tar = f"{files['tar']}.tmp"
    failures: list[Failure] = []
    rows: list[dict] = []
    workdir = tempfile.mkdtemp(prefix=f"{plan.name}-", dir=tmp_root)
    try:
        with FileSystems.create(tmp_tar, compression_type="uncompressed") as raw:
            sink = _HashingWriter(raw)
            writer = shards.ShardWriter(sink)
            for take in plan.takes:
                started = time.monotonic()
                take_dir = tempfile.mkdtemp(prefix="take-", dir=workdir)
                clips, view_failures = _extract_take(take, fmt, take_dir)
                failures.extend(view_failures)
                n_clips = sum(len(c) for c in clips.values())
                for sample, row in _samples(take, clips, fmt, failures):
                    writer.write(sample)
                    rows.append({**row, "shard": f"{plan.name}.tar"})
                shutil.rmtree(take_dir, ignore_errors=True)
                if on_take:
                    on_take(take.take.take_name, n_clips, time.monotonic() - started)
            writer.close()
        FileSystems.rename([tmp_tar], [files["tar"]])
        table = shards.manifest_table(rows)
        buf = io.BytesIO()
        shards.write_parquet(table, buf)
        write_bytes(files["parquet"], buf.getvalue())
        stats = {
            "shard": f"{plan.name}.tar",
            "split": plan.split,
            "fingerprint": plan.fingerprint,
            "n_samples": len(rows),
            "n_narrations": len({(r["take_uid"], r["narration_index"]) for r in rows}),
            "tar_bytes": sink.n,
            "tar_sha256": sink.sha.hexdigest(),
            "parquet_bytes": len(buf.getvalue()),
            "failures": [f.to_dict() for f in sorted(failures, key=Failure.sort_key)],
        }
        write_bytes(files["stats"], json.dumps(stats, sort_keys=True, indent=1).encode())
        return stats
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if FileSystems.exists(tmp_tar):
            FileSystems.delete([tmp_tar])


def default_tmp_root() -> str:
    return os.environ.get("EXO2EGO_TMP") or tempfile.gettempdir()
