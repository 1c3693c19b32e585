"""Ego-ExoClip shards: a take is one group of the core's shard writer (pipeline/core/writer.py): each of its
views is decoded once, every clip cut from that pass, and the narrations' samples packed from the clips.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.core import progress
from pipeline.core.clips import ClipFormat, ClipRequest, VideoInfo, check_decode_settings
from pipeline.core.writer import SourceClips, payload_bytes, shard_is_complete, write_shard
from pipeline.egoexoclip import samples as S
from pipeline.egoexoclip.plan import Failure, NarrationPlan, ShardPlan, TakePlan, ViewClip

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


def _take_samples(take: TakePlan, clips: dict, errors: dict, failures: list, fmt: OutputFormat):
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


def build_shard(
    plan: ShardPlan,
    out: str,
    fmt: OutputFormat,
    *,
    tmp_root: str | None = None,
    on_group: Callable[[str, int, float], None] | None = None,
) -> dict:
    """Write the shard's tar, parquet manifest and stats (last). Returns the stats dict.
    After each take (written, or lost with its failures reported), on_group("take <name> (<k> pairs)", clips
    cut, seconds) is called (the worker's log line) and a progress event is recorded (pipeline.core.progress)."""
    samples: dict[str, int] = {}
    unit = "moments" if fmt.layout == "moments" else "pairs"

    def counted(take: TakePlan, clips, errors, failures):
        samples[take.take.take_name] = 0
        for item in _take_samples(take, clips, errors, failures, fmt):
            samples[take.take.take_name] += 1
            yield item

    def done(take: TakePlan, n_clips: int, seconds: float) -> None:
        name = take.take.take_name
        k = samples.get(name, 0)
        progress.record(
            "group",
            unit="take",
            shard=plan.name,
            group=name,
            clips=n_clips,
            samples=k,
            seconds=round(seconds, 3),
        )
        if on_group:
            on_group(f"take {name} ({k} {unit})", n_clips, seconds)

    return write_shard(
        out,
        plan.name,
        plan.split,
        plan.fingerprint,
        plan.takes,
        sources_of=take_sources,
        samples_of=counted,
        manifest=S.manifest_table,
        fmt=fmt.clip,
        decode_timeout_s=fmt.decode_timeout_s,
        decode_threads=fmt.decode_threads,
        summarize=_narration_count,
        tmp_root=tmp_root,
        on_group=done,
    )


def planned_clips(plan: ShardPlan) -> int:
    """Clips the shard's takes need: an ego clip per narration plus one per exo view."""
    return sum(1 + len(n.exos) for t in plan.takes for n in t.narrations)


def record_plan(plan: ShardPlan, out: str, overwrite: bool) -> list:
    """Progress: the shard's takes and clips, and whether resume will keep it (its marker matches), recorded
    for the driver's bar when it asked for progress. Emits nothing."""
    if progress.requested():
        complete = not overwrite and is_complete(out, plan)
        progress.record(
            "plan", shard=plan.name, groups=len(plan.takes), clips=planned_clips(plan), complete=complete
        )
    return []


def is_complete(out: str, plan: ShardPlan) -> bool:
    return shard_is_complete(out, plan.name, plan.fingerprint)
