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
    Builder.validate_sources(cfg)       --validate: {source: rows()} of its readers run without videos
                                        (pipeline/core/validate.py), validate_inputs / validate_checks its
                                        annotation inputs and checks

The core owns the rest: the command line front (pipeline/core/front.py: option typo checks, runner flags,
logging, --quiet, the progress bar, exit status), OUT and root checks, OUT's lock and the build session,
running the Beam pipeline and reading back stats.json (`run`). A config needs `.out` and `.overwrite`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections import Counter

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.core.clips import ClipFormat
from pipeline.core.inputs import InputError, check_inputs_and_out
from pipeline.core.session import OutLocked, build_session
from pipeline.core.writer import read_json, write_json


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

    def validate_inputs(self, cfg) -> list[tuple[str, str]]:
        """(what, path) of the annotation inputs --validate reads (no video root): inputs() by default."""
        return self.inputs(cfg)

    def validate_checks(self, cfg) -> None:
        """The checks of check_inputs that --validate needs (annotation files only; InputError, one line)."""

    def validate_sources(self, cfg) -> dict:
        """{source: rows()} for --validate (pipeline/core/validate.py): rows() yields, per input record read
        without videos, None (good) or the failure a build would report for it."""
        raise NotImplementedError(f"{self.title}: no validate mode")

    def rows_read(self, stats: dict) -> dict[str, int]:
        """Rows of each source's annotation files (read or rejected) in a build's stats, for the loss check
        (`source_losses`); {} where the builder checks its files completely before the build instead."""
        return {}

    def source_of(self, failure: dict) -> str | None:
        """The source of a lost annotation row or file (an errors.jsonl line), or None for other losses
        (items dropped by design, videos)."""
        return failure.get("source") if failure.get("scope") in ("file", "record") else None

    def rows_reported(self, stats: dict) -> dict[str, int]:
        """Rows read per source for the per-source report (source_report) of sources that rows_read does not
        loss-check; rows_read's by default."""
        return self.rows_read(stats)

    def items_written(self, stats: dict) -> dict[str, int]:
        """Items (samples) of each source in the shards of a build's stats, for the per-source report."""
        return {}

    def dropped_from(self, failure: dict) -> str | None:
        """The source whose row or item an errors.jsonl line dropped, whatever the reason (bad input, or by
        design: duplicates, filters, mixing, a missing video), or None for a line that is no row or item (a
        whole file, a video: its rows and items have lines of their own)."""
        return failure.get("source") if failure.get("scope") in ("record", "item") else None

    def summary_lines(self, stats: dict) -> list[str]:
        """The dataset's own lines of the summary (counts by source, split or task)."""
        return []

    def summary(self, stats: dict, seconds: float) -> str:
        """What the command line prints at the end: samples, the dataset's lines, failures by reason."""
        lines = [f"{self.title} build finished in {seconds:.1f}s: {stats['samples']} samples"]
        lines += self.summary_lines(stats)
        lines += source_lines(stats.get("sources", {}))
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

    def annotation_inputs_of_entries(self, entries, key: str) -> list[tuple[str, str]]:
        """validate_inputs() of a config's entries: each entry's annotations (the root where they are not
        given apart), no video root."""
        return [(f"{key}.{e.name}.{'root' if e.annotations == e.root else 'annotations'}", e.annotations)
                for e in entries]  # fmt: skip


def split_lines(splits: dict, *fields: str) -> list[str]:
    """'  <split>: <n> <field>, ...' per split (or task) of the stats."""
    return [f"  {split}: " + ", ".join(f"{d[f]} {f}" for f in fields) for split, d in splits.items()]


def check_build_inputs(builder: Builder, cfg) -> None:
    """Everything a build cannot go without, before any work: OUT usable (not a file, writable or
    creatable), every input root present, the builder's own checks; OUT is created last."""
    check_inputs_and_out(cfg.out, builder.inputs(cfg), lambda: builder.check_inputs(cfg))


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
        stats_path = FileSystems.join(cfg.out, "stats.json")
        stats = read_json(stats_path)
        stats["sources"] = source_report(builder, stats, read_errors(cfg.out))
        write_json(stats_path, stats)
    return stats


def read_errors(out: str) -> list[dict]:
    """OUT/errors.jsonl of a finished build (local or remote)."""
    with FileSystems.open(FileSystems.join(out, "errors.jsonl"), compression_type="uncompressed") as f:
        return [json.loads(line) for line in f.read().decode("utf-8").splitlines() if line.strip()]


def source_report(builder: Builder, stats: dict, failures: list[dict]) -> dict[str, dict]:
    """What each source lost, for stats.json ("sources") and the summary: source_losses' rows read, rows lost
    to bad input (and their reasons), files failed, plus the items written and every reason a row or item of
    the source was dropped for ("dropped": bad input and by design alike: duplicates, filters, mixing, videos)."""
    report = source_losses(builder, stats, failures)
    for name, n in builder.rows_reported(stats).items():
        report.setdefault(name, {"read": n, "lost": 0, "files_failed": 0, "reasons": {}})
    for name, n in builder.items_written(stats).items():
        report.setdefault(name, {"read": 0, "lost": 0, "files_failed": 0, "reasons": {}})["written"] = n
    dropped: dict[str, Counter] = {name: Counter() for name in report}
    for f in failures:
        if (source := builder.dropped_from(f)) in dropped:
            dropped[source][f["reason"]] += 1
    for name, d in report.items():
        d.setdefault("written", 0)
        d["dropped"] = dict(sorted(dropped[name].items()))
    return {name: report[name] for name in sorted(report)}


def source_lines(report: dict[str, dict]) -> list[str]:
    """'  source <s>: N rows read, M items written; dropped: <reason> n, ...' per source of source_report."""
    lines = []
    for name, d in report.items():
        why = ", ".join(f"{r} {n}" for r, n in d["dropped"].items()) or "nothing"
        files = f", {d['files_failed']} files failed" if d["files_failed"] else ""
        lines.append(f"  source {name}: {d['read']} rows read, {d['written']} items written{files}; dropped: {why}")
    return lines


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
