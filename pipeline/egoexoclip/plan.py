"""The build plan: which clip of which view goes into which sample of which shard, decided before any decoding.

Planning is pure and cheap (metadata and frame counts only). Deciding shard membership before extraction is
what makes resume cheap: a re-run recomputes the plan, recognises complete shards by their fingerprint and
skips their decoding entirely.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from pipeline.egoexoclip.release import Narration, Take
from pipeline.egoexoclip.windows import (
    FrameOffsets,
    WindowError,
    WindowRule,
    frame_range,
    narration_order,
    view_range,
    window_seconds,
)

# Bumped whenever the bytes a given plan produces change, so old shards are not taken as complete.
FORMAT_VERSION = 1
FPS_TOLERANCE = 0.01


@dataclass(frozen=True)
class Failure:
    """One element that did not make it into the output, and why. `scope` says what was lost:
    file | record | take | view | narration | pair. Every lost input narration has its own narration record."""

    reason: str
    scope: str
    split: str = ""
    take_uid: str = ""
    take_name: str = ""
    cam_id: str = ""
    narration: str = ""  # "<annotation_uid>:<description index>"
    key: str = ""  # sample key, when the loss happened after planning
    file: str = ""
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def sort_key(self) -> tuple:
        return (
            self.split,
            self.take_name,
            self.take_uid,
            self.narration,
            self.key,
            self.cam_id,
            self.scope,
            self.reason,
            self.detail,
        )


@dataclass(frozen=True)
class VideoMeta:
    n_frames: int
    fps: float
    width: int
    height: int
    fps_fraction: str = "30/1"  # exact rate, as the extractor needs it (probed once, reused at extraction)
    codec: str = ""


@dataclass(frozen=True)
class ViewClip:
    cam_id: str
    start_frame: int  # in this view's file
    end_frame: int  # exclusive


@dataclass(frozen=True)
class NarrationPlan:
    key: str  # "<take_name>-n<index:05d>"; pair keys append "-<cam_id>"
    index: int
    narration: Narration
    window_sec: tuple[float, float]  # clamped to the video
    canonical: tuple[int, int]  # canonical frame range [start, end)
    ego: ViewClip
    exos: tuple[ViewClip, ...]


@dataclass(frozen=True)
class TakePlan:
    take: Take
    videos: dict[str, VideoMeta]  # cam_id -> probed metadata of the views that are used
    offsets: dict[str, int]
    fps: float
    beta: float | None
    alpha: float
    narrations: tuple[NarrationPlan, ...] = field(default=())

    def n_samples(self, layout: str) -> int:
        if layout == "moments":
            return len(self.narrations)
        return sum(len(n.exos) for n in self.narrations)

    def estimated_bytes(self, bytes_per_frame: int) -> int:
        return sum(
            (n.ego.end_frame - n.ego.start_frame) * (1 + len(n.exos)) * bytes_per_frame
            for n in self.narrations
        )


def narration_failure(take: Take, n: Narration, reason: str, detail: str = "", key: str = "") -> Failure:
    return Failure(
        reason,
        "narration",
        take.split,
        take.take_uid,
        take.take_name,
        narration=n.source_id,
        key=key,
        detail=detail,
    )


def usable_views(take: Take, videos: dict[str, VideoMeta]) -> tuple[dict[str, VideoMeta], list[Failure]]:
    """Views whose fps agrees with the ego view (frames of all views must be the same instants)."""
    ego = videos[take.ego.cam_id]
    kept, failures = {}, []
    for cam_id, meta in sorted(videos.items()):
        if abs(meta.fps - ego.fps) > FPS_TOLERANCE:
            failures.append(
                Failure(
                    "fps differs from ego",
                    "view",
                    take.split,
                    take.take_uid,
                    take.take_name,
                    cam_id,
                    detail=f"{meta.fps} fps vs ego {ego.fps} fps",
                )
            )
        else:
            kept[cam_id] = meta
    return kept, failures


def plan_take(
    take: Take,
    videos: dict[str, VideoMeta],
    narrations: list[Narration],
    alpha: float,
    beta: float | None,
    rule: WindowRule,
    offsets: FrameOffsets,
) -> tuple[TakePlan, list[Failure]]:
    """Windows and per-view frame ranges for every narration of a take whose ego and >= 1 exo view probed."""
    videos, failures = usable_views(take, videos)
    ego_id = take.ego.cam_id
    ego = videos[ego_id]
    take_offsets = {cam: offsets.get(take.take_name, cam) for cam in videos}
    # The canonical timeline is the ego view's, shifted back by its own offset.
    n_canonical = ego.n_frames - take_offsets[ego_id]
    exo_ids = [v.cam_id for v in take.views[1:] if v.cam_id in videos]
    plans: list[NarrationPlan] = []
    for index, n in enumerate(narration_order(narrations)):
        key = f"{take.take_name}-n{index:05d}"
        try:
            start_sec, end_sec = window_seconds(n.timestamp, beta, alpha, rule)
            canonical = frame_range(start_sec, end_sec, ego.fps, n_canonical)
        except WindowError as err:
            failures.append(narration_failure(take, n, err.reason, err.detail, key))
            continue
        ego_range = view_range(canonical, take_offsets[ego_id], ego.n_frames)
        if ego_range is None:
            failures.append(
                narration_failure(take, n, "ego view does not cover window", f"canonical {canonical}", key)
            )
            continue
        exos = []
        for cam_id in exo_ids:
            exo_range = view_range(canonical, take_offsets[cam_id], videos[cam_id].n_frames)
            if exo_range is None:
                failures.append(
                    Failure(
                        "view does not cover window",
                        "pair",
                        take.split,
                        take.take_uid,
                        take.take_name,
                        cam_id,
                        n.source_id,
                        f"{key}-{cam_id}",
                        detail=f"frames {canonical[0] + take_offsets[cam_id]}..{canonical[1] + take_offsets[cam_id]} "
                        f"of {videos[cam_id].n_frames}",
                    )
                )
            else:
                exos.append(ViewClip(cam_id, *exo_range))
        if not exos:
            failures.append(
                narration_failure(take, n, "no exo view covers window", f"canonical {canonical}", key)
            )
            continue
        window = (canonical[0] / ego.fps, canonical[1] / ego.fps)
        plans.append(
            NarrationPlan(key, index, n, window, canonical, ViewClip(ego_id, *ego_range), tuple(exos))
        )
    plan = TakePlan(take, videos, take_offsets, ego.fps, beta, alpha, tuple(plans))
    return plan, failures


@dataclass(frozen=True)
class ShardPlan:
    name: str  # file stem, e.g. "egoexoclip-train-000003"
    split: str
    index: int
    takes: tuple[TakePlan, ...]
    fingerprint: str

    @property
    def n_narrations(self) -> int:
        return sum(len(t.narrations) for t in self.takes)


def fingerprint(content_options: dict, takes: list[TakePlan]) -> str:
    """Hash of everything that determines a shard's bytes, so resume can trust a finished shard."""
    h = hashlib.sha256()
    h.update(json.dumps({"format_version": FORMAT_VERSION, **content_options}, sort_keys=True).encode())
    for t in takes:
        h.update(
            json.dumps(
                [
                    t.take.take_uid,
                    t.take.take_name,
                    t.take.scenario,
                    t.fps,
                    t.offsets,
                    sorted((c, asdict(m)) for c, m in t.videos.items()),
                ],
                sort_keys=True,
            ).encode()
        )
        for n in t.narrations:
            h.update(
                json.dumps(
                    [n.key, asdict(n.narration), n.canonical, asdict(n.ego), [asdict(e) for e in n.exos]],
                    sort_keys=True,
                ).encode()
            )
    return h.hexdigest()
