"""The EgoIT build plan: which clip of which source video each item gets, and which shard it goes into.

Planning is pure and cheap (metadata and frame counts only); shard membership is decided before any decoding,
so a re-run recognises complete shards by their fingerprint and skips them (resume).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from pipeline.core.failures import FailureRecord
from pipeline.core.planning import add_json, fingerprint_start
from pipeline.core.records import SourceVideo
from pipeline.egoit.records import EgoITItem, RecordFailure

# Bumped whenever the bytes a given plan produces change, so old shards are not taken as complete.
FORMAT_VERSION = 1
SCOPES = ("file", "record", "item", "video")


@dataclass(frozen=True)
class ItemFailure(FailureRecord):
    """One input that did not make it into the shards, and why. scope: file (a whole annotation file),
    record (an annotation row), item (a converted sample: conversion, dedup, mixing, its clip), video (a
    source video; each of its items also gets an item record)."""

    SORT = ("source", "scope", "file", "record", "item", "video", "reason", "detail")

    reason: str
    scope: str
    source: str = ""
    split: str = ""
    record: str = ""  # annotation row / record id
    item: str = ""  # EgoIT item id
    video: str = ""  # source video, relative to the source's video root
    file: str = ""
    detail: str = ""

    @classmethod
    def from_record_failure(cls, f: RecordFailure) -> ItemFailure:
        return cls(f.reason, "file" if not f.record else "record", f.source, record=f.record, file=f.file,
                   detail=f.detail)  # fmt: skip

    @classmethod
    def for_item(cls, item: EgoITItem, reason: str, detail: str = "", scope: str = "item") -> ItemFailure:
        return cls(reason, scope, item.source, item.split, str(item.metadata.get("record_id", "")), item.id,
                   item.video.path, detail=detail)  # fmt: skip


@dataclass(frozen=True)
class PlannedItem:
    item: EgoITItem
    start_frame: int
    end_frame: int  # exclusive


@dataclass(frozen=True)
class VideoPlan:
    """Every item cut from one source: the unit of decoding (one pass over the video) and of shard packing."""

    source: str
    path: str  # relative to the source's video root (what items and reports name)
    location: str  # the file the worker reads (absolute path or URL); for images, their folder
    images: tuple[str, ...]  # image files (absolute) of an image-sequence source, else ()
    video: SourceVideo
    items: tuple[PlannedItem, ...]

    @property
    def order_key(self) -> str:
        """Videos are packed in hash order so that every shard mixes sources (a stream that reads shards in
        order still sees the mixture)."""
        return hashlib.sha256(f"{self.source}/{self.path}".encode()).hexdigest()

    def pack_unit(self) -> tuple[str, list[str], list[tuple[int, int]]]:
        """(key, sample keys, frame ranges) for the core's shard packing (pipeline.core.planning.pack_groups)."""
        key = f"{self.source}/{self.path}"
        return key, [f"{key}#{i}" for i in range(len(self.items))], [(p.start_frame, p.end_frame) for p in self.items]


def frame_window(start_sec: float | None, end_sec: float | None, fps: float, n_frames: int) -> tuple[int, int]:
    """[start, end) source frames of a window in seconds (None: the file's start / end); at least one frame.
    Raises ValueError when the window does not meet the video."""
    start = 0 if start_sec is None else round(start_sec * fps)
    end = n_frames if end_sec is None else min(n_frames, round(end_sec * fps))
    if start >= n_frames:
        raise ValueError(f"starts at frame {start}, the video has {n_frames}")
    if end <= start:
        end = start + 1
    return max(0, start), end


def plan_video(
    source: str, path: str, location: str, images: tuple[str, ...], video: SourceVideo, items: list[EgoITItem]
) -> tuple[VideoPlan | None, list[ItemFailure]]:
    """Frame ranges of every item of one source video; an item whose window misses the video fails alone."""
    planned, failures = [], []
    for item in sorted(items, key=lambda i: i.id):
        try:
            if images:
                start, end = 0, video.n_frames  # an episode is one clip of all its (sampled) frames
            else:
                start, end = frame_window(item.video.start_sec, item.video.end_sec, video.fps, video.n_frames)
        except ValueError as err:
            failures.append(ItemFailure.for_item(item, "window outside the video", str(err)))
            continue
        planned.append(PlannedItem(item, start, end))
    if not planned:
        return None, failures
    return VideoPlan(source, path, location, images, video, tuple(planned)), failures


def fingerprint(content_options: dict, videos: tuple[VideoPlan, ...]) -> str:
    """Hash of everything that determines a shard's bytes, so resume can trust a finished shard."""
    h = fingerprint_start(content_options, FORMAT_VERSION)
    for v in videos:
        add_json(h, [v.source, v.path, asdict(v.video), len(v.images)])
        for p in v.items:
            add_json(h, [asdict(p.item), p.start_frame, p.end_frame])
    return h.hexdigest()
