"""Ego-ExoClip build: an Ego-Exo4D download -> synchronized (narration, ego clip, exo clip) WebDataset shards.

    python -m pipeline.egoexoclip --root /data/egoexo4d --out /data/egoexoclip [--runner ENGINE ...] [beam options]

`--runner {direct,direct-mp,dask,dataflow,spark,flink}` picks an engine; its flags map to Beam options through
`pipeline.runners.runner_options` (README, "Running on a cluster"). Unknown arguments are Beam pipeline options
(e.g. --direct_num_workers=2, --temp_location=...); any other --runner value (a Beam runner name or dotted path)
goes to Beam unchanged.
`build_pipeline()` only wires labelled steps; the work happens in pipeline.transforms and the pure modules.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.clips import ClipFormat
from pipeline.composites import AssignShards, PlanClips, ReadNarrations, ReadTakes, WriteShards
from pipeline.finalize import finalize
from pipeline.release import RESOLUTIONS, NarrationFilters
from pipeline.runners import RUNNERS, RunnerOptionError, check_io_paths, runner_options
from pipeline.windows import WINDOW_RULES, FrameOffsets, WindowRule
from pipeline.writer import OutputFormat, read_json

DEFAULT_OFFSETS = Path(__file__).resolve().parent / "data" / "frame_offsets.csv"
# Rough encoded bytes per source frame, used only to bound shard sizes before any clip exists (see README).
BYTES_PER_FRAME = {"mp4": 3_000, "frames": 25_000}


@dataclass(frozen=True)
class BuildConfig:
    root: str
    out: str
    splits: tuple[str, ...] = ("train", "val")
    resolution: str = "448"
    filters: NarrationFilters = field(default_factory=NarrationFilters)
    rule: WindowRule = field(default_factory=WindowRule)
    output: OutputFormat = field(default_factory=OutputFormat)
    offsets_csv: str = str(DEFAULT_OFFSETS)
    max_samples_per_shard: int = 1000
    max_shard_bytes: int = 1_000_000_000
    probe_timeout_s: float = 600.0
    overwrite: bool = False

    def __post_init__(self):
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"BuildConfig.resolution={self.resolution!r}: expected one of {RESOLUTIONS}")
        if not self.splits:
            raise ValueError("BuildConfig.splits=(): select at least one split")
        if self.max_samples_per_shard < 1:
            raise ValueError(f"BuildConfig.max_samples_per_shard={self.max_samples_per_shard}: must be >= 1")
        if self.max_shard_bytes < 1:
            raise ValueError(f"BuildConfig.max_shard_bytes={self.max_shard_bytes}: must be >= 1")

    def load_offsets(self) -> FrameOffsets:
        with FileSystems.open(self.offsets_csv, compression_type="uncompressed") as f:
            return FrameOffsets.from_csv_text(f.read().decode(), self.offsets_csv)

    def content_options(self) -> dict:
        return {
            "resolution": self.resolution,
            "window_rule": asdict(self.rule),
            "filters": asdict(self.filters),
            **self.output.content_options(),
        }


def build_pipeline(p: beam.Pipeline, cfg: BuildConfig) -> None:
    root, fmt = cfg.root.rstrip("/"), cfg.output
    offsets = cfg.load_offsets()  # a small table: serialised with the DoFn, not shared memory
    takes = p | "ReadTakes" >> ReadTakes(root, cfg.resolution, cfg.splits, cfg.probe_timeout_s)
    narrations = p | "ReadNarrations" >> ReadNarrations(root, cfg.splits, cfg.filters)
    planned = {
        "takes": takes["takes"],
        "excluded": takes["excluded"],
        "narrations": narrations["narrations"],
        "dropped": narrations["dropped"],
    } | "PlanClips" >> PlanClips(cfg.rule, offsets)
    shard_plans = planned["plans"] | "AssignShards" >> AssignShards(
        fmt.layout,
        cfg.max_samples_per_shard,
        cfg.max_shard_bytes,
        BYTES_PER_FRAME[fmt.clip.kind],
        cfg.content_options(),
    )
    written = shard_plans | "WriteShards" >> WriteShards(cfg.out, fmt, cfg.overwrite)
    failures = (
        takes["failures"],
        narrations["failures"],
        planned["failures"],
    ) | "AllFailures" >> beam.Flatten()
    _ = (
        p
        | "FinalizeTrigger" >> beam.Create([None])
        | "Finalize"
        >> beam.Map(
            lambda _, planned, done, failures, inputs, alpha: finalize(
                cfg.out, planned, failures, inputs, alpha, cfg.content_options()
            ),
            planned=beam.pvalue.AsList(shard_plans | "ShardNames" >> beam.Map(lambda s: (s.name, s.split))),
            done=beam.pvalue.AsList(written),  # a side input: Finalize waits for every shard write
            failures=beam.pvalue.AsList(failures),
            inputs=beam.pvalue.AsList(narrations["counts"]),
            alpha=beam.pvalue.AsSingleton(planned["alpha"]),
        )
    )


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
    _add_runner_args(ap)
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
    if args.workers is not None and args.workers < 1:
        ap.error(f"--workers={args.workers}: must be >= 1")
    try:
        if args.runner in RUNNERS:
            check_io_paths(args.runner, cfg.root, cfg.out)
            if not (args.runner == "dask" and not args.dask_address):
                engine_args(args)  # validate the engine's flags now (errors name the flag)
    except RunnerOptionError as err:
        ap.error(str(err))
    return cfg, beam_args, args


def _add_runner_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("runner (README: Running on a cluster)")
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
    g.add_argument("--dask-address", help="dask scheduler HOST:PORT (default: start a local cluster)")
    g.add_argument("--project", help="dataflow: Google Cloud project")
    g.add_argument("--region", help="dataflow: region, e.g. us-central1")
    g.add_argument("--temp-location", help="dataflow: gs:// temp location")
    g.add_argument("--staging-location", help="dataflow: gs:// staging location (default TEMP/staging)")
    g.add_argument("--image", help="dataflow/spark/flink: worker container image (docker/Dockerfile.worker)")
    g.add_argument(
        "--machine-type", default=None, help="dataflow: worker machine type (default n2-standard-4)"
    )
    g.add_argument("--max-workers", type=int, default=None, help="dataflow: max workers (default 10)")
    g.add_argument("--job-name", help="dataflow: job name")
    g.add_argument("--service-account", help="dataflow: worker service account e-mail")
    g.add_argument("--job-endpoint", help="spark/flink: Beam job server HOST:PORT (PortableRunner)")
    g.add_argument("--spark-master", help="spark: spark://HOST:PORT (SparkRunner; starts its own job server)")
    g.add_argument("--flink-master", help="flink: HOST:PORT (FlinkRunner; starts its own job server)")
    g.add_argument("--flink-version", help="flink: Flink version of the job server (FlinkRunner)")


def engine_args(args: argparse.Namespace, dask_address: str | None = None) -> list[str]:
    """The Beam options of the engine picked on the command line (see pipeline.runners.runner_options)."""
    if args.runner not in RUNNERS:
        return [f"--runner={args.runner}"]
    workers = args.workers
    if args.runner == "direct-mp" and workers is None:
        workers = 2
    return runner_options(
        args.runner,
        workers=workers,
        dask_address=dask_address or args.dask_address,
        project=args.project,
        region=args.region,
        temp_location=args.temp_location,
        staging_location=args.staging_location,
        image=args.image,
        machine_type=args.machine_type,
        max_workers=args.max_workers,
        job_name=args.job_name,
        service_account=args.service_account,
        job_endpoint=args.job_endpoint,
        spark_master=args.spark_master,
        flink_master=args.flink_master,
        flink_version=args.flink_version,
    )


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


class ReleaseLayoutError(FileNotFoundError):
    """The root does not look like an Ego-Exo4D download: nothing can be built from it."""


def check_release(cfg: BuildConfig) -> None:
    """Fail before starting any job when the files every take depends on are absent."""
    root = cfg.root.rstrip("/")
    for rel in ("takes.json", "annotations/splits.json"):
        if not FileSystems.exists(f"{root}/{rel}"):
            raise ReleaseLayoutError(
                f"{root}/{rel} not found: --root must be an Ego-Exo4D download "
                "(egoexo -o <root> --parts metadata annotations downscaled_takes/448)"
            )
    if not FileSystems.exists(cfg.offsets_csv):
        raise ReleaseLayoutError(f"frame offset table {cfg.offsets_csv} not found")


def run(cfg: BuildConfig, beam_args: list[str] | None = None) -> dict:
    """Build and return the dataset stats (also written to OUT/stats.json)."""
    check_release(cfg)
    FileSystems.mkdirs(cfg.out) if not FileSystems.exists(cfg.out) else None
    options = PipelineOptions(beam_args or [], save_main_session=False)
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, cfg)
    return read_json(FileSystems.join(cfg.out, "stats.json"))


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
        if args.runner == "dask" and not args.dask_address:
            with local_dask_cluster(args.workers or 2) as address:
                stats = run(cfg, engine_args(args, address) + beam_args)
        else:
            stats = run(cfg, engine_args(args) + beam_args)
    except ReleaseLayoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary(stats, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
