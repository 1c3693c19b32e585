"""EgoPlan-Bench v1 challenge submissions, written beside predictions.jsonl by every evaluation that ran EgoPlan
v1 items (exo2ego_model/eval/run.py).

The format is the one ChenYi99/EgoPlan's README ("Submission") asks for, with its example
example_submission/submission_validation.json: a JSON list of {"sample_id": int, "label": "A" | "B" | "C" |
"D"}, one file for the validation set and one for the test set, whose answers are hidden (the v1 test items
have no answer: predicted here, never scored). The label is the reported protocol's prediction (REPORTED:
option ranking, EgoPlan's argmin-loss protocol); an item that could not be run is "N/A", the placeholder of the
README's example file. EgoPlan v1 items are those with an integer sample id ("115"; test items
"test_<sample_id>", pipeline/egobench/sources/egoplan.py); EgoPlan-Bench2's ids ("<uid>_<n>") are not part of
this challenge and get no file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from .protocol import DEFAULT_REPORTED, LETTERS, REPORTED

TASK = "egoplan"
FILES = {"validation": "egoplan_submission_validation.json", "test": "egoplan_submission_test.json"}
_V1_ID = re.compile(r"(test_)?(\d+)")
NO_LABEL = "N/A"


def egoplan_submissions(records: Sequence[dict]) -> dict[str, list[dict]]:
    """set ("validation" / "test") -> its submission rows in sample_id order, from the predictions' records
    (the last record of an item counts)."""
    latest = {r["id"]: r for r in records if r.get("task") == TASK and isinstance(r.get("id"), str)}
    pred_key = "pred_" + REPORTED.get(TASK, DEFAULT_REPORTED)
    sets: dict[str, list[dict]] = {}
    for item_id, rec in latest.items():
        m = _V1_ID.fullmatch(item_id)
        if m is None:
            continue
        pred = rec.get(pred_key) if rec.get("status") == "ok" else None
        n = len(rec.get("options") or ())
        label = LETTERS[pred] if isinstance(pred, int) and 0 <= pred < n else NO_LABEL
        sets.setdefault("test" if m[1] else "validation", []).append({"sample_id": int(m[2]), "label": label})
    return {name: sorted(rows, key=lambda r: r["sample_id"]) for name, rows in sorted(sets.items())}


def write_egoplan_submissions(records: Sequence[dict], out: Path) -> dict[str, int]:
    """Write OUT/egoplan_submission_<set>.json for every set with items; file name -> rows written."""
    written = {}
    for name, rows in egoplan_submissions(records).items():
        path = Path(out) / FILES[name]
        path.write_text(json.dumps(rows, indent=1) + "\n")
        written[path.name] = len(rows)
    return written
