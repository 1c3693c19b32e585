"""Runner option sets for the Ego-ExoClip build, and a Dask runner that can execute it.

`runner_options(name, **kw)` returns the Beam pipeline arguments of one engine as a list of strings (pure: it
starts nothing and touches no file); the CLI (`python -m pipeline.egoexoclip --runner NAME`) maps its flags to it.

    direct      DirectRunner, in process (default)
    direct-mp   DirectRunner, --direct_running_mode=multi_processing, --direct_num_workers=N
    dask        pipeline.core.runners.DaskRunner on a dask.distributed scheduler (--dask_client_address)
    dataflow    Google Cloud Dataflow, Runner v2, workers in our SDK container (--sdk_container_image)
    spark       Spark: PortableRunner against a Beam Spark job server (--job_endpoint), SDK harness in our
                container (--environment_type=DOCKER --environment_options=docker_container_image=IMAGE);
                or SparkRunner with --spark_master_url (it starts a job server from a downloaded jar)
    flink       Flink: the same with a Beam Flink job server, or FlinkRunner with --flink_master

`DaskRunner` (pipeline/dask_runner.py, re-exported here) runs the pipeline on a dask.distributed cluster:
`--runner=pipeline.core.runners.DaskRunner`.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.core.dask_runner import DaskRunner, stable_hash  # noqa: F401  (--runner=...runners.DaskRunner)

RUNNERS = ("direct", "direct-mp", "dask", "dataflow", "spark", "flink")
DASK_RUNNER = "pipeline.core.runners.DaskRunner"
BEAM_DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
REMOTE_SCHEMES = ("gs://", "s3://")
DEFAULT_MACHINE_TYPE = "n2-standard-4"
DEFAULT_MAX_WORKERS = 10
FLINK_VERSIONS = (
    "1.19",
    "1.20",
    "2.0",
    "2.1",
    "2.2",
)  # FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS, Beam 2.77


class RunnerOptionError(ValueError):
    """An invalid or missing runner setting; the message names the flag."""


def _need(flag: str, value, runner: str):
    if value in (None, ""):
        raise RunnerOptionError(f"{flag} is required with --runner {runner}")
    return value


def _host_port(flag: str, value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RunnerOptionError(f"{flag}={value!r}: expected HOST:PORT")
    return value


def _workers(flag: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RunnerOptionError(f"{flag}={value!r}: must be an integer >= 1")
    return value


def _image(flag: str, value: str, runner: str) -> str:
    _need(flag, value, runner)
    if any(c.isspace() for c in value) or value.startswith("-"):
        raise RunnerOptionError(f"{flag}={value!r}: not a container image reference")
    return value


def _direct(**_) -> list[str]:
    return ["--runner=DirectRunner"]


def _direct_mp(workers: int = 2, **_) -> list[str]:
    return [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        f"--direct_num_workers={_workers('--workers', workers)}",
    ]


def _dask(dask_address: str | None = None, **_) -> list[str]:
    address = _need("--dask-address", dask_address, "dask")
    if "://" in address:  # tcp://host:port as dask prints it
        _host_port("--dask-address", address.split("://", 1)[1])
    else:
        _host_port("--dask-address", address)
    return [f"--runner={DASK_RUNNER}", f"--dask_client_address={address}"]


def _dataflow(
    project: str | None = None,
    region: str | None = None,
    temp_location: str | None = None,
    staging_location: str | None = None,
    image: str | None = None,
    machine_type: str = DEFAULT_MACHINE_TYPE,
    max_workers: int = DEFAULT_MAX_WORKERS,
    job_name: str | None = None,
    service_account: str | None = None,
    **_,
) -> list[str]:
    _need("--project", project, "dataflow")
    _need("--region", region, "dataflow")
    _need("--temp-location", temp_location, "dataflow")
    if not temp_location.startswith("gs://"):
        raise RunnerOptionError(f"--temp-location={temp_location!r}: Dataflow needs a gs:// location")
    staging = staging_location or temp_location.rstrip("/") + "/staging"
    if not staging.startswith("gs://"):
        raise RunnerOptionError(f"--staging-location={staging!r}: Dataflow needs a gs:// location")
    _image("--image", image, "dataflow")
    args = [
        "--runner=DataflowRunner",
        f"--project={project}",
        f"--region={region}",
        f"--temp_location={temp_location}",
        f"--staging_location={staging}",
        f"--sdk_container_image={image}",
        "--sdk_location=container",  # the Beam SDK is the one in the image: nothing else is staged
        "--experiments=use_runner_v2",
        "--no_save_main_session",  # every DoFn lives in the installed `pipeline` package
        f"--machine_type={_need('--machine-type', machine_type, 'dataflow')}",
        f"--max_num_workers={_workers('--max-workers', max_workers)}",
    ]
    if job_name:
        args.append(f"--job_name={job_name}")
    if service_account:
        args.append(f"--service_account_email={service_account}")
    return args


def _portable(
    engine: str,
    job_endpoint: str | None,
    master: str | None,
    image: str | None,
    parallelism: int | None,
    flink_version: str | None = None,
) -> list[str]:
    _image("--image", image, engine)
    env = ["--environment_type=DOCKER", f"--environment_options=docker_container_image={image}"]
    common = ["--no_save_main_session", *env]
    if parallelism is not None:
        common.append(f"--sdk_worker_parallelism={_workers('--workers', parallelism)}")
    if job_endpoint and master:
        raise RunnerOptionError(
            f"--job-endpoint and --{engine}-master exclude each other (--runner {engine})"
        )
    if job_endpoint:  # a running Beam job server for the engine (beam_<engine>_job_server container)
        return [
            "--runner=PortableRunner",
            f"--job_endpoint={_host_port('--job-endpoint', job_endpoint)}",
            *common,
        ]
    if not master:
        raise RunnerOptionError(f"--job-endpoint (or --{engine}-master) is required with --runner {engine}")
    if engine == "spark":
        if not master.startswith(("spark://", "local")):
            raise RunnerOptionError(f"--spark-master={master!r}: expected spark://HOST:PORT")
        return ["--runner=SparkRunner", f"--spark_master_url={master}", "--spark_version=3", *common]
    if flink_version and flink_version not in FLINK_VERSIONS:
        raise RunnerOptionError(f"--flink-version={flink_version!r}: expected one of {FLINK_VERSIONS}")
    _host_port("--flink-master", master.split("://", 1)[-1])
    args = ["--runner=FlinkRunner", f"--flink_master={master}", *common]
    if flink_version:
        args.append(f"--flink_version={flink_version}")
    return args


def _spark(job_endpoint=None, spark_master=None, image=None, workers=None, **_) -> list[str]:
    return _portable("spark", job_endpoint, spark_master, image, workers)


def _flink(
    job_endpoint=None, flink_master=None, image=None, workers=None, flink_version=None, **_
) -> list[str]:
    return _portable("flink", job_endpoint, flink_master, image, workers, flink_version)


_BUILDERS: dict[str, Callable[..., list[str]]] = {
    "direct": _direct,
    "direct-mp": _direct_mp,
    "dask": _dask,
    "dataflow": _dataflow,
    "spark": _spark,
    "flink": _flink,
}


def runner_options(runner: str, **kw) -> list[str]:
    """Beam pipeline arguments of one engine.

    kw (unused ones are ignored, None means unset): workers (direct-mp processes; spark/flink SDK workers per
    node), dask_address, project, region, temp_location, staging_location, image, machine_type, max_workers,
    job_name, service_account (dataflow), job_endpoint, spark_master, flink_master, flink_version."""
    if runner not in _BUILDERS:
        raise RunnerOptionError(f"--runner={runner!r}: expected one of {RUNNERS}")
    return _BUILDERS[runner](**{k: v for k, v in kw.items() if v is not None})


def check_io_paths(runner: str, inputs: list[tuple[str, str]], out: str) -> None:
    """Remote engines read and write through Beam's filesystems: every input (what, path) and --out must be
    gs:// or s3://."""
    if runner not in ("dataflow", "spark", "flink"):
        return
    for flag, value in (*inputs, ("--out", out)):
        if not value.startswith(REMOTE_SCHEMES):
            raise RunnerOptionError(
                f"{flag}={value!r}: --runner {runner} workers share no disk with this machine; "
                "use a gs:// or s3:// path"
            )
