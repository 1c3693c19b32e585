"""EPIC MIR's calibrated score and shortlist (exo2ego_model/eval/mir.py) and the cost plan (eval/plan.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from exo2ego_model.config import load_run_config
from exo2ego_model.eval import plan
from exo2ego_model.eval.bench_io import SentenceSet
from exo2ego_model.eval.mir import _fill, sentence_scores, shortlist_report
from exo2ego_model.eval.protocol import PROMPTS, EvalConfig, Runner
from exo2ego_model.eval.run import main
from exo2ego_model.inference import score
from exo2ego_model.model import build_model

REPO = Path(__file__).resolve().parents[1]
TEXTS = (
    "take plate",
    "put down plate",
    "open fridge",
    "cut onion into small pieces",
    "wash pan",
    "close tap",
)


@pytest.fixture(scope="module")
def runner():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, tok = build_model(load_run_config(REPO / "configs" / "smoke" / "run.yaml").model)
    model.eval()
    sentences = SentenceSet(tuple(f"s{i}" for i in range(len(TEXTS))), TEXTS, (0,) * 6, ((1,),) * 6)
    yield lambda k: Runner(model, tok, EvalConfig(shortlist=k, candidate_batch=4), 4, 32, sentences)
    torch.set_num_threads(threads)


def test_calibrated_is_raw_minus_the_prior_and_the_shortlist_scores_only_k(runner):
    video = torch.randint(
        0, 256, (4, 3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8
    )
    prompt = PROMPTS["retrieval"]
    full = runner(0)
    rec: dict = {}
    raw, cal = sentence_scores(full, video, prompt, rec, own="s3")
    prior = np.asarray(score(full.model, full.tok, None, prompt, list(TEXTS)))
    assert np.allclose(raw, score(full.model, full.tok, video, prompt, list(TEXTS)), atol=1e-5)
    assert np.allclose(cal, raw - prior, atol=1e-5) and not np.allclose(cal, raw)
    assert rec["n_candidates"] == len(TEXTS) and rec["shortlist_k"] == 0 and rec["own_in_shortlist"] is None
    assert 1 <= rec["own_rank_cheap"] <= len(TEXTS)

    short = runner(2)
    rec2: dict = {}
    raw2, cal2 = sentence_scores(short, video, prompt, rec2, own="s3")
    assert rec2["n_candidates"] == 2 and rec2["shortlist_k"] == 2  # only the shortlist went through the LLM
    assert rec2["own_rank_cheap"] == rec["own_rank_cheap"] and rec2["own_in_shortlist"] == (
        rec2["own_rank_cheap"] <= 2
    )
    top2 = np.argsort(-raw2, kind="stable")[:2]
    assert np.allclose(raw2[top2], raw[top2], atol=1e-5) and np.allclose(cal2[top2], cal[top2], atol=1e-5)


def test_fill_ranks_the_rest_below_the_shortlist_in_the_cheap_order():
    cheap = np.array([0.9, -0.5, 0.1, 0.8, 0.3])
    keep = np.array([0, 3])
    out = _fill(np.array([-4.0, -2.0]), keep, cheap)
    assert list(np.argsort(-out, kind="stable")) == [3, 0, 4, 2, 1]


def test_shortlist_report_recall_at_k():
    rows = [{"own_rank_cheap": r, "shortlist_k": 0} for r in (1, 2, 4, 9)] + [{"own_rank_cheap": None}]
    rep = shortlist_report(rows, n_sentences=20)
    assert rep["n_with_gold"] == 4 and rep["recall_at"] == {"1": 0.25, "5": 0.75, "10": 1.0}


def test_plan_counts_the_real_sizes(capsys):
    model_cfg = load_run_config(REPO / "configs" / "run.yaml").model
    assert plan.visual_tokens(model_cfg) == 2 * 9 * 13 * 13  # STC on 16 x 24 x 24, x+Fx
    p = plan.plan(model_cfg, candidate_batch=64)
    mir = p["rows"]["epic_mir"]
    assert mir["candidate_scorings"] == 9668 * 3842 and mir["prefix_encodes"] == 9668
    assert mir["candidate_passes"] == 9668 * 61  # ceil(3842 / 64)
    assert mir["gpu_hours_reencoded"] > 100 * mir["gpu_hours"] > 0
    assert p["rows"]["egoplan"]["items"] == 3355 and p["rows"]["egoschema"]["items"] == 5031
    short = plan.plan(model_cfg, candidate_batch=64, shortlist=100)["rows"]["epic_mir"]
    assert short["candidate_scorings"] == 9668 * 100 and short["gpu_hours"] < mir["gpu_hours"]
    measured = plan.plan(
        model_cfg, candidate_batch=64, pass_ms=2 * 1e3 * p["per_token_ms"] * p["prefix_tokens"]
    )
    assert measured["total"]["gpu_hours"] > p["total"]["gpu_hours"]  # a slower measured pass costs more
    # the command: no bench, no model, nothing written
    assert main(["--plan", "--bench", "/nonexistent", "--out", "/nonexistent/out"]) == 0
    shown = capsys.readouterr().out
    assert "| epic_mir | 9,668 |" in shown and "37,144,456" in shown and "ASSUMED" in shown
