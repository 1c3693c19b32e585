"""QAEgo4D open-answer metrics as GroundVQA computes them (Becomebright/GroundVQA eval.py, calc_metrics).

- exact match: the prediction equals one of the references (GroundVQA compares the strings as they are; its
  references are .strip()ped when loaded and its decoded predictions carry no outer whitespace; here both are
  stripped, so a generator's trailing newline is not a miss).
- ROUGE-L: rouge_score's RougeScorer(["rougeL"], use_stemmer=False).score(reference, prediction) F-measure;
  with several references the one with the highest F; averaged over the predictions. The scorer's tokenizer
  lower-cases, turns every run of non-[a-z0-9] characters into a space and splits.
- METEOR: nltk.translate.meteor_score.meteor_score(references, prediction) on token lists made by
  rouge_score.tokenize.tokenize(text, None) (same tokenizer as above); NLTK's defaults (alpha 0.9, beta 3,
  gamma 0.5, Porter stemmer, WordNet synonyms); the best reference; averaged.
- sentence similarity: all-MiniLM-L6-v2 embeddings (unit length: the model ends in a Normalize module), the
  dot product of the prediction's and the FIRST reference's ([0, 0] of dot_score), averaged. GroundVQA
  encodes one text at a time, here in batches: equal to ~1e-6.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

LOG = logging.getLogger(__name__)


class NoSynonyms:
    """A WordNet stand-in without synsets: METEOR's synonym stage then matches nothing."""

    def synsets(self, word: str) -> list:
        return []


def resolve_wordnet(wordnet="auto"):
    """(reader, has_synonyms). "auto": NLTK's WordNet when its data is installed (NLTK_DATA / nltk_data
    folders: nothing is downloaded), else NoSynonyms with a warning; None: NoSynonyms; else the given reader."""
    if wordnet is None:
        return NoSynonyms(), False
    if isinstance(wordnet, str):
        if wordnet != "auto":
            raise ValueError(f"wordnet must be 'auto', None or a reader, got {wordnet!r}")
        from nltk.corpus import wordnet as wn

        try:
            wn.ensure_loaded()
        except LookupError:
            LOG.warning("NLTK WordNet data not installed: METEOR without its synonym stage (exact + stem)")
            return NoSynonyms(), False
        return wn, True
    return wordnet, True


def _pairs(preds: Sequence[str], refs) -> tuple[list[str], list[list[str]]]:
    if isinstance(preds, str) or isinstance(refs, str):
        raise TypeError("preds and refs must be sequences (one item per question), not a str")
    p, r = list(preds), [[x] if isinstance(x, str) else list(x) for x in refs]
    if len(p) != len(r):
        raise ValueError(f"{len(p)} predictions, {len(r)} references")
    if not p:
        raise ValueError("no predictions")
    for i, (a, b) in enumerate(zip(p, r, strict=True)):
        if not isinstance(a, str) or not b or not all(isinstance(x, str) for x in b):
            raise ValueError(f"item {i}: need a str prediction and >= 1 str reference, got {a!r}, {b!r}")
    return p, r


def exact_match(preds: Sequence[str], refs) -> float:
    p, r = _pairs(preds, refs)
    return float(np.mean([any(a.strip() == x.strip() for x in b) for a, b in zip(p, r, strict=True)]))


def rouge_l(preds: Sequence[str], refs) -> float:
    from rouge_score.rouge_scorer import RougeScorer

    p, r = _pairs(preds, refs)
    scorer = RougeScorer(["rougeL"], use_stemmer=False)
    return float(
        np.mean([max(scorer.score(x, a)["rougeL"].fmeasure for x in b) for a, b in zip(p, r, strict=True)])
    )


def meteor(preds: Sequence[str], refs, wordnet="auto") -> float:
    """Mean METEOR; `wordnet` as resolve_wordnet (qaego4d_open reports whether synonyms were used)."""
    from nltk.translate.meteor_score import meteor_score
    from rouge_score.tokenize import tokenize

    p, r = _pairs(preds, refs)
    reader, _ = resolve_wordnet(wordnet)
    scores = [
        meteor_score([tokenize(x, None) for x in b], tokenize(a, None), wordnet=reader)
        for a, b in zip(p, r, strict=True)
    ]
    return float(np.mean(scores))


def sentence_similarity(preds: Sequence[str], refs, encoder=None) -> float:
    """Mean dot product of unit embeddings of each prediction and its first reference."""
    from pipeline.datasets import embed_texts as embed
    from pipeline.datasets import load_text_encoder as load_encoder

    p, r = _pairs(preds, refs)
    encoder = load_encoder() if encoder is None else encoder
    a, b = embed(encoder, p), embed(encoder, [x[0] for x in r])
    if a.shape != b.shape or a.shape[0] != len(p):
        raise ValueError(f"encoder returned {a.shape} and {b.shape} embeddings for {len(p)} texts")
    return float(np.mean(np.sum(a.astype(np.float64) * b, axis=1)))


def qaego4d_open(preds: Sequence[str], refs, encoder=None, wordnet="auto", similarity: bool = True) -> dict:
    """{"exact_match", "rouge_l", "meteor", "similarity" (None when similarity=False), "n",
    "meteor_synonyms" (False: METEOR ran without WordNet)}; refs: one str or list of str per prediction."""
    p, r = _pairs(preds, refs)
    reader, has_synonyms = resolve_wordnet(wordnet)
    return {
        "exact_match": exact_match(p, r),
        "rouge_l": rouge_l(p, r),
        "meteor": meteor(p, r, wordnet=reader if has_synonyms else None),
        "similarity": sentence_similarity(p, r, encoder) if similarity else None,
        "n": len(p),
        "meteor_synonyms": has_synonyms,
    }
