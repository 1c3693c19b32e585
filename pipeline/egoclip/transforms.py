"""The Beam steps of the EgoClip build: DoFns that call the pure modules (rows, plan).

Failures leave every step as a tagged output (core.transforms.FAILURES) of `rows.ClipFailure` records, counted
with Metrics and collected into errors.jsonl: every row of the csv is in a shard or in errors.jsonl (scope "row")
with its reason.
"""

from __future__ import annotations

import io

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from pipeline.core.clips import ExtractionError, probe_video
from pipeline.core.composites import COUNTS  # the tag FnStep / ReadSources collect counts under
from pipeline.core.localize import local_copy
from pipeline.core.transforms import failure_output
from pipeline.egoclip.plan import LAYOUTS, MISSING_VIDEO, locate_video, plan_video, split_of
from pipeline.egoclip.rows import ClipFailure, ClipRow, read_rows

NAMESPACE = "egoclip"


def _fail(failure: ClipFailure):
    return failure_output(NAMESPACE, failure)


class ReadRowsFn(beam.DoFn):
    """The csv (any Beam filesystem) -> its ClipRows and a failure per unusable row (or for the whole file)."""

    def __init__(self):
        self.rows = Metrics.counter(NAMESPACE, "csv rows read")

    def process(self, path: str):
        n = 0
        try:
            raw = FileSystems.open(path, compression_type="uncompressed")
        except Exception as err:  # missing or unreadable: Beam's filesystems raise their own error types
            yield _fail(ClipFailure("unreadable csv", "file", file=path, detail=str(err)[:300]))
            yield TaggedOutput(COUNTS, ("rows", 0))
            return
        with raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
            for out in read_rows(text, path):
                if isinstance(out, ClipFailure):
                    if out.scope == "row":
                        n += 1
                    yield _fail(out)
                else:
                    n += 1
                    yield out
        self.rows.inc(n)
        yield TaggedOutput(COUNTS, ("rows", n))


def key_by_video(row: ClipRow):
    return row.video_uid, row


class PlanVideoFn(beam.DoFn):
    """(video_uid, rows) -> VideoPlan: the video found under the Ego4D root and probed once (frame count, rate,
    size); a missing or unreadable video costs its rows, each reported."""

    def __init__(self, root: str, probe_timeout_s: float, val_fraction: float, seed: int):
        self.root, self.probe_timeout_s = root, probe_timeout_s
        self.val_fraction, self.seed = val_fraction, seed

    def _video_failed(self, uid: str, rows, reason: str, path: str, location: str, detail: str):
        yield _fail(ClipFailure(reason, "video", video_uid=uid, video=path, file=location, detail=detail))
        for r in sorted(rows, key=lambda r: r.row):
            yield _fail(ClipFailure(f"video: {reason}", "row", r.row, r.key, uid, path))

    def process(self, group):
        uid, rows = group
        rows = list(rows)
        found = locate_video(self.root, uid, FileSystems.exists)
        if found is None:
            tried = ", ".join(layout.format(uid=uid) for layout in LAYOUTS)
            yield from self._video_failed(uid, rows, MISSING_VIDEO, "", self.root, f"tried {tried}")
            return
        path, location = found
        try:
            with local_copy(location) as local:
                info = probe_video(local, timeout_s=self.probe_timeout_s)
        except (ExtractionError, OSError) as err:
            reason = getattr(err, "reason", "unreadable video")
            yield from self._video_failed(uid, rows, reason, path, location,
                                          str(getattr(err, "detail", err))[-300:])  # fmt: skip
            return
        plan, failures = plan_video(
            uid, path, location, split_of(uid, self.val_fraction, self.seed), info, rows
        )
        for f in failures:
            yield _fail(f)
        if plan is not None:
            yield plan
