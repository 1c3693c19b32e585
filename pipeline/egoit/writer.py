"""EgoIT shards: a source video is one group of the core's shard writer (pipeline/core/writer.py), decoded once
for all of its items; each item becomes one sample, and (for egoit.json) one clip file next to the shards.

Clip files live under ``OUT/clips/<shard name>/``: a rebuilt shard rewrites its own folder and nothing else. They
are written before the shard's commit marker, which records each one's sha256 ("loose_files"): resume keeps a
shard only when all of its clip files are there with those bytes (pipeline.core.writer.shard_is_complete).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems

from pipeline.core.clips import ClipFormat, ClipRequest, VideoInfo, check_decode_settings
from pipeline.core.planning import ShardPlan
from pipeline.core.writer import ShardLayout, SourceClips, join, payload_bytes, write_loose_file, write_shard
from pipeline.egoit import samples as S
from pipeline.egoit.plan import ItemFailure, VideoPlan

SHARD_PREFIX = "egoit"
CLIPS_DIR = "clips"


@dataclass(frozen=True)
class OutputFormat:
    clip: ClipFormat = field(default_factory=ClipFormat)
    clip_files: bool = True  # also write every clip as a file for egoit.json (VideoLLaMA2 / LLaVA trainers)
    decode_timeout_s: float = 1800.0
    decode_threads: int = 1

    def __post_init__(self):
        check_decode_settings("OutputFormat", self.decode_timeout_s, self.decode_threads)

    def content_options(self) -> dict:
        """What changes the bytes of a shard (for its fingerprint); threads and timeouts do not."""
        return {**self.clip.content_options(), "clip_files": self.clip_files}


def video_sources(video: VideoPlan) -> list[SourceClips]:
    """One source (the video, or the image sequence) with one request per distinct window (items that share a
    window share the clip)."""
    windows = sorted({(p.start_frame, p.end_frame) for p in video.items})
    requests = tuple(ClipRequest(f"w{s}-{e}", s, e) for s, e in windows)
    v = video.video
    info = VideoInfo(v.n_frames, v.fps, v.fps_fraction, v.width, v.height, v.codec)
    return [SourceClips("src", video.location, requests, info, video.images, v.fps)]


def clip_file_name(shard: str, item_id: str, kind: str) -> str:
    """Relative to OUT: an mp4 file, or a folder of JPEG frames (VideoLLaMA2 reads a folder of frames)."""
    return f"{CLIPS_DIR}/{shard}/{item_id}.mp4" if kind == "mp4" else f"{CLIPS_DIR}/{shard}/{item_id}"


def _write_clip_file(out: str, rel: str, payload, written: dict[str, str]) -> None:
    """The clip as a file (mp4) or a folder of JPEG frames, each file's sha256 recorded for resume."""
    if isinstance(payload, bytes):
        write_loose_file(out, rel, payload, written)
        return
    FileSystems.mkdirs(join(out, rel)) if not FileSystems.exists(join(out, rel)) else None
    width = max(2, len(str(len(payload) - 1)))
    for i, jpeg in enumerate(payload):
        write_loose_file(out, f"{rel}/{i:0{width}d}.jpg", jpeg, written)


def _video_samples(video: VideoPlan, clips: dict, errors: dict, failures: list, *, out: str, shard: str,
                   fmt: OutputFormat, written: dict[str, str]):  # fmt: skip
    """(sample, manifest row) for every item whose clip was cut; a failure record for every other."""
    if "src" in errors:
        err = errors["src"]
        failures.append(ItemFailure(err.reason, "video", video.source, video=video.path, file=video.location,
                                    detail=err.detail[-500:]))  # fmt: skip
    got = clips.get("src", {})
    n_images = len(video.images)
    for p in video.items:
        clip = got.get(f"w{p.start_frame}-{p.end_frame}")
        if clip is None:
            failures.append(ItemFailure.for_item(p.item, "no clip", errors["src"].reason if errors else ""))
            continue
        doc = S.item_json(p.item, p.start_frame, p.end_frame, video.video.fps, n_images)
        payload = clip.payload()
        rel = ""
        if fmt.clip_files:
            rel = clip_file_name(shard, p.item.id, fmt.clip.kind)
            _write_clip_file(out, rel, payload, written)
        yield S.pack_item(doc, payload, fmt.clip.n_frames), S.manifest_row(doc, payload_bytes(payload), rel)


LAYOUT = ShardLayout(video_sources, S.manifest_table, unit="video", group_name=lambda v: f"{v.source} {v.path}")


def build_shard(plan: ShardPlan, out: str, fmt: OutputFormat, **writer_options) -> dict:
    """Write the shard's tar, parquet manifest, clip files and stats (last). Returns the stats dict."""
    clip_dir = join(out, f"{CLIPS_DIR}/{plan.name}")
    if fmt.clip_files and FileSystems.exists(clip_dir):
        FileSystems.delete([clip_dir])  # a rebuilt shard rewrites its clips from scratch
    written: dict[str, str] = {}  # clip file -> sha256: in the shard's marker, verified by resume
    samples_of = functools.partial(_video_samples, out=out, shard=plan.name, fmt=fmt, written=written)
    layout = dataclasses.replace(LAYOUT, summarize=lambda rows: {"n_items": len(rows), "loose_files": dict(sorted(written.items()))})
    return write_shard(out, plan, plan.groups, fmt=fmt, layout=layout, samples_of=samples_of, **writer_options)


def progress_of(plan: ShardPlan) -> tuple[int, int]:
    """(videos, items) of a shard for the progress bar."""
    return len(plan.groups), sum(len(v.items) for v in plan.groups)
