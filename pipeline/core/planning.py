"""Planning pieces every builder shares, pure (no Beam): probing a source once, sizing and packing shards.

A builder plans per source video: the video is probed once (frame count, rate, size; an image sequence's
size is read from its first image), its items become frame ranges, and the videos of a split are packed into
shards in a stable hash order, bounded by samples and by estimated bytes, a video never split across two
shards (it is decoded once). Shard membership is decided before any decoding, so a re-run recognises
complete shards by their fingerprint (resume).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from apache_beam.io.filesystems import FileSystems

from pipeline.core import shards
from pipeline.core.clips import ExtractionError, probe_video
from pipeline.core.clips._proc import MISSING_FILE
from pipeline.core.clips.images import image_size
from pipeline.core.localize import local_copy
from pipeline.core.records import SourceVideo

# Rough encoded bytes per source frame (mp4) or per JPEG (frames), used only to bound shard sizes before any
# clip exists.
BYTES_PER_FRAME = {"mp4": 3_000, "frames": 25_000}


def image_rate(fps: float) -> tuple[float, str]:
    """(rate, "num/den") given to clips made of an image sequence."""
    rate = Fraction(fps).limit_denominator(1000)
    return float(rate), f"{rate.numerator}/{rate.denominator}"


def probe_source(location: str, images: Sequence[str], timeout_s: float, rate: tuple[float, str],
                 check_images: bool = False) -> SourceVideo:  # fmt: skip
    """What decoding will find: a video probed once (through a local copy of a remote file), or an image
    sequence's count and size (each image checked to exist with check_images). Raises ExtractionError
    (with its reason) or OSError."""
    if images:
        if check_images:
            for image in images:
                if not FileSystems.exists(image):
                    raise ExtractionError(image, MISSING_FILE)
        width, height = image_size(images[0])
        return SourceVideo(len(images), *rate, width, height, "images")
    with local_copy(location) as local:
        info = probe_video(local, timeout_s=timeout_s)
    return SourceVideo(info.n_frames, info.fps, info.fps_fraction, info.width, info.height, info.codec)


def probe_failure(err: Exception, default_reason: str) -> tuple[str, str]:
    """(reason, detail) of a failed probe, for the failure records of the video and its items."""
    return getattr(err, "reason", default_reason), str(getattr(err, "detail", err))[-300:]


@dataclass(frozen=True)
class ShardSizing:
    """How many samples and (estimated) bytes a shard may hold, and how bytes are estimated."""

    max_samples: int
    max_bytes: int
    bytes_per_frame: int
    n_frames: int  # frames per clip in frames mode
    frames_mode: bool

    @classmethod
    def of(cls, max_samples: int, max_bytes: int, clip) -> ShardSizing:
        """From a build's bounds and its pipeline.core.clips.ClipFormat."""
        return cls(max_samples, max_bytes, BYTES_PER_FRAME[clip.kind], clip.n_frames, clip.kind == "frames")

    def clip_bytes(self, frame_ranges: Iterable[tuple[int, int]]) -> int:
        """Estimated bytes of clips cut from these [start, end) frame ranges."""
        ranges = list(frame_ranges)
        if self.frames_mode:
            return len(ranges) * self.n_frames * self.bytes_per_frame
        return sum((end - start) * self.bytes_per_frame for start, end in ranges)


def pack_groups(groups: Iterable, sizing: ShardSizing) -> list[list]:
    """Groups (decode units) -> shards' members: in (order_key, key) order, bounded by samples and estimated
    bytes; a group never spans two shards. A group has `order_key` and `pack_unit()` -> (key: a unique str,
    its samples' keys, the [start, end) frame ranges of its clips: the byte estimate, spread evenly over its
    samples)."""
    by_key: dict[str, tuple] = {}  # a key given twice: its place is the first's, its group the last's
    for unit, g in sorted(((g.pack_unit(), g) for g in groups), key=lambda u: (u[1].order_key, u[0][0])):
        by_key[unit[0]] = (unit, g)
    units = []
    for key, ((_, names, ranges), _) in by_key.items():
        size = sizing.clip_bytes(ranges) // max(len(names), 1)
        units.append((key, [(name, size) for name in names]))
    packed = shards.plan_shards_grouped(units, sizing.max_samples, sizing.max_bytes)
    return [[by_key[k][1] for k in keys] for keys in packed]


@dataclass(frozen=True)
class ShardPlan:
    """A shard decided before any decoding: its name (file stem, e.g. "egoit-train-000003"), split, index, its
    groups (decode units, in write order) and the fingerprint of everything that determines its bytes."""

    name: str
    split: str
    index: int
    groups: tuple
    fingerprint: str


def fingerprint_start(content_options: dict, format_version: int):
    """A sha256 begun with the format version and the options that shape a shard's bytes; a builder adds each
    group (`add_json`) and takes the hexdigest: the fingerprint resume trusts. Bump the format version
    whenever the bytes a given plan produces change."""
    h = hashlib.sha256()
    add_json(h, {"format_version": format_version, **content_options})
    return h


def add_json(h, obj, sort_keys: bool = True) -> None:
    h.update(json.dumps(obj, sort_keys=sort_keys, default=str).encode())
