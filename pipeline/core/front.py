"""The command line of every builder: `python -m pipeline.<dataset> ...` is `main(BUILDER, argv)`.

    python -m pipeline.<dataset> [dataset options] --out OUT [--frames N --size S | --preset P --crf C]
        [--overwrite] [--quiet] [--runner {direct,direct-mp,dask,dataflow,spark,flink} ...] [Beam options]

What every builder gets from here, alike:
* every argument checked: one of ours, or an Apache Beam pipeline option Beam knows; anything else (a typo such
  as `--frmes`, a `--runner` value that is no engine or Beam runner) is one line `error: ...` with the nearest
  option as a hint, exit status 2, before any work;
* OUT and every input root of every source checked up front (pipeline.core.builder.check_build_inputs):
  exit 2 with one line naming the option or config key and the reason;
* logging that survives Beam's import (which configures the root logger at WARNING), `--quiet` (no bar, no
  INFO lines, workers too), the progress bar on local engines;
* OUT's lock before the bar is drawn, the build session around the engine, the summary at the end.

With --validate, only the annotations are read and checked, without videos (pipeline/core/validate.py): exit
status 0 when it ran (bad rows are reported, not fatal), 2 when an annotation input is unusable.

Exit status: 0 built; 2 the build could not start (one-line message), or it finished but a source lost more
than --max-bad-share of its annotation rows to bad input, or all of them (a truncated or unreadable file: one
`error:` line per such source, the lost rows in OUT/errors.jsonl); 143 terminated by SIGTERM.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import sys
import time
from functools import cache

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, _BeamArgumentParser
from tqdm.contrib.logging import logging_redirect_tqdm

from pipeline.core.builder import Builder, check_build_inputs, loss_problems, run
from pipeline.core.cli import RUNNERS, add_runner_args, check_runner_args, run_with_runner
from pipeline.core.clips import ClipFormat
from pipeline.core.inputs import InputError
from pipeline.core.progress import ProgressBar
from pipeline.core.session import OutLocked, build_session
from pipeline.core.validate import check_validate_inputs, table, validate

NOISY_LOGGERS = ("apache_beam", "sentence_transformers", "httpx", "huggingface_hub")


def fail(message: str) -> None:
    """One line on stderr, exit status 2."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(2)


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors as one `error:` line (no usage block) and exit status 2."""

    def error(self, message):
        fail(message)


def add_common_arguments(ap: argparse.ArgumentParser) -> None:
    """The options every builder has: OUT, the clip format, resume and logging."""
    ap.add_argument("--out", required=True, help="output directory (local path, gs://, s3://)")
    g = ap.add_argument_group("clips")
    g.add_argument(
        "--frames", type=int, default=0, help="write N JPEG frames per clip instead of an mp4 (e.g. 16)"
    )
    g.add_argument("--size", type=int, default=336, help="short side of JPEG frames (with --frames)")
    g.add_argument("--preset", default="veryfast", help="x264 preset of mp4 clips")
    g.add_argument("--crf", type=int, default=23, help="x264 CRF of mp4 clips")
    ap.add_argument("--overwrite", action="store_true", help="rebuild every shard, even complete ones")
    ap.add_argument(
        "--max-bad-share",
        type=float,
        default=0.5,
        help="exit 2 when a source loses more than this share of its annotation rows to bad input, or all of "
        "them (default 0.5; 1 accepts any loss; every lost row is in OUT/errors.jsonl either way)",
    )
    ap.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar and no per-group log lines (warnings, errors and the final summary only)",
    )
    ap.add_argument(
        "--validate",
        action="store_true",
        help="only read and check every source's annotations, without videos (no probe, no decode, no engine): "
        "OUT/validate.json (read, bad and reasons per source), OUT/errors.jsonl and a table; exit 0 even with "
        "bad rows",
    )


def clip_format(args: argparse.Namespace) -> ClipFormat:
    if args.frames < 0:
        raise ValueError(f"--frames={args.frames}: must be >= 1 (or 0 for mp4 clips)")
    return ClipFormat(
        kind="frames" if args.frames else "mp4",
        preset=args.preset,
        crf=args.crf,
        n_frames=args.frames or 16,
        size=args.size,
    )


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


def check_beam_args(ap: argparse.ArgumentParser, beam_args: list[str]) -> None:
    """The arguments a builder does not know must be Apache Beam pipeline options: a typo of one of ours
    ("--frmes") or anything Beam does not know either stops here, with the closest option as a hint."""
    if not beam_args:
        return
    ours = sorted({o for a in ap._actions for o in a.option_strings if o.startswith("--")})
    parser = _beam_parser()
    try:
        _, unknown = parser.parse_known_args(beam_args)
    except ValueError as err:
        fail(f"invalid Apache Beam option: {err}")
    for arg in unknown:
        if not arg.startswith("-"):
            fail(f"unexpected argument {arg!r}")
        name = arg.split("=", 1)[0]
        hint = difflib.get_close_matches(name, ours, n=1, cutoff=0.75) or difflib.get_close_matches(
            name, sorted(o for o in parser._option_string_actions if o.startswith("--")), n=1, cutoff=0.75
        )
        fail(
            f"unknown option {name}; did you mean {hint[0]}?"
            if hint
            else f"unknown option {name} (not an option of this command nor an Apache Beam pipeline option)"
        )


def check_runner_name(runner: str) -> None:
    """--runner: one of our engines, a runner Beam knows by name, or a dotted path to a runner class."""
    if runner in RUNNERS:
        return
    known = {path.rsplit(".", 1)[-1]: path for path in StandardOptions.ALL_KNOWN_RUNNERS}
    short = {name.lower().removesuffix("runner"): name for name in known}
    if runner in known or runner.lower() in short or runner.lower().removesuffix("runner") in short:
        return
    if "." in runner:
        module, _, attr = runner.rpartition(".")
        try:
            if hasattr(importlib.import_module(module), attr):
                return
        except Exception:  # not importable: reported below
            pass
        fail(f"--runner {runner}: no runner class {attr} in an importable module {module}")
    hint = difflib.get_close_matches(runner, [*RUNNERS, *sorted(known)], n=1, cutoff=0.6)
    fail(
        f"--runner {runner}: not an engine ({', '.join(RUNNERS)}) nor an Apache Beam runner"
        + (f"; did you mean {hint[0]}?" if hint else "")
    )


def parse_args(builder: Builder, argv: list[str] | None = None):
    """(config, Beam options, parsed arguments); any bad option exits 2 with one line."""
    ap = OneLineParser(
        prog=f"python -m pipeline.{builder.name}",
        description=f"{builder.description} Apache Beam pipeline options (e.g. --direct_num_workers=2) are "
        "passed to Beam; any other argument is an error. Exit status 2: the build could not start.",
        allow_abbrev=False,
    )
    builder.add_arguments(ap)
    add_common_arguments(ap)
    add_runner_args(ap)
    args, beam_args = ap.parse_known_args(argv)
    check_beam_args(ap, beam_args)
    check_runner_name(args.runner)
    if not 0 <= args.max_bad_share <= 1:
        fail(f"--max-bad-share={args.max_bad_share}: must be in [0, 1]")
    try:
        cfg = builder.config(args, clip_format(args))
    except (ValueError, TypeError) as err:  # pipeline.core.config.ConfigError is a ValueError
        fail(str(err))
    check_runner_args(ap, args, builder.inputs(cfg), cfg.out)
    return cfg, beam_args, args


def configure_logging(quiet: bool) -> None:
    # force: importing Beam already configured the root logger (at WARNING), which hid every INFO line
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def progress_shown(args: argparse.Namespace) -> bool:
    """The bar needs the workers' progress files: engines whose workers are this machine's processes."""
    if args.quiet:
        return False
    return args.runner in ("direct", "direct-mp") or (args.runner == "dask" and not args.dask_address)


def main(builder: Builder, argv: list[str] | None = None) -> int:
    configure_logging(quiet=False)
    cfg, beam_args, args = parse_args(builder, argv)
    if args.validate:
        return validate_main(builder, cfg)
    log = logging.getLogger(f"pipeline.{builder.name}")
    if args.quiet:
        configure_logging(quiet=True)
        if not any(a.startswith("--default_sdk_harness_log_level") for a in beam_args):
            beam_args = [*beam_args, "--default_sdk_harness_log_level=WARNING"]  # worker processes too
    elif not progress_shown(args):
        log.info("no progress bar with --runner %s (workers run elsewhere): they log one line per %s",
                 args.runner, builder.group_unit)  # fmt: skip
    started = time.monotonic()
    try:
        check_build_inputs(builder, cfg)  # before any engine starts or any video is probed
        # OUT's lock first (re-entered by run_with_runner): a busy OUT is one clean line, no bar drawn before it
        with (
            build_session(cfg.out),
            ProgressBar(progress_shown(args), builder.group_unit, echo=args.runner == "dask"),
            logging_redirect_tqdm(),
        ):
            stats = run_with_runner(args, beam_args, lambda options: run(builder, cfg, options, checked=True))
    except (InputError, OutLocked) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(builder.summary(stats, time.monotonic() - started))
    checked = builder.rows_read(stats)
    problems = loss_problems({s: d for s, d in stats["sources"].items() if s in checked}, args.max_bad_share)
    for line in problems:
        print(f"error: source {line}; see {cfg.out}/errors.jsonl (--max-bad-share sets the limit)", file=sys.stderr)
    return 2 if problems else 0


def validate_main(builder: Builder, cfg) -> int:
    """--validate: the annotations read and checked without videos (pipeline/core/validate.py)."""
    started = time.monotonic()
    try:
        check_validate_inputs(builder, cfg)
        with build_session(cfg.out):
            report = validate(builder, cfg)
    except (InputError, OutLocked) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(table(builder.title, report, time.monotonic() - started, cfg.out))
    return 0


def add_shard_arguments(ap: argparse.ArgumentParser, *, decode_timeout: float, unit: str) -> None:
    """Shard bounds and decoding options of the builders that take them on the command line (their YAML
    configs carry them for EgoIT and EgoBench)."""
    g = ap.add_argument_group("shards and decoding")
    g.add_argument("--max-samples-per-shard", type=int, default=1000)
    g.add_argument("--max-shard-bytes", type=int, default=1_000_000_000, help="estimated bound (see docs)")
    g.add_argument("--decode-threads", type=int, default=1, help=f"{unit} decoded concurrently by one worker")
    g.add_argument("--decode-timeout", type=float, default=decode_timeout, help="seconds before a decode is killed")


def shard_options(args: argparse.Namespace) -> dict:
    """The config fields of add_shard_arguments' bounds, and --overwrite."""
    return {
        "max_samples_per_shard": args.max_samples_per_shard,
        "max_shard_bytes": args.max_shard_bytes,
        "overwrite": args.overwrite,
    }
