"""Validate mode (`python -m pipeline.<dataset> ... --out OUT --validate`): every source's annotations read and
checked without videos, before paying for a build.

It runs the build's own reader functions in plain Python on the driver (no Beam pipeline, no engine): each
dataset's `Builder.validate_sources(cfg)` gives {source: rows()}, rows() yielding one entry per input record
(annotation row, item, description) read with the video probe switched off (the readers' `exists=None`: the
first documented candidate path is trusted, no file is looked at), so no video root or file needs to exist and
none is probed or decoded. Each entry is None (a good record) or the failure the build would report for it
(the dataset's FailureRecord: errors.jsonl gets the same lines as a build's); a failure of scope "file", or one
wrapped in `NotARow` (an annotator pass, a camera view), costs no record of its own.

Outputs: OUT/validate.json = {"<source>": {"read": N, "bad": M, "reasons": {"<reason>": count}}} ("read" counts
every input record of the source, "bad" those rejected, "reasons" their reasons; "other_failures" counts,
where there are any, the failures that are no record: "<scope>: <reason>"), OUT/errors.jsonl, and the same
table on stdout. Exit status 0 when it ran, bad rows or not; 2 when an input is unusable (as a build).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from pipeline.core.finalize import write_failures
from pipeline.core.inputs import check_inputs_and_out
from pipeline.core.writer import join, write_bytes

VALIDATE_FILE = "validate.json"
Rows = Callable[[], Iterable[Any]]  # what Builder.validate_sources gives per source


class NotARow:
    """A failure that costs no input record of its own (a pass without descriptions, a camera view)."""

    def __init__(self, failure):
        self.failure = failure


def check_validate_inputs(builder, cfg) -> None:
    """What a validation cannot go without: OUT usable, every annotation input present, the builder's checks
    of its annotation files (InputError, one line); no video root is checked. OUT is created last."""
    check_inputs_and_out(cfg.out, builder.validate_inputs(cfg), lambda: builder.validate_checks(cfg))


def validate(builder, cfg) -> dict[str, dict]:
    """Read every source of cfg without videos; write OUT/validate.json and OUT/errors.jsonl; return the
    report ({source: {"read", "bad", "reasons"[, "other_failures"]}})."""
    report: dict[str, dict] = {}
    failures = []
    for source, rows in builder.validate_sources(cfg).items():
        d = report.setdefault(source, {"read": 0, "bad": 0, "reasons": {}})
        reasons, other = Counter(d["reasons"]), Counter(d.get("other_failures", {}))
        for out in rows():
            if out is None:
                d["read"] += 1
                continue
            failure = out.failure if isinstance(out, NotARow) else out
            failures.append(failure)
            if isinstance(out, NotARow) or getattr(failure, "scope", "") == "file":
                other[f"{failure.scope}: {failure.reason}"] += 1
            else:
                d["read"] += 1
                d["bad"] += 1
                reasons[failure.reason] += 1
        d["reasons"] = dict(sorted(reasons.items()))
        if other:
            d["other_failures"] = dict(sorted(other.items()))
    failures.sort(key=lambda f: f.sort_key())
    write_failures(cfg.out, [f.to_dict() for f in failures])
    write_bytes(join(cfg.out, VALIDATE_FILE), json.dumps(report, indent=1, ensure_ascii=False).encode())
    return report


def table(title: str, report: dict[str, dict], seconds: float, out: str) -> str:
    """The report as printed: one line per source, its reasons after it."""
    width = max([len(s) for s in report] + [6])
    lines = [f"{title} validate (annotations only, no videos) finished in {seconds:.1f}s: {join(out, VALIDATE_FILE)}",
             f"  {'source':<{width}} {'read':>8} {'bad':>8}"]  # fmt: skip
    for source, d in report.items():
        lines.append(f"  {source:<{width}} {d['read']:>8} {d['bad']:>8}")
        lines += [f"      bad {reason}: {n}" for reason, n in d["reasons"].items()]
        lines += [f"      failed {what}: {n}" for what, n in d.get("other_failures", {}).items()]
    total = sum(d["bad"] for d in report.values()) + sum(sum(d.get("other_failures", {}).values()) for d in report.values())
    lines.append(f"  {total} failures in {join(out, 'errors.jsonl')}")
    return "\n".join(lines)
