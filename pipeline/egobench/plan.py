"""The EgoBench build plan: the frames each item's clips take from which source, how items are grouped so that
a source is decoded once for all of its items, and which shard every group goes into.

    BenchItem (reader) --per source video--> ClipPlan (probed once: frame range of each of its items' clips)
              --per item--> PlannedItem (all of its clips planned, or the item fails with its reason)
              --per task--> DecodeGroup (the items of one source; EgoMCQ: one item) --> ShardPlan

Planning is pure and cheap (metadata and frame counts only); shard membership is decided before any decoding,
so a re-run recognises complete shards by their fingerprint and skips them (resume).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from pipeline.core.failures import FailureRecord
from pipeline.core.planning import add_json, fingerprint_start
from pipeline.core.records import SourceVideo
from pipeline.core.shards import KEY_RE, MAX_TAR_NAME
from pipeline.egobench.records import LAST_FRAME_TASKS, BenchItem, RecordFailure
from pipeline.egobench.records_json import item_json

__all__ = [
    "BenchFailure",
    "ClipPlan",
    "DecodeGroup",
    "PlannedItem",
    "ShardPlan",
    "SourceVideo",
    "VideoSource",
    "clip_window",
    "fingerprint",
    "group_items",
    "make_group",
    "sample_key",
]

# Bumped whenever the bytes a given plan produces change, so old shards are not taken as complete.
FORMAT_VERSION = 1
SCOPES = ("file", "record", "video", "item")
# An annotated window may end this far past the last frame (rounding of annotation times, a last frame short):
# the clip then ends with the video. Further out, the item fails ("window outside the video").
END_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class BenchFailure(FailureRecord):
    """One input that did not make it into the shards, and why. scope: file (a whole annotation file), record
    (an annotation row the reader rejected), video (a source that cannot be probed or decoded; each of its
    items also gets an item record), item (an item the reader produced: its clips, or its id)."""

    SORT = ("benchmark", "task", "scope", "file", "record", "item", "video", "reason", "detail")

    reason: str
    scope: str
    benchmark: str = ""  # the config entry (reader) the input came from
    task: str = ""  # item scope: the item's task
    record: str = ""  # annotation row ("row 17 <id>")
    item: str = ""  # item id
    video: str = ""  # a source, relative to the benchmark's video root
    file: str = ""
    detail: str = ""

    @classmethod
    def from_record_failure(cls, benchmark: str, f: RecordFailure) -> BenchFailure:
        return cls(
            f.reason,
            "file" if not f.record else "record",
            benchmark,
            record=f.record,
            file=f.file,
            detail=f.detail,
        )

    @classmethod
    def for_item(
        cls, benchmark: str, item: BenchItem, reason: str, detail: str = "", video: str = ""
    ) -> BenchFailure:
        return cls(
            reason,
            "item",
            benchmark,
            item.task,
            item=item.item_id,
            video=video,
            file=item.source_file,
            detail=detail,
        )


@dataclass(frozen=True)
class VideoSource:
    """One decodable input: a video file, or an image sequence (the reader's chosen frames of a folder)."""

    benchmark: str
    path: str  # relative to the benchmark's video root (what items and reports name)
    location: str  # the file the worker reads (absolute path or URL); for images, their folder
    images: tuple[str, ...]  # image files of an image sequence (absolute), else ()
    video: SourceVideo

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        return self.location, self.images


@dataclass(frozen=True)
class ClipPlan:
    """One clip of an item: [start_frame, end_frame) of its source (image indices for an image sequence)."""

    source: VideoSource
    start_frame: int
    end_frame: int

    @property
    def window_id(self) -> str:
        return f"w{self.start_frame}-{self.end_frame}"


@dataclass(frozen=True)
class PlannedItem:
    benchmark: str
    item: BenchItem
    key: str  # the sample key (the item id, made tar-safe)
    clips: tuple[ClipPlan, ...]  # in item.videos order


@dataclass(frozen=True)
class DecodeGroup:
    """Items cut from the same sources: the unit of decoding (each source once) and of shard packing."""

    sources: tuple[VideoSource, ...]  # sorted by key
    items: tuple[PlannedItem, ...]  # sorted by item id

    @property
    def name(self) -> str:
        return self.items[0].key

    @property
    def frame_ranges(self) -> list[tuple[int, int]]:
        """[start, end) of every clip of the group's items (pipeline.core.planning.ShardSizing.clip_bytes)."""
        return [(c.start_frame, c.end_frame) for p in self.items for c in p.clips]


@dataclass(frozen=True)
class ShardPlan:
    name: str  # file stem, e.g. "egobench-egoschema-000000"
    task: str
    index: int
    groups: tuple[DecodeGroup, ...]
    fingerprint: str
    staged: bool = False  # multi-clip task: its clips are cut per source beforehand (writer.cut_source)
    # staged: (source key, every window of that source in the task) for each source of the shard, and the
    # sources whose cutting failure this shard reports (each source reported by one shard: its first item's)
    source_windows: tuple = ()
    reports: tuple = ()

    @property
    def split(self) -> str:  # the core's shard naming and wids indexes group shards by "split": the task
        return self.task


def clip_window(
    start_sec: float | None,
    end_sec: float | None,
    fps: float,
    n_frames: int,
    tolerance_s: float = END_TOLERANCE_S,
) -> tuple[int, int]:
    """[start, end) source frames of a window in seconds (None: the file's start / end), at least one frame.
    Raises ValueError when the window starts past the last frame or ends more than tolerance_s after it."""
    start = 0 if start_sec is None else max(0, round(start_sec * fps))
    end = n_frames if end_sec is None else round(end_sec * fps)
    if start >= n_frames:
        raise ValueError(f"starts at frame {start}, the video has {n_frames} ({n_frames / fps:.2f} s)")
    if end > n_frames + round(tolerance_s * fps):
        raise ValueError(f"ends at frame {end}, the video has {n_frames} ({n_frames / fps:.2f} s)")
    end = min(end, n_frames)
    return start, max(end, start + 1)


def sample_key(item_id: str, longest_member: int) -> str:
    """The item id as a tar key: characters outside the core's key alphabet (and dots) become '_', and an id
    too long for "<key>.<longest member>" to fit tar's 100-byte name is cut and suffixed with its hash."""
    key = "".join(c if KEY_RE.match(c) else "_" for c in item_id)
    limit = MAX_TAR_NAME - 1 - longest_member
    if key == item_id and 0 < len(key) <= limit:
        return key
    # changed: the hash keeps ids apart that differ only in a replaced or cut-off character
    return f"{key[: max(1, limit - 11)]}-{hashlib.sha256(item_id.encode()).hexdigest()[:10]}"


def group_items(items: Sequence[PlannedItem]) -> list[DecodeGroup]:
    """Items -> decode groups: the connected components of items and the sources they share (union-find), so a
    source is decoded once for all of its items. Used for single-clip tasks (a group is then one source with
    all of its items); multi-clip tasks (EgoMCQ) are cut per source first and assembled from staged clips
    (writer.py), because their items join videos into ever larger components."""
    parent: dict = {}

    def find(k):
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for p in items:
        roots = sorted({find(c.source.key) for c in p.clips})
        for r in roots[1:]:
            parent[r] = roots[0]
    by_root: dict = {}
    for p in items:
        by_root.setdefault(find(p.clips[0].source.key), []).append(p)
    return sorted(
        (make_group(ps) for ps in by_root.values()),
        key=lambda g: (g.items[0].item.item_id, g.items[0].benchmark),
    )


def make_group(items: Iterable[PlannedItem]) -> DecodeGroup:
    items = sorted(items, key=lambda p: (p.item.item_id, p.benchmark))
    sources = {c.source.key: c.source for p in items for c in p.clips}
    return DecodeGroup(tuple(sources[k] for k in sorted(sources)), tuple(items))


def fingerprint(
    content_options: dict, groups: Sequence[DecodeGroup], staged_windows: dict | None = None
) -> str:
    """Hash of everything that determines a shard's bytes, so resume can trust a finished shard. A staged
    shard's clips are cut together with every other window of their sources in the task (one x264 lane may
    hold windows of several shards), so those windows (staged_windows: source key -> windows) are part of
    it."""
    h = fingerprint_start(content_options, FORMAT_VERSION)
    if any(p.item.task in LAST_FRAME_TASKS for g in groups for p in g.items):
        add_json(h, ["frames mode: the last frame sampled last"])  # writer.py (EgoPlan since issue 17)
    for g in groups:
        for s in g.sources:
            # paths relative to the benchmark's video root: a download moved elsewhere keeps its shards
            images = [i.removeprefix(s.location) for i in s.images]
            add_json(h, [s.benchmark, s.path, images, asdict(s.video)], sort_keys=False)
            if staged_windows is not None:
                add_json(h, ["staged", staged_windows[s.key]], sort_keys=False)
        for p in g.items:
            clips = [[c.source.path, len(c.source.images), c.start_frame, c.end_frame] for c in p.clips]
            add_json(h, [p.benchmark, p.key, item_json(p.item), clips])
    return h.hexdigest()
