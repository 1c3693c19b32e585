"""EgoBench metrics (exo2ego_model/eval), each against an independent computation: numbers worked out by hand
(the reasoning is in the comments), scikit-learn, or a plain-loop restatement of the reference definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from exo2ego_model.eval import (
    accuracy,
    average_precision,
    bootstrap_ci,
    charades_map,
    choice_accuracy,
    egomcq_accuracy,
    epic_mir,
    epic_relevancy,
    exact_match,
    meteor,
    parse_choice,
    qaego4d_open,
    rouge_l,
    sentence_similarity,
)

L3 = math.log2(3)  # the DCG discount of rank 2; rank 1 is log2(2) = 1, rank 3 is log2(4) = 2

# ------------------------------------------------------------------------------------------ parse_choice

OPTS = [
    "cutting the onion",
    "washing the plate",
    "opening the fridge",
    "putting the cup on the table",
    "putting the cup",
]


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("B", 1),
        ("(B)", 1),
        ("B.", 1),
        ("b", 1),
        ("[D]", 3),
        ("**C**", 2),
        ("The answer is B", 1),
        ("The answer is B.", 1),
        ("Answer: C", 2),
        ("answer: (d)", 3),
        ("The correct option is D because the door opens", 3),
        ("The best choice is C.", 2),
        ("I choose E", 4),
        ("B is correct", 1),
        ("A. cutting the onion", 0),
        ("E) putting the cup", 4),
        ("The answer is B, not C.", 1),  # "not C" is no cue
        ("The answer is A because the knife is visible", 0),
        ("The answer is A since", 0),
        ("Option A is the one with the fridge", 0),  # after "option" a letter is always a letter
        ("A is the best answer", 0),
        ("The best choice a person would make is (C)", 2),
        # the replies that break first-capital-letter parsers: neither is A / B
        ("Based on the video, the person is washing the plate.", 1),  # the option text (B), not "B" of Based
        ("A person is seen opening the fridge.", 2),  # text of C; the article "A" is no cue
        ("A person is cutting something.", None),  # no cue, no option text: unparsed, not A
        ("The answer is A person who cuts.", None),  # "is A person": an article
        ("Based on the video I cannot tell", None),
        # two options named / ties
        ("(A) or (B)", None),
        ("The person is putting the cup on the table and cutting the onion", None),
        # one option's text inside a longer one: the longer one alone is meant
        ("putting the cup on the table", 3),
        ("putting the cup", 4),
        ("", None),
        (None, None),
        ("Option 2", None),  # a number is ambiguous without option_base
    ],
)
def test_parse_choice(reply, expected):
    assert parse_choice(reply, 5, OPTS) == expected


def test_parse_choice_numbers_and_bounds():
    # option_base=0: EgoSchema's "option 0".."option 4"; option_base=1: a 1..n list
    assert parse_choice("Option 2", 5, option_base=0) == 2
    assert parse_choice("Option 2", 5, option_base=1) == 1
    assert parse_choice("option 0", 5, option_base=0) == 0
    assert parse_choice("option 0", 5, option_base=1) is None  # 0 is no option of a 1-based list
    assert parse_choice("(2)", 5, option_base=1) == 1
    assert parse_choice("3.", 5, option_base=1) == 2
    assert parse_choice("Option 7", 5, option_base=1) is None
    assert parse_choice("the answer is 3", 5, option_base=0) == 3
    assert parse_choice("(E)", 4) is None  # only the first 4 letters exist
    assert parse_choice("B", 4, ["x", "y", "z", "w"]) == 1  # options optional for letter cues
    with pytest.raises(ValueError, match="n_options"):
        parse_choice("A", 0)
    with pytest.raises(ValueError, match="options given"):
        parse_choice("A", 3, ["a", "b"])
    with pytest.raises(ValueError, match="option_base"):
        parse_choice("A", 3, option_base=2)
    with pytest.raises(TypeError):
        parse_choice(3, 3)


# ------------------------------------------------------------------------------------------ accuracies


def test_accuracy_counts_unparsed_as_wrong():
    res = accuracy([0, None, 2, -1, 1], np.array([0, 1, 2, 3, 0]))
    # correct: items 0 and 2 -> 2 / 5; None and -1 are unparsed (2), item 4 is parsed but wrong
    assert res == {"accuracy": 0.4, "n": 5, "n_correct": 2, "n_unparsed": 2}
    assert accuracy(np.array([1, 1]), [1, 1])["accuracy"] == 1.0
    assert accuracy(np.array([1.0, np.nan]), np.array([1, 0]))["n_unparsed"] == 1  # a float array with NaN
    with pytest.raises(ValueError, match="items"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="negative"):
        accuracy([0], [-1])
    with pytest.raises(ValueError, match="expected an int"):
        accuracy([0.5], [0])


def test_choice_accuracy():
    res = choice_accuracy(["(A)", "Based on the video ...", "The answer is C"], [0, 1, 1], 4)
    assert res == {"accuracy": 1 / 3, "n": 3, "n_correct": 1, "n_unparsed": 1}


def test_bootstrap_ci():
    v = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 1], dtype=float)
    lo, hi = bootstrap_ci(v, n_boot=500, seed=1)
    assert 0 <= lo < v.mean() < hi <= 1
    assert bootstrap_ci(v, n_boot=500, seed=1) == (lo, hi)  # deterministic
    assert bootstrap_ci(np.ones(7)) == (1.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_egomcq_inter_intra_by_the_data_definition():
    # types 1 = inter-video, 2 = intra-video (egomcq.json); EgoVLP's metric would print these swapped
    pred = [0, 1, 2, 3, 4, 0]
    answer = [0, 1, 0, 3, 0, 0]
    types = [1, 1, 1, 2, 2, 2]
    # inter: items 0, 1, 2 -> correct, correct, wrong = 2/3; intra: items 3, 4, 5 -> correct, wrong, correct = 2/3
    res = egomcq_accuracy(pred, answer, types)
    assert res["inter"] == pytest.approx(2 / 3) and res["intra"] == pytest.approx(2 / 3)
    assert (res["n_inter"], res["n_intra"]) == (3, 3)
    # make the groups differ: inter all right, intra all wrong
    res = egomcq_accuracy([0, 1, 1], [0, 1, 0], np.array([1, 1, 2]))
    assert (res["inter"], res["intra"]) == (1.0, 0.0)
    # [N, K] scores: argmax, the first maximum on a tie (row 1: options 1 and 3 tie -> 1)
    scores = np.array([[0.9, 0.1, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.5, 0.0]])
    res = egomcq_accuracy(scores, [0, 3], [2, 2])
    assert res["intra"] == 0.5 and math.isnan(res["inter"]) and res["n_inter"] == 0
    res = egomcq_accuracy([None, 1], [0, 1], [1, 2])  # an unparsed reply: wrong, counted
    assert (res["inter"], res["intra"], res["n_unparsed"]) == (0.0, 1.0, 1)
    with pytest.raises(ValueError, match="types"):
        egomcq_accuracy([0], [0], [0])


# ------------------------------------------------------------------------------------------ Charades-Ego mAP


def test_average_precision_ties_by_hand():
    # scores 0.9 (pos), 0.5 (neg), 0.5 (pos), 0.1 (neg); thresholds high to low:
    #   >= 0.9: tp 1, fp 0 -> P 1,   R 1/2
    #   >= 0.5: tp 2, fp 1 -> P 2/3, R 1    (the tied pair enters together, whatever its order)
    # AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    assert average_precision([0.9, 0.5, 0.5, 0.1], [1, 0, 1, 0]) == pytest.approx(5 / 6)
    assert average_precision([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(5 / 6)
    assert average_precision([0.3, 0.3, 0.3], [1, 1, 1]) == 1.0  # all positive
    with pytest.raises(ValueError, match="positive"):
        average_precision([0.1, 0.2], [0, 0])


def test_charades_map_against_sklearn():
    rng = np.random.default_rng(0)
    n, c = 60, 12
    scores = np.round(rng.random((n, c)), 1)  # one decimal: many ties
    labels = (rng.random((n, c)) < 0.2).astype(int)
    labels[:, 3] = 0  # a class without positives: skipped
    labels[:, 5] = 1  # an all-positive class: AP 1
    labels[7] = 0  # a video without any label
    for drop in (False, True):
        keep = labels.any(axis=1) if drop else np.ones(n, bool)
        classes = [k for k in range(c) if labels[keep, k].any()]
        expected = np.mean([average_precision_score(labels[keep, k], scores[keep, k]) for k in classes])
        assert charades_map(scores, labels, drop_unlabeled_rows=drop) == pytest.approx(expected, abs=1e-12)
    assert 3 not in [k for k in range(c) if labels[:, k].any()]
    # dropping unlabeled videos = Charades' "scores of videos without labels to -inf" (ranked last)
    fixed = scores.copy()
    fixed[~labels.any(axis=1)] = -1e9
    assert charades_map(scores, labels) == pytest.approx(
        charades_map(fixed, labels, drop_unlabeled_rows=False)
    )
    with pytest.raises(ValueError, match="0/1"):
        charades_map(scores, labels * 2)
    with pytest.raises(ValueError, match="non-finite"):
        charades_map(np.full((2, 2), np.nan), np.eye(2))
    with pytest.raises(ValueError, match="shape"):
        charades_map(scores, labels[:, :3])


# ------------------------------------------------------------------------------------------ EPIC-100 MIR

# 3 videos x 3 sentences
REL = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.25, 1.0]])
SIM = np.array([[0.2, 0.9, 0.1], [0.8, 0.7, 0.6], [0.3, 0.1, 0.9]])


def test_epic_mir_by_hand():
    res = epic_mir(SIM, REL)
    # mAP v2t (rows). p(k) = (sum of relevancy VALUES in the top k) / k, taken at the ranks of R == 1 items.
    #   v0 ranks s1 (0.5), s0 (1), s2 (0): the hit at k=2, p = (0.5 + 1) / 2 = 0.75 -> AP 0.75 (textbook: 0.5)
    #   v1 ranks s0 (0.5), s1 (1), s2 (0): likewise 0.75
    #   v2 ranks s2 (1) first -> AP 1
    assert res["mAP"]["v2t"] == pytest.approx((0.75 + 0.75 + 1) / 3)
    # mAP t2v (columns, ranked over videos by SIM.T)
    #   s0: sims (0.2, 0.8, 0.3) -> v1 (0.5), v2 (0), v0 (1): hit at k=3, p = 1.5 / 3 = 0.5
    #   s1: sims (0.9, 0.7, 0.1) -> v0 (0.5), v1 (1), v2 (0.25): hit at k=2, p = 1.5 / 2 = 0.75
    #   s2: sims (0.1, 0.6, 0.9) -> v2 (1) first: 1
    assert res["mAP"]["t2v"] == pytest.approx((0.5 + 0.75 + 1) / 3)
    assert res["mAP"]["avg"] == pytest.approx(((2.5 / 3) + (2.25 / 3)) / 2)
    # nDCG: gain = R, discount log2(rank + 1), cut at k = number of R > 0 items of the query; IDCG the same
    # over R sorted descending with the same k.
    #   v0: k=2, ranked (0.5, 1): DCG 0.5 + 1/L3; IDCG 1 + 0.5/L3
    #   v1: k=2, ranked (0.5, 1): the same
    #   v2: k=2, ranked (1, 0 | 0.25 cut off): DCG 1; IDCG 1 + 0.25/L3
    v0 = (0.5 + 1 / L3) / (1 + 0.5 / L3)
    assert res["nDCG"]["v2t"] == pytest.approx((v0 + v0 + 1 / (1 + 0.25 / L3)) / 3)
    #   s0: k=2, ranked v1 (0.5), v2 (0): DCG 0.5; IDCG 1 + 0.5/L3
    #   s1: k=3, ranked v0 (0.5), v1 (1), v2 (0.25): DCG 0.5 + 1/L3 + 0.25/2; IDCG 1 + 0.5/L3 + 0.25/2
    #   s2: k=1, ranked v2 (1): 1
    s0 = 0.5 / (1 + 0.5 / L3)
    s1 = (0.5 + 1 / L3 + 0.125) / (1 + 0.5 / L3 + 0.125)
    assert res["nDCG"]["t2v"] == pytest.approx((s0 + s1 + 1) / 3)
    assert res["nDCG"]["avg"] == pytest.approx((res["nDCG"]["v2t"] + res["nDCG"]["t2v"]) / 2)
    assert epic_mir(SIM, REL, ties="numpy") == res  # no ties: the sort kind does not matter


def test_epic_mir_ties_follow_the_challenge_expressions():
    rel = np.array([[1.0, 0.5], [0.0, 1.0]])
    sim = np.array([[0.5, 0.5], [0.1, 0.9]])  # v0's two sentences tie
    res = epic_mir(sim, rel)
    # mAP sorts -sim ascending: the tie in column order, s0 (1) first -> v0 AP 1; v1 ranks s1 (1) first -> 1
    assert res["mAP"]["v2t"] == 1.0
    # nDCG sorts sim ascending and reverses: the tie in reverse column order, s1 (0.5) then s0 (1), k=2:
    #   v0: (0.5 + 1/L3) / (1 + 0.5/L3); v1: k=1, s1 (1) first -> 1
    assert res["nDCG"]["v2t"] == pytest.approx(((0.5 + 1 / L3) / (1 + 0.5 / L3) + 1) / 2)


def _loop_reference(sim, rel):
    """The challenge's definitions restated with plain loops (no ties in sim)."""
    aps, ndcgs = [], []
    for s, r in zip(sim, rel, strict=True):
        ranked = [r[j] for j in sorted(range(len(s)), key=lambda j: -s[j])]
        hits = [k for k, x in enumerate(ranked) if x == 1]
        aps.append(sum(sum(ranked[: k + 1]) / (k + 1) for k in hits) / len(hits))
        k = sum(x > 0 for x in r)
        ideal = sorted(r, reverse=True)
        dcg = sum(ranked[i] / math.log2(i + 2) for i in range(k))
        ndcgs.append(dcg / sum(ideal[i] / math.log2(i + 2) for i in range(k)))
    return float(np.mean(aps)), float(np.mean(ndcgs))


def test_epic_mir_against_loops_and_relevancy():
    rng = np.random.default_rng(5)
    verbs = rng.integers(0, 3, 15)
    nouns = [list(rng.choice(6, rng.integers(1, 4), replace=False)) for _ in range(15)]
    pick = rng.choice(15, 9, replace=False)  # sentences = the classes of 9 of the videos
    rel = epic_relevancy(verbs, nouns, verbs[pick], [nouns[i] for i in pick])
    rel = rel[(rel == 1).any(axis=1)]  # keep videos with a fully relevant sentence
    sim = rng.standard_normal(rel.shape)
    res = epic_mir(sim, rel)
    assert (res["mAP"]["v2t"], res["nDCG"]["v2t"]) == pytest.approx(_loop_reference(sim, rel))
    assert (res["mAP"]["t2v"], res["nDCG"]["t2v"]) == pytest.approx(_loop_reference(sim.T, rel.T))


def test_epic_mir_validation():
    with pytest.raises(ValueError, match="relevancy 1"):
        epic_mir(SIM, np.array([[0.5, 0.5, 0], [0.5, 1, 0], [0, 0, 1]]))  # video 0 has no R == 1 item
    with pytest.raises(ValueError, match="sentence columns"):
        epic_mir(SIM[:2, :2], np.array([[1.0, 0.0], [1.0, 0.5]]))  # sentence 1 has no R == 1 video
    with pytest.raises(ValueError, match="shape"):
        epic_mir(SIM, REL[:2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        epic_mir(SIM, REL * 2)
    with pytest.raises(ValueError, match="non-finite"):
        epic_mir(np.where(SIM > 0.8, np.nan, SIM), REL)
    with pytest.raises(ValueError, match="ties"):
        epic_mir(SIM, REL, ties="random")


def test_epic_relevancy_by_hand():
    video_verbs, video_nouns = [1, 3], [[2, 5], [2, 2]]  # [2, 2] is the set {2}
    sentence_verbs, sentence_nouns = [1, 1, 3], [[2, 5], [5, 7], "[2, 9]"]  # the CSV's string form works too
    # R = (verb match + |N_v & N_s| / |N_v | N_s|) / 2
    expected = np.array(
        [
            [(1 + 2 / 2) / 2, (1 + 1 / 3) / 2, (0 + 1 / 3) / 2],  # v0 {2,5}: s0 {2,5}, s1 {5,7}, s2 {2,9}
            [(0 + 1 / 2) / 2, (0 + 0 / 3) / 2, (1 + 1 / 2) / 2],  # v1 {2}
        ]
    )
    rel = epic_relevancy(video_verbs, video_nouns, sentence_verbs, sentence_nouns)
    assert rel.dtype == np.float64 and np.array_equal(rel, expected)
    assert np.array_equal(
        epic_relevancy(video_verbs, video_nouns, sentence_verbs, sentence_nouns, block=1), rel
    )
    with pytest.raises(ValueError, match="empty"):
        epic_relevancy([1], [[]], [1], [[2]])
    with pytest.raises(ValueError, match="noun sets"):
        epic_relevancy([1, 2], [[1]], [1], [[2]])


# ------------------------------------------------------------------------------------------ QAEgo4D open


def test_exact_match_and_rouge_l_by_hand():
    assert (
        exact_match(["in the drawer ", "x", "on the table"], ["in the drawer", ["y", "x"], "on a table"])
        == 2 / 3
    )
    # LCS("the cat was found under the bed", "the cat was under the bed") = 6 of 7 / 6 tokens:
    # P = 6/7, R = 1, F = 2PR / (P + R) = 12/13
    assert rouge_l(["the cat was found under the bed"], ["the cat was under the bed"]) == pytest.approx(
        12 / 13
    )
    # the scorer lower-cases and drops punctuation; with two references the better F counts
    assert rouge_l(["The cat, was under the BED!"], [["a dog", "the cat was under the bed"]]) == 1.0
    # disjoint -> 0; averaged over predictions: (1 + 0) / 2
    assert rouge_l(["sink", "fridge"], ["sink", "table"]) == 0.5
    with pytest.raises(ValueError, match="predictions"):
        rouge_l(["a"], ["a", "b"])
    with pytest.raises(TypeError):
        exact_match("a", "a")


class FakeSynset:
    def __init__(self, names):
        self._names = names

    def lemmas(self):
        return [type("Lemma", (), {"name": lambda self, n=n: n})() for n in self._names]


class FakeWordNet:
    def synsets(self, word):
        return [FakeSynset(["sofa", "couch", "lounge_chair"])] if word == "couch" else []


def test_meteor_by_hand():
    # METEOR = (1 - 0.5 * (chunks / m)^3) * P R / (0.9 P + 0.1 R), m = matched unigrams
    # identical 3 words: m = 3, P = R = 1, 1 chunk -> 1 - 0.5 / 27
    assert meteor(["inside the drawer"], ["inside the drawer"], wordnet=None) == pytest.approx(1 - 0.5 / 27)
    # same 6 words in another order: matched right to left (mat-mat, the-the(4), on-on, sat-sat, cat-cat,
    # the-the(1)); sorted by the hypothesis no two neighbours are adjacent in the reference: 6 chunks -> 1 - 0.5
    assert meteor(["the cat sat on the mat"], ["on the mat sat the cat"], wordnet=None) == pytest.approx(0.5)
    # stem stage (Porter): cats~cat, running~runs; m = 2, P = 1, R = 2/3, Fmean = (2/3) / (0.9 + 0.1 * 2/3);
    # one chunk of 2 -> penalty 0.5 * (1/2)^3
    f = (2 / 3) / (0.9 + 0.2 / 3)
    assert meteor(["cats running"], ["the cat runs"], wordnet=None) == pytest.approx((1 - 0.0625) * f)
    # synonym stage with a WordNet reader: couch ~ sofa (lemma names with "_" are skipped) -> as identical
    assert meteor(["on the couch"], ["on the sofa"], wordnet=FakeWordNet()) == pytest.approx(1 - 0.5 / 27)
    # without synonyms: m = 2 of 3, P = R = 2/3, Fmean 2/3, one chunk of 2 -> (1 - 0.0625) * 2/3
    assert meteor(["on the couch"], ["on the sofa"], wordnet=None) == pytest.approx(0.9375 * 2 / 3)
    # no match at all -> 0; the best of several references; averaged
    assert meteor(["sink"], ["table"], wordnet=None) == 0.0
    assert meteor(["sink"], [["table", "sink"]], wordnet=None) == pytest.approx(1 - 0.5)
    assert meteor(["sink", "sink"], ["table", "sink"], wordnet=None) == pytest.approx(0.25)


class FakeEncoder:
    """encode() as SentenceTransformer's: fixed vectors, normalised when asked."""

    VECS = {"a": [1.0, 0.0], "b": [0.0, 2.0], "c": [3.0, 3.0], "d": [1.0, 0.0]}

    def encode(self, texts, batch_size=32, normalize_embeddings=False, convert_to_numpy=True):
        v = np.array([self.VECS[t] for t in texts])
        return v / np.linalg.norm(v, axis=1, keepdims=True) if normalize_embeddings else v


def test_sentence_similarity_aggregation():
    # cos(a, a) = 1, cos(a, c) = 1/sqrt(2), cos(b, c) = 1/sqrt(2); only the FIRST reference counts ("c", not "d")
    got = sentence_similarity(["a", "a", "b"], ["a", ["c", "d"], "c"], encoder=FakeEncoder())
    assert got == pytest.approx((1 + 2 / math.sqrt(2)) / 3)


def test_sentence_similarity_minilm_matches_groundvqa_examples():
    # GroundVQA eval.py's own check values: 1.0, 0.49, 0.93
    got = [
        sentence_similarity(["inside the drawer"], [r])
        for r in ("inside the drawer", "on the table", "in the drawer")
    ]
    assert got == pytest.approx([1.0, 0.49, 0.93], abs=0.01)


def test_qaego4d_open():
    res = qaego4d_open(
        ["inside the drawer", "sink"],
        ["inside the drawer", "table"],
        encoder=FakeEncoder(),
        wordnet=None,
        similarity=False,
    )
    assert res == {
        "exact_match": 0.5,
        "rouge_l": 0.5,
        "meteor": pytest.approx((1 - 0.5 / 27) / 2),
        "similarity": None,
        "n": 2,
        "meteor_synonyms": False,
    }
    res = qaego4d_open(["a"], ["a"], encoder=FakeEncoder(), wordnet=FakeWordNet())
    assert res["similarity"] == pytest.approx(1.0) and res["meteor_synonyms"] is True
