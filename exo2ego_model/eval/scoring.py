"""Predictions -> scores.json and table.md: the metrics of exo2ego_model/eval over what the items produced."""

from __future__ import annotations

import base64
import json
import math
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.datasets import EGOBENCH_TASKS as TASKS

from . import paper
from .bench_io import SentenceSet, digest_of
from .choice import OPEN_VOCABULARY, accuracy, egomcq_accuracy
from .mir import shortlist_report
from .protocol import DEFAULT_REPORTED, REPORTED
from .retrieval import charades_map, epic_mir, epic_relevancy

# ------------------------------------------------------------------------------------------------ predictions


def read_predictions(path: Path) -> list[dict]:
    """The records of predictions.jsonl; a truncated last line is dropped and cut from the file."""
    if not path.exists():
        return []
    data = path.read_bytes()
    records, good_end, pos = [], 0, 0
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        end = pos + len(line) + (1 if i < len(lines) - 1 else 0)
        if line.strip():
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or "task" not in rec or "id" not in rec:
                    raise ValueError("not a prediction record")
            except ValueError as e:
                if data[end:].strip():
                    raise ValueError(
                        f"{path}: line {i + 1} is corrupt ({e}) and is not the last one"
                    ) from None
                print(f"eval: dropping a truncated last line of {path} ({len(line)} bytes)", file=sys.stderr)
                break
            records.append(rec)
            if i == len(lines) - 1:  # a complete record without its newline: add it before appending
                with open(path, "ab") as f:
                    f.write(b"\n")
                end += 1
        good_end = end
        pos = end
    if good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return records


def latest(records: Sequence[dict]) -> dict[tuple[str, str], dict]:
    """(task, id) -> its last record."""
    return {(r["task"], r["id"]): r for r in records}


# ------------------------------------------------------------------------------------------------ scores


def _finite(x):
    """NaN -> None (JSON has no NaN), recursively."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _score_choice(task: str, ok: list[dict]) -> dict:
    scored = [r for r in ok if r.get("answer_index") is not None]
    out: dict = {"n_no_answer": len(ok) - len(scored)}
    reported = REPORTED.get(task, DEFAULT_REPORTED)
    if not scored:
        return {**out, "n": 0, "reported": reported, "accuracy": None, "n_unparsed": 0}
    answers = [r["answer_index"] for r in scored]
    gen = accuracy([r["pred_generation"] for r in scored], answers)
    rank = accuracy([r["pred_ranking"] for r in scored], answers)
    chosen = rank if reported == "ranking" else gen
    if task in OPEN_VOCABULARY:
        out.update(_open_vocabulary(scored, reported))
    return {
        **out,
        "n": len(scored),
        "n_unparsed": gen["n_unparsed"],
        "reported": reported,
        "accuracy": chosen["accuracy"],
        "generation": gen,
        "ranking": rank,
    }


def _open_vocabulary(scored: list[dict], reported: str) -> dict:
    """EgoTaskQA direct / indirect extras: the protocol, the vocabulary's size, the answer's median rank, and
    the reported accuracy per answer_group (in_train: answers the baselines' classifier can name)."""
    key = "pred_" + reported
    groups: dict[str, list[bool]] = {}
    for r in scored:
        groups.setdefault(r.get("answer_group") or "?", []).append(r[key] == r["answer_index"])
    return {
        "protocol": "open answer over the vocabulary (generation: exact match; ranking: every candidate scored)",
        "n_options": sorted({r["n_options"] for r in scored}),
        "answer_median_rank": float(np.median([r["answer_rank"] for r in scored])),
        "by_answer_group": {g: {"n": len(v), "accuracy": sum(v) / len(v)} for g, v in sorted(groups.items())},
    }


def _score_open(ok: list[dict], similarity: bool) -> dict:
    from .text import qaego4d_open

    if not ok:
        return {"n": 0}
    res = qaego4d_open([r["reply"] for r in ok], [r["answer_text"] for r in ok], similarity=similarity)
    res["n_empty_replies"] = sum(not r["reply"].strip() for r in ok)
    return res


def _score_multilabel(ok: list[dict]) -> dict:
    if not ok:
        return {"n": 0, "mAP": None}
    common = Counter(r["classes_digest"] for r in ok).most_common(1)[0][0]
    same = [r for r in ok if r["classes_digest"] == common]
    out: dict = {"n": len(same), "n_other_class_list": len(ok) - len(same), "n_classes": same[0]["n_classes"]}
    scores = np.array([r["scores"] for r in same], dtype=np.float64)
    labels = np.zeros(scores.shape, dtype=np.int64)
    for i, r in enumerate(same):
        labels[i, r["answer_indices"]] = 1
    out["n_unlabelled"] = int((labels.sum(axis=1) == 0).sum())
    out["n_classes_with_positive"] = int(labels.any(axis=0).sum())
    try:
        out["mAP"] = charades_map(scores, labels)
    except ValueError as e:
        out.update(mAP=None, metric_error=str(e))
    return out


def _score_retrieval(ok: list[dict], sentences: SentenceSet | None) -> dict:
    if not ok or sentences is None:
        return {"n": 0, "mAP": None, "nDCG": None}
    digest = digest_of(sentences.ids)
    rows = [r for r in ok if r.get("sentences_digest") == digest]
    out: dict = {"n_other_sentence_set": len(ok) - len(rows), "n_sentences": len(sentences.ids)}
    if not rows:
        return {**out, "n": 0, "mAP": None, "nDCG": None}
    sim = np.stack([np.frombuffer(base64.b64decode(r["sim_f32_b64"]), dtype="<f4") for r in rows])
    rel = epic_relevancy(
        [r["verb_class"] for r in rows],
        [r["noun_classes"] for r in rows],
        list(sentences.verb_classes),
        [list(n) for n in sentences.noun_classes],
    )
    keep_rows = (rel == 1).any(axis=1)
    keep_cols = (rel[keep_rows] == 1).any(axis=0)
    out.update(
        n=int(keep_rows.sum()),
        n_rows_without_relevant=int((~keep_rows).sum()),
        n_sentences_used=int(keep_cols.sum()),
        partial=bool((~keep_rows).any() or (~keep_cols).any()),
    )
    if not keep_rows.any():
        return {**out, "mAP": None, "nDCG": None, "metric_error": "no video has a relevancy-1 sentence"}
    res = epic_mir(sim[keep_rows][:, keep_cols].astype(np.float64), rel[keep_rows][:, keep_cols])
    ranks = [r["own_rank"] for r in rows if r.get("own_rank")]
    out["own_sentence_median_rank"] = float(np.median(ranks)) if ranks else None
    # calibrated (mir.py): log p(s|v) - log p(s|no video); rows from before it was recorded have none
    if all(r.get("sim_calibrated_f32_b64") for r in rows):
        cal = np.stack(
            [np.frombuffer(base64.b64decode(r["sim_calibrated_f32_b64"]), dtype="<f4") for r in rows]
        )
        out["calibrated"] = epic_mir(
            cal[keep_rows][:, keep_cols].astype(np.float64), rel[keep_rows][:, keep_cols]
        )
        out["calibrated"]["score"] = "mean log p(s|video) - mean log p(s|no video), per token"
    else:
        out["calibrated"] = {"mAP": None, "nDCG": None, "score": "not recorded by these predictions"}
    out["raw_score"] = "mean log p(s|video) per token"
    out["shortlist"] = shortlist_report(rows, len(sentences.ids))
    return {**out, **res}


def _score_video_choice(ok: list[dict]) -> dict:
    scored = [r for r in ok if r.get("answer_index") is not None]
    if not scored:
        return {"n": 0, "inter": None, "intra": None}
    res = egomcq_accuracy(
        np.array([r["clip_scores"] for r in scored], dtype=np.float64),
        [r["answer_index"] for r in scored],
        [r["types"] for r in scored],
    )
    acc = accuracy([r["pred"] for r in scored], [r["answer_index"] for r in scored])
    return {"n": len(scored), "n_no_answer": len(ok) - len(scored), "accuracy": acc["accuracy"], **res}


def compute_scores(
    records: Sequence[dict], tasks: Sequence[str], sentences: SentenceSet | None, similarity: bool = True
) -> dict:
    """scores.json["tasks"] from the predictions (the last record of each (task, id))."""
    by_task: dict[str, list[dict]] = {t: [] for t in tasks}
    for (task, _), r in latest(records).items():
        if task in by_task:
            by_task[task].append(r)
    out = {}
    for task in tasks:
        recs = by_task[task]
        ok = [r for r in recs if r.get("status") == "ok"]
        errors = [r for r in recs if r.get("status") != "ok"]
        kind = TASKS[task]
        if kind == "choice":
            res = _score_choice(task, ok)
        elif kind == "open":
            res = _score_open(ok, similarity)
        elif kind == "multilabel":
            res = _score_multilabel(ok)
        elif kind == "retrieval":
            res = _score_retrieval(ok, sentences)
        else:
            res = _score_video_choice(ok)
        n_cand = sum(r.get("n_candidates", 0) for r in ok)
        score_s = sum(r.get("score_s", 0.0) for r in ok)
        reasons = Counter(str(r.get("error", "?")).split(":")[0] for r in errors)
        out[task] = _finite(
            {
                "metric": kind,
                **res,
                "n_items": len(recs),
                "n_errors": len(errors),
                "errors": dict(sorted(reasons.items())),
                "n_candidates": n_cand,
                "candidates_per_s": n_cand / score_s if score_s > 0 else None,
                "item_s": sum(r.get("time_s", 0.0) for r in recs),
            }
        )
    return out


LOST_IDS_SHOWN = 50  # ids of lost items listed per shard in scores.json (all are counted)


def add_accounting(task_scores: dict, expected: dict[str, int | None], lost: Sequence[dict]) -> dict:
    """Per task: items the build wrote (n_expected, capped by --max-items; None when unknown), scored (ran
    through the model), not scored by reason: bad input / model errors (n_errors) and items lost with an
    unreadable shard (n_lost; `lost` lists them per shard: {shard, n, reason, ids}). Returns the totals."""
    totals = {"expected": 0, "scored": 0, "errors": 0, "lost": 0, "expected_unknown": []}
    for task, t in task_scores.items():
        mine = [d for d in lost if d["task"] == task]
        n_lost = sum(d["n"] for d in mine)
        reasons = dict(t["errors"])
        for d in mine:
            where = f"lost: {d['shard']}: " if d["shard"] else "lost: "
            reasons[where + d["reason"]] = reasons.get(where + d["reason"], 0) + d["n"]
        t.update(
            n_expected=expected.get(task),
            n_scored=t["n_items"] - t["n_errors"],
            n_lost=n_lost,
            n_not_scored=t["n_errors"] + n_lost,
            not_scored=reasons,
            lost=[{k: v for k, v in d.items() if k != "task"} for d in mine],
        )
        if t["n_expected"] is None:
            totals["expected_unknown"].append(task)
        else:
            totals["expected"] += t["n_expected"]
        totals["scored"] += t["n_scored"]
        totals["errors"] += t["n_errors"]
        totals["lost"] += n_lost
    return totals


def _get(d: dict, key: str):
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _n(t: dict | None, key: str):
    """Items behind one number (EgoMCQ: its inter / intra group)."""
    if t is None:
        return ""
    return t.get(f"n_{key}", t.get("n", ""))


def render_table(scores: dict) -> str:
    """table.md: the paper's numbers (paper.ROWS) beside ours, percent with one decimal."""
    tasks = scores["tasks"]
    lines = ["# EgoBench: Exo2Ego (paper) and this checkpoint", ""]
    model = scores["model"]
    name = model["ckpt"] or "the tiny random model (no --ckpt)"
    lines.append(f"Model: {name}; {scores['frames']} frames of {scores['size']}x{scores['size']} px.")
    if model.get("note"):
        lines += ["", f"**{model['note']}**"]
    lines += [
        "",
        f"Paper numbers: {paper.SOURCE}. Ours: over the items that ran (n); errors are items whose input was "
        "bad (predictions.jsonl says why). Choice tasks: `protocol` is what the row reports; the other one is "
        "in scores.json.",
        "",
        "| task | metric | Exo2Ego (paper) | best prior open (paper) | ours | protocol | n | errors | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    listed = set()
    for row in paper.ROWS:
        t = tasks.get(row.task)
        listed.add(row.task)
        ours = None if t is None else _get(t, row.score_key)
        protocol = t.get("reported", "") if t and TASKS[row.task] == "choice" else ""
        if t and protocol:
            other = "ranking" if protocol == "generation" else "generation"
            protocol = f"{protocol} (other: {_pct(_get(t, other + '.accuracy'))})"
        prior = "–" if row.prior is None else f"{row.prior:.1f}" + (" (task)" if row.prior_scope else "")
        note = row.note
        if t and t.get("partial"):
            note = (note + "; " if note else "") + "partial: subset of rows/sentences"
        if t and t.get("metric_error"):
            note = (note + "; " if note else "") + t["metric_error"]
        lines.append(
            f"| {row.label} | {row.metric} | {'–' if row.exo2ego is None else f'{row.exo2ego:.1f}'} | {prior} "
            f"| {_pct(ours) if t else 'not run'} | {protocol} | {_n(t, row.score_key)} "
            f"| {t['n_errors'] if t else ''} | {note} |"
        )
    mir = tasks.get("epic_mir") or {}
    if mir.get("shortlist"):
        sl = mir["shortlist"]
        recall = ", ".join(f"@{k} {_pct(v)}" for k, v in sl["recall_at"].items())
        used = f"top {sl['k']} re-ranked by the LLM" if sl["k"] else "off (every sentence scored)"
        lines += [
            "",
            f"EPIC-100 MIR shortlist: {used}; recall of the gold sentence under the cheap similarity ({sl['similarity']}), "
            f"percent over {sl['n_with_gold']} clips: {recall or '–'}.",
        ]
    lines += _items_table(scores)
    lines += ["", "Candidates scored per second (ranking, classes, sentences, clips):", ""]
    for task, t in tasks.items():
        cps = t.get("candidates_per_s")
        if cps:
            lines.append(f"- {task}: {cps:.1f} candidates/s ({t['n_candidates']} candidates)")
    return "\n".join(lines) + "\n"


def _items_table(scores: dict) -> list[str]:
    """Items per task: expected (the build's count), scored, not scored and why."""
    items = scores.get("items")
    if not items:
        return []
    lines = [
        "",
        "Items per task: expected (the build's stats, capped by --max-items), scored, not scored and why.",
        "",
    ]
    if items["lost"]:
        lines += [
            f"**{items['lost']} item(s) LOST: unreadable benchmark files (scores.json `lost` names them); the "
            "scores are over the items that were read.**",
            "",
        ]
    for w in scores.get("bench_warnings", []):
        lines += [f"Warning: {w}", ""]
    lines += ["| task | expected | scored | not scored | why not scored |", "|---|---|---|---|---|"]
    for task, t in scores["tasks"].items():
        why = "; ".join(f"{reason} ({n})" for reason, n in t.get("not_scored", {}).items())
        expected = "?" if t.get("n_expected") is None else t["n_expected"]
        lines.append(
            f"| {task} | {expected} | {t.get('n_scored', '')} | {t.get('n_not_scored', '')} | {why} |"
        )
    return lines
