"""The build plan: which clip of which view goes into which sample of which shard, decided before any decoding.

Planning is pure and cheap (metadata and frame counts only). Deciding shard membership before extraction is
what makes resume cheap: a re-run recomputes the plan, recognises complete shards by their fingerprint and
skips their decoding entirely.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from pipeline.core.failures import FailureRecord
from pipeline.core.planning import ShardPlan, add_json, fingerprint_start  # noqa: F401 (ShardPlan: the plans of this package)
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


MAX_REPORT_CHARS = 1000


def report_text(value: str) -> str:
    """Text for errors.jsonl: characters that are not printable (control, format, lone surrogates, ...) are
    written as escapes (\\x07, \\u202e, \\ud800) so that the report names what the input held and always
    encodes as UTF-8; newlines and tabs of decoder logs stay; long values are cut."""
    if not (value.isascii() and value.isprintable()):
        value = "".join(
            ch
            if ch in "\n\t" or ch.isprintable()
            else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
            for ch in value
        )
    return value if len(value) <= MAX_REPORT_CHARS else value[: MAX_REPORT_CHARS - 3] + "..."


@dataclass(frozen=True)
class Failure(FailureRecord):
    """One element that did not make it into the output, and why. `scope` says what was lost:
    file | record | take | view | narration | pair. Every lost input narration has its own narration record."""

    SORT = ("split", "take_name", "take_uid", "narration", "key", "cam_id", "scope", "reason", "detail")

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

    def __post_init__(self):
        # Fields can carry text from the input files: keep reports encodable and readable (see report_text).
        for f in fields(self):
            value = getattr(self, f.name)
            clean = report_text(value) if isinstance(value, str) else str(value)
            if clean is not value:
                object.__setattr__(self, f.name, clean)

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


FPS_TAKE_REASON = "ego fps differs from every exo view"


def usable_views(take: Take, videos: dict[str, VideoMeta]) -> tuple[dict[str, VideoMeta], list[Failure]]:
    """Views whose fps agrees with the ego view (frames of all views must be the same instants).

    An exo view at another rate is reported on its own ("fps differs from ego", naming it). When no exo view
    agrees with the ego, the ego is the odd one out: one take failure (FPS_TAKE_REASON), no view is usable."""
    ego_id = take.ego.cam_id
    ego = videos[ego_id]
    exos = {c: m for c, m in sorted(videos.items()) if c != ego_id}
    differ = {c: m for c, m in exos.items() if abs(m.fps - ego.fps) > FPS_TOLERANCE}
    if exos and len(differ) == len(exos):
        rates = ", ".join(f"{c} {m.fps:g}" for c, m in exos.items())
        detail = f"ego {ego_id} {ego.fps:g} fps; exo views {rates} fps"
        return {}, [
            Failure(FPS_TAKE_REASON, "take", take.split, take.take_uid, take.take_name, detail=detail)
        ]
    failures = [
        Failure(
            "fps differs from ego",
            "view",
            take.split,
            take.take_uid,
            take.take_name,
            cam_id,
            detail=f"{cam_id} {meta.fps:g} fps vs ego {ego_id} {ego.fps:g} fps",
        )
        for cam_id, meta in differ.items()
    ]
    return {c: m for c, m in videos.items() if c not in differ}, failures


def check_narrations(
    take: Take, videos: dict[str, VideoMeta], narrations: list[Narration], offsets: FrameOffsets
) -> tuple[list[Narration], list[Failure]]:
    """The checks of a take's narrations that do not depend on any window: only the narrations that pass feed
    beta, alpha (the dataset statistic) and the windows; every other one is a narration failure.

    - the same description twice (the same pass in two files, or the same timestamp and text): the first in
      (split file of the take first, annotation_uid, position) order is kept, the others are "duplicate
      description";
    - a timestamp outside the ego view's (canonical) timeline, with the half-frame tolerance of frame_range:
      "timestamp outside the video"."""
    ego = videos[take.ego.cam_id]
    n_canonical = ego.n_frames - offsets.get(take.take_name, take.ego.cam_id)
    duration = n_canonical / ego.fps
    kept: list[Narration] = []
    failures: list[Failure] = []
    by_source: dict[tuple[str, int], str] = {}
    by_content: dict[tuple[float, str], str] = {}
    order = sorted(narrations, key=lambda n: (n.split != take.split, n.split, n.annotation_uid, n.desc_index))
    for n in order:
        first = by_source.get((n.annotation_uid, n.desc_index)) or by_content.get((n.timestamp, n.text))
        if first is not None:
            failures.append(narration_failure(take, n, "duplicate description", f"same as {first}"))
            continue
        by_source[(n.annotation_uid, n.desc_index)] = by_content[(n.timestamp, n.text)] = (
            f"{n.split} {n.source_id}"
        )
        if n.timestamp < 0 or n.timestamp > duration + 0.5 / ego.fps:
            failures.append(
                narration_failure(
                    take,
                    n,
                    "timestamp outside the video",
                    f"narration at {n.timestamp:.3f}s, video {duration:.3f}s",
                )
            )
            continue
        kept.append(n)
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
    """Windows and per-view frame ranges for every narration of a take whose ego and >= 1 exo view probed.

    `narrations` are the ones check_narrations kept (beta and alpha come from those); windows that do not fit
    the views are failures here."""
    videos, failures = usable_views(take, videos)
    ego_id = take.ego.cam_id
    if ego_id not in videos:  # the ego's rate agrees with no exo view (one take failure above)
        failures += [narration_failure(take, n, failures[0].reason) for n in narrations]
        return TakePlan(take, {}, {}, 0.0, beta, alpha, ()), failures
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


def fingerprint(content_options: dict, takes: list[TakePlan]) -> str:
    """Hash of everything that determines a shard's bytes, so resume can trust a finished shard."""
    h = fingerprint_start(content_options, FORMAT_VERSION)
    for t in takes:
        views = sorted((c, asdict(m)) for c, m in t.videos.items())
        add_json(h, [t.take.take_uid, t.take.take_name, t.take.scenario, t.fps, t.offsets, views])
        for n in t.narrations:
            add_json(h, [n.key, asdict(n.narration), n.canonical, asdict(n.ego), [asdict(e) for e in n.exos]])
    return h.hexdigest()
