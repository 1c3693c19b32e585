"""exo2ego_model: losses by hand, stage freezing, forward/backward, overfitting, the visual path (penultimate
CLIP layer, STC connector, ResNet F / G), splicing the video into the prompt (tiny CPU models)."""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from pathlib import Path

import pytest
import torch
from transformers import CLIPVisionModel, MistralForCausalLM

from exo2ego_model.config import ConfigError, ModelConfig, load_run_config
from exo2ego_model.connector import PooledMLPConnector, STCConnector
from exo2ego_model.losses import cycle_loss, kl_loss, vtg_loss
from exo2ego_model.mapping import MLPMapping, ResnetMapping
from exo2ego_model.model import Exo2EgoModel, apply_stage, build_model, group_of, trainable_groups
from exo2ego_model.prompt import IGNORE_INDEX, VIDEO_TOKEN_INDEX, tokenize_conversation
from exo2ego_model.tiny import tiny_llm_config, tiny_tokenizer, tiny_vision_config

SMOKE_RUN = Path(__file__).resolve().parents[1] / "configs" / "smoke" / "run.yaml"
RUN = load_run_config(SMOKE_RUN)
INIT, STAGE1, STAGE2, STAGE3 = RUN.stages  # initialisation (EgoClip), then the paper's 3 stages
PROMPT = "Q: what is the camera wearer doing? A:"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matmuls gain nothing from threads, and on a shared CPU OpenMP's spinning threads made this file
    3-7x slower (measured on 2 busy cores); restored afterwards for the other test modules."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_model(seed: int = 0, **over):
    torch.manual_seed(seed)
    return build_model(dataclasses.replace(RUN.model, **over))


def collate_text(tokenizer, conversations: list[list[dict]], max_tokens: tuple[int, ...] = ()) -> dict:
    """input_ids_BL / attention_mask_BL / labels_BL of conversations, right-padded as the loader does."""
    limits = max_tokens or (128,) * len(conversations)
    encoded = [tokenize_conversation(tokenizer, c, n) for c, n in zip(conversations, limits, strict=True)]
    L = max(len(ids) for ids, _ in encoded)
    batch = {
        "input_ids_BL": torch.full((len(encoded), L), tokenizer.pad_token_id),
        "attention_mask_BL": torch.zeros(len(encoded), L, dtype=torch.long),
        "labels_BL": torch.full((len(encoded), L), IGNORE_INDEX),
    }
    for b, (ids, labels) in enumerate(encoded):
        batch["input_ids_BL"][b, : len(ids)] = torch.tensor(ids)
        batch["attention_mask_BL"][b, : len(ids)] = 1
        batch["labels_BL"][b, : len(ids)] = torch.tensor(labels)
    return batch


def make_batch(tokenizer, views: tuple[str, ...], seed: int = 0) -> dict:
    """Two samples of different prompt and answer lengths (so the video placeholder sits at different positions
    and one row is padded); labels only on the answer tokens."""
    gen = torch.Generator().manual_seed(seed)
    conversations = [
        [{"from": "human", "value": PROMPT}, {"from": "gpt", "value": "I cut an onion."}],
        [
            {"from": "human", "value": "<video>\nWhere?"},
            {"from": "gpt", "value": "I open the fridge door slowly."},
        ],
    ]
    batch = collate_text(tokenizer, conversations)
    T, S = RUN.model.n_frames, RUN.model.image_size
    for view in views:
        batch[f"{view}_BTCHW"] = torch.randn(2, T, 3, S, S, generator=gen)
    return batch


VIEWS = {"ego": ("ego",), "exo": ("exo",), "pairs": ("ego", "exo"), "instruct": ("ego",)}


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
def frames(B: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(B, RUN.model.n_frames, 3, RUN.model.image_size, RUN.model.image_size, generator=gen)


def test_encode_shapes_and_visual_tokens():
    model, _ = make_model()
    cfg = RUN.model
    clip = frames()
    side = cfg.image_size // model.exo_tower.config.patch_size
    hidden = model.exo_tower.config.hidden_size
    assert model.encode(clip, "exo").shape == (2, cfg.n_frames, side, side, hidden)
    # STC with padding 1: every one of (T, h, w) becomes n / 2 + 1 (VideoLLaMA2: 16 x 24 x 24 -> 9 x 13 x 13)
    n = (cfg.n_frames // 2 + 1) * (side // 2 + 1) ** 2
    assert model.projector.n_tokens(cfg.n_frames, side, side) == n
    dim = model.llm.get_input_embeddings().embedding_dim
    assert model.visual_tokens(exo_BTCHW=clip).shape == (2, n, dim)
    assert model.visual_tokens(ego_BTCHW=clip).shape == (2, 2 * n, dim)  # connector(x) and connector(F(x))
    assert model.visual_tokens(ego_BTCHW=clip, visual_input="x").shape == (2, n, dim)
    # the ego tower starts as a copy of the exo tower
    assert torch.equal(model.encode(clip, "ego"), model.encode(clip, "exo"))


def test_features_come_from_the_penultimate_layer_without_cls():
    """encode() = hidden_states[-2][:, 1:] of the full tower (VideoLLaMA2's select_layer -2, CLS dropped, no
    post-layernorm); the cut tower keeps no unused layer (it would be "trainable" without gradients)."""
    torch.manual_seed(1)
    tower = CLIPVisionModel(tiny_vision_config(RUN.model.image_size)).eval()
    n = tower.config.num_hidden_layers
    llm = MistralForCausalLM(tiny_llm_config(len(tiny_tokenizer())))
    model = Exo2EgoModel(RUN.model, copy.deepcopy(tower), copy.deepcopy(tower), llm).eval()
    assert len(model.exo_tower.encoder.layers) == len(model.ego_tower.encoder.layers) == n - 1
    clip = frames(1)
    want = tower(pixel_values=clip[0], output_hidden_states=True).hidden_states[-2][:, 1:]
    last = tower(pixel_values=clip[0]).last_hidden_state[:, 1:]
    got = model.encode(clip, "exo")[0].flatten(1, 2)
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, last, atol=1e-3)  # the last layer would differ
    with pytest.raises(ConfigError, match="model.feature_layer=-9"):
        make_model(feature_layer=-9)


def test_stc_connector_follows_videollama2():
    """Structure: RegStage (per frame) -> Conv3d 2x2x2 stride 2 -> RegStage -> MLP, tokens time-major."""
    torch.manual_seed(0)
    stc = STCConnector(dim_C=8, width=16, dim_D=12, depth=2, padding=1)
    sampler = stc.sampler[0]
    assert isinstance(sampler, torch.nn.Conv3d) and sampler.kernel_size == sampler.stride == (2, 2, 2)
    assert sampler.padding == (1, 1, 1) and isinstance(stc.sampler[1], torch.nn.SiLU)
    assert [n for n, _ in stc.s1.named_children()] == ["b1", "b2"]
    assert stc.s1.b1.conv2.conv.groups == 16  # depthwise 3x3 (timm group_size 1)
    x = torch.randn(2, 4, 6, 6, 8)
    assert stc(x).shape == (2, 3 * 4 * 4, 12) == (2, stc.n_tokens(4, 6, 6), 12)
    # time-major token order: changing the last frame changes only tokens of the last time steps
    y = x.clone()
    y[:, -1] += 1.0
    diff = (stc(x) - stc(y)).abs().sum(-1).reshape(2, 3, 16)
    assert diff[:, 0].max() == 0 and diff[:, 2].min() > 0
    v35 = STCConnector(dim_C=8, width=16, dim_D=12, depth=1, padding=0)
    assert v35(x).shape == (2, 2 * 3 * 3, 12)


def test_mlp_connector_and_mapping_options_train():
    model, tok = make_model(connector="mlp", mapping="mlp")
    assert isinstance(model.projector, PooledMLPConnector) and isinstance(model.map_f, MLPMapping)
    cfg = RUN.model
    n = (cfg.n_frames // cfg.temporal_stride) * cfg.pool_side**2
    assert model.visual_tokens(exo_BTCHW=frames()).shape[1] == n
    out = model(make_batch(tok, ("ego", "exo")), STAGE2.losses)
    out["loss"].backward()
    assert all(p.grad is not None for p in model.map_f.parameters())


def test_resnet_mapping_downsamples_and_restores_the_grid():
    torch.manual_seed(0)
    net = ResnetMapping(dim_C=16, blocks=3, bottleneck=4, downsample=2)
    assert len(net.blocks) == 3 and len(net.down) == len(net.up) == 2
    seen = []
    net.blocks[0].register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
    for h, w in ((7, 5), (8, 8)):  # odd grids come back to their size, not to 2x the down-sampled one
        x = torch.randn(2, 3, h, w, 16)
        assert net(x).shape == x.shape
        assert seen[-1] == (6, 16, math.ceil(math.ceil(h / 2) / 2), math.ceil(math.ceil(w / 2) / 2))
    # a different input per frame: frames are mapped independently (no mixing across T)
    x = torch.randn(1, 2, 8, 8, 16)
    y = x.clone()
    y[:, 1] += 1.0
    assert torch.equal(net(x)[:, 0], net(y)[:, 0])
    model, _ = make_model()
    assert isinstance(model.map_f, ResnetMapping) and len(model.map_f.blocks) == RUN.model.mapping_blocks


@pytest.mark.parametrize(
    ("field", "value"),
    [("connector", "qformer"), ("mapping", "linear"), ("feature_layer", 0), ("mapping_downsample", -1),
     ("connector_depth", -1), ("visual_input", "Fx")],
)  # fmt: skip
def test_model_config_errors_name_field_and_value(field, value):
    with pytest.raises(ConfigError, match=re.escape(f"model.{field}={value!r}")):
        ModelConfig(**{field: value})


def test_defaults_are_the_papers():
    cfg = ModelConfig()
    assert (cfg.n_frames, cfg.image_size, cfg.feature_layer) == (16, 336, -2)
    assert (cfg.connector, cfg.connector_depth, cfg.connector_width) == ("stc", 4, 0)
    assert (cfg.mapping, cfg.mapping_blocks, cfg.visual_input) == ("resnet", 9, "x+Fx")


def shifted_batch(tokenizer) -> dict:
    """Row 1's prompt is truncated from the left, so its placeholder sits earlier than row 0's."""
    conversations = [
        [{"from": "human", "value": PROMPT}, {"from": "gpt", "value": "I cut an onion."}],
        [{"from": "human", "value": "<video>\n" + "x" * 40}, {"from": "gpt", "value": "I open it."}],
    ]
    return collate_text(tokenizer, conversations, max_tokens=(128, 30))


def test_splice_puts_visual_tokens_at_each_rows_placeholder():
    model, tok = make_model()
    batch = shifted_batch(tok)
    ids, mask, labels = batch["input_ids_BL"], batch["attention_mask_BL"], batch["labels_BL"]
    positions = [int((row == VIDEO_TOKEN_INDEX).nonzero()) for row in ids]
    assert positions[0] > positions[1] >= 1 and int(mask[1].sum()) < ids.shape[1]  # different places, padded
    B, L = ids.shape
    N, D = 5, model.llm.get_input_embeddings().embedding_dim
    visual = torch.randn(B, N, D)
    s = model.splice(visual, ids, mask, labels)
    embed = model.llm.get_input_embeddings()
    for b in range(B):
        p = int((ids[b] == VIDEO_TOKEN_INDEX).nonzero())
        text = [i for i in range(L) if i != p]
        # row by row: text before, the N visual tokens, the rest of the text then padding
        assert torch.equal(s["embeds_BSD"][b, p : p + N], visual[b])
        assert torch.equal(s["embeds_BSD"][b, :p], embed(ids[b, :p]))
        assert torch.equal(s["embeds_BSD"][b, p + N :], embed(ids[b, text[p:]]))
        assert s["attention_mask_BS"][b].tolist() == [
            *mask[b, :p].tolist(),
            *[1] * N,
            *mask[b, p + 1 :].tolist(),
        ]
        assert s["labels_BS"][b].tolist() == [*labels[b, :p].tolist(), *[IGNORE_INDEX] * N,
                                               *labels[b, p + 1 :].tolist()]  # fmt: skip
    bad = ids.clone()
    bad[1][bad[1] == VIDEO_TOKEN_INDEX] = tok.pad_token_id
    with pytest.raises(ValueError, match="exactly one video placeholder"):
        model.splice(visual, bad, mask, labels)


def test_vtg_matches_full_sequence_cross_entropy():
    """The model's VTG (logits kept from the first answer on) equals CE over the full spliced sequence, where
    the visual tokens sit inside the first [INST] turn."""
    model, tok = make_model()
    batch = {**shifted_batch(tok), "exo_BTCHW": frames()}
    visual_BND = model.visual_tokens(exo_BTCHW=batch["exo_BTCHW"])
    s = model.splice(visual_BND, batch["input_ids_BL"], batch["attention_mask_BL"], batch["labels_BL"])
    logits = model.llm(inputs_embeds=s["embeds_BSD"], attention_mask=s["attention_mask_BS"]).logits
    labels = s["labels_BS"]
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
    assert model(batch, {"vtg": 1.0})["vtg"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_visual_input_override_for_the_ego_initialisation_stage():
    """forward(..., visual_input="x") on ego-only batches: F is not run, connector(x) is what the LLM sees."""
    model, tok = make_model()
    batch = make_batch(tok, ("ego",))
    calls = []
    model.map_f.register_forward_hook(lambda *a: calls.append(1))
    x_only = model(batch, {"vtg": 1.0}, visual_input="x")["vtg"]
    assert not calls
    visual = model.projector(model.encode(batch["ego_BTCHW"], "ego"))
    assert x_only.item() == pytest.approx(model.vtg(visual, batch).item(), rel=1e-6)
    default = model(batch, {"vtg": 1.0})["vtg"]  # cfg.visual_input "x+Fx"
    assert calls and default.item() != pytest.approx(x_only.item())
    with pytest.raises(ValueError, match="visual_input='F'"):
        model(batch, {"vtg": 1.0}, visual_input="F")


@pytest.mark.parametrize("stage_index", [0, 1, 2, 3])
def test_forward_backward_grads_exactly_on_trainable(stage_index):
    model, tok = make_model()
    for stage in RUN.stages[: stage_index + 1]:  # stages apply in sequence to one model
        apply_stage(model, stage)
    stage = RUN.stages[stage_index]
    out = model(make_batch(tok, VIEWS[stage.data_kind]), stage.losses, visual_input=stage.visual_input or None)
    assert set(out) == {"loss", *stage.losses}
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
        assert p.requires_grad == (group_of(name) in stage.trained), name


def test_each_stage_trains_exactly_its_groups():
    model, tok = make_model()
    for stage in RUN.stages:
        apply_stage(model, stage)
        counts = trainable_groups(model)
        assert {g for g, n in counts.items() if n} == set(stage.trained), stage.name
        trainable = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(trainable, lr=stage.lr, weight_decay=stage.weight_decay)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        # two steps: LoRA's B starts at zero, so A only gets a non-zero gradient from the second step on
        for step in range(2):
            opt.zero_grad(set_to_none=True)
            batch = make_batch(tok, VIEWS[stage.data_kind], seed=step)
            model(batch, stage.losses, visual_input=stage.visual_input or None)["loss"].backward()
            opt.step()
        for name, p in model.named_parameters():
            if group_of(name) in stage.trained:
                assert not torch.equal(p, before[name]), f"{stage.name}: {name} did not change"
            else:
                assert p.grad is None, f"{stage.name}: {name} got a gradient"
                assert torch.equal(p, before[name]), f"{stage.name}: frozen {name} changed"
        model.zero_grad(set_to_none=True)
    # stage 3: inside the llm only the LoRA adapters learn
    llm_trainable = [n for n, p in model.llm.named_parameters() if p.requires_grad]
    assert llm_trainable and all("lora_" in n for n in llm_trainable)
    assert trainable_groups(model)["llm"] == 0


@pytest.mark.parametrize("stage", [INIT, STAGE1, STAGE2], ids=["init", "stage1", "stage2"])
def test_loss_falls_when_overfitting_one_batch(stage):
    model, tok = make_model()
    apply_stage(model, stage)
    model.eval()  # no dropout: the same batch must give a steadily falling loss
    batch = make_batch(tok, VIEWS[stage.data_kind])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
    history = []
    for _ in range(30):
        opt.zero_grad(set_to_none=True)
        out = model(batch, stage.losses, visual_input=stage.visual_input or None)
        out["loss"].backward()
        opt.step()
        history.append({name: value.item() for name, value in out.items()})
    first, last = history[0], history[-1]
    assert last["loss"] < 0.8 * first["loss"], history
    for name in stage.losses:  # every component improves, not only the sum
        assert last[name] < first[name], (name, history)


def test_apply_stage_again_keeps_one_set_of_adapters():
    model, _ = make_model()
    for stage in (*RUN.stages, STAGE3):
        apply_stage(model, stage)
    counts = trainable_groups(model)
    assert counts["lora"] > 0 and counts["llm"] == 0
    apply_stage(model, STAGE1)  # back to stage 1: the adapters stay but are frozen
    assert {g for g, n in trainable_groups(model).items() if n} == set(STAGE1.trained)
    assert sum(".lora_A." in n for n, _ in model.llm.named_parameters()) == sum(
        ".lora_B." in n for n, _ in model.llm.named_parameters()
    )
