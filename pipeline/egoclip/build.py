"""EgoClip build: EgoVLP's egoclip.csv + Ego4D full-scale videos -> (ego clip, caption) WebDataset shards.

`EgoClipConfig` holds every option (validated when built); `build_pipeline()` only wires labelled steps.
pipeline/egoclip/builder.py plugs them into the core's skeleton (its command line and `run`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.pvalue import AsList

from pipeline.core.composites import AssignGroupsFn, AssignShards, Finalize
from pipeline.core.config import check_values, shard_checks
from pipeline.core.planning import ShardSizing
from pipeline.core.transforms import WriteShards
from pipeline.egoclip import composites as C
from pipeline.egoclip import transforms as T
from pipeline.egoclip.finalize import finalize
from pipeline.egoclip.plan import by_split, fingerprint
from pipeline.egoclip.writer import SHARD_PREFIX, OutputFormat, build_shard, progress_of


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
        check_values(self, [
            ("csv", bool(self.csv), "a path"),
            ("ego4d_root", bool(self.ego4d_root), "a path"),
            ("out", bool(self.out), "a path"),
            ("val_fraction", 0.0 <= self.val_fraction < 1.0, "in [0, 1)"),
            *shard_checks(self),
        ], error=ValueError)  # fmt: skip

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
    sizing = ShardSizing.of(cfg.max_samples_per_shard, cfg.max_shard_bytes, fmt.clip)
    assign = AssignGroupsFn(SHARD_PREFIX, sizing, fingerprint, fmt.content_options())
    shard_plans = planned["plans"] | "AssignShards" >> AssignShards(assign, by_split)
    write = functools.partial(build_shard, out=cfg.out, fmt=fmt)
    written = shard_plans | "WriteShards" >> WriteShards(
        cfg.out, write, cfg.overwrite, T.NAMESPACE, progress_of=progress_of
    )
    failures = (read["failures"], planned["failures"]) | "AllFailures" >> beam.Flatten()
    finish = functools.partial(finalize, cfg.out, options=cfg.options())
    _ = p | "Finalize" >> Finalize(finish, shard_plans, written, failures, counts=AsList(read["counts"]))
