"""Command-line pieces every builder shares: the runner flags, their Beam options, a local Dask cluster, and
running a built pipeline with any of them.

    python -m pipeline.<builder> ... --runner {direct,direct-mp,dask,dataflow,spark,flink} [engine flags]

`--runner` picks an engine; its flags map to Beam options through `pipeline.core.runners.runner_options`
(docs/cluster.md). Unknown arguments are Beam pipeline options; any other --runner value (a
Beam runner name or dotted path) goes to Beam unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

from pipeline.core.runners import RUNNERS, RunnerOptionError, check_io_paths, runner_options
from pipeline.core.session import OutLocked, build_session

# The engines' flags beside --runner and --workers: (flag, type, help); each maps to runner_options' keyword of
# the same name (pipeline.core.runners).
ENGINE_FLAGS = (
    ("--dask-address", str, "dask scheduler HOST:PORT (default: start a local cluster)"),
    ("--project", str, "dataflow: Google Cloud project"),
    ("--region", str, "dataflow: region, e.g. us-central1"),
    ("--temp-location", str, "dataflow: gs:// temp location"),
    ("--staging-location", str, "dataflow: gs:// staging location (default TEMP/staging)"),
    ("--image", str, "dataflow/spark/flink: worker container image (docker/Dockerfile.worker)"),
    ("--machine-type", str, "dataflow: worker machine type (default n2-standard-4)"),
    ("--max-workers", int, "dataflow: max workers (default 10)"),
    ("--job-name", str, "dataflow: job name"),
    ("--service-account", str, "dataflow: worker service account e-mail"),
    ("--job-endpoint", str, "spark/flink: Beam job server HOST:PORT (PortableRunner)"),
    ("--spark-master", str, "spark: spark://HOST:PORT (SparkRunner; starts its own job server)"),
    ("--flink-master", str, "flink: HOST:PORT (FlinkRunner; starts its own job server)"),
    ("--flink-version", str, "flink: Flink version of the job server (FlinkRunner)"),
)


def add_runner_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("runner (docs/cluster.md)")
    g.add_argument(
        "--runner",
        default="direct",
        help=f"one of {', '.join(RUNNERS)} (default direct: in process); any other value is a Beam runner "
        "name or dotted path handed to Beam as --runner",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        help="direct-mp: worker processes (default 2); dask without --dask-address: processes of the local "
        "cluster (default 2); spark/flink: SDK worker processes per node",
    )
    for flag, kind, help_ in ENGINE_FLAGS:
        g.add_argument(flag, type=kind, help=help_)


def engine_args(args: argparse.Namespace, dask_address: str | None = None) -> list[str]:
    """The Beam options of the engine picked on the command line (see pipeline.core.runners.runner_options)."""
    if args.runner not in RUNNERS:
        return [f"--runner={args.runner}"]
    workers = args.workers
    if args.runner == "direct-mp" and workers is None:
        workers = 2
    flags = {dest: getattr(args, dest) for dest in (f[2:].replace("-", "_") for f, _, _ in ENGINE_FLAGS)}
    flags["dask_address"] = dask_address or args.dask_address
    return runner_options(args.runner, workers=workers, **flags)


@contextlib.contextmanager
def local_dask_cluster(n_workers: int) -> Iterator[str]:
    """A dask.distributed LocalCluster of n worker processes (one thread each) for this build; yields its address."""
    from dask.distributed import LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        logging.getLogger(__name__).info(
            "local dask cluster %s, %d workers", cluster.scheduler_address, n_workers
        )
        yield cluster.scheduler_address
    finally:
        cluster.close()


def check_runner_args(
    ap: argparse.ArgumentParser, args: argparse.Namespace, inputs: list[tuple[str, str]], out: str
) -> None:
    """Validate the engine's flags now (errors name the flag), before any work; inputs: (what, path) of every
    input root."""
    if args.workers is not None and args.workers < 1:
        ap.error(f"--workers={args.workers}: must be >= 1")
    try:
        if args.runner in RUNNERS:
            check_io_paths(args.runner, inputs, out)
            if not (args.runner == "dask" and not args.dask_address):
                engine_args(args)
    except RunnerOptionError as err:
        ap.error(str(err))


def run_with_runner(args: argparse.Namespace, beam_args: list[str], run: Callable[[list[str]], dict]) -> dict:
    """run(beam options) under the engine of the command line; a local Dask cluster lives for the call.

    The whole call holds a build session (pipeline/core/session.py): OUT's lock, taken before any engine
    starts (another build on OUT: one `error:` line, exit status 2), the build's work directory and the
    SIGTERM handler (exit status 143)."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(build_session(getattr(args, "out", None)))
        except OutLocked as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        if args.runner == "dask" and not args.dask_address:
            with local_dask_cluster(args.workers or 2) as address:
                return run(engine_args(args, address) + beam_args)
        return run(engine_args(args) + beam_args)
