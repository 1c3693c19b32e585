"""EgoClip on the core's skeleton: its options, inputs, checks and summary (pipeline/core/builder.py).

    python -m pipeline.egoclip --csv /data/egovlp/egoclip.csv --ego4d-root /data/ego4d --out /data/egoclip
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import os

from apache_beam.io.filesystems import FileSystems

from pipeline.core import builder as core
from pipeline.core import front
from pipeline.core.clips import ClipFormat
from pipeline.core.inputs import InputError
from pipeline.core.localize import is_local
from pipeline.egoclip.build import EgoClipConfig, build_pipeline
from pipeline.egoclip.plan import DUPLICATE, LAYOUTS, OUTSIDE
from pipeline.egoclip.rows import COLUMNS, ClipFailure, read_rows
from pipeline.egoclip.writer import NO_CLIP, OutputFormat


def csv_header_problem(path: str) -> str | None:
    """Why `path` is not an egoclip.csv (unreadable, columns), or None."""
    try:
        with FileSystems.open(path, compression_type="uncompressed") as raw:
            first = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="").readline()
    except Exception as err:  # a folder, no permission...: Beam's filesystems raise their own types
        return f"cannot read it ({type(err).__name__})"
    header = [h.strip().lstrip("\ufeff") for h in next(csv.reader([first], delimiter="\t"), [])]
    missing = [c for c in COLUMNS if c not in header]
    return f"not a TAB-separated egoclip.csv: missing columns {missing}" if missing else None


class EgoClipBuilder(core.Builder):
    name, title = "egoclip", "EgoClip"
    description = (
        "Build EgoClip (ego clip, caption) WebDataset shards from EgoVLP's egoclip.csv and Ego4D full-scale videos."
    )

    def add_arguments(self, ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--csv", required=True, help="EgoVLP's egoclip.csv (TAB-separated; local path, gs://, s3://)")
        ap.add_argument(
            "--ego4d-root",
            default="",
            help="(required but with --validate) Ego4D download root: videos at <root>/v2/full_scale/<video_uid>.mp4 (the ego4d CLI's full_scale "
            "layout), or <root>/full_scale/<uid>.mp4, or <root>/<uid>.mp4",
        )
        ap.add_argument("--val-fraction", type=float, default=0.0, help="fraction of videos held out as the val split")
        ap.add_argument("--seed", type=int, default=0, help="seed of the val split")
        front.add_shard_arguments(ap, decode_timeout=3600.0, unit="videos of a shard")

    def config(self, args: argparse.Namespace, clip: ClipFormat) -> EgoClipConfig:
        if not args.ego4d_root and not args.validate:
            raise ValueError("the following arguments are required: --ego4d-root")
        return EgoClipConfig(
            csv=args.csv,
            ego4d_root=args.ego4d_root or ".",  # --validate reads no video
            out=args.out,
            output=OutputFormat(clip, args.decode_timeout, args.decode_threads),
            val_fraction=args.val_fraction,
            seed=args.seed,
            **front.shard_options(args),
        )

    def inputs(self, cfg: EgoClipConfig) -> list[tuple[str, str]]:
        return [("--csv", cfg.csv), ("--ego4d-root", cfg.ego4d_root)]

    def check_inputs(self, cfg: EgoClipConfig) -> None:
        problem = csv_header_problem(cfg.csv)
        if problem:
            raise InputError(f"--csv {cfg.csv}: {problem}")
        if is_local(cfg.ego4d_root) and not os.path.isdir(cfg.ego4d_root.removeprefix("file://")):
            raise InputError(f"--ego4d-root {cfg.ego4d_root}: not a folder")

    def build_pipeline(self, p, cfg: EgoClipConfig) -> None:
        build_pipeline(p, cfg)

    def validate_inputs(self, cfg: EgoClipConfig) -> list[tuple[str, str]]:
        return [("--csv", cfg.csv)]

    def validate_checks(self, cfg: EgoClipConfig) -> None:
        if problem := csv_header_problem(cfg.csv):
            raise InputError(f"--csv {cfg.csv}: {problem}")

    def validate_sources(self, cfg: EgoClipConfig) -> dict:
        return {"--csv": functools.partial(validate_rows, cfg.csv)}

    def rows_read(self, stats: dict) -> dict[str, int]:
        return {"--csv": stats["rows"]["input"]}

    def source_of(self, failure: dict) -> str | None:
        """Rows the reader rejected (not those of missing videos or windows outside them)."""
        planned = failure["reason"].startswith("video") or failure["reason"] in (DUPLICATE, OUTSIDE, NO_CLIP)
        return "--csv" if failure["scope"] == "file" or (failure["scope"] == "row" and not planned) else None

    def items_written(self, stats: dict) -> dict[str, int]:
        return {"--csv": stats["rows"]["in_shards"]}

    def dropped_from(self, failure: dict) -> str | None:
        return "--csv" if failure.get("scope") == "row" else None

    def summary_lines(self, stats: dict) -> list[str]:
        r = stats["rows"]
        return [
            f"  csv rows {r['input']}: {r['in_shards']} in shards, {r['failed']} failed, {r['unaccounted']} unaccounted",
            *core.split_lines(stats["splits"], "videos", "shards", "samples", "bytes"),
        ]


def validate_rows(path: str):
    """--validate: None per good csv row, the failure a build reports per bad one (the reader's, and a repeated
    key's "duplicate row", which the build finds per video); no video is looked for."""
    seen: dict[str, int] = {}
    with FileSystems.open(path, compression_type="uncompressed") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        for out in read_rows(text, path):
            if isinstance(out, ClipFailure):
                yield out
            elif out.key in seen:
                why = f"same video, pass and narration_ind as row {seen[out.key]}"
                yield ClipFailure(DUPLICATE, "row", out.row, out.key, out.video_uid,
                                  LAYOUTS[0].format(uid=out.video_uid), detail=why)  # fmt: skip
            else:
                seen[out.key] = out.row
                yield None


BUILDER = EgoClipBuilder()
# the package's entry points: run(cfg, beam_args=None, *, checked=False) -> stats, main(argv) -> exit status,
# parse_args(argv) -> (config, Beam options, arguments)
run = functools.partial(core.run, BUILDER)
main = functools.partial(front.main, BUILDER)
parse_args = functools.partial(front.parse_args, BUILDER)
