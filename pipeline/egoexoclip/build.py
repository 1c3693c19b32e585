"""Ego-ExoClip build: an Ego-Exo4D download -> synchronized (narration, ego clip, exo clip) WebDataset shards.

`BuildConfig` holds every option (validated when built); `build_pipeline()` only wires labelled steps (the
work happens in pipeline.egoexoclip.transforms and the pure modules); `run()` builds and returns the stats.
The command line is pipeline/egoexoclip/cli.py.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.core.transforms import WriteShards
from pipeline.core.writer import read_json
from pipeline.egoexoclip.composites import AssignShards, PlanClips, ReadNarrations, ReadTakes
from pipeline.egoexoclip.finalize import finalize
from pipeline.egoexoclip.release import RESOLUTIONS, NarrationFilters
from pipeline.egoexoclip.windows import FrameOffsets, WindowRule
from pipeline.egoexoclip.writer import OutputFormat, build_shard

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

    def __post_init__(self):
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"BuildConfig.resolution={self.resolution!r}: expected one of {RESOLUTIONS}")
        if not self.splits:
            raise ValueError("BuildConfig.splits=(): select at least one split")
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
    takes = p | "ReadTakes" >> ReadTakes(root, cfg.resolution, cfg.splits, cfg.probe_timeout_s)
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


def run(cfg: BuildConfig, beam_args: list[str] | None = None) -> dict:
    """Build and return the dataset stats (also written to OUT/stats.json)."""
    check_release(cfg)
    FileSystems.mkdirs(cfg.out) if not FileSystems.exists(cfg.out) else None
    options = PipelineOptions(beam_args or [], save_main_session=False)
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, cfg)
    return read_json(FileSystems.join(cfg.out, "stats.json"))


