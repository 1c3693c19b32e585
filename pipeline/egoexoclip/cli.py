"""Command line of the Ego-ExoClip build.

    python -m pipeline.egoexoclip --root /data/egoexo4d --out /data/egoexoclip [--runner ENGINE ...] [beam options]

`--runner {direct,direct-mp,dask,dataflow,spark,flink}` picks an engine; its flags map to Beam options through
`pipeline.core.runners.runner_options` (README, "Running on a cluster"). Other arguments must be Apache Beam
pipeline options (e.g. --direct_num_workers=2, --temp_location=...), checked against the options Beam knows;
anything else is an error ("unknown option --frmes; did you mean --frames?"). Any other --runner value (a
Beam runner name or dotted path) goes to Beam unchanged.

Exit status: 0 built; 2 the build could not start (a bad option, a required input that cannot be read or
parsed, a requested split that splits.json does not have, an unusable OUT), with a one-line message.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import sys
import time
from functools import cache

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser
from tqdm.contrib.logging import logging_redirect_tqdm

from pipeline.core.cli import add_runner_args, check_runner_args, engine_args, run_with_runner
from pipeline.core.clips import ClipFormat
from pipeline.core.progress import ProgressBar
from pipeline.core.session import OutLocked, build_session
from pipeline.egoexoclip.build import (
    DEFAULT_OFFSETS,
    BuildConfig,
    InputError,
    ReleaseLayoutError,
    check_inputs,
    run,
)
from pipeline.egoexoclip.release import RESOLUTIONS, NarrationFilters
from pipeline.egoexoclip.windows import WINDOW_RULES, WindowRule
from pipeline.egoexoclip.writer import OutputFormat

__all__ = ["engine_args", "main", "parse_args", "summary"]
LOG = logging.getLogger("pipeline.egoexoclip")


def parse_args(argv: list[str] | None = None) -> tuple[BuildConfig, list[str], argparse.Namespace]:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.egoexoclip",
        description="Build Ego-ExoClip WebDataset shards from an Ego-Exo4D download. "
        "Apache Beam pipeline options (e.g. --direct_num_workers=2) are passed to Beam; any other argument "
        "is an error. Exit status 2: the build could not start (one-line message).",
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
    ap.add_argument(
        "--probe-timeout", type=float, default=600.0, help="seconds before probing a view is given up"
    )
    ap.add_argument(
        "--trust-symlinks",
        action="store_true",
        help="allow video files whose resolved path (symlinks followed) leaves a local --root",
    )
    ap.add_argument("--overwrite", action="store_true", help="rebuild every shard, even complete ones")
    ap.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar and no per-take log lines (warnings, errors and the final summary only)",
    )
    add_runner_args(ap)
    args, beam_args = ap.parse_known_args(argv)
    check_beam_args(ap, beam_args)
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
            probe_timeout_s=args.probe_timeout,
            overwrite=args.overwrite,
            trust_symlinks=args.trust_symlinks,
        )
    except ValueError as err:
        ap.error(str(err))
    check_runner_args(ap, args, cfg.root, cfg.out)
    return cfg, beam_args, args


class _BeamFlags(_BeamArgumentParser):
    """Beam's own option parser, raising instead of printing usage and exiting."""

    def error(self, message):
        raise ValueError(message)


@cache
def _beam_parser() -> _BeamFlags:
    """Every option of every PipelineOptions class loaded (Beam's and the runners' this CLI can use)."""
    parser = _BeamFlags(allow_abbrev=False, add_help=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    return parser


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_beam_args(ap: argparse.ArgumentParser, beam_args: list[str]) -> None:
    """The arguments this CLI does not know must be Apache Beam pipeline options: a typo of one of ours
    ("--frmes") or anything Beam does not know either stops here, with the closest option as a hint."""
    if not beam_args:
        return
    ours = sorted({o for a in ap._actions for o in a.option_strings if o.startswith("--")})
    parser = _beam_parser()
    try:
        _, unknown = parser.parse_known_args(beam_args)
    except ValueError as err:
        _fail(f"invalid Apache Beam option: {err}")
    for arg in unknown:
        if not arg.startswith("-"):
            _fail(f"unexpected argument {arg!r}")
        name = arg.split("=", 1)[0]
        hint = difflib.get_close_matches(name, ours, n=1, cutoff=0.75) or difflib.get_close_matches(
            name, sorted(o for o in parser._option_string_actions if o.startswith("--")), n=1, cutoff=0.75
        )
        _fail(
            f"unknown option {name}; did you mean {hint[0]}?"
            if hint
            else f"unknown option {name} (not an option of this command nor an Apache Beam pipeline option)"
        )


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


def progress_shown(args: argparse.Namespace) -> bool:
    """The bar needs the workers' progress files: engines whose workers are this machine's processes."""
    if args.quiet:
        return False
    return args.runner in ("direct", "direct-mp") or (args.runner == "dask" and not args.dask_address)


def main(argv: list[str] | None = None) -> int:
    # force: importing Beam already configured the root logger (at WARNING), which hid every INFO line
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    cfg, beam_args, args = parse_args(argv)
    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
        if not any(a.startswith("--default_sdk_harness_log_level") for a in beam_args):
            beam_args = [*beam_args, "--default_sdk_harness_log_level=WARNING"]  # worker processes too
    elif not progress_shown(args):
        LOG.info(
            "no progress bar with --runner %s (workers run elsewhere): they log one line per take",
            args.runner,
        )
    started = time.monotonic()
    try:
        check_inputs(cfg)  # before any engine starts or any view is probed
        # OUT's lock first (re-entered by run_with_runner): a busy OUT is one clean line, no bar drawn before it
        with (
            build_session(cfg.out),
            ProgressBar(progress_shown(args), "take", echo=args.runner == "dask"),
            logging_redirect_tqdm(),
        ):
            stats = run_with_runner(args, beam_args, lambda options: run(cfg, options, checked=True))
    except (ReleaseLayoutError, InputError, OutLocked) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary(stats, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
