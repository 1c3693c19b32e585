"""Clip windows and their frame ranges in every view: the EgoClip rule and frame synchronisation.

EgoClip (EgoVLP) rule: for a take with sorted narration times t_1..t_n, beta = mean(t_{i+1} - t_i); alpha is
the mean of beta over every selected take of the dataset (a global statistic, computed by the pipeline with a
combine); narration i gets [t_i - beta/(2 alpha), t_i + beta/(2 alpha)]. A take with a single narration has no
beta: it takes beta = alpha, i.e. a 1 s window. Windows of neighbouring narrations may overlap.

Synchronisation: Ego-Exo4D's frame-aligned videos show the same instant at frame i of every camera, so a window
is one range of canonical frame indices, shifted per camera by the known misalignments of the offset table
(file frame = canonical frame + offset).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.egoexoclip.checks import RecordError

WINDOW_RULES = ("egoclip", "fixed")


class WindowError(RecordError):
    """A narration's window cannot be cut from the video (`reason`, `detail` as for any unusable record)."""


@dataclass(frozen=True)
class WindowRule:
    kind: str = "egoclip"
    fixed_length_sec: float = 1.0

    def __post_init__(self):
        if self.kind not in WINDOW_RULES:
            raise ValueError(f"WindowRule.kind={self.kind!r}: expected one of {WINDOW_RULES}")
        if not (self.fixed_length_sec > 0):
            raise ValueError(f"WindowRule.fixed_length_sec={self.fixed_length_sec!r}: must be > 0")


def take_beta(timestamps: Iterable[float]) -> float | None:
    """Mean gap between consecutive narrations of a take; None for fewer than two narrations."""
    times = sorted(timestamps)
    if len(times) < 2:
        return None
    return (times[-1] - times[0]) / (len(times) - 1)


def dataset_alpha(betas: Iterable[float | None]) -> float:
    """Mean of the takes' betas. With no take of two narrations, 1.0 keeps single windows at 1 s."""
    values = [b for b in betas if b is not None]
    return sum(values) / len(values) if values else 1.0


def window_seconds(t: float, beta: float | None, alpha: float, rule: WindowRule) -> tuple[float, float]:
    if rule.kind == "fixed":
        half = rule.fixed_length_sec / 2
    else:
        if not alpha > 0:
            raise WindowError("bad window", f"alpha={alpha!r} must be > 0")
        # beta of 0 (all narrations at one instant) would give an empty window: treat it like a single narration
        half = (beta if beta else alpha) / (2 * alpha)
    return t - half, t + half


def frame_range(start_sec: float, end_sec: float, fps: float, n_frames: int) -> tuple[int, int]:
    """Seconds -> [first, last+1) canonical frames, clamped to the video; at least one frame.

    A narration timestamp outside [0, duration] (beyond the last frame) is an error, not a clamp: the event
    it describes is not in the video.
    """
    duration = n_frames / fps
    centre = (start_sec + end_sec) / 2
    if centre < 0 or centre > duration + 0.5 / fps:
        raise WindowError("window outside the video", f"narration at {centre:.3f}s, video {duration:.3f}s")
    first = max(0, math.floor(start_sec * fps + 0.5))
    last = min(n_frames, math.floor(end_sec * fps + 0.5))
    first = min(first, n_frames - 1)
    return first, max(first + 1, last)


def view_range(canonical: tuple[int, int], offset: int, n_frames: int) -> tuple[int, int] | None:
    """The canonical range in a view's own frame indices; None when the view does not cover all of it."""
    start, end = canonical[0] + offset, canonical[1] + offset
    if start < 0 or end > n_frames:
        return None
    return start, end


@dataclass(frozen=True)
class FrameOffsets:
    """Known per-take, per-camera misalignments: file frame = canonical frame + offset_frames."""

    table: tuple[tuple[str, str, int], ...] = ()

    def get(self, take_name: str, cam_id: str) -> int:
        for name, cam, offset in self.table:
            if name == take_name and cam == cam_id:
                return offset
        return 0

    def for_take(self, take_name: str) -> dict[str, int]:
        return {cam: off for name, cam, off in self.table if name == take_name}

    @classmethod
    def from_csv_text(cls, text: str, source: str = "<offsets>") -> FrameOffsets:
        rows: list[tuple[str, str, int]] = []
        reader = csv.DictReader(io.StringIO(text))
        missing = {"take_name", "cam_id", "offset_frames"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(
                f"{source}: missing columns {sorted(missing)} (need take_name,cam_id,offset_frames)"
            )
        for line, row in enumerate(reader, start=2):
            try:
                rows.append((row["take_name"].strip(), row["cam_id"].strip(), int(row["offset_frames"])))
            except (TypeError, ValueError):
                raise ValueError(
                    f"{source}:{line}: offset_frames={row.get('offset_frames')!r} is not an integer"
                ) from None
        return cls(tuple(sorted(rows)))


def narration_order(narrations: Sequence) -> list:
    """Deterministic order of a take's narrations: time, then annotator pass, then position."""
    return sorted(narrations, key=lambda n: (n.timestamp, n.annotation_uid, n.desc_index))
