"""Multiple-choice replies -> option index, and the accuracies built on it (EgoBench).

No fallback anywhere: a reply that names no option, or names two, is None and counts as wrong; the number of
such replies is reported beside every accuracy (lmms-eval falls back to a random option, VideoLLaMA2's
EgoSchema script to "C", and one parser takes the first capital A-D anywhere, so "Based on ..." reads as B).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import numpy as np

_LETTERS = string.ascii_uppercase
# After a cue phrase, "A" / "I" followed by a lower-case word is an article / pronoun ("the answer is a person
# who ..."), except before these words ("the answer is A because ...").
_ARTICLE_OK = re.compile(r"\s+(because|since|as)\b")
_KEY = r"(?i:\b(?:answer|option|choice))\b"
_VERB = r"(?i:\b(?:choose|chose|pick|picked|select|selected|go with))\b"
_COPULA = r"(?:\s*(?i:is|would be|should be|will be|must be))?"


def _norm(s: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", s.lower()))


def _letter_cues(text: str, n: int) -> set[int]:
    cls = f"[{_LETTERS[:n]}]"
    cues: set[int] = set()
    if m := re.fullmatch(rf"\W*({cls})\W*", text, flags=re.I):  # the whole reply: "B", "(b)", "B."
        return {_LETTERS.index(m.group(1).upper())}
    for m in re.finditer(rf"[(\[]\s*({cls})\s*[)\]]", text, flags=re.I):  # "(B)", "[b]" anywhere
        cues.add(_LETTERS.index(m.group(1).upper()))
    if m := re.match(rf"\s*({cls})\s*[.):](?=\s|$)", text):  # "B. the man ...", "B) ...", "B: ..."
        cues.add(_LETTERS.index(m.group(1)))
    phrases = (  # (pattern, whether "A"/"I" right after it may be an article/pronoun)
        (rf"{_KEY}{_COPULA}\s*[:\-]?\s*(?:(?i:option)\s+)?({cls})(?![A-Za-z0-9])", True),  # "the answer is B"
        (rf"{_VERB}\s+(?:(?i:option)\s+)?({cls})(?![A-Za-z0-9])", True),  # "I choose B"
        (rf"(?<![A-Za-z0-9])({cls})\s+is\s+(?:the\s+)?(?i:correct|right|best)\b", False),  # "B is correct"
    )
    for pattern, may_be_article in phrases:
        for m in re.finditer(pattern, text):
            letter, rest = m.group(1), text[m.end() :]
            named = re.search(r"(?i:option|choice)\s+$", text[: m.start(1)])  # "option A ..." is always A
            article = letter in "AI" and re.match(r"\s+[a-z]", rest) and not _ARTICLE_OK.match(rest)
            if may_be_article and not named and article:
                continue
            cues.add(_LETTERS.index(letter))
    return cues


def _number_cues(text: str, n: int, base: int) -> set[int]:
    found: list[str] = []
    if m := re.fullmatch(r"\W*(\d+)\W*", text):
        found.append(m.group(1))
    else:
        found += re.findall(r"[(\[]\s*(\d+)\s*[)\]]", text)
        found += re.findall(r"^\s*(\d+)\s*[.):](?=\s|$)", text)
        found += re.findall(rf"{_KEY}{_COPULA}\s*[:#\-]?\s*(?:(?i:option|number|no\.)\s*)?#?\s*(\d+)\b", text)
        found += re.findall(rf"{_VERB}\s+(?:(?i:option)\s+)?(\d+)\b", text)
    return {int(k) - base for k in found if 0 <= int(k) - base < n}


def _text_match(text: str, options: Sequence[str]) -> int | None:
    reply = _norm(text)
    opts = [_norm(o) for o in options]
    equal = [i for i, o in enumerate(opts) if o and o == reply]
    if equal:
        return equal[0] if len(equal) == 1 else None
    hits = [i for i, o in enumerate(opts) if o and f" {o} " in f" {reply} "]
    # an option found only as a part of a longer option that is also found is not a separate mention
    hits = [i for i in hits if not any(opts[i] != opts[j] and f" {opts[i]} " in f" {opts[j]} " for j in hits)]
    return hits[0] if len(hits) == 1 else None


def parse_choice(
    text: str | None, n_options: int, options: Sequence[str] | None = None, option_base: int | None = None
) -> int | None:
    """The 0-based option that a free-form reply chooses, or None (unparsed: counts as wrong).

    Explicit cues first: the whole reply a letter ("B", "(b)", "B."); a bracketed letter anywhere ("(B)",
    "[B]"); a reply opening with a letter and ".", ")" or ":" ("B. The man ..."); a cue phrase ("the answer is
    B", "Answer: B", "option B", "I choose B", "B is correct"). Letters are upper case outside brackets and
    only the first `n_options` of the alphabet; after "answer is"/"I choose" an "A"/"I" followed by a lower-case
    word is read as an article/pronoun ("the answer is A person ...") unless the word is because/since/as or
    the letter follows "option"/"choice" ("option A is ..." is A). A capital
    letter elsewhere is never a cue: "Based on the video ..." is not B, "A person ..." is not A.
    Numbers ("Option 2", "answer: 2", "(2)", "2.", "2") are read only when `option_base` says how the prompt
    numbered the options: 0 for EgoSchema's "option 0".."option 4", 1 for a 1..n list. With the default None a
    number is ambiguous and ignored, so "Option 2" alone is unparsed.
    Cues naming two different options give None. Without any cue, and with `options` given: the option whose
    text (lower case, punctuation dropped) equals the reply, else the only option whose text occurs in the
    reply as whole words (an option found only inside a longer option that also occurs does not count); two
    or more (a tie) give None.
    """
    if not isinstance(n_options, int | np.integer) or not 1 <= n_options <= len(_LETTERS):
        raise ValueError(f"n_options must be an int in 1..{len(_LETTERS)}, got {n_options!r}")
    if options is not None and len(options) != n_options:
        raise ValueError(f"{len(options)} options given for n_options={n_options}")
    if option_base not in (None, 0, 1):
        raise ValueError(f"option_base must be None, 0 or 1, got {option_base!r}")
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"reply must be a str or None, got {type(text).__name__}")
    text = re.sub(r"[*_`]+", "", text).strip()  # markdown emphasis: "**B**"
    cues = _letter_cues(text, n_options)
    if option_base is not None:
        cues |= _number_cues(text, n_options, option_base)
    if cues:
        return cues.pop() if len(cues) == 1 else None
    return _text_match(text, options) if options is not None else None


# EgoTaskQA direct / indirect: posed as the original, open answer over the answer vocabulary (the items'
# options, any number of them; pipeline/egobench/sources/egotaskqa.py), never as a lettered choice
OPEN_VOCABULARY = ("egotaskqa_direct", "egotaskqa_indirect")
_ARTICLE = re.compile(r"^(?:the|a|an) ")


def match_answer(reply: str | None, vocabulary: Sequence[str]) -> int | None:
    """The vocabulary entry a generated open answer is, by exact match, or None (counts as wrong).

    Both sides lower case, runs of non-alphanumerics as one space, a leading article dropped ("The fridge." is
    "fridge"); the reply must equal one entry, nothing more: "yes, it is" is not "yes". Two entries that
    normalise alike match the first."""
    if reply is None:
        return None
    norm = _ARTICLE.sub("", _norm(reply))
    if not norm:
        return None
    for i, entry in enumerate(vocabulary):
        if _ARTICLE.sub("", _norm(entry)) == norm:
            return i
    return None


def _as_choices(pred, name: str) -> np.ndarray:
    """int64 [N]; None, NaN and negative values are -1 (unparsed); integral floats are accepted."""
    items = list(pred)
    out = np.empty(len(items), dtype=np.int64)
    for i, p in enumerate(items):
        if isinstance(p, float | np.floating) and (np.isnan(p) or float(p).is_integer()):
            p = None if np.isnan(p) else int(p)
        if p is None:
            out[i] = -1
        elif isinstance(p, bool) or not isinstance(p, int | np.integer):
            raise ValueError(f"{name}[{i}] = {p!r}: expected an int option index or None")
        else:
            out[i] = max(int(p), -1)
    return out


def accuracy(pred, answer) -> dict:
    """{"accuracy": correct / N, "n", "n_correct", "n_unparsed"}.

    pred: [N] option indices, None, NaN or a negative value for an unparsed reply (wrong, and counted);
    answer: [N] correct indices (>= 0).
    """
    p, a = _as_choices(pred, "pred"), _as_choices(answer, "answer")
    if p.shape != a.shape:
        raise ValueError(f"pred has {len(p)} items, answer {len(a)}")
    if len(a) == 0:
        raise ValueError("no items")
    if (a < 0).any():
        raise ValueError(f"answer has {(a < 0).sum()} missing/negative entries")
    correct = p == a
    return {
        "accuracy": float(correct.mean()),
        "n": len(a),
        "n_correct": int(correct.sum()),
        "n_unparsed": int((p < 0).sum()),
    }


def choice_accuracy(
    replies: Sequence[str | None], answer, n_options: int, options=None, option_base=None
) -> dict:
    """parse_choice on every reply, then accuracy(); `options`, if given, holds one option list per reply."""
    if options is not None and len(options) != len(replies):
        raise ValueError(f"{len(options)} option lists for {len(replies)} replies")
    pred = [
        parse_choice(r, n_options, None if options is None else options[i], option_base)
        for i, r in enumerate(replies)
    ]
    return accuracy(pred, answer)


def bootstrap_ci(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-item scores (e.g. 0/1 correctness); deterministic."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0 or not np.isfinite(v).all():
        raise ValueError("values must be a non-empty 1-D array of finite numbers")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    means = v[np.random.default_rng(seed).integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def egomcq_accuracy(pred, answer, types) -> dict:
    """EgoMCQ accuracy per group: {"inter", "intra", "n_inter", "n_intra"} (nan for an empty group).

    pred: [N] chosen clip indices, or [N, K] scores over the K candidate clips (argmax, first maximum on
    ties, like torch.argmax). types: [N], 1 = inter-video (the 5 candidate clips come from different videos:
    the easy setting), 2 = intra-video (all from the query's video), as the DATA defines them (egomcq.json;
    EgoVLP's data_loader/EgoClip_EgoMCQ_dataset.py says "1 for inter; 2 for intra").
    EgoVLP's metric prints the two the wrong way round: model/metric.py egomcq_accuracy_metrics zips
    torch.unique(types), i.e. the sorted values [1, 2], with the names ["Intra-video", "Inter-video"], so the
    accuracy over type 1 is logged as "Intra-video" and over type 2 as "Inter-video" (and with a single type
    present, that type is always called "Intra-video"). Confirmed by the maintainers (EgoVLP issue 19,
    EgoVLPv2 issue 11). The published numbers (EgoVLP 90.7 inter / 57.2 intra) are the right way round:
    inter is the higher one.
    """
    s = np.asarray(pred, dtype=object if not isinstance(pred, np.ndarray) else None)
    if s.ndim == 2:
        scores = s.astype(np.float64)
        if scores.shape[1] == 0 or not np.isfinite(scores).all():
            raise ValueError("pred scores must be finite with at least one column")
        choices = [int(x) for x in scores.argmax(axis=1)]
    elif s.ndim == 1:
        choices = list(s)
    else:
        raise ValueError(f"pred must be [N] indices or [N, K] scores, got shape {s.shape}")
    res = accuracy(choices, answer)
    t = np.asarray(types)
    if t.shape != (res["n"],):
        raise ValueError(f"types has shape {t.shape}, expected ({res['n']},)")
    if not np.isin(t, (1, 2)).all():
        raise ValueError(f"types must be 1 (inter-video) or 2 (intra-video), got {sorted(set(t.tolist()))}")
    correct = _as_choices(choices, "pred") == _as_choices(answer, "answer")
    out: dict = {"n_unparsed": res["n_unparsed"]}
    for name, code in (("inter", 1), ("intra", 2)):
        sel = t == code
        out[name] = float(correct[sel].mean()) if sel.any() else float("nan")
        out[f"n_{name}"] = int(sel.sum())
    return out
