"""EgoBench on the core's skeleton: its options, inputs and summary (pipeline/core/builder.py).

    python -m pipeline.egobench --config CONFIG --out /data/egobench [--frames 16 --size 336] [--runner ENGINE ...]
    python -m pipeline.egobench --roots egoschema=/data/egoschema,vlnqa=/data/vln_qa --out /data/egobench

The config file (pipeline/egobench/build.py; docs/egobench.md) gives each benchmark's reader, roots and
reader options, and any build option; `--roots` is the short form (each benchmark in its shipped layout under
one root, default options). Command-line options override the file.
"""

from __future__ import annotations

import argparse
import functools

from pipeline.core import builder as core
from pipeline.core import front
from pipeline.core.clips import ClipFormat
from pipeline.core.config import add_config_arguments, config_mapping
from pipeline.egobench.build import EgoBenchConfig, build_pipeline, config_from_mapping
from pipeline.egobench.plan import BenchFailure
from pipeline.egobench.records import RecordFailure
from pipeline.egobench.sources import READERS


class EgoBenchBuilder(core.Builder):
    name, title = "egobench", "EgoBench"
    description = "Build the EgoBench evaluation shards (eight benchmarks, 11 tasks): one shard set per task."

    def add_arguments(self, ap: argparse.ArgumentParser) -> None:
        add_config_arguments(ap, "benchmarks", "NAME", "benchmarks (reader, root, annotations, videos, options)")

    def config(self, args: argparse.Namespace, clip: ClipFormat) -> EgoBenchConfig:
        raw, base = config_mapping(args.config, args.roots, "benchmarks", "NAME")
        if args.max_samples_per_shard is not None:
            raw["max_samples_per_shard"] = args.max_samples_per_shard
        if args.overwrite:
            raw["overwrite"] = True
        return config_from_mapping(raw, args.out, base, clip)

    def inputs(self, cfg: EgoBenchConfig) -> list[tuple[str, str]]:
        return self.inputs_of_entries(cfg.benchmarks, "benchmarks")

    def build_pipeline(self, p, cfg: EgoBenchConfig) -> None:
        build_pipeline(p, cfg)

    def validate_inputs(self, cfg: EgoBenchConfig) -> list[tuple[str, str]]:
        return self.annotation_inputs_of_entries(cfg.benchmarks, "benchmarks")

    def validate_sources(self, cfg: EgoBenchConfig) -> dict:
        """Each benchmark's reader run without videos (exists=None), as the build's ReadBenchmarkFn."""
        return {b.name: functools.partial(validate_rows, b, cfg.frames_per_clip) for b in cfg.benchmarks}

    def rows_read(self, stats: dict) -> dict[str, int]:
        return {name: stats["rows"].get(name, 0) for name in stats["options"]["benchmarks"]}

    def source_of(self, failure: dict) -> str | None:
        return failure.get("benchmark") if failure.get("scope") in ("file", "record") else None

    def items_written(self, stats: dict) -> dict[str, int]:
        written = stats["items"]["in_shards_by_benchmark"]
        return {name: written.get(name, 0) for name in stats["options"]["benchmarks"]}

    def dropped_from(self, failure: dict) -> str | None:
        return failure.get("benchmark") if failure.get("scope") in ("record", "item") else None

    def summary_lines(self, stats: dict) -> list[str]:
        items = stats["items"]
        lines = [f"  {b}: {n} rows, {stats['row_failures'].get(b, 0)} rejected by the reader" for b, n in stats["rows"].items()]
        for task, n in items["read"].items():
            d = stats["tasks"].get(task, {"shards": 0, "bytes": 0})
            lines.append(f"  {task}: {n} items read, {items['in_shards'].get(task, 0)} in {d['shards']} shards "
                         f"({d['bytes']} bytes), {items['failed'].get(task, 0)} failed")  # fmt: skip
        return [*lines, f"  unaccounted items: {items['unaccounted']}, rows: {stats['unaccounted_rows']}"]


def validate_rows(spec, n_frames: int | None):
    """None per item a benchmark's reader reads without videos, the failure a build reports per bad row."""
    for out in READERS[spec.reader](spec.annotations, spec.videos, exists=None, **spec.reader_options(n_frames)):
        yield BenchFailure.from_record_failure(spec.name, out) if isinstance(out, RecordFailure) else None


BUILDER = EgoBenchBuilder()
# the package's entry points: run(cfg, beam_args=None, *, checked=False) -> stats, main(argv) -> exit status,
# parse_args(argv) -> (config, Beam options, arguments)
run = functools.partial(core.run, BUILDER)
main = functools.partial(front.main, BUILDER)
parse_args = functools.partial(front.parse_args, BUILDER)
