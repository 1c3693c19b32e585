"""Beam steps every builder shares: failure outputs, and writing planned shards (with resume).

A builder's shard plan needs `.name`, `.split` and `.fingerprint`; its `write(plan, tmp_root, on_group)` writes
the shard (normally through pipeline.core.writer.write_shard) and returns the shard's stats. `progress_of(plan)`
gives (groups, clips) of a plan for the driver's progress bar (pipeline/core/progress.py): each plan is
recorded once it is checked, with whether resume keeps it.

Before any shard is checked or written, the dataset-level files of an earlier build (manifest, stats, errors,
wids indexes, the builder's own: pipeline.core.finalize.top_level_files) are removed, so that a build stopped
midway never leaves them describing shards it has started to replace; the builder's finalize step writes them
again, stats.json last.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from pipeline.core import progress
from pipeline.core.finalize import remove_top_level, top_level_patterns
from pipeline.core.workdir import current_name, worker_dir
from pipeline.core.writer import shard_is_complete

LOG = logging.getLogger(__name__)
FAILURES = "failures"


def failure_output(namespace: str, failure) -> TaggedOutput:
    """Tag a failure record for the dead-letter output and count it by scope and reason."""
    Metrics.counter(namespace, f"failed[{failure.scope}]: {failure.reason}").inc()
    return TaggedOutput(FAILURES, failure)


class CheckShardFn(beam.DoFn):
    """Resume: shards whose commit marker matches the plan are skipped (tagged 'complete'). Each plan's groups
    and clips are recorded for the driver's progress bar, when it asked for progress."""

    def __init__(self, out: str, overwrite: bool, namespace: str, progress_of: Callable | None = None):
        self.out, self.overwrite, self.namespace = out, overwrite, namespace
        self.progress_of = progress_of

    def process(self, plan, started=()):
        complete = not self.overwrite and shard_is_complete(self.out, plan.name, plan.fingerprint)
        if self.progress_of is not None and progress.requested():
            groups, clips = self.progress_of(plan)
            progress.record("plan", shard=plan.name, groups=groups, clips=clips, complete=complete)
        if complete:
            Metrics.counter(self.namespace, "shards already complete").inc()
            yield TaggedOutput("complete", plan.name)
        else:
            yield plan


class WriteShardFn(beam.DoFn):
    """Extracts every clip of the shard (one decode per source) and writes it; logs progress per group."""

    def __init__(self, write: Callable, namespace: str, workdir_name: str | None = None):
        self.write, self.namespace = write, namespace
        self.workdir_name = workdir_name  # the build's work directory, by name: each worker has its own disk
        self.clips = Metrics.counter(namespace, "clips extracted")
        self.groups = Metrics.counter(namespace, "groups extracted")
        self.samples = Metrics.counter(namespace, "samples written")

    def setup(self):
        self.tmp_root = worker_dir(self.workdir_name)  # this worker's own disk
        self.started, self.n_clips = time.monotonic(), 0

    def _on_group(self, name: str, n_clips: int, seconds: float):
        """After each group of a shard: the worker's log line."""
        self.clips.inc(n_clips)
        self.groups.inc()
        self.n_clips += n_clips
        rate = self.n_clips / max(time.monotonic() - self.started, 1e-9)
        LOG.info("%s: %d clips in %.1fs; this worker %d clips, %.1f clips/s", name, n_clips, seconds,
                 self.n_clips, rate)  # fmt: skip

    def process(self, plan):
        stats = self.write(plan, tmp_root=self.tmp_root, on_group=self._on_group)
        self.samples.inc(stats["n_samples"])
        LOG.info("shard %s written: %d samples, %d bytes", stats["shard"], stats["n_samples"], stats["tar_bytes"])
        yield plan.name


class WriteShards(beam.PTransform):
    """Shard plans -> names of the shards written now; complete ones (same fingerprint) are skipped."""

    def __init__(self, out: str, write: Callable, overwrite: bool, namespace: str, prefix: str | None = None,
                 progress_of: Callable | None = None):  # fmt: skip
        super().__init__()
        self.out, self.write, self.overwrite, self.namespace = out, write, overwrite, namespace
        self.prefix = prefix or namespace  # the shard file prefix (every builder names both alike)
        self.progress_of = progress_of

    def expand(self, shard_plans):
        out, prefix = self.out, self.prefix
        patterns = top_level_patterns(prefix)  # now: the registry lives in this (the driver's) process
        started = (
            shard_plans.pipeline
            | "StartBuild" >> beam.Create([None])
            | "RemoveTopLevelFiles" >> beam.Map(lambda _: remove_top_level(out, prefix, patterns))
        )
        checked = shard_plans | "CheckShards" >> beam.ParDo(
            CheckShardFn(self.out, self.overwrite, self.namespace, self.progress_of),
            started=beam.pvalue.AsList(started),
        ).with_outputs("complete", main="todo")
        return (
            checked.todo
            | "SpreadShards" >> beam.Reshuffle()
            | "WriteShard" >> beam.ParDo(WriteShardFn(self.write, self.namespace, current_name()))
        )
