"""The skeleton every dataset builder runs on: a dataset is a `Builder`, the machinery is written once.

As in Hugging Face `datasets` (a `DatasetBuilder` supplies `_info`, `_split_generators`, `_generate_examples`;
download, caching and writing are the library's) and lmms-eval's task registry, a dataset package supplies
only what is its own, and `pipeline.core` drives it:

    Builder.name / title / group_unit   python -m pipeline.<name>, the shard prefix; "video", "take", ...
    Builder.add_arguments(ap)           its own command-line options
    Builder.config(args, clip)          its validated config (ValueError, e.g. ConfigError, names the option)
    Builder.inputs(cfg)                 every input root of every source: [(what, path)], checked up front
    Builder.check_inputs(cfg)           deeper checks of required files (InputError, one line)
    Builder.build_pipeline(p, cfg)      read -> plan per video -> decode once, cut -> write -> finalize,
                                        wired from the core's composites and its own readers and plans
    Builder.summary(stats, seconds)     the lines printed at the end

The core owns the rest: the command line front (pipeline/core/front.py: option typo checks, runner flags,
logging, --quiet, the progress bar, exit status), OUT and root checks, OUT's lock and the build session,
running the Beam pipeline and reading back stats.json (`run`). A config needs `.out` and `.overwrite`.
"""

from __future__ import annotations

import argparse
import contextlib

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.core.clips import ClipFormat
from pipeline.core.inputs import InputError, check_out, check_root
from pipeline.core.session import OutLocked, build_session
from pipeline.core.writer import read_json


class Builder:
    """One dataset over the core's skeleton (see the module docstring); subclasses override the methods."""

    name = ""  # the package (python -m pipeline.<name>), the shard prefix and the Metrics namespace
    title = ""  # for messages: "EgoIT"
    description = ""  # the command line's description
    group_unit = "video"  # one group of the shard writer: what the progress bar counts

    def add_arguments(self, ap: argparse.ArgumentParser) -> None:
        """The dataset's own options (the front adds --out, clip, shard, runner and logging options)."""

    def config(self, args: argparse.Namespace, clip: ClipFormat):
        raise NotImplementedError

    def inputs(self, cfg) -> list[tuple[str, str]]:
        """(what, path) of every input root and required file; `what` names the option or config key."""
        raise NotImplementedError

    def check_inputs(self, cfg) -> None:
        """Checks of the dataset's required files beyond their existence (InputError, one line)."""

    def build_pipeline(self, p: beam.Pipeline, cfg) -> None:
        raise NotImplementedError

    def rows_read(self, stats: dict) -> dict[str, int]:
        """Rows of each source's annotation files (read or rejected) in a build's stats, for the loss check
        (`source_losses`); {} where the builder checks its files completely before the build instead."""
        return {}

    def source_of(self, failure: dict) -> str | None:
        """The source of a lost annotation row or file (an errors.jsonl line), or None for other losses
        (items dropped by design, videos)."""
        return failure.get("source") if failure.get("scope") in ("file", "record") else None

    def summary_lines(self, stats: dict) -> list[str]:
        """The dataset's own lines of the summary (counts by source, split or task)."""
        return []

    def summary(self, stats: dict, seconds: float) -> str:
        """What the command line prints at the end: samples, the dataset's lines, failures by reason."""
        lines = [f"{self.title} build finished in {seconds:.1f}s: {stats['samples']} samples"]
        lines += self.summary_lines(stats)
        lines += [f"  failed {reason}: {n}" for reason, n in stats["failures_by_scope_and_reason"].items()]
        return "\n".join(lines)

    def inputs_of_entries(self, entries, key: str) -> list[tuple[str, str]]:
        """inputs() of a config's entries (EgoIT sources, EgoBench benchmarks): each entry's root, and its
        annotations and videos where they are not the root, named "<key>.<name>.<field>"."""
        found = []
        for e in entries:
            paths = {"root": e.root, "annotations": e.annotations, "videos": e.videos}
            found += [(f"{key}.{e.name}.{k}", p) for k, p in paths.items() if k == "root" or p != e.root]
        return found


def split_lines(splits: dict, *fields: str) -> list[str]:
    """'  <split>: <n> <field>, ...' per split (or task) of the stats."""
    return [f"  {split}: " + ", ".join(f"{d[f]} {f}" for f in fields) for split, d in splits.items()]


def check_build_inputs(builder: Builder, cfg) -> None:
    """Everything a build cannot go without, before any work: OUT usable (not a file, writable or
    creatable), every input root present, the builder's own checks; OUT is created last."""
    check_out(cfg.out, create=False)
    for what, path in builder.inputs(cfg):
        check_root(what, path)
    builder.check_inputs(cfg)
    check_out(cfg.out, create=True)


def run(builder: Builder, cfg, beam_args: list[str] | None = None, *, checked: bool = False) -> dict:
    """Build and return the dataset stats (also written to OUT/stats.json). The inputs and OUT are checked
    first (`checked` when the caller already did), so a build that cannot work fails before any work with
    InputError.

    The build holds a session (pipeline/core/session.py): OUT's lock (another build holding it: InputError at
    once), its own work directory for temporary files, and a SIGTERM handler (exit status 143)."""
    if not checked:
        check_build_inputs(builder, cfg)
    options = PipelineOptions(beam_args or [], save_main_session=False)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(build_session(cfg.out))
        except OutLocked as err:
            raise InputError(str(err)) from None
        with beam.Pipeline(options=options) as p:
            builder.build_pipeline(p, cfg)
    return read_json(FileSystems.join(cfg.out, "stats.json"))


def source_losses(builder: Builder, stats: dict, failures: list[dict]) -> dict[str, dict]:
    """{source: {"read": rows, "lost": rows rejected, "files_failed": n, "reasons": {reason: n}}} of a build."""
    found = {name: {"read": n, "lost": 0, "files_failed": 0, "reasons": {}} for name, n in builder.rows_read(stats).items()}
    for f in failures:
        source = builder.source_of(f)
        if source is None or source not in found:
            continue
        d = found[source]
        d["files_failed" if f["scope"] == "file" else "lost"] += 1
        d["reasons"][f["reason"]] = d["reasons"].get(f["reason"], 0) + 1
    return found


def loss_problems(losses: dict[str, dict], max_share: float) -> list[str]:
    """One line per source that lost more than max_share of its rows, or all of them (a file that could not
    be read, an empty one): what a build must not pass over silently. max_share 1 accepts any loss."""
    if max_share >= 1:
        return []
    problems = []
    for source, d in sorted(losses.items()):
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(d["reasons"].items())) or "no rows"
        if d["read"] == 0:
            problems.append(f"{source}: no row read ({reasons})")
        elif d["lost"] / d["read"] > max_share:
            problems.append(f"{source}: {d['lost']} of {d['read']} rows lost ({d['lost'] / d['read']:.0%} > "
                            f"{max_share:.0%}: {reasons})")  # fmt: skip
    return problems
