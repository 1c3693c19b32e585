"""Ego-ExoClip build: an Ego-Exo4D download -> synchronized (narration, ego clip, exo clip) WebDataset shards.

`BuildConfig` holds every option (validated when built); `build_pipeline()` only wires labelled steps (the
work happens in pipeline.egoexoclip.transforms and the pure modules); `run()` builds and returns the stats.
The command line is pipeline/egoexoclip/cli.py.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.core.localize import is_local
from pipeline.core.session import OutLocked, build_session
from pipeline.core.transforms import WriteShards
from pipeline.core.writer import read_json
from pipeline.egoexoclip import release
from pipeline.egoexoclip.composites import AssignShards, PlanClips, ReadNarrations, ReadTakes
from pipeline.egoexoclip.finalize import finalize
from pipeline.egoexoclip.release import MAX_SPLIT, RESOLUTIONS, SAFE_ID, NarrationFilters
from pipeline.egoexoclip.windows import FrameOffsets, WindowRule
from pipeline.egoexoclip.writer import OutputFormat, build_shard, record_plan

DEFAULT_OFFSETS = Path(__file__).resolve().parent / "data" / "frame_offsets.csv"
# Rough encoded bytes per source frame, used only to bound shard sizes before any clip exists (see README).
BYTES_PER_FRAME = {"mp4": 3_000, "frames": 25_000}


@dataclass(frozen=True)
class BuildConfig:
    root: str
    out: str
    splits: tuple[str, ...] = ("train", "val")
    resolution: str = "448"
    filters: NarrationFilters = field(default_factory=NarrationFilters)
    rule: WindowRule = field(default_factory=WindowRule)
    output: OutputFormat = field(default_factory=OutputFormat)
    offsets_csv: str = str(DEFAULT_OFFSETS)
    max_samples_per_shard: int = 1000
    max_shard_bytes: int = 1_000_000_000
    probe_timeout_s: float = 600.0
    overwrite: bool = False
    trust_symlinks: bool = False  # allow views whose resolved path leaves a local root (symlinked storage)

    def __post_init__(self):
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"BuildConfig.resolution={self.resolution!r}: expected one of {RESOLUTIONS}")
        if not self.splits:
            raise ValueError("BuildConfig.splits=(): select at least one split")
        for split in self.splits:
            if not isinstance(split, str) or not SAFE_ID.match(split) or len(split) > MAX_SPLIT:
                raise ValueError(
                    f"BuildConfig.splits: {split!r} is not a split name (letters, digits, '_' and '-')"
                )
        if len(set(self.splits)) != len(self.splits):
            raise ValueError(f"BuildConfig.splits={self.splits!r}: a split is named twice")
        if not (isinstance(self.probe_timeout_s, int | float) and 0 < self.probe_timeout_s < math.inf):
            raise ValueError(f"BuildConfig.probe_timeout_s={self.probe_timeout_s!r}: must be > 0 seconds")
        if self.max_samples_per_shard < 1:
            raise ValueError(f"BuildConfig.max_samples_per_shard={self.max_samples_per_shard}: must be >= 1")
        if self.max_shard_bytes < 1:
            raise ValueError(f"BuildConfig.max_shard_bytes={self.max_shard_bytes}: must be >= 1")

    def load_offsets(self) -> FrameOffsets:
        with FileSystems.open(self.offsets_csv, compression_type="uncompressed") as f:
            return FrameOffsets.from_csv_text(f.read().decode(), self.offsets_csv)

    def content_options(self) -> dict:
        return {
            "resolution": self.resolution,
            "window_rule": asdict(self.rule),
            "filters": asdict(self.filters),
            **self.output.content_options(),
        }


def build_pipeline(p: beam.Pipeline, cfg: BuildConfig) -> None:
    root, fmt = cfg.root.rstrip("/"), cfg.output
    offsets = cfg.load_offsets()  # a small table: serialised with the DoFn, not shared memory
    takes = p | "ReadTakes" >> ReadTakes(
        root, cfg.resolution, cfg.splits, cfg.probe_timeout_s, cfg.trust_symlinks
    )
    narrations = p | "ReadNarrations" >> ReadNarrations(root, cfg.splits, cfg.filters)
    planned = {
        "takes": takes["takes"],
        "excluded": takes["excluded"],
        "narrations": narrations["narrations"],
        "dropped": narrations["dropped"],
    } | "PlanClips" >> PlanClips(cfg.rule, offsets)
    shard_plans = planned["plans"] | "AssignShards" >> AssignShards(
        fmt.layout,
        cfg.max_samples_per_shard,
        cfg.max_shard_bytes,
        BYTES_PER_FRAME[fmt.clip.kind],
        cfg.content_options(),
    )
    write = functools.partial(build_shard, out=cfg.out, fmt=fmt)
    written = shard_plans | "WriteShards" >> WriteShards(cfg.out, write, cfg.overwrite, "egoexoclip")
    _ = shard_plans | "ProgressPlan" >> beam.FlatMap(record_plan, out=cfg.out, overwrite=cfg.overwrite)
    failures = (
        takes["failures"],
        narrations["failures"],
        planned["failures"],
    ) | "AllFailures" >> beam.Flatten()
    _ = (
        p
        | "FinalizeTrigger" >> beam.Create([None])
        | "Finalize"
        >> beam.Map(
            lambda _, planned, done, failures, inputs, alpha: finalize(
                cfg.out, planned, failures, inputs, alpha, cfg.content_options()
            ),
            planned=beam.pvalue.AsList(shard_plans | "ShardNames" >> beam.Map(lambda s: (s.name, s.split))),
            done=beam.pvalue.AsList(written),  # a side input: Finalize waits for every shard write
            failures=beam.pvalue.AsList(failures),
            inputs=beam.pvalue.AsList(narrations["counts"]),
            alpha=beam.pvalue.AsSingleton(planned["alpha"]),
        )
    )


class ReleaseLayoutError(FileNotFoundError):
    """The root does not look like an Ego-Exo4D download: nothing can be built from it."""


class InputError(Exception):
    """A required input cannot be read or parsed, a requested split does not exist, or OUT is unusable: the
    build does not start. The message is one line."""


def check_release(cfg: BuildConfig) -> None:
    """Fail before starting any job when the files every take depends on are absent."""
    root = cfg.root.rstrip("/")
    for rel in ("takes.json", "annotations/splits.json"):
        if not FileSystems.exists(f"{root}/{rel}"):
            raise ReleaseLayoutError(
                f"{root}/{rel} not found: --root must be an Ego-Exo4D download "
                "(egoexo -o <root> --parts metadata annotations downscaled_takes/448)"
            )
    if not FileSystems.exists(cfg.offsets_csv):
        raise ReleaseLayoutError(f"frame offset table {cfg.offsets_csv} not found")


def _read_input(path: str) -> bytes:
    try:
        if is_local(path):
            local = path.removeprefix("file://")
            mode = os.stat(local).st_mode
            if stat.S_ISDIR(mode):
                raise InputError(f"{path}: is a directory")
            if not stat.S_ISREG(mode):
                raise InputError(f"{path}: not a regular file (a FIFO, socket or device)")
            with open(local, "rb") as f:
                return f.read()
        with FileSystems.open(path, compression_type="uncompressed") as f:
            return f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: not found") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except (OSError, BeamIOError) as err:
        raise InputError(f"{path}: cannot be read ({_one_line(err)})") from None


def _one_line(err: BaseException) -> str:
    return " ".join(str(getattr(err, "strerror", None) or err).split())[:300]


_OBJECT = object()  # what every JSON object parses to in a shape check


def _parse(path: str, parse):
    """parse(text) of a required file, its errors as InputError naming the line and column."""
    try:
        return parse(_read_input(path).decode("utf-8-sig"))
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise InputError(f"{path}: invalid JSON at {where} ({err.msg})") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except RecursionError:
        raise InputError(f"{path}: invalid JSON (nested too deeply)") from None
    except ValueError as err:
        raise InputError(f"{path}: invalid JSON ({_one_line(err)})") from None


def _json_shape(path: str):
    """Parse a required JSON file completely (so that a cut or damaged file fails here) without keeping its
    content: every object becomes a placeholder, except the top level, returned as {key: value}."""
    last: list = []

    def keep_last(pairs):
        last[:] = [pairs]
        return _OBJECT

    doc = _parse(path, lambda text: json.loads(text, object_pairs_hook=keep_last))
    return dict(last[0]) if doc is _OBJECT else doc


def _kind(value) -> str:
    return "an object" if value is _OBJECT or isinstance(value, dict) else f"a {type(value).__name__}"


def check_inputs(cfg: BuildConfig) -> None:
    """Everything the build cannot go without, checked before any work (InputError, one line): OUT usable,
    takes.json a JSON list, splits.json with every requested split, each requested split's atomic
    descriptions an object with "annotations", the frame offset table readable."""
    check_out(cfg.out, create=False)
    check_release(cfg)
    root = cfg.root.rstrip("/")
    path = f"{root}/takes.json"
    takes = _json_shape(path)
    if not isinstance(takes, list):
        raise InputError(f"{path}: not an Ego-Exo4D takes.json (the top level is {_kind(takes)}, not a list)")
    path = f"{root}/annotations/splits.json"
    doc = _parse(path, release.parse_json)
    try:
        splits, _ = release.parse_splits(doc)
    except release.RecordError as err:
        raise InputError(f"{path}: {_one_line(err)}") from None
    available = sorted(set(splits.values()))
    unknown = [s for s in cfg.splits if s not in available]
    if unknown:
        has = ", ".join(available) or "none"
        raise InputError(f"--splits {','.join(unknown)}: no such split in {path} (it has: {has})")
    for split in cfg.splits:
        if split == "test":  # the release ships no atomic descriptions for test
            continue
        path = f"{root}/annotations/atomic_descriptions_{split}.json"
        doc = _json_shape(path)
        if not isinstance(doc, dict) or doc.get("annotations") is not _OBJECT:
            what = _kind(doc) if not isinstance(doc, dict) else "an object without an annotations object"
            raise InputError(
                f"{path}: not an Ego-Exo4D atomic descriptions file (the top level is {what}, expected an "
                'object with an "annotations" object)'
            )
    try:
        cfg.load_offsets()
    except FileNotFoundError:
        raise InputError(f"{cfg.offsets_csv}: not found") from None
    except PermissionError:
        raise InputError(f"{cfg.offsets_csv}: permission denied") from None
    except (OSError, BeamIOError, ValueError) as err:
        raise InputError(f"{cfg.offsets_csv}: {_one_line(err)}") from None
    check_out(cfg.out, create=True)


def check_out(out: str, create: bool = True) -> None:
    """OUT must be a writable directory, or creatable as one (local paths; remote ones are checked by their
    filesystem when written). With create, it is created and a file is written into it and removed."""
    if not out:
        raise InputError("--out is empty")
    if not is_local(out):
        if create and not FileSystems.exists(out):
            FileSystems.mkdirs(out)
        return
    local = out.removeprefix("file://")
    try:
        if os.path.lexists(local):
            if not os.path.isdir(local):
                raise InputError(f"--out {out}: exists and is not a directory")
            if not os.access(local, os.W_OK | os.X_OK):
                raise PermissionError(out)
        else:
            parent = os.path.dirname(os.path.abspath(local))
            while not os.path.lexists(parent):
                parent = os.path.dirname(parent)
            if not os.path.isdir(parent):
                raise InputError(f"--out {out}: cannot be created ({parent} is not a directory)")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InputError(f"--out {out}: cannot be created in {parent}: permission denied")
        if create:
            os.makedirs(local, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=local)
            os.close(fd)
            os.unlink(probe)
    except PermissionError:
        raise InputError(f"--out {out}: not writable: permission denied") from None
    except OSError as err:
        raise InputError(f"--out {out}: {_one_line(err)}") from None
    except ValueError as err:  # e.g. an embedded NUL byte
        raise InputError(f"--out {out!r}: invalid path ({_one_line(err)})") from None


def run(cfg: BuildConfig, beam_args: list[str] | None = None, *, checked: bool = False) -> dict:
    """Build and return the dataset stats (also written to OUT/stats.json). The inputs and OUT are checked
    first (check_inputs; `checked` when the caller already did), so a build that cannot work fails before any
    work with InputError / ReleaseLayoutError.

    The build holds a session (pipeline/core/session.py): OUT's lock (another build holding it: InputError at
    once), its own work directory for temporary files, and a SIGTERM handler (exit status 143)."""
    if not checked:
        check_inputs(cfg)
    options = PipelineOptions(beam_args or [], save_main_session=False)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(build_session(cfg.out))
        except OutLocked as err:
            raise InputError(str(err)) from None
        with beam.Pipeline(options=options) as p:
            build_pipeline(p, cfg)
    return read_json(FileSystems.join(cfg.out, "stats.json"))
