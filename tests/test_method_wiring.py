"""The method's wiring, pinned so that a wrong method fails (issue 18 item 5): which distribution KL takes as its
target and which side it trains, each cycle term's round trip and target, VTG on the answer only, no end of
sequence forced where truncation cuts an answer, and tokens/s counting the video tokens. Tiny CPU models, fixed
seeds; every expected value is computed here from the module outputs or by hand, never by the code under test.

Mutations tried (each applied alone to a copy of the package, then this file run; the tests that failed):
    model.forward: kl_loss(fx, y) instead of kl_loss(y, fx)           -> test_kl_target_is_the_teacher
    losses.kl_loss: KL(q || p) instead of KL(p || q)                  -> test_kl_by_hand, test_kl_target_is_the_teacher
    model.forward: y not detached for KL                              -> test_teacher_gets_no_gradient_from_kl
    cycle, ego term's target y instead of x                           -> test_cycle_terms, test_cycle_value
    cycle, exo term's target x instead of y                           -> test_cycle_terms, test_cycle_value
    cycle, ego round trip F(G(x)) instead of G(F(x))                  -> test_cycle_terms, test_cycle_value
    cycle, exo round trip G(F(y)) instead of F(G(y))                  -> test_cycle_terms, test_cycle_value
    prompt.tokenize_conversation: prompt text ids labelled            -> test_vtg_labels_are_the_answer_only,
                                                                         test_model_vtg_is_answer_only_cross_entropy,
                                                                         test_truncation_forces_no_eos
    model.splice: visual positions labelled (no IGNORE_INDEX)         -> test_splice_never_labels_visual_tokens
                                    (with real labels bos, at text position 0, is IGNORE_INDEX and the visual
                                     positions copy it: only labels with a target at position 0 tell)
    losses.vtg_loss: every position a target (no ignore mask)         -> test_vtg_ignores_prompt_logits,
                                                                         test_model_vtg_is_answer_only_cross_entropy
    prompt.tokenize_conversation: eos forced at a truncation cut      -> test_truncation_forces_no_eos
    train.py: tokens counted from the text attention mask only        -> test_logged_tokens_per_s_counts_video_tokens
    model.llm_token_counts: "x+Fx" counted as one copy of the tokens  -> test_token_counts_match_the_spliced_sequence,
                                                                         test_logged_tokens_per_s_counts_video_tokens
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

import exo2ego_model.model as model_module
import exo2ego_model.train as train_module
from exo2ego_model.config import load_run_config
from exo2ego_model.losses import kl_loss, vtg_loss
from exo2ego_model.model import build_model
from exo2ego_model.parallel import Dist
from exo2ego_model.prompt import IGNORE_INDEX, VIDEO_TOKEN_INDEX, answer_ids, tokenize_conversation
from tests.test_model import collate_text

RUN = load_run_config(Path(__file__).resolve().parents[1] / "configs" / "smoke" / "run.yaml")
ANSWERS = ("I cut an onion.", "I open the fridge door slowly.")
CONVERSATIONS = [
    [{"from": "human", "value": "What is the camera wearer doing?"}, {"from": "gpt", "value": ANSWERS[0]}],
    [{"from": "human", "value": "<video>\nWhere?"}, {"from": "gpt", "value": ANSWERS[1]}],
]


@pytest.fixture(scope="module")
def built():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, tok = build_model(RUN.model)
    model.eval()  # no dropout anywhere: recomputing a module output gives the same tensor
    yield model, tok
    torch.set_num_threads(threads)


def make_batch(tok, views=("ego", "exo"), seed: int = 0, frames_dtype=torch.float32) -> dict:
    batch = {"keys": ["s0", "s1"], **collate_text(tok, CONVERSATIONS)}
    gen = torch.Generator().manual_seed(seed)
    T, S = RUN.model.n_frames, RUN.model.image_size
    for view in views:
        frames = torch.randn(2, T, 3, S, S, generator=gen)
        if frames_dtype == torch.uint8:
            frames = torch.randint(0, 256, frames.shape, generator=gen, dtype=torch.uint8)
        batch[f"{view}_BTCHW"] = frames
    return batch


def features(model, batch):
    """x (ego), y (exo), F and G as the method defines them, computed here from the modules."""
    with torch.no_grad():
        x = model.encode(batch["ego_BTCHW"], "ego")
        y = model.encode(batch["exo_BTCHW"], "exo")
    return x, y, model.map_f, model.map_g


# ---- KL: the teacher's exo features are the target, and get no gradient ------------------------------------
def test_kl_by_hand():
    """p = softmax([0, ln 3]) = [1/4, 3/4] (teacher), q = softmax([0, 0]) = [1/2, 1/2] (student):
    KL(p || q) = 1/4 ln(1/2) + 3/4 ln(3/2) = 0.13081; the reverse KL(q || p) = 1/2 ln 2 + 1/2 ln(2/3) = 0.14384."""
    teacher = torch.tensor([[[0.0, math.log(3.0)]]])
    student = torch.zeros(1, 1, 2)
    assert kl_loss(teacher, student).item() == pytest.approx(
        0.25 * math.log(0.5) + 0.75 * math.log(1.5), abs=1e-6
    )
    assert kl_loss(student, teacher).item() == pytest.approx(
        0.5 * math.log(2) + 0.5 * math.log(2 / 3), abs=1e-6
    )


def test_kl_target_is_the_teacher(built):
    """forward's KL = mean over grid positions of sum_C p (log p - log q), p = softmax(y) (exo teacher),
    q = softmax(F(x)) (mapped ego student); the reverse direction is far from it on these inputs."""
    model, tok = built
    batch = make_batch(tok)
    x, y, map_f, _ = features(model, batch)
    with torch.no_grad():
        got = model(batch, {"kl": 1.0})["kl"].item()
        log_p = torch.log_softmax(y.double(), dim=-1)
        log_q = torch.log_softmax(map_f(x).double(), dim=-1)
    expected = (log_p.exp() * (log_p - log_q)).sum(-1).mean().item()
    reverse = (log_q.exp() * (log_q - log_p)).sum(-1).mean().item()
    assert abs(expected - reverse) > 1e-3 * abs(expected)  # the test can tell the two directions apart
    assert got == pytest.approx(expected, rel=1e-5)


def test_teacher_gets_no_gradient_from_kl(built):
    """Every parameter left trainable: KL's gradient reaches the student (ego tower, F), never the teacher
    (exo tower), nor G (not on the KL path)."""
    model, tok = built
    for p in model.parameters():
        p.requires_grad_(True)
    model.zero_grad(set_to_none=True)
    model(make_batch(tok), {"kl": 1.0})["loss"].backward()

    def grad_norm(module):
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)

    try:
        assert grad_norm(model.exo_tower) == 0.0, "the teacher (exo tower) learns from KL"
        assert grad_norm(model.map_g) == 0.0
        assert grad_norm(model.ego_tower) > 0.0 and grad_norm(model.map_f) > 0.0
    finally:
        model.zero_grad(set_to_none=True)


# ---- cycle consistency: |G(F(x)) - x|_1 + |F(G(y)) - y|_1 -------------------------------------------------
def test_cycle_terms(built, monkeypatch):
    """The four tensors forward hands to cycle_loss, each compared with the one the method names."""
    model, tok = built
    batch = make_batch(tok)
    x, y, map_f, map_g = features(model, batch)
    seen = {}
    real = model_module.cycle_loss

    def spy(x_arg, gfx, y_arg, fgy):
        seen.update(x=x_arg, gfx=gfx, y=y_arg, fgy=fgy)
        return real(x_arg, gfx, y_arg, fgy)

    monkeypatch.setattr(model_module, "cycle_loss", spy)
    with torch.no_grad():
        model(batch, {"cycle": 1.0})
        want = {"x": x, "gfx": map_g(map_f(x)), "y": y, "fgy": map_f(map_g(y))}
    for name, tensor in want.items():
        assert torch.allclose(seen[name], tensor, atol=1e-5), f"cycle term argument {name} is not {name}"


def test_cycle_value(built):
    model, tok = built
    batch = make_batch(tok)
    x, y, map_f, map_g = features(model, batch)
    with torch.no_grad():
        got = model(batch, {"cycle": 1.0})["cycle"].item()
        ego = (map_g(map_f(x)) - x).abs().mean().item()
        exo = (map_f(map_g(y)) - y).abs().mean().item()
    assert got == pytest.approx(ego + exo, rel=1e-5)


# ---- VTG: cross-entropy on the answer tokens only ----------------------------------------------------------
def test_vtg_labels_are_the_answer_only(built):
    """Labels are IGNORE_INDEX on bos, the prompt, the placeholder and (after splicing) every visual token;
    the targets are exactly " {answer}</s>"."""
    model, tok = built
    batch = make_batch(tok)
    for b, answer in enumerate(ANSWERS):
        n = int(batch["attention_mask_BL"][b].sum())
        k = len(answer_ids(tok, answer)) + 1  # the answer and its eos end the row
        labels, ids = batch["labels_BL"][b, :n], batch["input_ids_BL"][b, :n]
        assert (labels[: n - k] == IGNORE_INDEX).all() and torch.equal(labels[n - k :], ids[n - k :])
        assert tok.decode(labels[n - k :]) == f" {answer}</s>"
    with torch.no_grad():
        visual = model.visual_tokens(batch["ego_BTCHW"], visual_input="x+Fx")
    spliced = model.splice(visual, batch["input_ids_BL"], batch["attention_mask_BL"], batch["labels_BL"])
    N = visual.shape[1]
    for b, answer in enumerate(ANSWERS):
        pos = int((batch["input_ids_BL"][b] == VIDEO_TOKEN_INDEX).nonzero())
        labels_S = spliced["labels_BS"][b]
        assert (labels_S[pos : pos + N] == IGNORE_INDEX).all()
        assert int((labels_S != IGNORE_INDEX).sum()) == len(answer_ids(tok, answer)) + 1


def test_splice_never_labels_visual_tokens(built):
    """Visual positions get IGNORE_INDEX whatever the labels say, even with every text position a target."""
    model, tok = built
    batch = make_batch(tok, views=())
    labels_BL = batch["input_ids_BL"].clamp(min=0)  # every text id a target, bos included
    N, D = 5, model.llm.get_input_embeddings().embedding_dim
    spliced = model.splice(torch.zeros(2, N, D), batch["input_ids_BL"], batch["attention_mask_BL"], labels_BL)
    for b in range(2):
        pos = int((batch["input_ids_BL"][b] == VIDEO_TOKEN_INDEX).nonzero())
        assert (spliced["labels_BS"][b, pos : pos + N] == IGNORE_INDEX).all()
        assert (spliced["labels_BS"][b, :pos] != IGNORE_INDEX).all()


def test_vtg_ignores_prompt_logits():
    """Changing the logits of positions whose next token is not a target leaves the loss as it was; changing
    one that predicts an answer token changes it."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 6, 5, generator=gen)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 2, 4, 1]])  # answer at 3..5
    base = vtg_loss(logits, labels)
    prompt_changed = logits.clone()
    prompt_changed[0, :2] += 10 * torch.randn(2, 5, generator=gen)  # positions 0, 1 predict prompt tokens
    assert vtg_loss(prompt_changed, labels).item() == pytest.approx(base.item(), abs=1e-6)
    answer_changed = logits.clone()
    answer_changed[0, 2, 2] += 3.0  # position 2 predicts the first answer token
    assert vtg_loss(answer_changed, labels).item() < base.item() - 1e-3
    by_hand = -sum(torch.log_softmax(logits[0, t], -1)[labels[0, t + 1]] for t in (2, 3, 4)) / 3
    assert base.item() == pytest.approx(by_hand.item(), abs=1e-6)


def test_model_vtg_is_answer_only_cross_entropy(built):
    """model.vtg = mean CE of the answer tokens (found here from the answer text, not from the labels), with the
    LLM run over the whole spliced sequence."""
    model, tok = built
    batch = make_batch(tok)
    with torch.no_grad():
        visual = model.visual_tokens(batch["ego_BTCHW"], visual_input="x+Fx")
        got = model.vtg(visual, batch).item()
        s = model.splice(visual, batch["input_ids_BL"], batch["attention_mask_BL"])
        logits = model.llm(
            inputs_embeds=s["embeds_BSD"], attention_mask=s["attention_mask_BS"]
        ).logits.double()
    N, nll, count = visual.shape[1], 0.0, 0
    for b, answer in enumerate(ANSWERS):
        targets = [*answer_ids(tok, answer), tok.eos_token_id]
        end = int(batch["attention_mask_BL"][b].sum()) - 1 + N  # the row's spliced length
        for j, t in enumerate(targets):
            position = end - len(targets) + j
            nll -= float(torch.log_softmax(logits[b, position - 1], -1)[t])
            count += 1
    assert got == pytest.approx(nll / count, rel=1e-4)


# ---- truncation ------------------------------------------------------------------------------------------
def test_truncation_forces_no_eos(built):
    """An answer cut by max_tokens ends where the cut falls: no eos id anywhere, the last target the last answer
    token that fits. An answer that fits still ends with its eos."""
    _, tok = built
    conv = [
        {"from": "human", "value": "<video>\nDescribe."},
        {"from": "gpt", "value": "abcdefghijklmnopqrstuvwxyz"},
    ]
    ids, labels = tokenize_conversation(tok, conv, 12)
    assert len(ids) == 12 and tok.eos_token_id not in ids and tok.eos_token_id not in labels
    targets = [t for t in labels if t != IGNORE_INDEX]
    assert tok.decode(targets) == " abcdefghi"  # bos + placeholder kept, prompt dropped, then 10 answer ids
    ids, labels = tokenize_conversation(tok, conv, 128)
    assert ids[-1] == labels[-1] == tok.eos_token_id


# ---- tokens/s: text and video tokens -----------------------------------------------------------------------
def test_token_counts_match_the_spliced_sequence(built):
    model, tok = built
    batch = make_batch(tok)
    text, video = model.llm_token_counts(batch, "x+Fx")
    with torch.no_grad():
        visual = model.visual_tokens(batch["ego_BTCHW"], visual_input="x+Fx")
        x_only = model.visual_tokens(batch["ego_BTCHW"], visual_input="x")
        exo = model.visual_tokens(exo_BTCHW=batch["exo_BTCHW"])
    spliced = model.splice(visual, batch["input_ids_BL"], batch["attention_mask_BL"])
    assert text + video == int(spliced["attention_mask_BS"].sum())
    assert video == 2 * visual.shape[1]  # 2 rows
    assert model.llm_token_counts(batch, "x")[1] == 2 * x_only.shape[1]
    exo_batch = {k: v for k, v in batch.items() if k != "ego_BTCHW"}
    assert model.llm_token_counts(exo_batch)[1] == 2 * exo.shape[1]


def test_logged_tokens_per_s_counts_video_tokens(built, tmp_path, monkeypatch):
    """One logged step of stage 2 on two synthetic pairs: tokens_per_s / samples_per_s (the same seconds) is
    the tokens per sample the LLM saw, text and video."""
    model, tok = built
    batch = make_batch(tok, frames_dtype=torch.uint8)
    text = int(batch["attention_mask_BL"].sum()) - 2
    side = RUN.model.image_size // model.ego_tower.config.patch_size
    per_clip = model.projector.n_tokens(RUN.model.n_frames, side, side)
    want = (text + 2 * 2 * per_clip) / 2  # "x+Fx": two token sets per clip
    stage = next(s for s in RUN.stages if s.data_kind == "pairs")
    stage = dataclasses.replace(
        stage, max_steps=1, micro_batch=2, global_batch=2, log_every=1, checkpoint_every=100,
        data=dataclasses.replace(stage.data, shards=str(tmp_path / "unused.tar"), epoch_samples=2, num_workers=0),
    )  # fmt: skip
    run_cfg = dataclasses.replace(RUN, stages=(stage,), output_dir=str(tmp_path / "run"))
    monkeypatch.setattr(train_module, "make_loader", lambda *a, **k: [batch])
    train_module.train_stage(run_cfg, stage, Dist())
    record = json.loads((tmp_path / "run" / stage.name / "log.jsonl").read_text().splitlines()[0])
    assert record["tokens_per_s"] / record["samples_per_s"] == pytest.approx(want, rel=1e-6)
