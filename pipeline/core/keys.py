"""Record ids -> sample keys, and the check that two records never get the same key.

A sample key (pipeline/core/shards.py KEY_RE) holds no '.', '/' or spaces, so ids are sanitised; sanitising is
not one-to-one ("a.b" and "a_b" both become "a_b", an id "x-mc" is the key of record x's multiple-choice item),
and two samples with one key in a shard stop the job ("duplicate sample key"). A reader therefore claims every
key a record will produce before it emits the record: the first record keeps the key, a later one that would
produce it again is that row's "duplicate id" failure.

    safe_key(raw)                   [^A-Za-z0-9_-] -> '_'; over 80 characters: 63 + '-' + 16 hex of sha256(raw)
    claims = KeyClaims()
    claims.check(record_id, keys)   BadRow "duplicate id" when a key is already another record's (or this one's)
    claims.add(record_id, keys)     the keys are taken (after the record was emitted)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from pipeline.core.values import BadRow, shown

MAX_KEY_CHARS = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_key(raw: str, max_chars: int = MAX_KEY_CHARS) -> str:
    """A key-safe form of `raw` (see the module docstring)."""
    clean = _UNSAFE.sub("_", raw)
    if len(clean) > max_chars:
        clean = clean[: max_chars - 17] + "-" + hashlib.sha256(raw.encode()).hexdigest()[:16]
    return clean


class KeyClaims:
    """Which record id holds each sanitised key (one instance per reader call)."""

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}

    def check(self, record_id: str, keys: Iterable[str]) -> None:
        for key in keys:
            owner = self._owner.get(key)
            if owner == record_id:
                raise BadRow("duplicate id", record_id)
            if owner is not None:
                raise BadRow("duplicate id", f"{shown(record_id)} has the sample key {key} of {shown(owner)}")

    def add(self, record_id: str, keys: Iterable[str]) -> None:
        for key in keys:
            self._owner.setdefault(key, record_id)
