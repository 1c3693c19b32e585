"""EPIC-100 MIR, video -> text: raw and calibrated sentence scores, and the optional shortlist.

raw: mean log p(s | video, prompt) per answer token (inference.score), as for every other scored task. Ranking
the 3,842 sentences of a clip by it mostly ranks them by how likely each sentence is a priori (short, common
phrasings win whatever the clip shows), so beside it:

calibrated: log p(s | video, prompt) - log p(s | prompt, no video), both mean per token over the same tokens:
the sentence's prior under the same LM, the video placeholder dropped from the same prompt (a pointwise
mutual information). The prior does not depend on the clip: it is scored once per run (one prefix, every
sentence) and subtracted from every row. It shifts each sentence column by a constant, so t2v (ranking the
clips of one sentence) is unchanged; v2t changes.

shortlist (--shortlist K, default 0 = off: every sentence through the LLM, the exact protocol): a cheap
similarity, the cosine of the clip's mean-pooled visual tokens (vision tower + connector, what the LLM gets)
and each sentence's mean LLM input embedding (a table lookup, no LLM pass), picks the top K sentences per clip
and only those are scored by the LLM; the others are ranked below every shortlisted one, in the cheap order
(scores.json `shortlist`). The gold sentence's rank under the cheap similarity is recorded for every clip
(shortlist on or off), so scores.json reports the shortlist's recall at k (how often the gold sentence
survives a top-k shortlist) for several k before a shortlisted run is chosen.
"""

from __future__ import annotations

import numpy as np

RECALL_KS = (1, 5, 10, 50, 100, 200, 500, 1000)
BELOW = 1.0  # the gap between the lowest shortlisted score and the first sentence left out


def _prior(runner, prompt: str) -> np.ndarray:
    """log p(s | prompt, no video) of every sentence, once per runner (sentence set and prompt)."""
    cached = getattr(runner, "_mir_prior", None)
    if cached is None or cached[0] != prompt:
        from exo2ego_model.inference import score

        prior = score(
            runner.model,
            runner.tok,
            None,
            prompt,
            runner.sentences.texts,
            chunk_size=runner.cfg.candidate_batch,
        )
        cached = runner._mir_prior = (prompt, np.asarray(prior, dtype=np.float64))
    return cached[1]


def _cheap(runner, video) -> np.ndarray:
    """The shortlist similarity of every sentence to the clip (cosine, [T])."""
    from exo2ego_model.inference import clip_embedding, text_embeddings

    if getattr(runner, "_mir_text", None) is None:
        runner._mir_text = text_embeddings(runner.model, runner.tok, runner.sentences.texts)
    clip = clip_embedding(runner.model, video).to(runner._mir_text.device)
    return (runner._mir_text @ clip).cpu().numpy().astype(np.float64)


def _fill(scored: np.ndarray, keep: np.ndarray, cheap: np.ndarray) -> np.ndarray:
    """Full-length scores: the shortlisted sentences' LLM scores, the others below them in the cheap order."""
    out = np.empty(len(cheap), dtype=np.float64)
    out[keep] = scored
    rest = np.ones(len(cheap), dtype=bool)
    rest[keep] = False
    if rest.any():
        out[rest] = scored.min() - BELOW - (cheap[keep].max() - cheap[rest])
    return out


def sentence_scores(runner, video, prompt: str, rec: dict, own: str) -> tuple[np.ndarray, np.ndarray]:
    """(raw, calibrated) scores of every sentence for one clip (the module doc); rec gets the shortlist's
    fields: shortlist_k (0: off), own_rank_cheap (the gold sentence's rank under the cheap similarity, 1 =
    first; None when it is not in the set), own_in_shortlist."""
    texts = runner.sentences.texts
    k = runner.cfg.shortlist
    cheap = _cheap(runner, video)
    order = np.argsort(-cheap, kind="stable")
    ids = np.asarray(runner.sentences.ids)
    own_rank = int(np.flatnonzero(ids[order] == own)[0]) + 1 if own in runner.sentences.ids else None
    prior = _prior(runner, prompt)
    if 0 < k < len(texts):
        keep = np.sort(order[:k])
        raw_k = np.asarray(runner._score(video, prompt, [texts[i] for i in keep], rec), dtype=np.float64)
        raw, calibrated = _fill(raw_k, keep, cheap), _fill(raw_k - prior[keep], keep, cheap)
    else:
        raw = np.asarray(runner._score(video, prompt, texts, rec), dtype=np.float64)
        calibrated = raw - prior
        k = 0
    rec.update(
        shortlist_k=k,
        own_rank_cheap=own_rank,
        own_in_shortlist=None if own_rank is None or not k else own_rank <= k,
    )
    return raw, calibrated


def shortlist_report(rows: list[dict], n_sentences: int) -> dict:
    """scores.json epic_mir `shortlist`: the k used, and the cheap similarity's recall at k (the gold sentence
    within the top k) for RECALL_KS below the set's size and the k used."""
    ranks = [r["own_rank_cheap"] for r in rows if r.get("own_rank_cheap")]
    used = sorted({r.get("shortlist_k", 0) for r in rows})
    ks = sorted({k for k in RECALL_KS if k < n_sentences} | {k for k in used if k})
    return {
        "k": used[0] if len(used) == 1 else used,
        "similarity": "cosine(mean visual tokens, mean LLM input embedding of the sentence)",
        "n_with_gold": len(ranks),
        "recall_at": {str(k): (sum(r <= k for r in ranks) / len(ranks) if ranks else None) for k in ks},
        "gold_median_rank_cheap": float(np.median(ranks)) if ranks else None,
    }
