"""The Beam steps of the Ego-ExoClip build: DoFns that call the pure modules, and composites that wire them.

Failures leave every step as a tagged output (FAILURES) of `plan.Failure` records, counted with Metrics and
collected into the dataset's error output. Workers read inputs through Beam's filesystem layer themselves:
no step depends on the driver's memory or disk.
"""

from __future__ import annotations

import logging
import os
import stat

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from pipeline.core import shards
from pipeline.core.clips import ExtractionError, probe_video
from pipeline.core.clips._proc import DECODE_TIMEOUT
from pipeline.core.localize import is_local, local_copy
from pipeline.core.readers import drop_surrogates, undecodable
from pipeline.core.transforms import failure_output
from pipeline.egoexoclip import release
from pipeline.egoexoclip.descriptions import mark_undecodable
from pipeline.egoexoclip.plan import (
    Failure,
    ShardPlan,
    TakePlan,
    VideoMeta,
    check_narrations,
    fingerprint,
    plan_take,
    usable_views,
)
from pipeline.egoexoclip.windows import FrameOffsets, WindowRule, take_beta
from pipeline.egoexoclip.writer import SHARD_PREFIX

LOG = logging.getLogger(__name__)
EXCLUDED = "excluded"
COUNTS = "counts"
DROPPED = "dropped"


def _load_json(path: str, rows: bool = False):
    """A JSON input file through Beam's filesystems; non-finite numbers parse to release.NonFinite. rows: a
    file of records that each cost only themselves (atomic descriptions): an undecodable byte is kept (as a
    lone surrogate, surrogateescape) for its description to fail "not UTF-8", not the whole file."""
    if is_local(path):
        local = path.removeprefix("file://")
        if not stat.S_ISREG(os.stat(local).st_mode):  # a FIFO or device would block the read
            raise IsADirectoryError(f"{path} is not a regular file")
    with FileSystems.open(path, compression_type="uncompressed") as f:
        data = f.read()
    if rows:
        return release.parse_json(data.decode("utf-8-sig", errors="surrogateescape"), keep_surrogates=True)
    return release.parse_json(data)


def _failure(reason: str, scope: str, **kw) -> TaggedOutput:
    return failure_output("egoexoclip", Failure(reason, scope, **kw))


def _file_failure(path: str, err: Exception, split: str = "") -> TaggedOutput:
    reason, detail = release.load_error(err)
    return _failure(reason, "file", split=split, file=path, detail=detail[:300])


def _str(value) -> str:
    return value if isinstance(value, str) else ""


class ReadSplitsFn(beam.DoFn):
    """annotations/splits.json -> (take_uid, split); an entry that is not a split name costs only its take."""

    def process(self, path: str):
        try:
            splits, bad = release.parse_splits(_load_json(path))
        except release.RecordError as err:
            yield _failure(err.reason, "file", file=path, detail=err.detail)
            return
        except Exception as err:
            yield _file_failure(path, err)
            return
        for uid, why in bad:
            yield _failure("schema violation", "record", take_uid=uid, file="splits.json", detail=why)
        yield from sorted(splits.items())


class ReadTakeRecordsFn(beam.DoFn):
    """takes.json -> (index, record) per take. A record that repeats an earlier record's take_uid or take_name
    is reported and not read further (the first one in the file is the take); a repeated take_name under
    another take_uid also accounts for that uid's narrations (EXCLUDED)."""

    def process(self, path: str):
        try:
            doc = _load_json(path)
        except Exception as err:
            yield _file_failure(path, err)
            return
        if not isinstance(doc, list):
            yield _failure("schema violation", "file", file=path, detail="takes.json is not a list")
            return
        first_uid: dict[str, int] = {}
        first_name: dict[str, int] = {}
        for index, record in enumerate(doc):
            uid = _str(record.get("take_uid")) if isinstance(record, dict) else ""
            name = _str(record.get("take_name")) if isinstance(record, dict) else ""
            where = dict(take_uid=uid, take_name=name, file="takes.json")
            if uid and uid in first_uid:
                detail = f"takes.json[{index}] has the take_uid of takes.json[{first_uid[uid]}]"
                yield _failure("duplicate take_uid", "record", detail=detail, **where)
                continue
            if name and name in first_name:
                detail = f"takes.json[{index}] has the take_name of takes.json[{first_name[name]}]"
                yield _failure("duplicate take_name", "record", detail=detail, **where)
                if uid:
                    first_uid[uid] = index
                    yield TaggedOutput(EXCLUDED, (uid, ("duplicate take_name", name)))
                continue
            if uid:
                first_uid[uid] = index
            if name:
                first_name[name] = index
            yield index, record


class ParseTakeFn(beam.DoFn):
    """(index, record) -> (take_uid, Take); invalid records and excluded takes tagged with their reason, and
    every view lost to its own bad entry reported with its cam_id."""

    def __init__(self, root: str, resolution: str, splits: tuple[str, ...], trust_symlinks: bool = False):
        self.root, self.resolution, self.splits = root, resolution, splits
        self.trust_symlinks = trust_symlinks

    def process(self, item, split_of: dict):
        index, record = item
        uid = _str(record.get("take_uid")) if isinstance(record, dict) else ""
        name = _str(record.get("take_name")) if isinstance(record, dict) else ""
        where = dict(take_uid=uid, take_name=name, file="takes.json")
        try:
            take = release.parse_take(record, self.root, split_of, self.resolution, self.trust_symlinks)
        except release.RecordError as err:
            yield _failure(
                err.reason,
                "record",
                split=split_of.get(uid, ""),
                detail=f"takes.json[{index}]: {err.detail}",
                **where,
            )
            if uid:
                yield TaggedOutput(EXCLUDED, (uid, (f"invalid take record: {err.reason}", name)))
            return
        for _cam_id, why in take.skipped_cameras:
            Metrics.counter("egoexoclip", f"cameras skipped: {why}").inc()
        excluded = release.take_exclusion(record, take, self.splits)
        if take.split in self.splits and excluded != "take dropped":
            for r in take.rejected_views:  # views of takes that are not built anyway are not reported
                detail = f"takes.json[{index}]: {r.detail}"
                yield _failure(r.reason, "view", split=take.split, cam_id=r.cam_id, detail=detail, **where)
        if excluded:
            yield _failure(excluded, "take", split=take.split, **where)
            yield TaggedOutput(EXCLUDED, (take.take_uid, (excluded, take.take_name)))
            return
        yield take.take_uid, take


def _probe(path: str, timeout_s: float):
    """Remote views are copied to this worker's disk to be probed (ffmpeg reads local files). A local path
    must be a readable regular file: a FIFO or a device would block ffmpeg until the timeout."""
    if is_local(path):
        local = path.removeprefix("file://")
        try:
            mode = os.stat(local).st_mode
            if stat.S_ISREG(mode):
                with open(local, "rb"):
                    pass
        except FileNotFoundError:
            raise ExtractionError(path, "missing file") from None
        except PermissionError as err:
            raise ExtractionError(path, "permission denied", str(err)) from None
        except OSError as err:
            raise ExtractionError(path, "unreadable file", str(err)) from None
        if not stat.S_ISREG(mode):
            raise ExtractionError(path, "not a regular file", "a directory, FIFO, socket or device")
    try:
        with local_copy(path) as src:
            info = probe_video(src, timeout_s=timeout_s)
    except (OSError, BeamIOError) as err:  # a remote file that is absent or unreadable
        raise ExtractionError(path, "missing file", str(err)) from err
    except ExtractionError as err:
        if err.reason == DECODE_TIMEOUT:
            raise ExtractionError(
                path, "probe timeout", f"no answer within {timeout_s:g}s (--probe-timeout)"
            ) from None
        raise
    if not info.fps > 0:  # frames would have no instants: nothing can be synchronised with this view
        raise ExtractionError(path, "unreadable video", f"frame rate {info.fps_fraction}")
    return info


class ProbeViewsFn(beam.DoFn):
    """Reads frame count, fps and size of every view from its file; unusable views are failures, and so are
    views at another frame rate than the ego's (or the take, once, when the ego is the odd one out)."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s

    def process(self, item):
        uid, take = item
        videos: dict[str, VideoMeta] = {}
        where = dict(split=take.split, take_uid=uid, take_name=take.take_name)
        for view in take.views:
            try:
                info = _probe(view.path, self.timeout_s)
                videos[view.cam_id] = VideoMeta(
                    info.n_frames, info.fps, info.width, info.height, info.fps_fraction, info.codec
                )
            except ExtractionError as err:
                yield _failure(
                    err.reason, "view", cam_id=view.cam_id, file=view.path, detail=err.detail[-300:], **where
                )
        if take.ego.cam_id not in videos:
            reason = "no usable ego video"
        else:
            videos, fps_failures = usable_views(take, videos)
            for f in fps_failures:
                yield failure_output("egoexoclip", f)
            if take.ego.cam_id not in videos:
                (excluded,) = fps_failures  # the take failure, reported once
                yield TaggedOutput(EXCLUDED, (uid, (excluded.reason, take.take_name)))
                return
            if len(videos) >= 2:
                yield uid, (take, videos)
                return
            reason = "no usable exo video"
        yield _failure(reason, "take", **where)
        yield TaggedOutput(EXCLUDED, (uid, (reason, take.take_name)))


class ReadDescriptionsFn(beam.DoFn):
    """(path, split) of atomic_descriptions_<split>.json -> (take_uid, (split, annotator passes))."""

    def process(self, item):
        path, split = item
        try:
            doc = _load_json(path, rows=True)
        except Exception as err:
            yield _file_failure(path, err, split)
            return
        try:
            if not isinstance(doc, dict):
                raise release.RecordError(
                    "schema violation", f"top level is a {type(doc).__name__}, not an object"
                )
            release.validate(doc, "atomic_descriptions.schema.json")
        except release.RecordError as err:
            yield _failure(err.reason, "file", split=split, file=path, detail=err.detail)
            return
        annotations = doc["annotations"]
        for uid in sorted(annotations):
            # a take uid with a byte that is not UTF-8 matches no take: kept readable (escaped) for the report
            key = uid if undecodable(uid) is None else ascii(uid)[1:-1]
            # then any other lone surrogate (a "\ud800" escape in the file) goes, as parse_json drops them
            yield drop_surrogates(key), (split, drop_surrogates(mark_undecodable(annotations[uid])))


class ParseDescriptionsFn(beam.DoFn):
    """One take's passes -> (take_uid, Narration); every description not kept is a failure with its reason.

    COUNTS carries the number of descriptions read (not passes); a pass without a readable descriptions list
    is a `pass` failure and counts no description."""

    def __init__(self, filters: release.NarrationFilters):
        self.filters = filters

    def process(self, item):
        uid, (split, passes) = item
        parsed = release.parse_take_descriptions(uid, passes, split, self.filters)
        n_in = parsed.n_descriptions
        Metrics.counter("egoexoclip", "narrations read").inc(n_in)
        yield TaggedOutput(COUNTS, (split, n_in))
        for scope, dropped in (("narration", parsed.dropped), ("pass", parsed.bad_passes)):
            for take_uid, source_id, reason, detail in dropped:
                # joined with its take first, so that the error record can name the take
                failure = Failure(reason, scope, split, take_uid, narration=source_id, detail=detail)
                yield TaggedOutput(DROPPED, (uid, failure))
        for n in parsed.narrations:
            yield uid, n


class JoinNarrationsFn(beam.DoFn):
    """Per take: (probed take, its narrations) -> a bundle; narrations of absent or excluded takes fail.

    Descriptions dropped while parsing arrive here too, so that their error records name the take. The
    window-independent checks (plan.check_narrations) run here, before beta: a narration that fails them
    never reaches the dataset's alpha."""

    def __init__(self, offsets: FrameOffsets):
        self.offsets = offsets

    def process(self, item):
        uid, groups = item
        narrations = sorted(groups["narrations"], key=lambda n: (n.annotation_uid, n.desc_index, n.split))
        probed = list(groups["take"])
        excluded = sorted(groups["excluded"])
        name = probed[0][0].take_name if probed else (excluded[0][1] if excluded else "")
        for f in groups["dropped"]:
            yield _failure(f.reason, f.scope, **{**_fields(f), "take_name": name})
        if probed:
            take, videos = probed[0]
            kept, failures = check_narrations(take, videos, narrations, self.offsets)
            for f in failures:
                yield _failure(f.reason, f.scope, **_fields(f))
            if kept:  # a take without (valid) descriptions: nothing to build
                yield uid, (take, videos, kept, take_beta(n.timestamp for n in kept))
            return
        reason = excluded[0][0] if excluded else "take not in takes.json"
        for n in narrations:
            yield _failure(
                reason, "narration", split=n.split, take_uid=uid, take_name=name, narration=n.source_id
            )


def _fields(f: Failure) -> dict:
    return {k: v for k, v in f.to_dict().items() if k not in ("reason", "scope")}


class AlphaFn(beam.CombineFn):
    """alpha = mean over takes of beta (takes with fewer than two narrations have no beta)."""

    def create_accumulator(self):
        return 0.0, 0

    def add_input(self, acc, beta):
        return (acc[0] + beta, acc[1] + 1) if beta is not None else acc

    def merge_accumulators(self, accs):
        accs = list(accs)
        return sum(a[0] for a in accs), sum(a[1] for a in accs)

    def extract_output(self, acc):
        return acc[0] / acc[1] if acc[1] else 1.0


class PlanTakeFn(beam.DoFn):
    def __init__(self, rule: WindowRule, offsets: FrameOffsets):
        self.rule, self.offsets = rule, offsets

    def process(self, item, alpha: float):
        uid, (take, videos, narrations, beta) = item
        plan, failures = plan_take(take, videos, narrations, alpha, beta, self.rule, self.offsets)
        for f in failures:
            yield _failure(
                f.reason, f.scope, **{k: v for k, v in f.to_dict().items() if k not in ("reason", "scope")}
            )
        if plan.narrations:
            yield uid, plan


class AssignShardsFn(beam.DoFn):
    """All takes of one split, in name order -> (take_uid, shard name); a take never spans two shards."""

    def __init__(self, max_samples: int, max_bytes: int):
        self.max_samples, self.max_bytes = max_samples, max_bytes

    def process(self, item):
        split, takes = item
        takes = sorted(takes)  # (take_name, take_uid, n_samples, est_bytes)
        groups = [(uid, [(f"{uid}#{i}", est // max(n, 1)) for i in range(n)]) for _, uid, n, est in takes]
        for index, uids in enumerate(shards.plan_shards_grouped(groups, self.max_samples, self.max_bytes)):
            name = shards.shard_name(SHARD_PREFIX, split, index).removesuffix(".tar")
            for uid in uids:
                yield uid, (name, split, index)


class MakeShardPlanFn(beam.DoFn):
    def __init__(self, content_options: dict):
        self.content_options = content_options

    def process(self, item):
        name, entries = item
        entries = sorted(entries, key=lambda e: e[1].take.take_name)
        (_, split, index), _ = entries[0]
        takes = [plan for _, plan in entries]
        yield ShardPlan(name, split, index, tuple(takes), fingerprint(self.content_options, takes))


def key_by_shard(item):
    """(take_uid, {"plan": [TakePlan], "shard": [(name, split, index)]}) -> (name, ((name, split, index), plan))."""
    _, joined = item
    (assignment,), (plan,) = joined["shard"], joined["plan"]
    return assignment[0], (assignment, plan)


def plan_summary(plan: TakePlan, layout: str, bytes_per_frame: int):
    t = plan.take
    return t.split, (t.take_name, t.take_uid, plan.n_samples(layout), plan.estimated_bytes(bytes_per_frame))
