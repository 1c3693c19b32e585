"""The record types every dataset reader shares.

    VideoRef        where the pixels of a row are, relative to its dataset's video root
    RecordFailure   an annotation row (or a whole file) that cannot be used, and why
    SourceVideo     what the planning probe learnt of one source video (or image sequence)

Readers (pipeline/<dataset>/sources/) turn every row of every annotation file into a record of their dataset or
a RecordFailure; the helpers that do it are in pipeline/core/readers.py and pipeline/core/values.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class VideoRef:
    """Where the pixels of a record are, relative to its source's video root (POSIX path, never absolute,
    never escaping the root). A video file with an optional [start_sec, end_sec) window (None = the file's
    start / end), or an image sequence (`frames`: image files in temporal order, `path` = their folder)."""

    path: str
    start_sec: float | None = None
    end_sec: float | None = None
    frames: tuple[str, ...] = ()

    @property
    def is_image_sequence(self) -> bool:
        return bool(self.frames)


@dataclass(frozen=True)
class RecordFailure:
    """An annotation row (or a whole file) that cannot be used, and why. `record` names the row: a line or row
    number ("line 17", "row 203") and/or the record's own id; "" for a whole file."""

    source: str
    file: str
    record: str
    reason: str  # short and groupable ("schema violation", "bad time", "unknown label", ...)
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SourceVideo:
    """What the planning probe learnt of one source video (or image sequence)."""

    n_frames: int  # frames of the video, or images of the sequence
    fps: float  # the video's rate; for images, the rate the clip is given
    fps_fraction: str
    width: int
    height: int
    codec: str
