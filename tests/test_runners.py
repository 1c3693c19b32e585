"""Runners: the same build on DirectRunner (in process, multi-process), on Dask (a dask.distributed cluster of
worker processes started here), and the Dataflow / Spark / Flink pipelines and options, constructed but not run.

Faults: a Dask worker process killed mid-build, and a DirectRunner build killed and resumed; both must give the
same bytes as an undisturbed build. Builds here are the val split of the bundled sample (2 shards of <= 20)."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import (
    DebugOptions,
    GoogleCloudOptions,
    PipelineOptions,
    PortableOptions,
    SetupOptions,
    StandardOptions,
    WorkerOptions,
)
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.transforms import environments

from pipeline.core.cli import engine_args
from pipeline.core.runners import RUNNERS, RunnerOptionError, runner_options, stable_hash
from pipeline.egoexoclip import BuildConfig, build_pipeline, main, parse_args, run

REPO = Path(__file__).resolve().parent.parent
SHARD = 20
SPLITS = ("val",)
IMAGE = "europe-docker.pkg.dev/proj/exo2ego/worker:2.77.0-1"


def _cfg(root: str, out, **over) -> BuildConfig:
    return BuildConfig(root=root, out=str(out), splits=SPLITS, max_samples_per_shard=SHARD, **over)


def _files(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir()) if p.is_file()}


def _assert_same(out: Path, ref: Path):
    assert not list(out.rglob("*.tmp")), "temporary files left behind"
    got, want = _files(out), _files(ref)
    assert sorted(got) == sorted(want)
    assert [n for n in want if got[n] != want[n]] == []
    assert sum(n.endswith(".tar") for n in want) >= 2


@pytest.fixture(scope="module")
def reference(sample_root, tmp_path_factory) -> Path:
    """The undisturbed in-process DirectRunner build every other build is compared with."""
    out = tmp_path_factory.mktemp("ref")
    run(_cfg(sample_root, out), runner_options("direct"))
    return out


# ------------------------------------------------------------------------------------------------ real builds


def _cli_args(sample_root: str, out: Path) -> list[str]:
    """The CLI arguments of the reference build's options."""
    return [
        "--root",
        sample_root,
        "--out",
        str(out),
        "--splits",
        "val",
        "--max-samples-per-shard",
        str(SHARD),
    ]


def test_dask_build_from_the_cli_is_byte_identical(sample_root, reference, tmp_path):
    """`--runner dask` with no address: the CLI starts a LocalCluster of 2 worker processes, builds, closes it."""
    out = tmp_path / "dask"
    assert main([*_cli_args(sample_root, out), "--runner", "dask", "--workers", "2"]) == 0
    _assert_same(out, reference)


def test_direct_multiprocessing_build_is_byte_identical(sample_root, reference, tmp_path):
    out = tmp_path / "mp"
    run(_cfg(sample_root, out), runner_options("direct-mp", workers=2))
    _assert_same(out, reference)


def _worker_pids(client) -> dict[str, int]:
    return client.run(os.getpid)


def test_killing_a_dask_worker_mid_build_still_gives_the_same_output(sample_root, reference, tmp_path):
    """SIGKILL one worker process while a shard is being written: dask reruns its tasks on the other worker
    (the nanny restarts the killed one); the build completes in the same run, identical to the reference."""
    from dask.distributed import Client, LocalCluster

    out = tmp_path / "dask-fault"
    out.mkdir()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        client = Client(cluster)
        pids = _worker_pids(client)
        assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
        result: dict = {}

        def build():
            try:
                result["stats"] = run(
                    _cfg(sample_root, out), runner_options("dask", dask_address=cluster.scheduler_address)
                )
            except BaseException as err:  # reported by the assertion below
                result["error"] = err

        thread = threading.Thread(target=build, daemon=True)
        thread.start()
        deadline = time.monotonic() + 240
        while not list(out.glob("*.tar.tmp")) and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert thread.is_alive(), f"the build ended before any shard write was seen: {result}"
        busy = [addr for addr, keys in client.processing().items() if keys] or list(pids)
        victim = pids[busy[0]]
        os.kill(victim, signal.SIGKILL)
        killed_during = sorted(p.name for p in out.iterdir())
        thread.join(timeout=300)
        assert not thread.is_alive(), "the build did not finish after the worker was killed"
        assert "error" not in result, result.get("error")
        new_pids = _worker_pids(client)
        client.close()
    assert victim not in new_pids.values()  # the worker really died (and was replaced by its nanny)
    assert "stats.json" not in killed_during
    _assert_same(out, reference)


def test_interrupted_direct_build_resumes_to_the_same_output(sample_root, reference, tmp_path):
    out = tmp_path / "resume"
    cmd = [sys.executable, "-m", "pipeline.egoexoclip", *_cli_args(sample_root, out)]
    proc = subprocess.Popen(
        cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline and not list(out.glob("*_stats.json")):
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    markers = sorted(p.name for p in out.glob("*_stats.json"))
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be interrupted"
    assert markers and not (out / "stats.json").exists()
    kept = {m: (out / m).stat().st_mtime_ns for m in markers}
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {m: (out / m).stat().st_mtime_ns for m in markers} == kept  # complete shards were not rebuilt
    _assert_same(out, reference)


# ------------------------------------------------------------------------------ option sets and CLI mapping


def test_runner_option_sets():
    assert runner_options("direct") == ["--runner=DirectRunner"]
    assert runner_options("direct-mp", workers=3) == [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=3",
    ]
    assert runner_options("dask", dask_address="tcp://10.0.0.2:8786") == [
        "--runner=pipeline.core.runners.DaskRunner",
        "--dask_client_address=tcp://10.0.0.2:8786",
    ]
    df = runner_options(
        "dataflow", project="p", region="us-central1", temp_location="gs://b/tmp", image=IMAGE
    )
    assert "--staging_location=gs://b/tmp/staging" in df and "--experiments=use_runner_v2" in df
    spark = runner_options("spark", job_endpoint="jobserver:8099", image=IMAGE)
    assert spark[:2] == ["--runner=PortableRunner", "--job_endpoint=jobserver:8099"]
    assert runner_options("spark", spark_master="spark://m:7077", image=IMAGE)[0] == "--runner=SparkRunner"
    assert runner_options("flink", flink_master="m:8081", image=IMAGE, flink_version="1.20")[0] == (
        "--runner=FlinkRunner"
    )


@pytest.mark.parametrize(
    ("runner", "kw", "flag"),
    [
        ("nope", {}, "--runner"),
        ("direct-mp", {"workers": 0}, "--workers"),
        ("dask", {}, "--dask-address"),
        ("dask", {"dask_address": "localhost"}, "--dask-address"),
        ("dataflow", {"region": "r", "temp_location": "gs://b/t", "image": IMAGE}, "--project"),
        ("dataflow", {"project": "p", "temp_location": "gs://b/t", "image": IMAGE}, "--region"),
        (
            "dataflow",
            {"project": "p", "region": "r", "temp_location": "/tmp/t", "image": IMAGE},
            "--temp-location",
        ),
        ("dataflow", {"project": "p", "region": "r", "temp_location": "gs://b/t"}, "--image"),
        (
            "dataflow",
            {"project": "p", "region": "r", "temp_location": "gs://b/t", "image": IMAGE, "max_workers": 0},
            "--max-workers",
        ),
        ("spark", {"image": IMAGE}, "--job-endpoint"),
        ("spark", {"job_endpoint": "host", "image": IMAGE}, "--job-endpoint"),
        ("spark", {"job_endpoint": "h:1"}, "--image"),
        ("spark", {"spark_master": "yarn", "image": IMAGE}, "--spark-master"),
        ("flink", {"flink_master": "m:8081", "image": IMAGE, "flink_version": "0.9"}, "--flink-version"),
    ],
)
def test_runner_option_errors_name_the_flag(runner, kw, flag):
    with pytest.raises(RunnerOptionError, match=re.escape(flag)):
        runner_options(runner, **kw)


def test_cli_maps_runner_flags_and_passes_the_rest_to_beam(capsys):
    base = ["--root", "gs://b/egoexo4d", "--out", "gs://b/egoexoclip"]
    _, beam_args, args = parse_args(
        [*base, "--runner", "dataflow", "--project", "p", "--region", "r", "--temp-location", "gs://b/tmp",
         "--image", IMAGE, "--max-workers", "40", "--dataflow_service_options=enable_prime"]
    )  # fmt: skip
    assert beam_args == ["--dataflow_service_options=enable_prime"]
    assert "--max_num_workers=40" in engine_args(args)
    _, _, args = parse_args(["--root", "r", "--out", "o", "--runner", "direct-mp"])
    assert engine_args(args)[-1] == "--direct_num_workers=2"
    _, _, args = parse_args(
        ["--root", "r", "--out", "o", "--runner", "apache_beam.runners.dask.dask_runner.DaskRunner"]
    )
    assert engine_args(args) == ["--runner=apache_beam.runners.dask.dask_runner.DaskRunner"]
    for argv, flag in [
        ([*base, "--runner", "dataflow", "--region", "r", "--temp-location", "gs://b/t", "--image", IMAGE], "--project"),
        (["--root", "/data/x", "--out", "gs://b/o", "--runner", "spark", "--job-endpoint", "h:8099", "--image", IMAGE], "--root"),
        (["--root", "gs://b/x", "--out", "out", "--runner", "flink", "--job-endpoint", "h:8099", "--image", IMAGE], "--out"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert flag in capsys.readouterr().err


def test_dask_group_hash_is_process_independent():
    code = "from pipeline.core.runners import stable_hash; print(stable_hash(None), stable_hash('take-1'), stable_hash(('a', 1)))"
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    outs = {
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO).stdout
        for _ in range(2)
    }
    assert outs == {f"{stable_hash(None)} {stable_hash('take-1')} {stable_hash(('a', 1))}\n"}


# ------------------------------------------------------ Dataflow / Spark / Flink: construct, never submit


def _constructed(argv: list[str]):
    """CLI argv -> (options, pipeline with the full build graph, its runner API proto); nothing runs, no gs://."""
    cfg, beam_args, args = parse_args(argv)
    options = PipelineOptions(engine_args(args) + beam_args)
    p = beam.Pipeline(options=options)
    build_pipeline(p, cfg)  # reads only the local frame-offset table
    env = environments.Environment.from_options(options.view_as(PortableOptions))
    proto = p.to_runner_api(default_environment=env)
    return cfg, options, p, proto


def _labels(proto) -> set[str]:
    return {t.unique_name for t in proto.components.transforms.values()}


def _docker_images(proto) -> set[str]:
    images = set()
    for env in proto.components.environments.values():
        if env.urn == common_urns.environments.DOCKER.urn:
            images.add(beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image)
    return images


def _make_command(target: str, **variables) -> list[str]:
    """The CLI arguments `make <target>` would run (make -n: printed, not executed)."""
    printed = subprocess.run(
        ["make", "-n", target, *(f"{k}={v}" for k, v in variables.items())],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.replace("\\\n", " ")  # fmt: skip
    line = next(line for line in printed.splitlines() if "-m pipeline.egoexoclip" in line)
    return shlex.split(line.split("-m pipeline.egoexoclip", 1)[1])


def test_make_submit_dataflow_builds_a_valid_dataflow_pipeline():
    argv = _make_command(
        "submit-dataflow", PROJECT="exo-proj", REGION="us-central1", BUCKET="gs://exo-bucket", IMAGE=IMAGE,
        EGOEXO4D_ROOT="gs://exo-bucket/egoexo4d", OUT="gs://exo-bucket/egoexoclip",
    )  # fmt: skip
    cfg, options, p, proto = _constructed(argv)
    assert (cfg.root, cfg.out) == ("gs://exo-bucket/egoexo4d", "gs://exo-bucket/egoexoclip")
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    assert type(p.runner).__name__ == "DataflowRunner"
    gcp = options.view_as(GoogleCloudOptions)
    assert (gcp.project, gcp.region) == ("exo-proj", "us-central1")
    assert (gcp.temp_location, gcp.staging_location) == ("gs://exo-bucket/tmp", "gs://exo-bucket/tmp/staging")
    workers = options.view_as(WorkerOptions)
    assert workers.sdk_container_image == IMAGE
    assert (workers.machine_type, workers.max_num_workers) == ("n2-standard-4", 10)
    assert "use_runner_v2" in options.view_as(DebugOptions).experiments
    setup = options.view_as(SetupOptions)
    assert setup.save_main_session is False and setup.sdk_location == "container"
    labels = _labels(proto)
    for step in ("ReadTakes", "ReadNarrations", "PlanClips", "AssignShards", "WriteShards", "Finalize"):
        assert step in labels
    assert beam_runner_api_pb2.Pipeline.FromString(proto.SerializeToString()) == proto


@pytest.mark.parametrize("engine", ["spark", "flink"])
def test_portable_spark_and_flink_pipelines_use_the_worker_container(engine):
    root, out = "s3://exo-bucket/egoexo4d", "s3://exo-bucket/egoexoclip"
    if engine == "spark":
        argv = _make_command(
            "submit-spark",
            SPARK_JOB_ENDPOINT="spark-jobserver:8099",
            IMAGE=IMAGE,
            EGOEXO4D_ROOT=root,
            OUT=out,
        )
    else:
        argv = ["--root", root, "--out", out, "--runner", "flink", "--job-endpoint", "flink-jobserver:8099",
                "--image", IMAGE]  # fmt: skip
    _, options, p, proto = _constructed(argv)
    portable = options.view_as(PortableOptions)
    assert options.view_as(StandardOptions).runner == "PortableRunner"
    assert portable.job_endpoint == f"{engine}-jobserver:8099"
    assert portable.environment_type == "DOCKER"
    assert portable.lookup_environment_option("docker_container_image") == IMAGE
    assert options.view_as(SetupOptions).save_main_session is False
    assert _docker_images(proto) == {IMAGE}
    assert "WriteShards" in _labels(proto)


def test_spark_and_flink_runner_flag_sets_construct():
    """SparkRunner / FlinkRunner (they start a job server from a downloaded jar when run; not run here)."""
    from apache_beam.options.pipeline_options import FlinkRunnerOptions, SparkRunnerOptions

    spark = PipelineOptions(runner_options("spark", spark_master="spark://master:7077", image=IMAGE))
    assert spark.view_as(SparkRunnerOptions).spark_master_url == "spark://master:7077"
    flink = PipelineOptions(
        runner_options("flink", flink_master="master:8081", image=IMAGE, flink_version="1.20")
    )
    assert flink.view_as(FlinkRunnerOptions).flink_master == "master:8081"
    assert flink.view_as(FlinkRunnerOptions).flink_version == "1.20"
    for options in (spark, flink):
        p = beam.Pipeline(options=options)
        build_pipeline(p, BuildConfig(root="gs://b/in", out="gs://b/out"))
        assert p.to_runner_api().components.transforms


def test_every_runner_has_a_documented_flag_set():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Running on a cluster", 1)[1]
    for runner in RUNNERS:
        assert f"--runner {runner}" in section


# ------------------------------------------------------------------------------------ worker container


def _dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _requirements() -> list[str]:
    lines = [
        *(REPO / "requirements.txt").read_text().splitlines(),
        *(REPO / "requirements-cloud.txt").read_text().splitlines(),
    ]
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_worker_dockerfile_installs_exactly_the_pinned_requirements():
    reqs = _requirements()
    assert reqs and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+\-]+", r) for r in reqs), reqs
    beam_pin = next(r.split("==")[1] for r in reqs if r.startswith("apache-beam"))
    steps = _dockerfile_instructions(REPO / "docker" / "Dockerfile.worker")
    assert steps[0] == ("FROM", f"apache/beam_python3.11_sdk:{beam_pin}")
    copies = [rest for op, rest in steps if op == "COPY"]
    assert any("requirements.txt" in c for c in copies)
    assert {"pipeline pipeline", "schemas schemas"} <= set(copies)
    installs = []
    for op, rest in steps:
        if op != "RUN":
            continue
        commands: list[list[str]] = [[]]
        for word in shlex.split(rest):
            if word in ("&&", ";", "||"):
                commands.append([])
            else:
                commands[-1].append(word)
        for words in commands:
            command = " ".join(words)
            if words[:2] in (["pip", "install"], ["python", "-m"]) and "install" in words:
                installs.append(words[words.index("install") + 1 :])
            assert "apt-get" not in words and "conda" not in words, command  # ffmpeg comes from the wheel
    assert len(installs) == 2
    requirement_install, package_install = installs
    files = [requirement_install[i + 1] for i, w in enumerate(requirement_install) if w == "-r"]
    assert files == ["requirements.txt", "requirements-cloud.txt"]
    for words in installs:
        targets = [
            w
            for i, w in enumerate(words)
            if not w.startswith("-") and words[i - 1] not in ("-r", "--extra-index-url", "--index-url")
        ]
        assert all(w in ("requirements.txt", ".") for w in targets), f"unpinned install target in {words}"
    assert "--no-deps" in package_install and package_install[-1] == "."
    assert not any(op == "ENTRYPOINT" for op, _ in steps)  # the Beam SDK harness boot entrypoint stays
