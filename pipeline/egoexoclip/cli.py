"""Command line of the Ego-ExoClip build.

    python -m pipeline.egoexoclip --root /data/egoexo4d --out /data/egoexoclip [--runner ENGINE ...] [beam options]

`--runner {direct,direct-mp,dask,dataflow,spark,flink}` picks an engine; its flags map to Beam options through
`pipeline.core.runners.runner_options` (README, "Running on a cluster"). Unknown arguments are Beam pipeline
options (e.g. --direct_num_workers=2, --temp_location=...); any other --runner value (a Beam runner name or
dotted path) goes to Beam unchanged.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from pipeline.core.cli import add_runner_args, check_runner_args, engine_args, run_with_runner
from pipeline.core.clips import ClipFormat
from pipeline.egoexoclip.build import DEFAULT_OFFSETS, BuildConfig, ReleaseLayoutError, run
from pipeline.egoexoclip.release import RESOLUTIONS, NarrationFilters
from pipeline.egoexoclip.windows import WINDOW_RULES, WindowRule
from pipeline.egoexoclip.writer import OutputFormat

__all__ = ["engine_args", "main", "parse_args", "summary"]


def parse_args(argv: list[str] | None = None) -> tuple[BuildConfig, list[str], argparse.Namespace]:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.egoexoclip",
        description="Build Ego-ExoClip WebDataset shards from an Ego-Exo4D download. "
        "Arguments not listed here are passed to Apache Beam (e.g. --direct_num_workers=2).",
    )
    ap.add_argument("--root", required=True, help="Ego-Exo4D download root (local path, gs://, s3://)")
    ap.add_argument("--out", required=True, help="output directory (local path, gs://, s3://)")
    ap.add_argument(
        "--splits", default="train,val", help="comma-separated splits to build (default train,val)"
    )
    ap.add_argument(
        "--resolution", choices=RESOLUTIONS, default="448", help="448 (downscaled copies) or full"
    )
    ap.add_argument(
        "--layout",
        choices=("pairs", "moments"),
        default="pairs",
        help="pairs: one sample per (narration, exo view); moments: one sample per narration, all views",
    )
    ap.add_argument("--frames", type=int, default=0, help="write N JPEG frames per view instead of mp4 clips")
    ap.add_argument("--size", type=int, default=336, help="short side of JPEG frames (with --frames)")
    ap.add_argument("--preset", default="veryfast", help="x264 preset of mp4 clips")
    ap.add_argument("--crf", type=int, default=23, help="x264 CRF of mp4 clips")
    ap.add_argument("--window", choices=WINDOW_RULES, default="egoclip", help="window rule")
    ap.add_argument("--window-length", type=float, default=1.0, help="window length in s (--window fixed)")
    ap.add_argument("--skip-unsure", action="store_true", help="drop descriptions marked unsure")
    ap.add_argument(
        "--require-ego-visible", action="store_true", help="drop descriptions with ego_visible false"
    )
    ap.add_argument(
        "--frame-offsets", default=str(DEFAULT_OFFSETS), help="CSV take_name,cam_id,offset_frames"
    )
    ap.add_argument("--max-samples-per-shard", type=int, default=1000)
    ap.add_argument("--max-shard-bytes", type=int, default=1_000_000_000, help="estimated bound (see README)")
    ap.add_argument("--decode-threads", type=int, default=1, help="views of one take decoded concurrently")
    ap.add_argument("--decode-timeout", type=float, default=1800.0, help="seconds before a decode is killed")
    ap.add_argument("--overwrite", action="store_true", help="rebuild every shard, even complete ones")
    add_runner_args(ap)
    args, beam_args = ap.parse_known_args(argv)
    try:
        clip = ClipFormat(
            kind="frames" if args.frames else "mp4",
            preset=args.preset,
            crf=args.crf,
            n_frames=args.frames or 16,
            size=args.size,
        )
        cfg = BuildConfig(
            root=args.root,
            out=args.out,
            splits=tuple(s for s in args.splits.split(",") if s),
            resolution=args.resolution,
            filters=NarrationFilters(args.skip_unsure, args.require_ego_visible),
            rule=WindowRule(args.window, args.window_length),
            output=OutputFormat(args.layout, clip, args.decode_timeout, args.decode_threads),
            offsets_csv=args.frame_offsets,
            max_samples_per_shard=args.max_samples_per_shard,
            max_shard_bytes=args.max_shard_bytes,
            overwrite=args.overwrite,
        )
    except ValueError as err:
        ap.error(str(err))
    check_runner_args(ap, args, cfg.root, cfg.out)
    return cfg, beam_args, args


def summary(stats: dict, seconds: float) -> str:
    n = stats["narrations"]
    lines = [
        f"Ego-ExoClip build finished in {seconds:.1f}s",
        f"  samples {stats['samples']}  pairs {stats['pairs']}  narrations in shards {n['in_shards']} of {n['input']}"
        f" (dropped {n['dropped']}, unaccounted {n['unaccounted']})",
    ]
    for split, d in stats["splits"].items():
        lines.append(
            f"  {split}: {d['takes']} takes, {d['shards']} shards, {d['samples']} samples, {d['bytes']} bytes"
        )
    for reason, count in stats["failures_by_scope_and_reason"].items():
        lines.append(f"  failed {reason}: {count}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    cfg, beam_args, args = parse_args(argv)
    started = time.monotonic()
    try:
        stats = run_with_runner(args, beam_args, lambda options: run(cfg, options))
    except ReleaseLayoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary(stats, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
