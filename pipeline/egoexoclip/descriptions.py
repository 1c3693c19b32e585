"""Ego-Exo4D atomic descriptions -> narrations: every description of every annotator pass of a take is a
Narration or a dropped description with its reason (a bad pass costs its descriptions, a bad description only
itself). Timestamps must be finite, >= 0 and at most MAX_SECONDS (a 1e308 timestamp would otherwise reach the
dataset-wide alpha statistic and shift every take's windows); text is cleaned and normalised by the core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.ego4d import normalize_text
from pipeline.core.readers import NOT_UTF8, NonFinite, undecodable
from pipeline.core.text import clean_field, clean_text
from pipeline.core.values import MAX_SECONDS
from pipeline.egoexoclip.checks import RecordError, finite_number, parse_bool, validate

MAX_TEXT_CHARS = 2000


@dataclass(frozen=True)
class Narration:
    take_uid: str
    split: str
    annotation_uid: str
    annotator_id: str
    pass_index: int
    desc_index: int
    timestamp: float
    raw_text: str
    text: str
    subject: str
    ego_visible: bool
    unsure: bool
    best_exo: str  # "" when absent

    @property
    def source_id(self) -> str:
        """Identifies the input record in error reports: annotation pass and description position."""
        return f"{self.annotation_uid}:{self.desc_index}"


@dataclass(frozen=True)
class NarrationFilters:
    skip_unsure: bool = False
    require_ego_visible: bool = False


@dataclass
class ParsedDescriptions:
    narrations: list[Narration] = field(default_factory=list)
    # (take_uid, source_id, reason, detail): one per description that is not a narration (rejected pass, bad
    # record, empty text, filtered, duplicate pass); with `narrations`, exactly the descriptions read
    dropped: list[tuple[str, str, str, str]] = field(default_factory=list)
    # (take_uid, source_id, reason, detail) of passes (or a take's entry) with no readable descriptions list
    bad_passes: list[tuple[str, str, str, str]] = field(default_factory=list)

    @property
    def n_descriptions(self) -> int:
        return len(self.narrations) + len(self.dropped)


UNDECODABLE = "__not_utf8__"  # the key of a marked pass or description (mark_undecodable)


def mark_undecodable(passes: Any) -> Any:
    """A take's passes with every description (or pass) that holds a byte that is not UTF-8 (a lone surrogate
    from surrogateescape) replaced by {UNDECODABLE: detail}: surrogates cannot travel between workers (Beam
    encodes text as UTF-8), the detail (ASCII escapes) can; parsing then fails that record "not UTF-8"."""
    if not isinstance(passes, list):
        return passes
    marked = []
    for ann in passes:
        if isinstance(ann, dict):
            fields = {k: v for k, v in ann.items() if k != "descriptions"}
            if (bad := undecodable(fields)) is not None:
                ann = {UNDECODABLE: bad, "descriptions": ann.get("descriptions")}
            descriptions = ann.get("descriptions")
            if isinstance(descriptions, list):
                ann = {**ann, "descriptions": [
                    {UNDECODABLE: bad} if (bad := undecodable(d)) is not None else d for d in descriptions
                ]}  # fmt: skip
        marked.append(ann)
    return marked


def parse_take_descriptions(
    take_uid: str, passes: Any, split: str, filters: NarrationFilters = NarrationFilters()
) -> ParsedDescriptions:
    """All annotator passes of one take -> narrations; every description not kept is listed with its reason.

    A pass whose own fields are bad (or that repeats an earlier pass's annotation_uid) costs its descriptions,
    each reported; a description costs only itself."""
    out = ParsedDescriptions()
    if not isinstance(passes, list):
        out.bad_passes.append(
            (take_uid, "*", "schema violation", "annotations entry is not a list of passes")
        )
        return out
    seen: dict[str, int] = {}
    for pass_index, ann in enumerate(passes):
        raw_uid = ann.get("annotation_uid") if isinstance(ann, dict) else None
        ann_uid = clean_field(raw_uid) if isinstance(raw_uid, str) else ""
        ann_uid = ann_uid or f"pass{pass_index}"
        descriptions = ann.get("descriptions") if isinstance(ann, dict) else None
        if not isinstance(descriptions, list):
            what = "pass is not an object" if not isinstance(ann, dict) else "no descriptions list"
            out.bad_passes.append(
                (take_uid, f"{ann_uid}:*", "schema violation", f"pass {pass_index}: {what}")
            )
            continue
        pass_error: RecordError | None = None
        rejected = False
        try:
            if UNDECODABLE in ann:
                raise RecordError(NOT_UTF8, ann[UNDECODABLE])
            validate(ann, "atomic_descriptions.schema.json#/$defs/pass")
            rejected = parse_bool(ann.get("rejected"), "rejected")
        except RecordError as err:
            pass_error = err
        if pass_error is None and ann_uid in seen:
            pass_error = RecordError(
                "duplicate annotation pass",
                f"annotation_uid {ann_uid} of pass {pass_index} is pass {seen[ann_uid]}'s",
            )
        seen.setdefault(ann_uid, pass_index)
        for desc_index, desc in enumerate(descriptions):
            source_id = f"{ann_uid}:{desc_index}"
            if pass_error is not None:
                out.dropped.append((take_uid, source_id, pass_error.reason, pass_error.detail))
                continue
            if rejected:
                out.dropped.append(
                    (
                        take_uid,
                        source_id,
                        "rejected annotation pass",
                        clean_field(ann.get("reject_reason"))[:300],
                    )
                )
                continue
            try:
                narration = _parse_description(take_uid, split, ann, ann_uid, pass_index, desc_index, desc)
            except RecordError as err:
                out.dropped.append((take_uid, source_id, err.reason, err.detail))
                continue
            if filters.skip_unsure and narration.unsure:
                out.dropped.append((take_uid, source_id, "filtered: unsure", ""))
            elif filters.require_ego_visible and not narration.ego_visible:
                out.dropped.append((take_uid, source_id, "filtered: ego not visible", ""))
            else:
                out.narrations.append(narration)
    return out


def _parse_description(
    take_uid: str, split: str, ann: dict, ann_uid: str, pass_index: int, desc_index: int, desc: Any
) -> Narration:
    if isinstance(desc, dict) and UNDECODABLE in desc:  # a byte that is not UTF-8 (mark_undecodable)
        raise RecordError(NOT_UTF8, desc[UNDECODABLE])
    if isinstance(desc, dict) and "timestamp" in desc:
        value = desc["timestamp"]
        if isinstance(value, str):
            raise RecordError("bad timestamp", f"timestamp={value[:50]!r} is not a number")
        if isinstance(value, NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
            raise RecordError("bad timestamp", f"timestamp={value!r} is not a finite number")
    validate(desc, "description.schema.json")
    timestamp = finite_number(desc["timestamp"], "timestamp", "bad timestamp")
    if timestamp < 0:
        raise RecordError("bad timestamp", f"timestamp={timestamp!r} is negative")
    if timestamp > MAX_SECONDS:
        raise RecordError("bad timestamp", f"timestamp={timestamp!r} is beyond {MAX_SECONDS:g} s")
    raw_text = clean_text(desc["text"])
    text = normalize_text(raw_text)
    if not text:
        raise RecordError("empty text", repr(desc["text"][:50]))
    if len(text) > MAX_TEXT_CHARS:
        raise RecordError("text too long", f"{len(text)} characters (at most {MAX_TEXT_CHARS})")
    best_exo = desc.get("best_exo") or {}
    return Narration(
        take_uid=take_uid,
        split=split,
        annotation_uid=ann_uid,
        annotator_id=clean_field(ann.get("annotator_id")),
        pass_index=pass_index,
        desc_index=desc_index,
        timestamp=timestamp,
        raw_text=raw_text,
        text=text,
        subject=clean_field(desc.get("subject") or desc.get("narration_subject")),
        ego_visible=parse_bool(desc.get("ego_visible"), "ego_visible", default=True),
        unsure=parse_bool(desc.get("unsure"), "unsure"),
        best_exo=clean_field(best_exo.get("cam_id")) if isinstance(best_exo, dict) else "",
    )
