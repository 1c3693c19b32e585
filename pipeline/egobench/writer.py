"""EgoBench shards, written by the core's shard writer (pipeline/core/writer.py), in two ways:

- single-clip tasks: a decode group (a source with all of its items) is one group of `write_shard`: the source
  is decoded once for every clip of its items, and each item becomes one sample (samples.py).
- multi-clip tasks (EgoMCQ: 5 candidate clips from up to 5 videos): items join videos into ever larger
  components, so sources are cut first, each ONCE for every window of the task (`cut_source`, one decode),
  into OUT/_staging/<task>/<source hash>/ (the output filesystem: any worker can read it), marker `_done.json`
  last; the shards then assemble their items from the staged clips (`write_shard` with no source to decode).
  The staging folder is deleted when the build is finalized; an interrupted build reuses the sources it
  finished.

An item missing a clip fails whole (its reason: the source's); each failed source is reported once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems

from pipeline.core.clips import ClipFormat, ClipRequest, VideoInfo, check_decode_settings
from pipeline.core.writer import (
    ShardLayout,
    SourceClips,
    extract_sources,
    join,
    payload_bytes,
    read_json,
    write_bytes,
    write_json,
    write_shard,
)
from pipeline.egobench import samples as S
from pipeline.egobench.plan import BenchFailure, DecodeGroup, ShardPlan, VideoSource
from pipeline.egobench.records import LAST_FRAME_TASKS

SHARD_PREFIX = "egobench"
STAGING = "_staging"
MARKER = "_done.json"


@dataclass(frozen=True)
class OutputFormat:
    clip: ClipFormat = field(default_factory=ClipFormat)
    decode_timeout_s: float = 1800.0
    decode_threads: int = 1

    def __post_init__(self):
        check_decode_settings("OutputFormat", self.decode_timeout_s, self.decode_threads)

    def content_options(self) -> dict:
        """What changes the bytes of a shard (for its fingerprint); threads and timeouts do not."""
        return self.clip.content_options()


def _source_clips(source_id: str, s: VideoSource, windows, last: bool = False) -> SourceClips:
    """last: frames mode samples each window's last frame last (the windows of a LAST_FRAME_TASKS task)."""
    requests = tuple(ClipRequest(f"w{a}-{b}", a, b, last) for a, b in sorted(set(windows)))
    v = s.video
    info = VideoInfo(v.n_frames, v.fps, v.fps_fraction, v.width, v.height, v.codec)
    return SourceClips(source_id, s.location, requests, info, s.images, v.fps)


def source_ids(group: DecodeGroup) -> dict:
    return {s.key: f"s{k:03d}" for k, s in enumerate(group.sources)}


def group_sources(group: DecodeGroup) -> list[SourceClips]:
    """One SourceClips per source of the group, with one request per distinct window of its items' clips."""
    ids = source_ids(group)
    return [
        _source_clips(
            ids[s.key],
            s,
            [(c.start_frame, c.end_frame) for p in group.items for c in p.clips if c.source.key == s.key],
            # a group is one task's (plan.py): a window is either a last-frame task's or not
            any(p.item.task in LAST_FRAME_TASKS for p in group.items),
        )
        for s in group.sources
    ]


def _clip_doc(c, fmt: OutputFormat) -> dict:
    stored = fmt.clip.n_frames if fmt.clip.kind == "frames" else c.end_frame - c.start_frame
    return {
        "start_frame": c.start_frame,
        "end_frame": c.end_frame,
        "fps": c.source.video.fps,
        "n_frames": stored,
    }


def _video_failure(s: VideoSource, reason: str, detail: str) -> BenchFailure:
    return BenchFailure(reason, "video", s.benchmark, video=s.path, file=s.location, detail=detail[-500:])


def _item_sample(p, payloads: list, fmt: OutputFormat) -> tuple[dict, dict]:
    doc = S.sample_json(p.item, [_clip_doc(c, fmt) for c in p.clips])
    return (
        S.pack_item(p.key, doc, payloads, fmt.clip.n_frames),
        S.manifest_row(p.key, p.benchmark, doc, sum(map(payload_bytes, payloads))),
    )


def _group_samples(group: DecodeGroup, clips: dict, errors: dict, failures: list, *, fmt: OutputFormat):
    """(sample, manifest row) of every item whose clips were all cut; a failure record for every other, and
    one per source that failed."""
    ids = source_ids(group)
    for s in group.sources:
        err = errors.get(ids[s.key])
        if err is not None:
            failures.append(_video_failure(s, err.reason, err.detail))
    for p in group.items:
        payloads, missing = [], None
        for c in p.clips:
            clip = clips.get(ids[c.source.key], {}).get(c.window_id)
            if clip is None:
                err = errors.get(ids[c.source.key])
                missing = (f"video: {err.reason}" if err else "no clip", c.source.path)
                break
            payloads.append(clip.payload())
        if missing is not None:
            failures.append(BenchFailure.for_item(p.benchmark, p.item, missing[0], video=missing[1]))
            continue
        yield _item_sample(p, payloads, fmt)


# ------------------------------------------------------------------------------------------- staged clips


def staging_dir(out: str, task: str, source: VideoSource) -> str:
    digest = hashlib.sha256(json.dumps([source.location, list(source.images)]).encode()).hexdigest()[:24]
    return join(out, f"{STAGING}/{task}/{digest}")


def _read(path: str) -> bytes:
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return f.read()


def cut_source(
    out: str, task: str, source: VideoSource, windows, fmt: OutputFormat, *, tmp_root: str | None = None
) -> dict:
    """Decode `source` once and stage a clip per window (mp4, or a folder of JPEGs), then the marker; returns
    the marker ({plan, error}). A marker of the same plan (an interrupted build) is kept without decoding
    again."""
    folder = staging_dir(out, task, source)
    windows = sorted({(int(a), int(b)) for a, b in windows})
    plan = {
        "source": [source.location, list(source.images)],
        "windows": windows,
        "format": fmt.content_options(),
    }
    plan = json.loads(json.dumps(plan))  # tuples as lists: comparable with the marker read back
    try:
        done = read_json(join(folder, MARKER))
        if done.get("plan") == plan:
            return done
    except Exception:  # no marker, or an unreadable one: cut again
        pass
    if FileSystems.exists(folder):
        FileSystems.delete([folder])
    workdir = tempfile.mkdtemp(prefix="stage-", dir=tmp_root)
    try:
        clips, errors = extract_sources(
            [_source_clips("src", source, windows)],
            fmt.clip,
            workdir,
            timeout_s=fmt.decode_timeout_s,
            threads=fmt.decode_threads,
        )
        err = errors.get("src")
        for clip_id, clip in sorted(clips.get("src", {}).items()):
            payload = clip.payload()
            if isinstance(payload, bytes):
                write_bytes(join(folder, f"{clip_id}.mp4"), payload)
            else:
                for i, jpeg in enumerate(payload):
                    write_bytes(join(folder, f"{clip_id}/{i:05d}.jpg"), jpeg)
        done = {
            "plan": plan,
            "error": None if err is None else {"reason": err.reason, "detail": err.detail[-500:]},
        }
        write_json(join(folder, MARKER), done)
        return done
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _staged_payload(folder: str, c, fmt: OutputFormat):
    if fmt.clip.kind == "mp4":
        return _read(join(folder, f"{c.window_id}.mp4"))
    return tuple(_read(join(folder, f"{c.window_id}/{i:05d}.jpg")) for i in range(fmt.clip.n_frames))


def _staged_samples(
    group: DecodeGroup,
    clips: dict,
    errors: dict,
    failures: list,
    *,
    out: str,
    task: str,
    fmt: OutputFormat,
    reports: set,
    reported: set,
):
    """Like _group_samples, reading each clip from the staging folder of its source."""
    markers: dict = {}
    for p in group.items:
        payloads, missing = [], None
        for c in p.clips:
            folder = staging_dir(out, task, c.source)
            if folder not in markers:
                try:
                    markers[folder] = read_json(join(folder, MARKER))
                except Exception:
                    markers[folder] = {"error": {"reason": "no clip", "detail": "not staged"}}
            err = markers[folder]["error"]
            if err is None:
                try:
                    payloads.append(_staged_payload(folder, c, fmt))
                    continue
                except OSError as e:
                    err = {"reason": "no clip", "detail": str(e)}
            if c.source.key in reports and c.source.key not in reported:
                reported.add(c.source.key)
                failures.append(_video_failure(c.source, err["reason"], err["detail"]))
            missing = (f"video: {err['reason']}" if err["reason"] != "no clip" else "no clip", c.source.path)
            break
        if missing is not None:
            failures.append(BenchFailure.for_item(p.benchmark, p.item, missing[0], video=missing[1]))
            continue
        yield _item_sample(p, payloads, fmt)


# ------------------------------------------------------------------------------------------- shards


def build_shard(plan: ShardPlan, out: str, fmt: OutputFormat, **writer_options) -> dict:
    """Write the shard's tar, parquet manifest and stats (last). Returns the stats dict."""
    if plan.staged:
        sources_of = lambda group: []  # noqa: E731  the clips are staged: nothing to decode here
        samples_of = functools.partial(
            _staged_samples, out=out, task=plan.task, fmt=fmt, reports=set(plan.reports), reported=set()
        )
    else:
        sources_of, samples_of = group_sources, functools.partial(_group_samples, fmt=fmt)
    layout = ShardLayout(sources_of, S.manifest_table, summarize=lambda rows: {"n_items": len(rows)},
                         group_name=lambda g: f"{plan.task} {g.name}")  # fmt: skip
    return write_shard(out, plan, plan.groups, fmt=fmt, layout=layout, samples_of=samples_of, **writer_options)


def progress_of(plan: ShardPlan) -> tuple[int, int]:
    """(decode groups, items) of a shard for the progress bar."""
    return len(plan.groups), sum(len(g.items) for g in plan.groups)
