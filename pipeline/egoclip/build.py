"""EgoClip build: EgoVLP's egoclip.csv + Ego4D full-scale videos -> (ego clip, caption) WebDataset shards.

`EgoClipConfig` holds every option (validated when built); `build_pipeline()` only wires labelled steps; `run()`
builds and returns the stats. The command line is pipeline/egoclip/cli.py.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.core.transforms import WriteShards
from pipeline.core.writer import read_json
from pipeline.egoclip import composites as C
from pipeline.egoclip import transforms as T
from pipeline.egoclip.finalize import finalize
from pipeline.egoclip.writer import OutputFormat, build_shard

# Rough encoded bytes per source frame / per JPEG, used only to bound shard sizes before any clip exists.
BYTES_PER_FRAME = {"mp4": 3_000, "frames": 25_000}


@dataclass(frozen=True)
class EgoClipConfig:
    csv: str  # egoclip.csv (local path or any Beam filesystem URL)
    ego4d_root: str  # the Ego4D download root (see plan.LAYOUTS)
    out: str
    output: OutputFormat = field(default_factory=OutputFormat)
    val_fraction: float = (
        0.0  # videos held out as the val split (by hash); EgoClip itself is one training set
    )
    seed: int = 0  # of the val split
    max_samples_per_shard: int = 1000
    max_shard_bytes: int = 1_000_000_000
    probe_timeout_s: float = 600.0
    overwrite: bool = False

    def __post_init__(self):
        checks = [
            ("csv", bool(self.csv), "a path"),
            ("ego4d_root", bool(self.ego4d_root), "a path"),
            ("out", bool(self.out), "a path"),
            ("val_fraction", 0.0 <= self.val_fraction < 1.0, "in [0, 1)"),
            ("max_samples_per_shard", self.max_samples_per_shard >= 1, ">= 1"),
            ("max_shard_bytes", self.max_shard_bytes >= 1, ">= 1"),
            ("probe_timeout_s", self.probe_timeout_s > 0, "> 0"),
        ]
        for name, ok, want in checks:
            if not ok:
                raise ValueError(f"EgoClipConfig.{name}={getattr(self, name)!r}: must be {want}")

    def options(self) -> dict:
        """What stats.json records of the build (everything that shapes the output, no machine paths)."""
        return {
            **self.output.content_options(),
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "max_samples_per_shard": self.max_samples_per_shard,
            "max_shard_bytes": self.max_shard_bytes,
        }


def build_pipeline(p: beam.Pipeline, cfg: EgoClipConfig) -> None:
    fmt = cfg.output
    read = p | "ReadClipRows" >> C.ReadClipRows(cfg.csv)
    planned = read["rows"] | "PlanVideos" >> C.PlanVideos(
        cfg.ego4d_root, cfg.probe_timeout_s, cfg.val_fraction, cfg.seed
    )
    assign = T.AssignShardsFn(cfg.max_samples_per_shard, cfg.max_shard_bytes, BYTES_PER_FRAME[fmt.clip.kind],
                              fmt.clip.n_frames, fmt.clip.kind == "frames", fmt.content_options())  # fmt: skip
    shard_plans = planned["plans"] | "AssignShards" >> C.AssignShards(assign)
    write = functools.partial(build_shard, out=cfg.out, fmt=fmt)
    written = shard_plans | "WriteShards" >> WriteShards(cfg.out, write, cfg.overwrite, T.NAMESPACE)
    failures = (read["failures"], planned["failures"]) | "AllFailures" >> beam.Flatten()
    _ = (
        p
        | "FinalizeTrigger" >> beam.Create([None])
        | "Finalize"
        >> beam.Map(
            lambda _, planned, done, failures, counts: finalize(
                cfg.out, planned, failures, counts, cfg.options()
            ),
            planned=beam.pvalue.AsList(shard_plans | "ShardNames" >> beam.Map(lambda s: (s.name, s.split))),
            done=beam.pvalue.AsList(written),  # a side input: Finalize waits for every shard write
            failures=beam.pvalue.AsList(failures),
            counts=beam.pvalue.AsList(read["counts"]),
        )
    )


def run(cfg: EgoClipConfig, beam_args: list[str] | None = None) -> dict:
    """Build and return the dataset stats (also written to OUT/stats.json)."""
    FileSystems.mkdirs(cfg.out) if not FileSystems.exists(cfg.out) else None
    options = PipelineOptions(beam_args or [], save_main_session=False)
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, cfg)
    return read_json(FileSystems.join(cfg.out, "stats.json"))
