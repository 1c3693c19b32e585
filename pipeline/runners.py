"""Runner option sets for the Ego-ExoClip build, and a Dask runner that can execute it.

`runner_options(name, **kw)` returns the Beam pipeline arguments of one engine as a list of strings (pure: it
starts nothing and touches no file); the CLI (`python -m pipeline.egoexoclip --runner NAME`) maps its flags to it.

    direct      DirectRunner, in process (default)
    direct-mp   DirectRunner, --direct_running_mode=multi_processing, --direct_num_workers=N
    dask        pipeline.runners.DaskRunner on a dask.distributed scheduler (--dask_client_address)
    dataflow    Google Cloud Dataflow, Runner v2, workers in our SDK container (--sdk_container_image)
    spark       Spark: PortableRunner against a Beam Spark job server (--job_endpoint), SDK harness in our
                container (--environment_type=DOCKER --environment_options=docker_container_image=IMAGE);
                or SparkRunner with --spark_master_url (it starts a job server from a downloaded jar)
    flink       Flink: the same with a Beam Flink job server, or FlinkRunner with --flink_master

`DaskRunner` (use it as `--runner=pipeline.runners.DaskRunner`) is Beam's
`apache_beam.runners.dask.dask_runner.DaskRunner` with its graph translation fixed for this pipeline. The Beam
2.77 translation cannot run it: a multi-output ParDo (`.with_outputs(...)`, used by every step here) sends the
elements of every output to every consumer; side inputs are computed by a nested `compute()` inside the consuming
task (the upstream graph runs again inside one worker, side effects included); only the last transform's bag is
computed; Reshuffle is a no-op, so everything stays in one partition (no parallelism). This translation keys bags
by PCollection, filters each tagged output, hands side inputs to tasks as graph dependencies (computed once, by
the scheduler), computes every leaf, shuffles GroupByKey by a process-independent key hash, and turns Reshuffle
into a repartition over the cluster's workers. Dask reruns the tasks of a worker that dies (up to
`distributed.scheduler.allowed-failures` times); shard writes are idempotent (temporary name, rename, commit
marker written last), so a rerun gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import typing as t

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.runners.common import Receiver
from apache_beam.runners.dask import dask_runner as beam_dask
from apache_beam.runners.dask import overrides as dask_ovr
from apache_beam.runners.runner import PipelineState

LOG = logging.getLogger(__name__)

RUNNERS = ("direct", "direct-mp", "dask", "dataflow", "spark", "flink")
DASK_RUNNER = "pipeline.runners.DaskRunner"
BEAM_DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
REMOTE_SCHEMES = ("gs://", "s3://")
DEFAULT_MACHINE_TYPE = "n2-standard-4"
DEFAULT_MAX_WORKERS = 10
FLINK_VERSIONS = ("1.19", "1.20", "2.0", "2.1", "2.2")  # FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS, Beam 2.77


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
        raise RunnerOptionError(f"--job-endpoint and --{engine}-master exclude each other (--runner {engine})")
    if job_endpoint:  # a running Beam job server for the engine (beam_<engine>_job_server container)
        return ["--runner=PortableRunner", f"--job_endpoint={_host_port('--job-endpoint', job_endpoint)}", *common]
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


def _flink(job_endpoint=None, flink_master=None, image=None, workers=None, flink_version=None, **_) -> list[str]:
    return _portable("flink", job_endpoint, flink_master, image, workers, flink_version)


_BUILDERS: dict[str, t.Callable[..., list[str]]] = {
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


def check_io_paths(runner: str, root: str, out: str) -> None:
    """Remote engines read and write through Beam's filesystems: --root and --out must be gs:// or s3://."""
    if runner not in ("dataflow", "spark", "flink"):
        return
    for flag, value in (("--root", root), ("--out", out)):
        if not value.startswith(REMOTE_SCHEMES):
            raise RunnerOptionError(
                f"{flag}={value!r}: --runner {runner} workers share no disk with this machine; "
                "use a gs:// or s3:// path"
            )


# --------------------------------------------------------------------------------------------------------------
# Dask


def stable_hash(key) -> int:
    """A hash of a GroupByKey key that is the same in every process (Python's hash of str/None is not)."""
    return int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "big")


class _ListReceiver(Receiver):
    def __init__(self, tag: str | None, out: list):
        self.tag, self.out = tag, out

    def receive(self, windowed_value):
        self.out.append((self.tag, windowed_value.value))


class _Receivers(dict):
    def __init__(self, out: list):
        super().__init__()
        self.out = out

    def __missing__(self, tag):
        self[tag] = _ListReceiver(tag, self.out)
        return self[tag]


def _run_dofn_bundle(items, spec: dict, *side_parts):
    """One Dask partition = one Beam bundle: setup, start, process each element, finish, teardown.

    Returns [(tag, value)] (tag None for the main output). `side_parts[i]` holds the partitions of side input i."""
    from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, _OutputHandler
    from apache_beam.runners.dask.transform_evaluator import get_windowed_value
    from apache_beam.transforms.sideinputs import SideInputMap

    out: list = []
    receivers = _Receivers(out)
    side_inputs = [
        SideInputMap(
            view_class,
            view_options,
            [get_windowed_value(v, None) for part in parts for v in part],
        )
        for (view_class, view_options), parts in zip(spec["side_specs"], side_parts, strict=True)
    ]
    handler = _OutputHandler(
        window_fn=spec["window_fn"],
        main_receivers=receivers[None],
        tagged_receivers=receivers,
        per_element_output_counter=None,
        output_batch_converter=None,
        process_yields_batches=False,
        process_batch_yields_elements=False,
    )
    invoker = DoFnInvoker.create_invoker(
        DoFnSignature(spec["fn"]),
        handler,
        context=DoFnContext(spec["label"], state=None),
        side_inputs=side_inputs,
        input_args=spec["args"],
        input_kwargs=spec["kwargs"],
        user_state_context=None,
        bundle_finalizer_param=beam.DoFn.BundleFinalizerParam(),
    )
    invoker.invoke_setup()
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(get_windowed_value(item, spec["window_fn"]))
    invoker.invoke_finish_bundle()
    invoker.invoke_teardown()
    return out


def _select(pairs, tag):
    return [v for k, v in pairs if k == tag]


def _as_list(part):
    return list(part)


def _group_values(group):
    """(hash, [(key, windowed value)]) -> [(key, [values])]; keys that share a hash are told apart here."""
    from apache_beam.runners.dask.transform_evaluator import defenestrate

    _, items = group
    grouped: list[tuple[t.Any, list]] = []
    for k, v in items:
        for gk, values in grouped:
            if gk == k:
                values.append(defenestrate(v))
                break
        else:
            grouped.append((k, [defenestrate(v)]))
    return grouped


def _ungroup(groups):
    return [kv for group in groups for kv in _group_values(group)]


def _group_key(item):
    return stable_hash(item[0])


@dataclasses.dataclass
class _Translator(beam.pipeline.PipelineVisitor):
    """Beam leaf transforms -> dask bags, one bag per PCollection."""

    spread: int
    bag_kwargs: dict = dataclasses.field(default_factory=dict)
    bags: dict = dataclasses.field(default_factory=dict)
    consumed: set = dataclasses.field(default_factory=set)
    order: list = dataclasses.field(default_factory=list)

    def _input(self, node):
        bags = [self.bags[p] for p in node.inputs if not isinstance(p, pvalue.PBegin)]
        for p in node.inputs:
            self.consumed.add(id(p))
        return bags

    def visit_transform(self, node) -> None:
        import dask.bag as db

        transform = node.transform
        kind = type(transform)
        inputs = self._input(node)
        for si in node.side_inputs:
            self.consumed.add(id(si.pvalue))
        outputs = {tag: pc for tag, pc in node.outputs.items() if isinstance(pc, pvalue.PCollection)}
        if kind is dask_ovr._Create:
            size = self.bag_kwargs.get("partition_size")
            parts = self.bag_kwargs.get("npartitions") or (None if size else 1)
            bag = db.from_sequence(list(transform.values) or [], npartitions=parts, partition_size=size)
        elif kind is beam.ParDo:
            bag = self._pardo(node, inputs[0])
            for tag, pc in outputs.items():  # the main output is keyed None
                self._set(pc, bag.map_partitions(_select, None if tag in (None, "None") else tag))
            return
        elif kind is dask_ovr._GroupByKeyOnly:
            bag = inputs[0].groupby(_group_key, shuffle="tasks").map_partitions(_ungroup)
        elif kind is dask_ovr._Flatten:
            bag = db.concat(inputs) if inputs else db.from_sequence([], npartitions=1)
        elif kind is dask_ovr._Reshuffle:
            src = inputs[0]
            bag = src.repartition(npartitions=max(src.npartitions, self.spread))
        elif inputs and len(inputs) == 1:  # identity (e.g. _GroupAlsoByWindow, windowing no-ops)
            bag = inputs[0]
        else:
            raise NotImplementedError(f"pipeline.runners.DaskRunner cannot translate {transform.label} ({kind})")
        for pc in outputs.values():
            self._set(pc, bag)

    def _set(self, pc, bag):
        self.bags[pc] = bag
        self.order.append(pc)

    def _pardo(self, node, input_bag):
        transform = node.transform
        args, kwargs = transform.raw_side_inputs
        main = next(iter(node.main_inputs.values()))
        side_specs, side_bags = [], []
        for si in node.side_inputs:
            side_specs.append((type(si), si._view_options()))
            side_bags.append(self.bags[si.pvalue].map_partitions(_as_list).to_delayed(optimize_graph=False))
        spec = {
            "fn": transform.fn,
            "label": transform.label,
            "args": list(args),
            "kwargs": kwargs,
            "window_fn": main.windowing.windowfn if hasattr(main, "windowing") else None,
            "side_specs": side_specs,
        }
        return input_bag.map_partitions(_run_dofn_bundle, spec, *side_bags)

    def leaves(self):
        return [self.bags[pc] for pc in self.order if id(pc) not in self.consumed]


class DaskRunnerResult(beam_dask.DaskRunnerResult):
    """Waits for every leaf, then closes the runner's client (the cluster stays up)."""

    def wait_until_finish(self, duration=None) -> str:
        try:
            return super().wait_until_finish(duration)
        finally:
            if self._state in (PipelineState.DONE, PipelineState.FAILED):
                self.client.close()


class DaskRunner(beam_dask.DaskRunner):
    """Beam's DaskRunner with a translation that runs multi-output ParDos and side inputs (see module doc)."""

    def run_pipeline(self, pipeline, options):
        import dask.distributed as ddist

        dask_options = options.view_as(beam_dask.DaskOptions).get_all_options(drop_default=True, current_only=True)
        bag_kwargs = beam_dask.DaskOptions._extract_bag_kwargs(dask_options)
        client = ddist.Client(**dask_options)
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        pipeline.replace_all(dask_overrides())
        translator = _Translator(spread=2 * n_workers, bag_kwargs=bag_kwargs)
        pipeline.visit(translator)
        leaves = translator.leaves()
        LOG.info("dask: %d workers, %d leaf bags", n_workers, len(leaves))
        futures = client.compute(leaves)
        return DaskRunnerResult(client, futures)


def dask_overrides():
    return dask_ovr.dask_overrides()
