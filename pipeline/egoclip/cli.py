"""Command line of the EgoClip build.

    python -m pipeline.egoclip --csv /data/egovlp/egoclip.csv --ego4d-root /data/ego4d --out /data/egoclip \
        [--frames N] [--runner ENGINE ...] [beam options]

The csv and the root are checked before any work (the file exists and has EgoClip's columns, the root is a folder);
unknown arguments are Beam pipeline options; the runner flags are the core's (pipeline/core/cli.py).
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import sys
import time

from apache_beam.io.filesystems import FileSystems

from pipeline.core.cli import add_runner_args, check_runner_args, run_with_runner
from pipeline.core.clips import ClipFormat
from pipeline.core.localize import is_local
from pipeline.core.runners import REMOTE_SCHEMES, RUNNERS
from pipeline.egoclip.build import EgoClipConfig, run
from pipeline.egoclip.rows import COLUMNS
from pipeline.egoclip.writer import OutputFormat


def csv_header_problem(path: str) -> str | None:
    """Why `path` is not an egoclip.csv (missing, unreadable, columns), or None."""
    if not FileSystems.exists(path):
        return "file not found"
    try:
        with FileSystems.open(path, compression_type="uncompressed") as raw:
            first = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="").readline()
    except Exception as err:  # a folder, no permission...: Beam's filesystems raise their own types
        return f"cannot read it ({type(err).__name__})"
    header = [h.strip().lstrip("\ufeff") for h in next(csv.reader([first], delimiter="\t"), [])]
    missing = [c for c in COLUMNS if c not in header]
    return f"not a TAB-separated egoclip.csv: missing columns {missing}" if missing else None


def parse_args(argv: list[str] | None = None) -> tuple[EgoClipConfig, list[str], argparse.Namespace]:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.egoclip",
        description="Build EgoClip (ego clip, caption) WebDataset shards from EgoVLP's egoclip.csv and Ego4D "
        "full-scale videos. Arguments not listed here are passed to Apache Beam.",
    )
    ap.add_argument(
        "--csv", required=True, help="EgoVLP's egoclip.csv (TAB-separated; local path, gs://, s3://)"
    )
    ap.add_argument(
        "--ego4d-root",
        required=True,
        help="Ego4D download root: videos at <root>/v2/full_scale/<video_uid>.mp4 (the ego4d CLI's full_scale "
        "layout), or <root>/full_scale/<uid>.mp4, or <root>/<uid>.mp4",
    )
    ap.add_argument("--out", required=True, help="output directory (local path, gs://, s3://)")
    ap.add_argument("--frames", type=int, default=0, help="write N JPEG frames per clip instead of an mp4")
    ap.add_argument("--size", type=int, default=336, help="short side of JPEG frames (with --frames)")
    ap.add_argument("--preset", default="veryfast", help="x264 preset of mp4 clips")
    ap.add_argument("--crf", type=int, default=23, help="x264 CRF of mp4 clips")
    ap.add_argument(
        "--val-fraction", type=float, default=0.0, help="fraction of videos held out as the val split"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the val split")
    ap.add_argument("--max-samples-per-shard", type=int, default=1000)
    ap.add_argument("--max-shard-bytes", type=int, default=1_000_000_000, help="estimated bound")
    ap.add_argument("--decode-threads", type=int, default=1, help="videos of a shard decoded concurrently")
    ap.add_argument("--decode-timeout", type=float, default=3600.0, help="seconds before a decode is killed")
    ap.add_argument("--overwrite", action="store_true", help="rebuild every shard, even complete ones")
    add_runner_args(ap)
    args, beam_args = ap.parse_known_args(argv)
    if args.runner in RUNNERS and args.runner in ("dataflow", "spark", "flink"):
        for flag, value in (("--csv", args.csv), ("--ego4d-root", args.ego4d_root)):
            if not value.startswith(REMOTE_SCHEMES):
                ap.error(f"{flag}={value!r}: --runner {args.runner} workers share no disk with this machine; "
                         "use a gs:// or s3:// path")  # fmt: skip
    problem = csv_header_problem(args.csv)
    if problem:
        ap.error(f"--csv={args.csv!r}: {problem}")
    if is_local(args.ego4d_root) and not os.path.isdir(args.ego4d_root.removeprefix("file://")):
        ap.error(f"--ego4d-root={args.ego4d_root!r}: not a folder")
    try:
        clip = ClipFormat(kind="frames" if args.frames else "mp4", preset=args.preset, crf=args.crf,
                          n_frames=args.frames or 16, size=args.size)  # fmt: skip
        cfg = EgoClipConfig(
            csv=args.csv,
            ego4d_root=args.ego4d_root,
            out=args.out,
            output=OutputFormat(clip, args.decode_timeout, args.decode_threads),
            val_fraction=args.val_fraction,
            seed=args.seed,
            max_samples_per_shard=args.max_samples_per_shard,
            max_shard_bytes=args.max_shard_bytes,
            overwrite=args.overwrite,
        )
    except ValueError as err:
        ap.error(str(err))
    check_runner_args(ap, args, cfg.ego4d_root, cfg.out)
    return cfg, beam_args, args


def summary(stats: dict, seconds: float) -> str:
    r = stats["rows"]
    lines = [
        f"EgoClip build finished in {seconds:.1f}s: {stats['samples']} samples",
        f"  csv rows {r['input']}: {r['in_shards']} in shards, {r['failed']} failed, "
        f"{r['unaccounted']} unaccounted",
    ]
    for split, d in stats["splits"].items():
        lines.append(
            f"  {split}: {d['videos']} videos, {d['shards']} shards, {d['samples']} samples, {d['bytes']} bytes"
        )
    for reason, count in stats["failures_by_scope_and_reason"].items():
        lines.append(f"  {reason}: {count}")
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
