"""A Dask runner for the Ego-ExoClip build.

`DaskRunner` (use it as `--runner=pipeline.core.runners.DaskRunner`) is Beam's
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
            raise NotImplementedError(
                f"pipeline.core.runners.DaskRunner cannot translate {transform.label} ({kind})"
            )
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

        dask_options = options.view_as(beam_dask.DaskOptions).get_all_options(
            drop_default=True, current_only=True
        )
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
