"""Mixing: per-source ratios and caps, decided by a hash of the item id (deterministic, no global order needed).

An item of source s is kept when its rank u = sha256(seed:id) / 2**256 in [0, 1) is below ratio_s, and, when
s has a cap, when u is at or below the cap-th smallest u among the items of s that passed the ratio. So the
kept set depends only on the ids, the seed and the settings: the same on any runner and any number of workers,
and a larger ratio or cap keeps a superset.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

RANK_SCALE = float(2**256)


def item_rank(item_id: str, seed: int = 0) -> float:
    return int.from_bytes(hashlib.sha256(f"{seed}:{item_id}".encode()).digest(), "big") / RANK_SCALE


@dataclass(frozen=True)
class MixRule:
    ratio: float = 1.0  # fraction of the source's items kept
    cap: int = 0  # at most this many items of the source after the ratio (0: no cap)

    def __post_init__(self):
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"mix ratio={self.ratio!r}: must be in [0, 1]")
        if not isinstance(self.cap, int) or isinstance(self.cap, bool) or self.cap < 0:
            raise ValueError(f"mix cap={self.cap!r}: must be an int >= 0 (0 = no cap)")


def passes_ratio(rank: float, rule: MixRule) -> bool:
    return rank < rule.ratio


def cap_threshold(ranks: list[float], rule: MixRule) -> float:
    """The largest rank kept under the cap (inf when the source has no cap or fewer items than it)."""
    if rule.cap == 0 or len(ranks) <= rule.cap:
        return float("inf")
    return sorted(ranks)[rule.cap - 1]


def mix_decision(rank: float, rule: MixRule, threshold: float) -> str | None:
    """None when kept, else the reason the item is left out."""
    if not passes_ratio(rank, rule):
        return "mixing ratio"
    if rank > threshold:
        return "mixing cap"
    return None
