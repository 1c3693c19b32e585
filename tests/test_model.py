"""exo2ego_model: losses by hand, stage freezing, forward/backward, overfitting, generation (tiny CPU models)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from exo2ego_model.config import load_run_config
from exo2ego_model.generate import generate
from exo2ego_model.losses import cycle_loss, kl_loss, vtg_loss
from exo2ego_model.model import apply_stage, build_model, group_of, trainable_groups

SMOKE_RUN = Path(__file__).resolve().parents[1] / "configs" / "smoke" / "run.yaml"
RUN = load_run_config(SMOKE_RUN)
STAGE1, STAGE2, STAGE3 = RUN.stages
PROMPT = "Q: what is the camera wearer doing? A:"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matmuls gain nothing from threads, and on a shared CPU OpenMP's spinning threads made this file
    3-7x slower (measured on 2 busy cores); restored afterwards for the other test modules."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(RUN.model)


def make_batch(tokenizer, views: tuple[str, ...], seed: int = 0) -> dict:
    """Two samples of different lengths (so one is padded); labels only on the answer tokens."""
    gen = torch.Generator().manual_seed(seed)
    answers = [" I cut an onion.", " I open the fridge door slowly."]
    enc = tokenizer([PROMPT + a for a in answers], padding=True, return_tensors="pt")
    n_prompt = len(tokenizer(PROMPT).input_ids)
    labels_BL = enc.input_ids.clone()
    labels_BL[:, :n_prompt] = -100
    labels_BL[enc.attention_mask == 0] = -100
    batch = {"input_ids_BL": enc.input_ids, "attention_mask_BL": enc.attention_mask, "labels_BL": labels_BL}
    T, S = RUN.model.n_frames, RUN.model.image_size
    for view in views:
        batch[f"{view}_BTCHW"] = torch.randn(2, T, 3, S, S, generator=gen)
    return batch


VIEWS = {"exo": ("exo",), "pairs": ("ego", "exo"), "instruct": ("ego",)}


def params(model) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters())


# ---- losses by hand ---------------------------------------------------------------------------------------
def test_kl_loss_by_hand():
    # teacher [0, 0] -> p = [1/2, 1/2]; student [0, ln 3] -> q = [1/4, 3/4]
    # KL(p || q) = 1/2 ln(2) + 1/2 ln(2/3) = 1/2 ln(4/3)
    teacher = torch.tensor([[[0.0, 0.0]]])
    student = torch.tensor([[[0.0, math.log(3.0)]]])
    assert kl_loss(teacher, student, 1.0).item() == pytest.approx(0.5 * math.log(4 / 3), abs=1e-6)
    # temperature 2 on doubled logits gives the same distributions
    assert kl_loss(2 * teacher, 2 * student, 2.0).item() == pytest.approx(0.5 * math.log(4 / 3), abs=1e-6)
    # identical distributions: 0; mean over tokens: tokens [0.1438.., 0] -> 0.0719..
    assert kl_loss(student, student, 1.0).item() == pytest.approx(0.0, abs=1e-7)
    two_tokens = kl_loss(torch.cat([teacher, student], 1), torch.cat([student, student], 1), 1.0)
    assert two_tokens.item() == pytest.approx(0.25 * math.log(4 / 3), abs=1e-6)


def test_cycle_loss_by_hand():
    x = torch.tensor([[[1.0, 2.0]]])
    gfx = torch.tensor([[[1.5, 1.0]]])  # |0.5| and |1| -> mean 0.75
    y = torch.tensor([[[0.0, 0.0]]])
    fgy = torch.tensor([[[1.0, -1.0]]])  # |1| and |1| -> mean 1
    assert cycle_loss(x, gfx, y, fgy).item() == pytest.approx(1.75)
    assert cycle_loss(x, x, y, y).item() == 0.0


def test_vtg_loss_by_hand_and_ignores_non_targets():
    # 4 positions, vocab 3, targets at positions 2 and 3 (predicted from positions 1 and 2).
    labels = torch.tensor([[-100, -100, 1, 2]])
    logits = torch.zeros(1, 4, 3)
    logits[0, 2] = torch.tensor([0.0, 0.0, math.log(2.0)])  # p(2) = 2/4
    # position 1: uniform -> CE ln 3; position 2: CE -ln(1/2) = ln 2; mean = ln(6) / 2
    assert vtg_loss(logits, labels).item() == pytest.approx(math.log(6.0) / 2, abs=1e-6)
    # positions 0 (predicts a masked label) and 3 (predicts nothing) can be anything
    changed = logits.clone()
    changed[0, 0] = torch.tensor([9.0, -3.0, 4.0])
    changed[0, 3] = torch.tensor([-7.0, 5.0, 1.0])
    assert vtg_loss(changed, labels).item() == pytest.approx(math.log(6.0) / 2, abs=1e-6)
    # no target at all: 0, not NaN
    assert vtg_loss(logits, torch.full((1, 4), -100)).item() == 0.0


# ---- model ------------------------------------------------------------------------------------------------
def test_encode_shapes_and_visual_tokens():
    model, _ = make_model()
    cfg = RUN.model
    frames = torch.randn(2, cfg.n_frames, 3, cfg.image_size, cfg.image_size)
    n = (cfg.n_frames // cfg.temporal_stride) * cfg.pool_side**2
    hidden = model.exo_tower.config.hidden_size
    assert model.encode(frames, "exo").shape == (2, n, hidden)
    dim = model.llm.get_input_embeddings().embedding_dim
    assert model.visual_tokens(exo_BTCHW=frames).shape == (2, n, dim)
    assert model.visual_tokens(ego_BTCHW=frames).shape == (2, 2 * n, dim)  # x and F(x)
    # the ego tower starts as a copy of the exo tower
    assert torch.equal(model.encode(frames, "ego"), model.encode(frames, "exo"))


def test_vtg_matches_full_sequence_cross_entropy():
    """The model's VTG (logits kept for the text only) equals CE over the full [visual, text] sequence."""
    model, tok = make_model()
    batch = make_batch(tok, ("exo",))
    visual_BND = model.visual_tokens(exo_BTCHW=batch["exo_BTCHW"])
    B, N = visual_BND.shape[:2]
    embeds = torch.cat([visual_BND, model.llm.get_input_embeddings()(batch["input_ids_BL"])], dim=1)
    mask = torch.cat([torch.ones(B, N, dtype=torch.long), batch["attention_mask_BL"]], dim=1)
    labels = torch.cat([torch.full((B, N), -100), batch["labels_BL"]], dim=1)
    logits = model.llm(inputs_embeds=embeds, attention_mask=mask).logits
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
    assert model(batch, {"vtg": 1.0})["vtg"].item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("stage_index", [0, 1, 2])
def test_forward_backward_grads_exactly_on_trainable(stage_index):
    model, tok = make_model()
    for stage in RUN.stages[: stage_index + 1]:  # stages apply in sequence to one model
        apply_stage(model, stage)
    stage = RUN.stages[stage_index]
    out = model(make_batch(tok, VIEWS[stage.data_kind]), stage.losses)
    assert set(out) == {"loss", *stage.losses}
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
        assert p.requires_grad == (group_of(name) in stage.trainable), name


def test_each_stage_trains_exactly_its_groups():
    model, tok = make_model()
    for stage in RUN.stages:
        apply_stage(model, stage)
        counts = trainable_groups(model)
        assert {g for g, n in counts.items() if n} == set(stage.trainable), stage.name
        trainable = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(trainable, lr=stage.lr, weight_decay=stage.weight_decay)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        # two steps: LoRA's B starts at zero, so A only gets a non-zero gradient from the second step on
        for step in range(2):
            opt.zero_grad(set_to_none=True)
            model(make_batch(tok, VIEWS[stage.data_kind], seed=step), stage.losses)["loss"].backward()
            opt.step()
        for name, p in model.named_parameters():
            if group_of(name) in stage.trainable:
                assert not torch.equal(p, before[name]), f"{stage.name}: {name} did not change"
            else:
                assert p.grad is None, f"{stage.name}: {name} got a gradient"
                assert torch.equal(p, before[name]), f"{stage.name}: frozen {name} changed"
        model.zero_grad(set_to_none=True)
    # stage 3: inside the llm only the LoRA adapters learn
    llm_trainable = [n for n, p in model.llm.named_parameters() if p.requires_grad]
    assert llm_trainable and all("lora_" in n for n in llm_trainable)
    assert trainable_groups(model)["llm"] == 0


@pytest.mark.parametrize("stage", [STAGE1, STAGE2], ids=["stage1", "stage2"])
def test_loss_falls_when_overfitting_one_batch(stage):
    model, tok = make_model()
    apply_stage(model, stage)
    model.eval()  # no dropout: the same batch must give a steadily falling loss
    batch = make_batch(tok, VIEWS[stage.data_kind])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
    history = []
    for _ in range(30):
        opt.zero_grad(set_to_none=True)
        out = model(batch, stage.losses)
        out["loss"].backward()
        opt.step()
        history.append({name: value.item() for name, value in out.items()})
    first, last = history[0], history[-1]
    assert last["loss"] < 0.8 * first["loss"], history
    for name in stage.losses:  # every component improves, not only the sum
        assert last[name] < first[name], (name, history)


def test_generate_returns_text():
    model, tok = make_model()
    apply_stage(model, STAGE3)
    model.train()
    frames = torch.randn(1, RUN.model.n_frames, 3, RUN.model.image_size, RUN.model.image_size)
    answer = generate(model, tok, frames, "What am I doing?", max_new_tokens=6)
    assert isinstance(answer, str)
    assert model.training  # mode restored


def test_generate_prompt_matches_training_prompt():
    data = pytest.importorskip("exo2ego_model.data")
    from exo2ego_model.generate import DEFAULT_PROMPT_TEMPLATE

    assert DEFAULT_PROMPT_TEMPLATE.format(question="Q?") == data.PROMPT_TEMPLATE.format(prompt="Q?")


def test_apply_stage_again_keeps_one_set_of_adapters():
    model, _ = make_model()
    for stage in (*RUN.stages, STAGE3):
        apply_stage(model, stage)
    counts = trainable_groups(model)
    assert counts["lora"] > 0 and counts["llm"] == 0
    apply_stage(model, STAGE1)  # back to stage 1: the adapters stay but are frozen
    assert {g for g, n in trainable_groups(model).items() if n} == set(STAGE1.trainable)
    assert sum(".lora_A." in n for n, _ in model.llm.named_parameters()) == sum(
        ".lora_B." in n for n, _ in model.llm.named_parameters()
    )
