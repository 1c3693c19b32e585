"""exo2ego_model.inference and .export: greedy generation and candidate scoring on the training prefix, the cached
score against naive full forwards, and a LoRA model saved and loaded without its original checkpoints."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPVisionModel, MistralForCausalLM

from exo2ego_model.config import load_run_config
from exo2ego_model.export import load_pretrained, save_pretrained
from exo2ego_model.generate import generate as generate_reexported
from exo2ego_model.inference import (
    candidate_ids,
    generate,
    generate_ids,
    prefix_embeds,
    score,
)
from exo2ego_model.model import Exo2EgoModel, apply_stage, build_model, finish_llm
from exo2ego_model.prompt import IGNORE_INDEX, prompt_ids, tokenize_conversation
from exo2ego_model.tiny import tiny_llm_config, tiny_tokenizer, tiny_vision_config
from exo2ego_model.video import normalize

RUN = load_run_config(Path(__file__).resolve().parents[1] / "configs" / "smoke" / "run.yaml")
STAGE3 = RUN.stage("student_self_practice")
QUESTION = "<video>\nWhat am I doing?"
CANDIDATES = ["I cut an onion.", "I open the fridge door slowly.", "I", "Nothing at all, really."]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def lora_model():
    """A tiny model after the LoRA stage, with non-zero LoRA B (so the adapters change the outputs)."""
    torch.manual_seed(0)
    model, tok = build_model(RUN.model)
    apply_stage(model, STAGE3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model, tok


@pytest.fixture(scope="module")
def model_tok():
    return lora_model()


def clip(seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    T, S = RUN.model.n_frames, RUN.model.image_size
    if dtype == torch.uint8:
        return torch.randint(0, 256, (T, 3, S, S), generator=gen, dtype=torch.uint8)
    return torch.randn(T, 3, S, S, generator=gen)


def naive_logprobs(model, tok, video_TCHW, question, candidate) -> torch.Tensor:
    """Per-token log-probabilities of a candidate from one full forward over [training prefix, candidate]."""
    conv = [{"from": "human", "value": question}, {"from": "gpt", "value": candidate}]
    ids, labels = tokenize_conversation(tok, conv, 10_000)
    with torch.no_grad():
        visual = model.visual_tokens(ego_BTCHW=video_TCHW[None])
        s = model.splice(visual, torch.tensor([ids]), labels_BL=torch.tensor([labels]))
        logits = model.llm(inputs_embeds=s["embeds_BSD"]).logits[0].float()
    labels_S = s["labels_BS"][0]
    pos = (labels_S != IGNORE_INDEX).nonzero().flatten()
    return torch.log_softmax(logits[pos - 1], dim=-1).gather(1, labels_S[pos, None])[:, 0]


def test_score_equals_naive_forward_per_candidate(model_tok):
    model, tok = model_tok
    model.train()  # LoRA dropout on: score must switch it off and restore the mode
    video = clip()
    got_mean = score(model, tok, video, QUESTION, CANDIDATES)
    got_sum = score(model, tok, video, QUESTION, CANDIDATES, reduction="sum")
    assert model.training
    model.eval()
    naive = [naive_logprobs(model, tok, video, QUESTION, c) for c in CANDIDATES]
    # the candidates' tokens are the training targets: answer + eos
    assert [len(lp) for lp in naive] == [len(candidate_ids(tok, c)) for c in CANDIDATES]
    assert torch.allclose(torch.tensor(got_sum), torch.stack([lp.sum() for lp in naive]), atol=1e-4)
    assert torch.allclose(torch.tensor(got_mean), torch.stack([lp.mean() for lp in naive]), atol=1e-5)
    assert len(set(got_mean)) == len(CANDIDATES)  # not a constant
    # the prefix is encoded once: one LLM call with the prefix, then one packed row (batch 1) for all the
    # candidates over the prefix's cache as it is (batch 1: never copied per candidate)
    calls = []
    hook = model.llm.register_forward_pre_hook(
        lambda m, a, kw: calls.append((kw, kw.get("cache") and kw["cache"].layers[0].keys.shape)),
        with_kwargs=True,
    )
    try:
        score(model, tok, video, QUESTION, CANDIDATES)
    finally:
        hook.remove()
    assert len(calls) == 2 and calls[1][0]["input_ids"].shape == (1, sum(len(lp) - 1 for lp in naive))
    assert calls[1][1][0] == 1  # the cache the candidates read has batch 1


def test_shared_prefix_equals_reencoding_the_prefix_per_candidate(model_tok):
    """Chunks of several candidates (the cache cropped back after each), with and without video (the prior of
    EPIC MIR's calibrated score), against a full forward over [prefix, candidate] per candidate."""
    model, tok = model_tok
    cands = [*CANDIDATES, "I wash the pan and put it away.", "OK"] * 2
    for video in (clip(1), None):
        for chunk in (1, 3, 64):
            got = score(model, tok, video, QUESTION, cands, reduction="sum", chunk_size=chunk)
            ref = score(
                model, tok, video, QUESTION, cands, reduction="sum", chunk_size=5, shared_prefix=False
            )
            assert torch.allclose(torch.tensor(got), torch.tensor(ref), atol=1e-4), (video is None, chunk)
    with_video = score(model, tok, clip(1), QUESTION, cands[:3])
    assert with_video != score(model, tok, None, QUESTION, cands[:3])  # the prior is another distribution


def test_generate_decodes_greedily_from_the_training_prefix(model_tok):
    model, tok = model_tok
    model.eval()
    video = clip(1)
    conv = [{"from": "human", "value": QUESTION}, {"from": "gpt", "value": "I cut an onion."}]
    ids, labels = tokenize_conversation(tok, conv, 10_000)
    first = next(i for i, lab in enumerate(labels) if lab != IGNORE_INDEX)
    assert prompt_ids(tok, QUESTION) == ids[:first]  # the same token ids up to the answer
    # and the same embeddings: generate's prefix is the training splice cut before the answer
    with torch.no_grad():
        visual = model.visual_tokens(ego_BTCHW=video[None])
        train_prefix = model.splice(visual, torch.tensor([ids[:first]]))["embeds_BSD"]
        assert torch.equal(prefix_embeds(model, tok, video, QUESTION), train_prefix)
        # greedy decoding by hand, full forward each step, no cache
        manual, seq = [], list(ids[:first])
        for _ in range(6):
            logits = model.llm(inputs_embeds=model.splice(visual, torch.tensor([seq]))["embeds_BSD"]).logits
            token = int(logits[0, -1].argmax())
            if token == tok.eos_token_id:
                break
            manual.append(token)
            seq.append(token)
    got = generate_ids(model, tok, video, QUESTION, max_new_tokens=6)
    assert got == manual and got
    assert generate(model, tok, video, QUESTION, max_new_tokens=6) == tok.decode(manual).strip()
    assert generate_reexported is generate
    # uint8 frames are normalised on the way in
    raw = clip(2, torch.uint8)
    assert generate_ids(model, tok, raw, QUESTION, max_new_tokens=4) == generate_ids(
        model, tok, normalize(raw), QUESTION, max_new_tokens=4
    )


def test_exo_view_scores_the_teachers_tokens(model_tok):
    model, tok = model_tok
    model.eval()
    video = clip(3)
    ego = score(model, tok, video, QUESTION, CANDIDATES[:2], reduction="sum")
    exo = score(model, tok, video, QUESTION, CANDIDATES[:2], reduction="sum", view="exo")
    assert ego != exo  # ego: connector(x) + connector(F(x)); exo: connector(y) (same weights, fewer tokens)
    with pytest.raises(ValueError, match="view='side'"):
        score(model, tok, video, QUESTION, CANDIDATES, view="side")


# ---- export ------------------------------------------------------------------------------------------------
def test_saved_lora_model_loads_without_its_checkpoints_and_answers_the_same(model_tok, tmp_path):
    model, tok = model_tok
    model.eval()
    # provenance paths that do not exist: loading must read nothing but the folder
    cfg = dataclasses.replace(model.cfg, vision_tower="/nonexistent/clip", llm="/nonexistent/mistral")
    model.cfg = cfg
    out = save_pretrained(model, tok, tmp_path / "export")
    assert {p.name for p in out.iterdir()} == {
        "exo2ego.json",
        "vision",
        "llm",
        "tokenizer",
        "model.safetensors",
    }
    meta = json.loads((out / "exo2ego.json").read_text())
    assert meta["model"]["vision_tower"] == "/nonexistent/clip" and meta["lora"]["r"] == STAGE3.lora.r

    loaded, tok2 = load_pretrained(out)
    assert tok2.encode(QUESTION) == tok.encode(QUESTION) and tok2.pad_token_id == tok.pad_token_id
    mine, theirs = model.state_dict(), loaded.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert any("lora_B" in k for k in theirs)
    assert len(loaded.exo_tower.encoder.layers) == len(model.exo_tower.encoder.layers)  # not cut twice
    video = clip(4)
    assert generate_ids(loaded, tok2, video, QUESTION, max_new_tokens=6) == generate_ids(
        model, tok, video, QUESTION, max_new_tokens=6
    )
    assert score(loaded, tok2, video, QUESTION, CANDIDATES) == score(model, tok, video, QUESTION, CANDIDATES)

    # strict: a missing or an extra weight is an error naming it
    weights = load_file(out / "model.safetensors")
    dropped = next(k for k in weights if "map_f" in k)
    save_file({k: v for k, v in weights.items() if k != dropped}, out / "model.safetensors")
    with pytest.raises(KeyError, match=dropped.replace(".", r"\.")):
        load_pretrained(out)
    save_file({**weights, "projector.extra": torch.zeros(1)}, out / "model.safetensors")
    with pytest.raises(KeyError, match=r"projector\.extra"):
        load_pretrained(out)


def test_export_without_lora_and_a_model_built_by_hand(tmp_path):
    """A model built from modules (not build_model), no adapters: save, load, same outputs."""
    torch.manual_seed(0)
    tok = tiny_tokenizer()
    llm = MistralForCausalLM(tiny_llm_config(len(tok)))
    finish_llm(llm, tok)
    towers = [CLIPVisionModel(tiny_vision_config(RUN.model.image_size)) for _ in range(2)]
    model = Exo2EgoModel(RUN.model, *towers, llm).eval()
    loaded, tok2 = load_pretrained(save_pretrained(model, tok, tmp_path / "plain"))
    assert json.loads((tmp_path / "plain" / "exo2ego.json").read_text())["lora"] is None
    video = clip(5)
    assert score(loaded, tok2, video, QUESTION, CANDIDATES[:2]) == score(
        model, tok, video, QUESTION, CANDIDATES[:2]
    )


def test_shared_prefix_applies_a_sliding_window_as_a_full_forward_does(model_tok):
    """A prefix longer than Mistral's sliding_window: the shared cache keeps every prefix key (it is cropped back
    after each chunk) and the packed mask applies the window; the scores equal the re-encoded ones."""
    model, tok = model_tok
    window = model.llm.config.sliding_window
    model.llm.config.sliding_window = 24  # the prefix is longer (the tiny clip alone gives 54 visual tokens)
    try:
        cands = [*CANDIDATES, "I wash the pan and put it away."] * 2
        got = score(model, tok, clip(2), QUESTION, cands, reduction="sum", chunk_size=4)
        ref = score(model, tok, clip(2), QUESTION, cands, reduction="sum", chunk_size=5, shared_prefix=False)
        assert torch.allclose(torch.tensor(got), torch.tensor(ref), atol=1e-4)
        model.llm.config.sliding_window = 10_000
        wide = score(model, tok, clip(2), QUESTION, cands, reduction="sum", chunk_size=4)
        assert not torch.allclose(torch.tensor(got), torch.tensor(wide), atol=1e-4)  # the window mattered
    finally:
        model.llm.config.sliding_window = window
