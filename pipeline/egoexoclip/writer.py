"""Ego-ExoClip shards: a take is one group of the core's shard writer (pipeline/core/writer.py): each of its
views is decoded once, every clip cut from that pass, and the narrations' samples packed from the clips.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

from pipeline.core.clips import ClipFormat, ClipRequest, VideoInfo, check_decode_settings
from pipeline.core.planning import ShardPlan
from pipeline.core.writer import ShardLayout, SourceClips, payload_bytes, write_shard
from pipeline.egoexoclip import samples as S
from pipeline.egoexoclip.plan import Failure, NarrationPlan, TakePlan, ViewClip

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
        check_decode_settings("OutputFormat", self.decode_timeout_s, self.decode_threads)

    def content_options(self) -> dict:
        """What changes the bytes of a shard (for its fingerprint); threads and timeouts do not."""
        return {"layout": self.layout, **self.clip.content_options()}


def take_sources(take: TakePlan) -> list[SourceClips]:
    """Every view of the take with the clips its narrations need; the planning probe is reused (no second pass)."""
    requests: dict[str, list[ClipRequest]] = {take.take.ego.cam_id: []}
    for n in take.narrations:
        requests[n.ego.cam_id].append(ClipRequest(n.key, n.ego.start_frame, n.ego.end_frame))
        for e in n.exos:
            requests.setdefault(e.cam_id, []).append(ClipRequest(n.key, e.start_frame, e.end_frame))
    paths = {v.cam_id: v.path for v in take.take.views}
    sources = []
    for cam_id, reqs in requests.items():
        m = take.videos[cam_id]
        info = VideoInfo(m.n_frames, m.fps, m.fps_fraction, m.width, m.height, m.codec)
        sources.append(SourceClips(cam_id, paths[cam_id], tuple(reqs), info))
    return sources


def _meta(take: TakePlan, n: NarrationPlan, exo: ViewClip | None, exos: list[ViewClip]) -> dict:
    nar, t = n.narration, take.take
    return S.pair_meta(
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


def _take_samples(take: TakePlan, clips: dict, errors: dict, failures: list, *, fmt: OutputFormat):
    """(sample, manifest row) for every planned sample whose clips exist; a failure record for every other."""
    t = take.take
    paths = {v.cam_id: v.path for v in t.views}
    for cam_id, err in sorted(errors.items()):
        failures.append(
            Failure(err.reason, "view", t.split, t.take_uid, t.take_name, cam_id, file=paths[cam_id],
                    detail=err.detail[-500:])
        )  # fmt: skip
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
        ego_bytes = payload_bytes(ego_data)
        if fmt.layout == "moments":
            meta = _meta(take, n, None, kept)
            exo_data = {c: exos[c].payload() for c in cams}
            sample = (S.pack_moment_frames if frames else S.pack_moment)(
                n.key, ego_data, exo_data, n.narration.text, meta
            )
            exo_bytes = sum(map(payload_bytes, exo_data.values()))
            yield sample, _row(n.key, meta, None, ego_bytes, exo_bytes)
            continue
        for exo in kept:
            key = f"{n.key}-{exo.cam_id}"
            meta = _meta(take, n, exo, kept)
            exo_data = exos[exo.cam_id].payload()
            sample = (S.pack_pair_frames if frames else S.pack_pair)(
                key, ego_data, exo_data, n.narration.text, meta
            )
            yield sample, _row(key, meta, exo, ego_bytes, payload_bytes(exo_data))


def _narration_count(rows: list[dict]) -> dict:
    return {"n_narrations": len({(r["take_uid"], r["narration_index"]) for r in rows})}


LAYOUT = ShardLayout(take_sources, S.manifest_table, summarize=_narration_count, unit="take",
                     group_name=lambda take: take.take.take_name)  # fmt: skip


def build_shard(plan: ShardPlan, out: str, fmt: OutputFormat, **writer_options) -> dict:
    """Write the shard's tar, parquet manifest and stats (last). Returns the stats dict. A take is one group
    of the core's writer: its progress event and log line ("take <name> (<k> pairs)") come from there."""
    layout = dataclasses.replace(LAYOUT, samples_unit="moments" if fmt.layout == "moments" else "pairs")
    samples_of = functools.partial(_take_samples, fmt=fmt)
    return write_shard(out, plan, plan.groups, fmt=fmt, layout=layout, samples_of=samples_of, **writer_options)


def progress_of(plan: ShardPlan) -> tuple[int, int]:
    """(takes, clips) of a shard for the progress bar: an ego clip per narration plus one per exo view."""
    return len(plan.groups), sum(1 + len(n.exos) for t in plan.groups for n in t.narrations)
