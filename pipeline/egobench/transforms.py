"""The Beam steps of the EgoBench build: DoFns that call the pure modules (readers, plan).

Failures leave every step as a tagged output (core.transforms.FAILURES) of `plan.BenchFailure` records,
counted with Metrics and collected into errors.jsonl, so every annotation row is in a shard or in errors.jsonl
with its reason. Counts ((kind, name), n) feed stats.json: ("rows", benchmark), ("items", task).
"""

from __future__ import annotations

import logging
import time

import apache_beam as beam
from apache_beam import typehints
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from pipeline.core import shards
from pipeline.core.clips import ExtractionError
from pipeline.core.clips._proc import MISSING_FILE
from pipeline.core.composites import COUNTS  # the tag FnStep / ReadSources collect counts under
from pipeline.core.planning import ShardSizing, image_rate, probe_failure, probe_source
from pipeline.core.transforms import failure_output
from pipeline.core.values import join_root
from pipeline.core.writer import default_tmp_root, shard_is_complete
from pipeline.egobench.plan import (
    BenchFailure,
    ClipPlan,
    PlannedItem,
    ShardPlan,
    VideoSource,
    clip_window,
    fingerprint,
    group_items,
    make_group,
    sample_key,
)
from pipeline.egobench.records import BenchItem, RecordFailure
from pipeline.egobench.samples import multi_clip
from pipeline.egobench.sources import READERS
from pipeline.egobench.sources.epic_mir import sentence_set
from pipeline.egobench.writer import SHARD_PREFIX, cut_source

LOG = logging.getLogger(__name__)
NAMESPACE = "egobench"


def _fail(failure: BenchFailure):
    return failure_output(NAMESPACE, failure)


def _count(kind: str, name: str, n: int = 1):
    return TaggedOutput(COUNTS, ((kind, name), n))


class _DoFn(beam.DoFn):
    """No output type inferred from the generator: it mixes tagged outputs into the main one, and Beam's guess
    (a Union with TaggedOutput) fails the type check of a following GroupByKey."""

    def infer_output_type(self, input_type):
        return typehints.Any


class ReadBenchmarkFn(_DoFn):
    """A benchmark spec -> one ((benchmark, path, frames), (item, k)) per clip k of each item it reads, and a
    failure per unusable row or file."""

    def process(self, spec):
        for out in READERS[spec.reader](spec.annotations, spec.videos, **spec.reader_options()):
            if isinstance(out, RecordFailure):
                if out.record:
                    yield _count("rows", spec.name)
                yield _fail(BenchFailure.from_record_failure(spec.name, out))
                continue
            yield _count("rows", spec.name)
            yield _count("items", out.task)
            for k, video in enumerate(out.videos):
                yield (spec.name, video.path, video.frames), (out, k)


def sentence_doc(spec) -> tuple[str, dict]:
    """(benchmark, the EPIC-100 MIR sentence set as written to OUT/<benchmark>_sentences.json)."""
    sentences, _ = sentence_set(
        spec.annotations
    )  # its failures are the reader's, reported by ReadBenchmarkFn
    return spec.name, {
        "benchmark": spec.name,
        "task": "epic_mir",
        "n_sentences": len(sentences),
        # the retrieval columns in the sentence file's order; classes of the test row each one names
        # (relevancy)
        "sentences": [
            {
                "id": s.sentence_id,
                "text": s.text,
                "verb_class": s.verb_class,
                "noun_classes": list(s.noun_classes),
                "text_matches_row": s.text_matches_row,
            }
            for s in sentences
        ],
    }


class PlanVideoFn(_DoFn):
    """((benchmark, path, frames), [(item, k)]) -> ((benchmark, task, item id), (k, item, ClipPlan |
    failure)): the video probed once (frame count, rate, size) or the image sequence checked, each clip's
    frame range; an unusable source is one video failure, and each of its clips carries the reason to its
    item."""

    def __init__(self, roots: dict[str, str], probe_timeout_s: float, image_fps: float):
        self.roots, self.probe_timeout_s = roots, probe_timeout_s
        self.image_rate = image_rate(image_fps)

    def process(self, group):
        (benchmark, path, frames), clips = group
        clips = sorted(clips, key=lambda c: (c[0].task, c[0].item_id, c[1]))
        location = join_root(self.roots[benchmark], path)
        images = tuple(join_root(location, f) for f in frames)
        try:
            video = probe_source(location, images, self.probe_timeout_s, self.image_rate, check_images=True)
        except (ExtractionError, OSError) as err:
            reason, detail = probe_failure(err, MISSING_FILE)
            yield _fail(BenchFailure(reason, "video", benchmark, video=path, file=location, detail=detail))
            for item, k in clips:
                yield (benchmark, item.task, item.item_id), (k, item, (f"video: {reason}", path))
            return
        source = VideoSource(benchmark, path, location, images, video)
        for item, k in clips:
            ref = item.videos[k]
            try:
                if images:
                    start, end = 0, video.n_frames  # the reader's chosen frames, all of them
                else:
                    start, end = clip_window(ref.start_sec, ref.end_sec, video.fps, video.n_frames)
            except ValueError as err:
                yield (
                    (benchmark, item.task, item.item_id),
                    (k, item, ("window outside the video", path, str(err))),
                )
                continue
            yield (benchmark, item.task, item.item_id), (k, item, ClipPlan(source, start, end))


class AssembleItemFn(_DoFn):
    """((benchmark, task, id), clips) -> (task, PlannedItem) when every clip of the item is planned, else one
    item failure with the reason of its first failing clip (in option order)."""

    def __init__(self, longest_member: int):
        self.longest_member = longest_member

    def process(self, group):
        (benchmark, _, _), clips = group
        clips = sorted(clips, key=lambda c: c[0])
        item: BenchItem = clips[0][1]
        got = {k: plan for k, _, plan in clips}
        for k in range(len(item.videos)):
            plan = got.get(k)
            if not isinstance(plan, ClipPlan):
                reason, path, *detail = plan if plan is not None else ("no clip", item.videos[k].path)
                yield _fail(BenchFailure.for_item(benchmark, item, reason, detail[0] if detail else "", path))
                return
        key = sample_key(item.item_id, self.longest_member)
        yield item.task, PlannedItem(benchmark, item, key, tuple(got[k] for k in range(len(item.videos))))


class AssignShardsFn(_DoFn):
    """(task, planned items) -> ShardPlans, groups in order, bounded by samples and estimated bytes; a group
    never spans two shards. Single-clip tasks: groups of items sharing their source (plan.group_items);
    multi-clip tasks (EgoMCQ): one item per group, staged (writer.cut_source). An id (or key) seen twice in a
    task (two config entries of one benchmark) keeps its first item; the others fail as "duplicate id"."""

    def __init__(self, sizing: ShardSizing, content_options: dict):
        self.sizing, self.content_options = sizing, content_options

    def process(self, group):
        task, planned = group
        kept, ids, keys = [], set(), set()
        for p in sorted(planned, key=lambda p: (p.item.item_id, p.benchmark)):
            if p.item.item_id in ids or p.key in keys:
                yield _fail(
                    BenchFailure.for_item(
                        p.benchmark,
                        p.item,
                        "duplicate id",
                        f"{task}/{p.item.item_id} is read from another benchmark entry too",
                    )
                )
                continue
            ids.add(p.item.item_id)
            keys.add(p.key)
            kept.append(p)
        staged = multi_clip(task)
        groups = [make_group([p]) for p in kept] if staged else group_items(kept)
        windows: dict = {}  # staged: source key -> every window of the source in the task
        owner: dict = {}  # staged: source key -> the group (first item) that reports its failure
        if staged:
            for g in groups:
                for c in g.items[0].clips:
                    windows.setdefault(c.source.key, set()).add((c.start_frame, c.end_frame))
                    owner.setdefault(c.source.key, g.name)
            windows = {k: sorted(w) for k, w in windows.items()}
        by_name = {g.name: g for g in groups}
        units = []  # in the groups' own order (by item id), not pack_groups' hash order: one task, one shard set
        for g in groups:
            size = self.sizing.clip_bytes(g.frame_ranges) // len(g.items)
            units.append((g.name, [(p.key, size) for p in g.items]))
        for index, names in enumerate(shards.plan_shards_grouped(units, self.sizing.max_samples, self.sizing.max_bytes)):
            name = shards.shard_name(SHARD_PREFIX, task, index).removesuffix(".tar")
            members = tuple(by_name[n] for n in names)
            if not staged:
                yield ShardPlan(name, task, index, members, fingerprint(self.content_options, members))
                continue
            keys = sorted({s.key for g in members for s in g.sources})
            source_windows = tuple((k, tuple(windows[k])) for k in keys)
            reports = tuple(k for k in keys if owner[k] in names)
            yield ShardPlan(
                name,
                task,
                index,
                members,
                fingerprint(self.content_options, members, windows),
                True,
                source_windows,
                reports,
            )


class StagedSourcesFn(_DoFn):
    """A staged ShardPlan that is not complete -> ((task, source key), (source, every window of the source in
    the task)) for each of its sources: what cut_source has to stage before the shard can be written."""

    def __init__(self, out: str, overwrite: bool):
        self.out, self.overwrite = out, overwrite

    def process(self, plan: ShardPlan):
        if not self.overwrite and shard_is_complete(self.out, plan.name, plan.fingerprint):
            return
        sources = {s.key: s for g in plan.groups for s in g.sources}
        for key, windows in plan.source_windows:
            yield (plan.task, key), (sources[key], windows)


class CutSourceFn(_DoFn):
    """((task, source key), [(source, windows), ...]) -> (task, source path): the source decoded once, every
    window staged (writer.cut_source)."""

    def __init__(self, out: str, fmt):
        self.out, self.fmt = out, fmt

    def setup(self):
        self.tmp_root = default_tmp_root()

    def process(self, group):
        (task, _), entries = group
        source, windows = next(iter(entries))
        started = time.monotonic()
        done = cut_source(self.out, task, source, windows, self.fmt, tmp_root=self.tmp_root)
        Metrics.counter(NAMESPACE, "sources staged").inc()
        LOG.info(
            "%s %s: %d windows staged in %.1fs%s",
            task,
            source.path,
            len(windows),
            time.monotonic() - started,
            f" ({done['error']['reason']})" if done["error"] else "",
        )
        yield task, source.path


def by_task(item):
    """(task, PlannedItem) as AssignShards groups it: a task's items are one shard set."""
    yield item
