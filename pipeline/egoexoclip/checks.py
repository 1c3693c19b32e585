"""What every Ego-Exo4D record check shares: the error a bad record raises, JSON Schema validation, typed
fields (booleans as the real files write them, finite numbers and times in range).
"""

from __future__ import annotations

import json
import math
from typing import Any

from pipeline.core.schemas import schema_problem


class RecordError(ValueError):
    """A record of the release cannot be used; `reason` is short and groupable, `detail` says more."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def load_error(err: BaseException) -> tuple[str, str]:
    """(reason, detail) for an input file that could not be read or parsed."""
    if isinstance(err, FileNotFoundError):
        return "missing file", str(err)
    if isinstance(err, PermissionError):
        return "permission denied", str(err)
    if isinstance(err, IsADirectoryError):
        return "not a regular file", str(err)
    if isinstance(err, json.JSONDecodeError):
        return "invalid json", f"line {err.lineno} column {err.colno}: {err.msg}"
    if isinstance(err, UnicodeDecodeError):
        return "invalid json", f"not UTF-8 text (byte {err.start})"
    if isinstance(err, RecursionError):
        return "invalid json", "nested too deeply"
    if isinstance(err, ValueError):
        return "invalid json", str(err)
    return "unreadable file", str(err)


def validate(instance: Any, schema_ref: str) -> None:
    """Raise RecordError("schema violation") naming the schema and the first failing field."""
    problem = schema_problem(instance, schema_ref, message_chars=300)
    if problem is not None:
        raise RecordError("schema violation", problem)


def parse_bool(value: Any, field_name: str, default: bool = False) -> bool:
    """Booleans occur as JSON booleans and as "1"/"0"/"true"/"false" strings in real files."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("1", "true"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false"):
        return False
    raise RecordError("schema violation", f"{field_name}={value!r} is not a boolean")


def finite_number(value: Any, field_name: str, reason: str = "schema violation") -> float:
    """A JSON number as a finite float (Infinity, NaN, 1e999 and integers beyond float range are errors)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(reason, f"{field_name}={value!r} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise RecordError(reason, f"{field_name} is not a finite number") from None
    if not math.isfinite(number):
        raise RecordError(reason, f"{field_name}={number!r} is not a finite number")
    return number
