"""Ego-ExoClip on the core's skeleton: its options, inputs, checks and summary (pipeline/core/builder.py).

    python -m pipeline.egoexoclip --root /data/egoexo4d --out /data/egoexoclip [--runner ENGINE ...] [beam options]

Exit status: 0 built; 2 the build could not start (a bad option, a required input that cannot be read or
parsed, a requested split that splits.json does not have, an unusable OUT), with a one-line message.
"""

from __future__ import annotations

import argparse
import functools

from pipeline.core import builder as core
from pipeline.core import front
from pipeline.core.clips import ClipFormat
from pipeline.egoexoclip import validate
from pipeline.egoexoclip.build import DEFAULT_OFFSETS, BuildConfig, build_pipeline, check_inputs
from pipeline.egoexoclip.release import RESOLUTIONS, NarrationFilters
from pipeline.egoexoclip.windows import WINDOW_RULES, WindowRule
from pipeline.egoexoclip.writer import OutputFormat


class EgoExoClipBuilder(core.Builder):
    name, title = "egoexoclip", "Ego-ExoClip"
    description = "Build Ego-ExoClip WebDataset shards from an Ego-Exo4D download."
    group_unit = "take"

    def add_arguments(self, ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--root", required=True, help="Ego-Exo4D download root (local path, gs://, s3://)")
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
        ap.add_argument("--window", choices=WINDOW_RULES, default="egoclip", help="window rule")
        ap.add_argument("--window-length", type=float, default=1.0, help="window length in s (--window fixed)")
        ap.add_argument("--skip-unsure", action="store_true", help="drop descriptions marked unsure")
        ap.add_argument(
            "--require-ego-visible", action="store_true", help="drop descriptions with ego_visible false"
        )
        ap.add_argument(
            "--frame-offsets", default=str(DEFAULT_OFFSETS), help="CSV take_name,cam_id,offset_frames"
        )
        front.add_shard_arguments(ap, decode_timeout=1800.0, unit="views of one take")
        ap.add_argument(
            "--probe-timeout", type=float, default=600.0, help="seconds before probing a view is given up"
        )
        ap.add_argument(
            "--trust-symlinks",
            action="store_true",
            help="allow video files whose resolved path (symlinks followed) leaves a local --root",
        )

    def config(self, args: argparse.Namespace, clip: ClipFormat) -> BuildConfig:
        return BuildConfig(
            root=args.root,
            out=args.out,
            splits=tuple(s for s in args.splits.split(",") if s),
            resolution=args.resolution,
            filters=NarrationFilters(args.skip_unsure, args.require_ego_visible),
            rule=WindowRule(args.window, args.window_length),
            output=OutputFormat(args.layout, clip, args.decode_timeout, args.decode_threads),
            offsets_csv=args.frame_offsets,
            probe_timeout_s=args.probe_timeout,
            trust_symlinks=args.trust_symlinks,
            **front.shard_options(args),
        )

    def inputs(self, cfg: BuildConfig) -> list[tuple[str, str]]:
        # --frame-offsets is read by the driver (check_inputs, and shipped with the plan): it may stay local
        # when the workers run elsewhere
        return [("--root", cfg.root)]

    def check_inputs(self, cfg: BuildConfig) -> None:
        check_inputs(cfg)

    def build_pipeline(self, p, cfg: BuildConfig) -> None:
        build_pipeline(p, cfg)

    def validate_checks(self, cfg: BuildConfig) -> None:
        check_inputs(cfg)  # the release's annotation files and the frame offset table: no video

    def validate_sources(self, cfg: BuildConfig) -> dict:
        return validate.validate_sources(cfg)

    def rows_reported(self, stats: dict) -> dict[str, int]:
        """The atomic descriptions read (not loss-checked: takes.json and splits.json are checked up front)."""
        return {"narrations": stats["narrations"]["input"]}

    def items_written(self, stats: dict) -> dict[str, int]:
        return {"narrations": stats["narrations"]["in_shards"]}

    def dropped_from(self, failure: dict) -> str | None:
        return "narrations" if failure.get("scope") == "narration" else None

    def summary_lines(self, stats: dict) -> list[str]:
        n = stats["narrations"]
        return [
            f"  pairs {stats['pairs']}  narrations in shards {n['in_shards']} of {n['input']} (dropped "
            f"{n['dropped']}, unaccounted {n['unaccounted']})",
            *core.split_lines(stats["splits"], "takes", "shards", "samples", "bytes"),
        ]


BUILDER = EgoExoClipBuilder()
# the package's entry points: run(cfg, beam_args=None, *, checked=False) -> stats, main(argv) -> exit status,
# parse_args(argv) -> (config, Beam options, arguments)
run = functools.partial(core.run, BUILDER)
main = functools.partial(front.main, BUILDER)
parse_args = functools.partial(front.parse_args, BUILDER)
