"""The failure record every builder writes to errors.jsonl: what was lost, at which scope, and why.

A builder's failure type is a frozen dataclass with `reason` and `scope` first, `file` and `detail` among its
fields, and the context fields of its data (a take and camera, a source and item, a benchmark and task, a csv
row); `FailureRecord` gives it the errors.jsonl line (`to_dict`) and the order of errors.jsonl
(`sort_key`, by the fields named in `SORT`). Readers report a bad row as pipeline.core.records.RecordFailure.
"""

from __future__ import annotations

from dataclasses import asdict


class FailureRecord:
    """Mixin of a builder's failure dataclass: SORT names the fields errors.jsonl is sorted by."""

    SORT: tuple[str, ...] = ("scope", "file", "reason", "detail")

    def to_dict(self) -> dict:
        return asdict(self)

    def sort_key(self) -> tuple:
        return tuple(getattr(self, name) for name in self.SORT)
