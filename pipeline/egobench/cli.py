"""Command line of the EgoBench build.

    python -m pipeline.egobench --config CONFIG --out /data/egobench [--frames 16 --size 336] \
        [--runner ENGINE ...]
    python -m pipeline.egobench --roots egoschema=/data/egoschema,vlnqa=/data/vln_qa --out /data/egobench

The config file (pipeline/egobench/build.py; README "EgoBench") gives each benchmark's reader, roots and
reader options, and any build option; `--roots` is the short form (each benchmark in its shipped layout under
one root, default options). Command-line options override the file. Unknown arguments are Beam pipeline
options.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from pipeline.core.cli import add_runner_args, check_runner_args, run_with_runner
from pipeline.core.clips import ClipFormat
from pipeline.egobench.build import (
    ConfigError,
    EgoBenchConfig,
    config_from_mapping,
    load_config_file,
    parse_roots,
    run,
)


def parse_args(argv: list[str] | None = None) -> tuple[EgoBenchConfig, list[str], argparse.Namespace]:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.egobench",
        description="Build the EgoBench evaluation shards (EgoSchema, QAEgo4D, EgoTaskQA, Charades-Ego, "
        "EPIC-KITCHENS-100 MIR, EgoPlan, VLN-QA, EgoMCQ): one shard set per task. Arguments not listed here "
        "are passed to Apache Beam.",
    )
    ap.add_argument(
        "--config",
        help="YAML config: benchmarks (reader, root, annotations, videos, options) and build options",
    )
    ap.add_argument("--roots", help="NAME=PATH,... instead of (or on top of) the config's benchmarks")
    ap.add_argument("--out", required=True, help="output directory (local path, gs://, s3://)")
    ap.add_argument(
        "--frames",
        type=int,
        default=0,
        help="write N JPEG frames per clip instead of an mp4 (recommended: --frames 16 --size 336)",
    )
    ap.add_argument("--size", type=int, default=336, help="short side of JPEG frames (with --frames)")
    ap.add_argument("--preset", default="veryfast", help="x264 preset of mp4 clips")
    ap.add_argument("--crf", type=int, default=23, help="x264 CRF of mp4 clips")
    ap.add_argument("--max-samples-per-shard", type=int)
    ap.add_argument("--overwrite", action="store_true", help="rebuild every shard, even complete ones")
    add_runner_args(ap)
    args, beam_args = ap.parse_known_args(argv)
    try:
        raw = load_config_file(args.config) if args.config else {}
        base = Path(args.config).resolve().parent if args.config else Path.cwd()
        if args.roots:
            raw["benchmarks"] = {**(raw.get("benchmarks") or {}), **parse_roots(args.roots)}
        if not raw.get("benchmarks"):
            ap.error("give --config or --roots")
        if args.frames < 0:
            raise ConfigError(f"--frames={args.frames}: must be >= 1 (or 0 for mp4 clips)")
        if args.max_samples_per_shard is not None:
            raw["max_samples_per_shard"] = args.max_samples_per_shard
        if args.overwrite:
            raw["overwrite"] = True
        clip = ClipFormat(
            kind="frames" if args.frames else "mp4",
            preset=args.preset,
            crf=args.crf,
            n_frames=args.frames or 16,
            size=args.size,
        )
        cfg = config_from_mapping(raw, args.out, base, clip)
    except (ConfigError, ValueError) as err:
        ap.error(str(err))
    check_runner_args(ap, args, cfg.benchmarks[0].root, cfg.out)
    return cfg, beam_args, args


def summary(stats: dict, seconds: float) -> str:
    items = stats["items"]
    lines = [f"EgoBench build finished in {seconds:.1f}s: {stats['samples']} samples"]
    for benchmark, n in stats["rows"].items():
        lines.append(
            f"  {benchmark}: {n} rows, {stats['row_failures'].get(benchmark, 0)} rejected by the reader"
        )
    for task, n in items["read"].items():
        d = stats["tasks"].get(task, {"shards": 0, "bytes": 0})
        lines.append(
            f"  {task}: {n} items read, {items['in_shards'].get(task, 0)} in {d['shards']} shards "
            f"({d['bytes']} bytes), {items['failed'].get(task, 0)} failed"
        )
    for reason, count in stats["failures_by_scope_and_reason"].items():
        lines.append(f"  {reason}: {count}")
    lines.append(f"  unaccounted items: {items['unaccounted']}, rows: {stats['unaccounted_rows']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    cfg, beam_args, args = parse_args(argv)
    started = time.monotonic()
    stats = run_with_runner(args, beam_args, lambda options: run(cfg, options))
    print(summary(stats, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
