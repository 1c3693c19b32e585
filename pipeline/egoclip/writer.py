"""EgoClip shards: an Ego4D video is one group of the core's shard writer (pipeline/core/writer.py), decoded once
for all of its clips; each row becomes one sample (ego clip, caption, json)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from pipeline.core.clips import ClipFormat, ClipRequest, check_decode_settings
from pipeline.core.planning import ShardPlan
from pipeline.core.writer import ShardLayout, SourceClips, payload_bytes, write_shard
from pipeline.egoclip import samples as S
from pipeline.egoclip.plan import VideoPlan
from pipeline.egoclip.rows import ClipFailure

SHARD_PREFIX = "egoclip"
NO_CLIP = "no clip"


@dataclass(frozen=True)
class OutputFormat:
    clip: ClipFormat = field(default_factory=ClipFormat)
    decode_timeout_s: float = 3600.0  # a full-scale Ego4D video can be an hour long
    decode_threads: int = 1

    def __post_init__(self):
        check_decode_settings("OutputFormat", self.decode_timeout_s, self.decode_threads)

    def content_options(self) -> dict:
        """What changes the bytes of a shard (for its fingerprint); threads and timeouts do not."""
        return self.clip.content_options()


def window_id(start: int, end: int) -> str:
    return f"w{start}-{end}"


def video_sources(video: VideoPlan) -> list[SourceClips]:
    """The video, with one request per distinct window (rows with the same window share the cut)."""
    windows = sorted({(c.start_frame, c.end_frame) for c in video.clips})
    requests = tuple(ClipRequest(window_id(s, e), s, e) for s, e in windows)
    return [SourceClips("video", video.location, requests, video.info)]


def video_samples(video: VideoPlan, clips: dict, errors: dict, failures: list, *, n_frames: int):
    """(sample, manifest row) for every clip that was cut; a failure record for every other row."""
    if "video" in errors:
        err = errors["video"]
        failures.append(ClipFailure(err.reason, "video", video_uid=video.video_uid, video=video.path,
                                    file=video.location, detail=err.detail[-500:]))  # fmt: skip
    got = clips.get("video", {})
    for c in video.clips:
        clip = got.get(window_id(c.start_frame, c.end_frame))
        if clip is None:
            why = errors["video"].reason if "video" in errors else ""
            failures.append(ClipFailure(NO_CLIP, "row", c.row.row, c.row.key, video.video_uid, video.path,
                                        detail=why))  # fmt: skip
            continue
        doc = S.clip_json(video, c)
        payload = clip.payload()
        yield S.pack_clip(doc, payload, n_frames), S.manifest_row(doc, payload_bytes(payload))


LAYOUT = ShardLayout(video_sources, S.manifest_table, unit="video", group_name=lambda v: v.video_uid,
                     summarize=lambda rows: {"n_videos": len({r["video_uid"] for r in rows})})  # fmt: skip


def build_shard(plan: ShardPlan, out: str, fmt: OutputFormat, **writer_options) -> dict:
    """Write the shard's tar, parquet manifest and stats (last). Returns the stats dict."""
    samples_of = functools.partial(video_samples, n_frames=fmt.clip.n_frames)
    return write_shard(out, plan, plan.groups, fmt=fmt, layout=LAYOUT, samples_of=samples_of, **writer_options)


def progress_of(plan: ShardPlan) -> tuple[int, int]:
    """(videos, clips) of a shard for the progress bar."""
    return len(plan.groups), sum(len(v.clips) for v in plan.groups)
