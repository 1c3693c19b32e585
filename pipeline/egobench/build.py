"""EgoBench build: the evaluation benchmarks -> one WebDataset shard set per task
(egobench-<task>-NNNNNN.tar).

`EgoBenchConfig` holds every option (validated when built; `config_from_mapping` reads the YAML form);
`build_pipeline()` only wires labelled steps. pipeline/egobench/builder.py plugs them into the core's
skeleton (its command line and `run`).

Config (YAML; relative paths are relative to the file):

    benchmarks:
      <name>:                  a reader of pipeline.egobench.sources.READERS, or any name with `reader:`
        reader: <reader>       default: the name (two EgoPlan files: egoplan, egoplan_v1 {reader: egoplan})
        root: PATH             the benchmark's download / annotation root
        annotations: PATH      default root: the annotation folder or file the reader takes
        videos: PATH           default root: the root the reader's video paths are relative to (LAYOUTS)
        options: {...}         the reader's keyword options (e.g. egoschema questions, qaego4d seed)
    image_fps: 2.0, max_samples_per_shard: 500, max_shard_bytes: 1e9, probe_timeout_s, decode_timeout_s, ...
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.pvalue import AsList

from pipeline.core import config as core_config
from pipeline.core.clips import ClipFormat
from pipeline.core.composites import AssignShards, Finalize, ReadSources
from pipeline.core.config import ConfigError, build_config, check_names, check_values, config_entries
from pipeline.core.planning import ShardSizing
from pipeline.core.transforms import WriteShards
from pipeline.egobench import composites as C
from pipeline.egobench import transforms as T
from pipeline.egobench.finalize import finalize
from pipeline.egobench.samples import longest_member
from pipeline.egobench.sources import READERS
from pipeline.egobench.writer import OutputFormat, build_shard, progress_of

# reader options that name files: resolved against the config file's folder like the roots
PATH_OPTIONS = {"classes"}
SPEC_KEYS = {"reader", "root", "annotations", "videos", "options"}


def reader_option_names(reader: str) -> set[str]:
    """The keyword options a reader takes (its keyword-only parameters but `exists`)."""
    params = inspect.signature(READERS[reader]).parameters.values()
    return {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "exists"}


@dataclass(frozen=True)
class BenchSpec:
    """One benchmark entry: its reader, where its annotations and videos are, reader options."""

    name: str
    root: str
    reader: str = ""  # default: name
    annotations: str = ""  # default: root
    videos: str = ""  # default: root
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "reader", self.reader or self.name)
        if self.reader not in READERS:
            raise ConfigError(
                f"benchmarks.{self.name}: unknown reader {self.reader!r} (known: {', '.join(READERS)})"
            )
        if not self.name.replace("_", "").isalnum() or not self.name.isascii():
            raise ConfigError(f"benchmarks.{self.name}: names are letters, digits and '_'")
        if not self.root:
            raise ConfigError(f"benchmarks.{self.name}.root: empty")
        unknown = sorted(set(self.options) - reader_option_names(self.reader))
        if unknown:
            raise ConfigError(
                f"benchmarks.{self.name}.options: unknown {unknown} "
                f"(known: {sorted(reader_option_names(self.reader))})"
            )
        object.__setattr__(self, "annotations", self.annotations or self.root)
        object.__setattr__(self, "videos", self.videos or self.root)

    def reader_options(self, n_frames: int | None = None) -> dict:
        """The reader's keyword arguments. n_frames: frames per clip in frames mode, the default number of
        images a reader of image sequences (EgoTaskQA's LEMMA frames) picks."""
        opts = dict(self.options)
        if n_frames and "n_frames" in reader_option_names(self.reader):
            opts.setdefault("n_frames", n_frames)
        return opts


@dataclass(frozen=True)
class EgoBenchConfig:
    out: str
    benchmarks: tuple[BenchSpec, ...]
    output: OutputFormat = field(default_factory=OutputFormat)
    image_fps: float = (
        2.0  # frame rate of clips made of image sequences (EgoTaskQA's LEMMA frames) in mp4 mode
    )
    max_samples_per_shard: int = 500
    max_shard_bytes: int = 1_000_000_000
    probe_timeout_s: float = 600.0
    overwrite: bool = False

    def __post_init__(self):
        check_names("benchmarks", [b.name for b in self.benchmarks], "a name")
        check_values(self, [
            ("image_fps", self.image_fps > 0, "> 0"),
            *core_config.shard_checks(self),
        ])  # fmt: skip

    @property
    def frames_per_clip(self) -> int | None:
        return self.output.clip.n_frames if self.output.clip.kind == "frames" else None

    def content_options(self) -> dict:
        return {"image_fps": self.image_fps, **self.output.content_options()}

    def options(self) -> dict:
        """What stats.json records of the build (everything that shapes the output, no machine paths)."""
        return {
            **self.content_options(),
            "benchmarks": {b.name: {"reader": b.reader, "options": dict(b.options)} for b in self.benchmarks},
        }


class _Spec:
    """A BenchSpec with the reader options of this build (frames mode), as ReadBenchmarkFn expects."""

    def __init__(self, spec: BenchSpec, n_frames: int | None):
        self.name, self.reader, self.annotations, self.videos = (
            spec.name,
            spec.reader,
            spec.annotations,
            spec.videos,
        )
        self._options = spec.reader_options(n_frames)

    def reader_options(self) -> dict:
        return dict(self._options)


def build_pipeline(p: beam.Pipeline, cfg: EgoBenchConfig) -> None:
    fmt = cfg.output
    roots = {b.name: b.videos for b in cfg.benchmarks}
    specs = [_Spec(b, cfg.frames_per_clip) for b in cfg.benchmarks]
    read = p | "ReadBenchmarks" >> ReadSources(specs, T.ReadBenchmarkFn(), main="clips")
    planned = read["clips"] | "PlanVideos" >> C.PlanVideos(roots, cfg.probe_timeout_s, cfg.image_fps)
    items = planned["clips"] | "AssembleItems" >> C.AssembleItems(
        longest_member(fmt.clip.kind, fmt.clip.n_frames)
    )
    sizing = ShardSizing.of(cfg.max_samples_per_shard, cfg.max_shard_bytes, fmt.clip)
    assign = T.AssignShardsFn(sizing, cfg.content_options())
    shard_plans = items["items"] | "AssignShards" >> AssignShards(assign, T.by_task, failures=True)
    plans = shard_plans["plans"]
    staged = plans | "CutStagedSources" >> C.CutStagedSources(cfg.out, fmt, cfg.overwrite)
    to_write = (
        plans | "DirectPlans" >> beam.Filter(lambda s: not s.staged),
        plans
        | "StagedPlans" >> beam.Filter(lambda s: s.staged)
        | "AfterStaging"
        >> beam.Map(lambda s, _: s, beam.pvalue.AsList(staged)),  # staged shards wait for their clips
    ) | "PlansToWrite" >> beam.Flatten()
    write = functools.partial(build_shard, out=cfg.out, fmt=fmt)
    written = to_write | "WriteShards" >> WriteShards(
        cfg.out, write, cfg.overwrite, T.NAMESPACE, progress_of=progress_of
    )
    failures = (
        read["failures"],
        planned["failures"],
        items["failures"],
        shard_plans["failures"],
    ) | "AllFailures" >> beam.Flatten()
    counts = read["counts"] | "SumCounts" >> beam.CombinePerKey(sum)
    epic = [b for b in cfg.benchmarks if b.reader == "epic_mir"]
    sentence_sets = p | "EpicSpecs" >> beam.Create(epic) | "SentenceSets" >> beam.Map(T.sentence_doc)
    finish = functools.partial(finalize, cfg.out, options=cfg.options())
    _ = p | "Finalize" >> Finalize(finish, plans, written, failures, split_of=lambda s: s.task,
                                   counts=AsList(counts), sentence_sets=AsList(sentence_sets))  # fmt: skip


# ------------------------------------------------------------------------------------------- config files


def bench_specs(raw: dict, base: Path | None = None) -> tuple[BenchSpec, ...]:
    """{name: {reader?, root, annotations?, videos?, options?}} (or {name: root}) -> specs; relative paths are
    taken relative to `base` (the config file's folder)."""
    specs = []
    for name, entry, paths, options in config_entries(raw, "benchmarks", "benchmark", SPEC_KEYS, base):
        options = {k: core_config.resolve_path(str(v), base) if k in PATH_OPTIONS else v for k, v in options.items()}
        specs.append(BenchSpec(name, reader=str(entry.get("reader") or ""), options=options, **paths))
    return tuple(specs)


def config_from_mapping(
    raw: dict, out: str, base: Path | None, clip: ClipFormat | None = None
) -> EgoBenchConfig:
    specs = bench_specs(raw.get("benchmarks"), base)
    return build_config(EgoBenchConfig, raw, out=out, key="benchmarks", entries=specs, output_cls=OutputFormat,
                        output_keys={"decode_timeout_s", "decode_threads"}, clip=clip)  # fmt: skip

