"""The Beam steps of the EgoIT build: DoFns that call the pure modules (readers, converter, dedup, mix, plan).

Failures leave every step as a tagged output (core.transforms.FAILURES) of `plan.ItemFailure` records, counted
with Metrics and collected into errors.jsonl. Steps that drop items on purpose (near duplicates, mixing)
report them the same way, so every input row is in a shard or in errors.jsonl with its reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from pipeline.core.clips import ExtractionError
from pipeline.core.composites import COUNTS  # the tag FnStep / ReadSources collect counts under
from pipeline.core.planning import image_rate, probe_failure, probe_source
from pipeline.core.transforms import failure_output
from pipeline.core.values import join_root
from pipeline.egoit import dedup, mix
from pipeline.egoit.convert import load_templates, to_items
from pipeline.egoit.plan import ItemFailure, VideoPlan, plan_video
from pipeline.egoit.records import EgoITItem, RecordFailure, SourceRecord
from pipeline.egoit.sources import READERS

NAMESPACE = "egoit"


def _fail(failure: ItemFailure):
    return failure_output(NAMESPACE, failure)


def _count(source: str, stage: str, task: str, n: int = 1):
    return TaggedOutput(COUNTS, ((source, stage, task), n))


class ReadSourceFn(beam.DoFn):
    """A source spec -> its SourceRecords (keyed by source) and a failure per unusable row or file."""

    def process(self, spec):
        reader = READERS[spec.name]
        for out in reader(spec.annotations, spec.videos, **spec.reader_options()):
            if isinstance(out, RecordFailure):
                if out.record:
                    yield _count(spec.name, "input", "")
                yield _fail(ItemFailure.from_record_failure(out))
            else:
                yield _count(spec.name, "input", "")
                yield _count(spec.name, "records", out.task)
                yield out


class ConvertFn(beam.DoFn):
    """SourceRecord -> first-person EgoITItems (EgoTimeQA rows with wrong answers give two); split by hash."""

    def __init__(self, templates_path: str | None, val_fraction: float, seed: int):
        self.templates_path, self.val_fraction, self.seed = templates_path, val_fraction, seed

    def setup(self):
        self.templates = load_templates(self.templates_path)

    def process(self, record: SourceRecord):
        # one split per source video: no clip of a validation video is trained on
        rank = mix.item_rank(f"split:{record.source}:{record.video_id}", self.seed)
        split = "val" if rank < self.val_fraction else "train"
        try:
            items = to_items(record, self.templates, split=split)
        except (ValueError, KeyError, TypeError) as err:
            yield _fail(ItemFailure("conversion failed", "record", record.source, split, record.record_id,
                                    video=record.video.path, file=record.source_file, detail=str(err)[:300]))  # fmt: skip
            return
        for item in items:
            yield _count(item.source, "converted", item.task)
            yield (item.source, item.video_id), item


def dedup_text(item: EgoITItem) -> str:
    """What near-duplicate removal compares: the question (without the template) and the answer for QA, the
    answer alone for action recognition and descriptions (the template varies by design)."""
    answer = item.conversations[-1].text
    question = str(item.metadata.get("question", ""))
    return f"{question} {answer}".strip() if item.task in ("open_qa", "multiple_choice") else answer


def dedup_window(item: EgoITItem) -> tuple[float, float] | None:
    v, m = item.video, item.metadata
    if item.source == "egtea" and isinstance(m.get("start_ms"), int) and m["start_ms"] >= 0:
        return m["start_ms"] / 1000, m["end_ms"] / 1000  # clips of one session video: compare session times
    if v.start_sec is None and v.end_sec is None:
        return None
    return (v.start_sec or 0.0), (v.end_sec if v.end_sec is not None else float("inf"))


class DedupFn(beam.DoFn):
    """((source, video_id), items) -> the items that are not near-duplicates of an earlier one."""

    def __init__(self, threshold: float, model_dir: str | None, model_sha256: str | None):
        self.threshold, self.model_dir, self.model_sha256 = threshold, model_dir, model_sha256

    def setup(self):
        self.encoder = dedup.load_encoder(self.model_dir, self.model_sha256) if self.threshold < 1.0 else None

    def process(self, group):
        _, items = group
        items = sorted(items, key=lambda i: i.id)
        dropped = {}
        if self.encoder is not None and len(items) > 1:
            candidates = [dedup.DedupCandidate(i.id, i.task, dedup_text(i), dedup_window(i)) for i in items]
            vectors = dedup.embed(self.encoder, [c.text for c in candidates])
            dropped = dedup.near_duplicates(candidates, vectors, self.threshold)
        for item in items:
            if item.id in dropped:
                kept, cosine = dropped[item.id]
                yield _count(item.source, "near_duplicate", item.task)
                yield _fail(ItemFailure.for_item(item, "near duplicate", f"of {kept} (cosine {cosine:.4f})"))
            else:
                yield _count(item.source, "deduplicated", item.task)
                yield item


class CapThresholdFn(beam.DoFn):
    """(source, ranks of its items that passed the ratio) -> (source, largest rank kept under the cap)."""

    def __init__(self, rules: dict[str, mix.MixRule]):
        self.rules = rules

    def process(self, group):
        source, ranks = group
        yield source, mix.cap_threshold(list(ranks), self.rules[source])


class MixFn(beam.DoFn):
    def __init__(self, rules: dict[str, mix.MixRule], seed: int):
        self.rules, self.seed = rules, seed

    def process(self, item: EgoITItem, thresholds: dict):
        why = mix.mix_decision(mix.item_rank(item.id, self.seed), self.rules[item.source],
                               thresholds.get(item.source, float("inf")))  # fmt: skip
        if why is not None:
            yield _fail(ItemFailure.for_item(item, why))
            return
        yield _count(item.source, "mixed", item.task)
        yield (item.source, item.video.path), item


class PlanVideoFn(beam.DoFn):
    """((source, video path), items) -> VideoPlan: the video probed once (frame count, rate, size), or the
    image sequence's size read; an unusable video costs its items, each reported."""

    def __init__(self, roots: dict[str, str], probe_timeout_s: float, image_fps: float):
        self.roots, self.probe_timeout_s = roots, probe_timeout_s
        self.image_rate = image_rate(image_fps)  # of clips made of images

    def process(self, group):
        (source, path), items = group
        items = sorted(items, key=lambda i: i.id)
        location = join_root(self.roots[source], path)
        images = tuple(join_root(location, f) for f in items[0].video.frames)
        try:
            video = probe_source(location, images, self.probe_timeout_s, self.image_rate)
        except (ExtractionError, OSError) as err:
            reason, detail = probe_failure(err, "missing file")
            yield _fail(ItemFailure(reason, "video", source, video=path, file=location, detail=detail))
            for item in items:
                yield _fail(ItemFailure.for_item(item, f"video: {reason}"))
            return
        plan, failures = plan_video(source, path, location, images, video, items)
        for f in failures:
            yield _fail(f)
        if plan is not None:
            yield plan


def split_videos(plan: VideoPlan):
    """A video's items by EgoIT split (splits are drawn per source video, so a video lies in one)."""
    by_split = Counter(p.item.split for p in plan.items)
    for split in sorted(by_split):
        yield split, replace(plan, items=tuple(p for p in plan.items if p.item.split == split))
