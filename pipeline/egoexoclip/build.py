"""Ego-ExoClip build: an Ego-Exo4D download -> synchronized (narration, ego clip, exo clip) WebDataset shards.

`BuildConfig` holds every option (validated when built); `build_pipeline()` only wires labelled steps (the
work happens in pipeline.egoexoclip.transforms and the pure modules); `check_inputs()` checks the release's
required files before any work. pipeline/egoexoclip/builder.py plugs them into the core's skeleton (its
command line and `run`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from pipeline.core.inputs import OBJECT, InputError, json_shape, kind_of, one_line, parse_required
from pipeline.core.transforms import WriteShards
from pipeline.egoexoclip import release
from pipeline.egoexoclip.composites import AssignShards, PlanClips, ReadNarrations, ReadTakes
from pipeline.egoexoclip.finalize import finalize
from pipeline.egoexoclip.release import MAX_SPLIT, RESOLUTIONS, SAFE_ID, NarrationFilters
from pipeline.egoexoclip.windows import FrameOffsets, WindowRule
from pipeline.egoexoclip.writer import OutputFormat, build_shard, progress_of

DEFAULT_OFFSETS = Path(__file__).resolve().parent / "data" / "frame_offsets.csv"
# Rough encoded bytes per source frame, used only to bound shard sizes before any clip exists (see docs/egoexoclip.md).
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
    written = shard_plans | "WriteShards" >> WriteShards(
        cfg.out, write, cfg.overwrite, "egoexoclip", progress_of=progress_of
    )
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


class ReleaseLayoutError(InputError, FileNotFoundError):
    """The root does not look like an Ego-Exo4D download: nothing can be built from it."""


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


def check_inputs(cfg: BuildConfig) -> None:
    """Everything the build cannot go without, checked before any work (InputError, one line): OUT usable,
    takes.json a JSON list, splits.json with every requested split, each requested split's atomic
    descriptions an object with "annotations", the frame offset table readable."""
    check_release(cfg)
    root = cfg.root.rstrip("/")
    path = f"{root}/takes.json"
    takes = json_shape(path)
    if not isinstance(takes, list):
        raise InputError(f"{path}: not an Ego-Exo4D takes.json (the top level is {kind_of(takes)}, not a list)")
    path = f"{root}/annotations/splits.json"
    doc = parse_required(path, release.parse_json)
    try:
        splits, _ = release.parse_splits(doc)
    except release.RecordError as err:
        raise InputError(f"{path}: {one_line(err)}") from None
    available = sorted(set(splits.values()))
    unknown = [s for s in cfg.splits if s not in available]
    if unknown:
        has = ", ".join(available) or "none"
        raise InputError(f"--splits {','.join(unknown)}: no such split in {path} (it has: {has})")
    for split in cfg.splits:
        if split == "test":  # the release ships no atomic descriptions for test
            continue
        path = f"{root}/annotations/atomic_descriptions_{split}.json"
        doc = json_shape(path, errors="surrogateescape")  # a bad byte costs its description only
        if not isinstance(doc, dict) or doc.get("annotations") is not OBJECT:
            what = kind_of(doc) if not isinstance(doc, dict) else "an object without an annotations object"
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
        raise InputError(f"{cfg.offsets_csv}: {one_line(err)}") from None

