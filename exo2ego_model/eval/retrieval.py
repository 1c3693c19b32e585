"""Ranking metrics: Charades-Ego mAP and EPIC-KITCHENS-100 multi-instance retrieval (mAP, nDCG, relevancy).

EPIC-100 MIR follows the challenge's own code (the C5-Multi-Instance-Retrieval baselines point to it):
mwray/Joint-Part-of-Speech-Embeddings src/evaluation/mAP.py (calculate_mAP), src/evaluation/nDCG.py
(calculate_k_counts, calculate_DCG, calculate_IDCG, calculate_nDCG), src/train/test_jpose_triplet.py (v2t on
sim, t2v on sim.T with relevancy.T) and src/scripts/create_relevancy_files.py (the relevancy matrix); MI-MM
and EgoVLP carry the same metric files unchanged. Their particulars are listed in epic_mir / epic_relevancy.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

import numpy as np


def _matrix(x, name: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or 0 in a.shape:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has {(~np.isfinite(a)).sum()} non-finite values")
    return a


def average_precision(scores, labels) -> float:
    """Non-interpolated AP of one class, as scikit-learn's average_precision_score computes it.

    AP = sum over the distinct score thresholds t (high to low) of (R(t) - R(t_prev)) * P(t), where P and R
    count every item scoring >= t: tied scores enter together (their order does not matter). Needs >= 1
    positive.
    """
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if s.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be 1-D of one length")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last item of each group of tied scores
    tp = np.cumsum(y)[last]
    if tp[-1] == 0:
        raise ValueError("average precision needs at least one positive")
    precision, recall = tp / (last + 1), tp / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def charades_map(scores, labels, drop_unlabeled_rows: bool = True) -> float:
    """Charades-Ego mAP: the mean of average_precision over the classes with at least one positive.

    scores, labels: [N videos, C classes]; labels 0/1. Classes without a positive are skipped (sklearn's AP is
    undefined there). drop_unlabeled_rows: videos without any positive label are left out, which is what the
    Charades evaluation does in effect (Charades_v1_classify.m and its Python ports, e.g. EgoVLP's
    charades_metrics, set their scores to -inf: ranked last, they cannot change any AP). Unlike those ports,
    tied scores are grouped as scikit-learn does instead of being broken by sort order.
    """
    s = _matrix(scores, "scores")
    y = np.asarray(labels)
    if y.shape != s.shape:
        raise ValueError(f"labels has shape {y.shape}, scores {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1")
    y = y.astype(bool)
    if drop_unlabeled_rows:
        keep = y.any(axis=1)
        s, y = s[keep], y[keep]
    classes = np.flatnonzero(y.any(axis=0))
    if len(classes) == 0:
        raise ValueError("no class has a positive label")
    return float(np.mean([average_precision(s[:, c], y[:, c]) for c in classes]))


def _epic_map(sim: np.ndarray, rel: np.ndarray, kind: str | None = "stable") -> float:
    """Rows are queries. Items ranked by descending similarity; stable: ties in ascending column order."""
    order = np.argsort(-sim, axis=1, kind=kind)
    ranked = np.take_along_axis(rel, order, axis=1)
    hits = ranked == 1
    # p(k) is the cumulative sum of the relevancy VALUES (0.5-relevant items add 0.5) over k; it is summed at
    # the ranks of the items with relevancy exactly 1 and divided by their count.
    precision = np.cumsum(ranked, axis=1) / (np.arange(rel.shape[1]) + 1)
    return float(np.mean(np.where(hits, precision, 0.0).sum(axis=1) / hits.sum(axis=1)))


def _epic_ndcg(sim: np.ndarray, rel: np.ndarray, kind: str | None = "stable") -> float:
    """Rows are queries. Ranking = ascending argsort reversed; stable: ties in DESCENDING column order."""
    n = rel.shape[1]
    order = np.argsort(sim, axis=1, kind=kind)[:, ::-1]
    k = (rel > 0).sum(axis=1, keepdims=True)  # the cut-off: this query's number of items with relevancy > 0
    mask = np.arange(n)[None, :] < k
    discount = np.log2(np.arange(n) + 2)  # rank r (1-based) -> log2(r + 1)
    dcg = (np.take_along_axis(rel, order, axis=1) * mask / discount).sum(axis=1)
    idcg = (-np.sort(-rel, axis=1) * mask / discount).sum(axis=1)
    return float(np.mean(dcg / idcg))


def epic_mir(sim, relevancy, ties: str = "stable") -> dict:
    """EPIC-KITCHENS-100 MIR: {"mAP": {"v2t", "t2v", "avg"}, "nDCG": {"v2t", "t2v", "avg"}}, fractions.

    sim, relevancy: [V videos, T sentences] (the challenge's sim_mat is videos x unique sentences). v2t ranks
    the sentences of each video row; t2v ranks the videos of each sentence, on sim.T and relevancy.T, with its
    own cut-offs; avg = (v2t + t2v) / 2. As the challenge's code computes them:
    - mAP: a query's relevant items are those with relevancy EXACTLY 1 (same verb class and the same noun
      set); AP = sum over their ranks k of p(k) / (number of them), where p(k) = (sum of the relevancy values
      of the top k) / k, so partly relevant items (0 < R < 1) raise the precision without counting as hits.
      The mean is over all queries.
    - nDCG: gain = the relevancy value itself (not 2^R - 1), discount log2(rank + 1), and the DCG is cut at
      k = the query's number of items with R > 0; IDCG = the same sum over the relevancy sorted descending
      with the same k. The mean is over all queries.
    - ties in sim: the challenge sorts with numpy's default argsort, which is not stable (with numpy's SIMD
      sorts even 4 tied values can come out of index order), so its order among tied items depends on the
      numpy build and CPU. ties="stable" (default): the order a stable sort gives in the same expressions,
      ascending column index for mAP (argsort of -sim), descending for nDCG (argsort of sim, reversed);
      ties="numpy": numpy's default sort as the challenge calls it (its numbers on the same numpy and CPU).
    The challenge's code returns nan when a query has no item with R == 1 (mAP) or R > 0 (nDCG); here that is
    an error.
    """
    if ties not in ("stable", "numpy"):
        raise ValueError(f"ties must be 'stable' or 'numpy', got {ties!r}")
    kind = "stable" if ties == "stable" else None
    s = _matrix(sim, "sim")
    r = _matrix(relevancy, "relevancy", s.shape)
    if (r < 0).any() or (r > 1).any():
        raise ValueError("relevancy values must lie in [0, 1]")
    for axis, what in ((1, "video rows"), (0, "sentence columns")):
        lacking = int((~(r == 1).any(axis=axis)).sum())
        if lacking:
            raise ValueError(
                f"{lacking} {what} have no item with relevancy 1 (the challenge's mAP is nan there)"
            )
    out = {
        "mAP": {"v2t": _epic_map(s, r, kind), "t2v": _epic_map(s.T, r.T, kind)},
        "nDCG": {"v2t": _epic_ndcg(s, r, kind), "t2v": _epic_ndcg(s.T, r.T, kind)},
    }
    for d in out.values():
        d["avg"] = (d["v2t"] + d["t2v"]) / 2
    return out


def _noun_sets(nouns: Sequence, name: str) -> list[frozenset]:
    sets = []
    for i, x in enumerate(nouns):
        if isinstance(x, str):  # the CSV's all_noun_classes column: "[2, 5]"
            x = ast.literal_eval(x)
        x = [x] if isinstance(x, int | np.integer) else list(x)
        if not x:
            raise ValueError(f"{name}[{i}] is empty (the noun IoU would be 0/0)")
        sets.append(frozenset(int(c) for c in x))
    return sets


def epic_relevancy(video_verbs, video_nouns, sentence_verbs, sentence_nouns, block: int = 2048) -> np.ndarray:
    """The EPIC-100 MIR relevancy [V, T] = (verb IoU + noun IoU) / 2, float64, deterministic.

    As create_relevancy_files.py builds it: verb IoU = 1 if the video's verb_class equals the sentence's else 0
    (1/1 or 0/2); noun IoU = |N_v & N_s| / |N_v | N_s| over the SETS of noun classes, the video's
    all_noun_classes against the sentence's noun classes (the sentence table carries all_noun_classes of the
    first video with that narration; a narration's row in EPIC_100_retrieval_test_sentence.csv shares its
    narration_id with a row of EPIC_100_retrieval_test.csv). So R = 1 only for the same verb class and the
    same noun set, and R >= 0.5 whenever the verb classes match.
    video_nouns / sentence_nouns: one iterable of noun-class ints (or its string form "[2, 5]") per item.
    """
    vv, sv = np.asarray(video_verbs), np.asarray(sentence_verbs)
    if vv.ndim != 1 or sv.ndim != 1 or len(vv) == 0 or len(sv) == 0:
        raise ValueError("video_verbs and sentence_verbs must be non-empty 1-D")
    vn, sn = _noun_sets(video_nouns, "video_nouns"), _noun_sets(sentence_nouns, "sentence_nouns")
    if len(vn) != len(vv) or len(sn) != len(sv):
        raise ValueError(
            f"{len(vv)} video verbs / {len(vn)} noun sets, {len(sv)} sentence verbs / {len(sn)} sets"
        )
    column = {c: j for j, c in enumerate(sorted(set().union(*vn, *sn)))}

    def multi_hot(sets: list[frozenset]) -> np.ndarray:
        m = np.zeros((len(sets), len(column)), dtype=np.float32)  # counts stay exact integers in float32
        for i, s in enumerate(sets):
            m[i, [column[c] for c in s]] = 1
        return m

    mv, ms = multi_hot(vn), multi_hot(sn)
    size_v, size_s = mv.sum(axis=1).astype(np.float64), ms.sum(axis=1).astype(np.float64)
    out = np.empty((len(vv), len(sv)), dtype=np.float64)
    for lo in range(0, len(vv), block):
        hi = min(lo + block, len(vv))
        inter = (mv[lo:hi] @ ms.T).astype(np.float64)
        noun_iou = inter / (size_v[lo:hi, None] + size_s[None, :] - inter)
        verb_iou = (vv[lo:hi, None] == sv[None, :]).astype(np.float64)
        out[lo:hi] = (verb_iou + noun_iou) / 2
    return out
