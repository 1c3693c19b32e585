"""exo2ego_model.videollama2: a checkpoint folder in VideoLLaMA2's RELEASED layout (DAMO-NLP-SG/VideoLLaMA2-7B:
config.json with its real fields, model.safetensors.index.json + model-0000k-of-00004.safetensors shards, the
tokenizer files, the real key names) at reduced width loads strictly into the exo branch; the LLM's architecture
is the checkpoint's; a missing or an extra tensor fails naming it.

The key names and shapes below are written out from VideoLLaMA2's model code and transformers 4.37's CLIP /
Mistral modules (the versions that saved the release), not read from our modules: a loader that expects other
names fails here."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPVisionConfig, CLIPVisionModel

from exo2ego_model.config import ConfigError, ModelConfig
from exo2ego_model.connector import STCConnector
from exo2ego_model.model import build_model
from exo2ego_model.tiny import tiny_tokenizer

TOWER = "model.vision_tower.vision_tower.vision_model."
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, patch_size=8,
              image_size=32)  # fmt: skip
# the LLM deliberately differs from tiny.tiny_llm_config: its architecture must come from the checkpoint
LLM = dict(
    hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2
)
VOCAB = len(tiny_tokenizer())
DEPTH = 2
CFG = ModelConfig(vision_tower="", llm="/not/read/when/videollama2/is/set", n_frames=4, image_size=32,
                  connector_depth=DEPTH, mapping_blocks=1, mapping_downsample=1, dtype="float32")  # fmt: skip


def stc_keys(C: int, W: int, D: int, depth: int) -> dict[str, tuple[int, ...]]:
    """VideoLLaMA2's `model.mm_projector` tensors (name -> shape) for a stc_connector, written out from its
    projector.py (s1 / sampler / s2 / readout) and timm 1.0.3's RegStage -> Bottleneck -> ConvNormAct (conv, bn:
    LayerNormAct2d), SEModule (fc1, fc2; rd = round(block input * 0.25)), shortcut `downsample` when widths differ."""
    keys: dict[str, tuple[int, ...]] = {}
    for stage, c_in in (("s1", C), ("s2", W)):
        for b in range(1, depth + 1):
            cin = c_in if b == 1 else W
            p = f"{stage}.b{b}."
            rd = int(round(cin * 0.25))
            keys |= {p + "conv1.conv.weight": (W, cin, 1, 1), p + "conv1.bn.weight": (W,), p + "conv1.bn.bias": (W,),
                     p + "conv2.conv.weight": (W, 1, 3, 3), p + "conv2.bn.weight": (W,), p + "conv2.bn.bias": (W,),
                     p + "se.fc1.weight": (rd, W, 1, 1), p + "se.fc1.bias": (rd,),
                     p + "se.fc2.weight": (W, rd, 1, 1), p + "se.fc2.bias": (W,),
                     p + "conv3.conv.weight": (W, W, 1, 1), p + "conv3.bn.weight": (W,), p + "conv3.bn.bias": (W,)}  # fmt: skip
            if cin != W:
                keys |= {p + "downsample.conv.weight": (W, cin, 1, 1), p + "downsample.bn.weight": (W,),
                         p + "downsample.bn.bias": (W,)}  # fmt: skip
    keys |= {"sampler.0.weight": (W, W, 2, 2, 2), "sampler.0.bias": (W,),
             "readout.0.weight": (D, W), "readout.0.bias": (D,), "readout.2.weight": (D, D), "readout.2.bias": (D,)}  # fmt: skip
    return keys


def test_stc_connector_has_videollama2s_names_and_shapes():
    for C, W, D, depth in ((32, 64, 64, 4), (16, 16, 24, 1)):
        ours = {k: tuple(v.shape) for k, v in STCConnector(C, W, D, depth).state_dict().items()}
        assert ours == stc_keys(C, W, D, depth)


def tower_keys() -> dict[str, tuple[int, ...]]:
    """transformers 4.37 CLIPVisionModel (CLIPVisionTransformer under `vision_model.`), as VideoLLaMA2 saved it."""
    C, F, p, n = (VISION[k] for k in ("hidden_size", "intermediate_size", "patch_size", "num_hidden_layers"))
    keys = {"embeddings.class_embedding": (C,), "embeddings.patch_embedding.weight": (C, 3, p, p),
            "embeddings.position_embedding.weight": ((VISION["image_size"] // p) ** 2 + 1, C),
            "pre_layrnorm.weight": (C,), "pre_layrnorm.bias": (C,),
            "post_layernorm.weight": (C,), "post_layernorm.bias": (C,)}  # fmt: skip
    for i in range(n):
        L = f"encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            keys |= {f"{L}self_attn.{proj}.weight": (C, C), f"{L}self_attn.{proj}.bias": (C,)}
        keys |= {L + "layer_norm1.weight": (C,), L + "layer_norm1.bias": (C,), L + "mlp.fc1.weight": (F, C),
                 L + "mlp.fc1.bias": (F,), L + "mlp.fc2.weight": (C, F), L + "mlp.fc2.bias": (C,),
                 L + "layer_norm2.weight": (C,), L + "layer_norm2.bias": (C,)}  # fmt: skip
    return {TOWER + k: v for k, v in keys.items()}


def llm_keys() -> dict[str, tuple[int, ...]]:
    """MistralForCausalLM: model.embed_tokens / model.layers.N / model.norm, and an untied lm_head."""
    D, F, H, K = (
        LLM[k] for k in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads")
    )
    kv = K * D // H
    keys = {"model.embed_tokens.weight": (VOCAB, D), "model.norm.weight": (D,), "lm_head.weight": (VOCAB, D)}
    for i in range(LLM["num_hidden_layers"]):
        L = f"model.layers.{i}."
        keys |= {L + "self_attn.q_proj.weight": (D, D), L + "self_attn.k_proj.weight": (kv, D),
                 L + "self_attn.v_proj.weight": (kv, D), L + "self_attn.o_proj.weight": (D, D),
                 L + "mlp.gate_proj.weight": (F, D), L + "mlp.up_proj.weight": (F, D), L + "mlp.down_proj.weight": (D, F),
                 L + "input_layernorm.weight": (D,), L + "post_attention_layernorm.weight": (D,)}  # fmt: skip
    return keys


def released_config(**meta) -> dict:
    """DAMO-NLP-SG/VideoLLaMA2-7B's config.json, field for field, at reduced width."""
    return {"_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2", "architectures": ["Videollama2MistralForCausalLM"],
            "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "freeze_mm_mlp_adapter": False,
            "hidden_act": "silu", "image_aspect_ratio": "pad", "initializer_range": 0.02,
            "max_position_embeddings": 1024, "mm_hidden_size": VISION["hidden_size"], "mm_projector_lr": None,
            "mm_projector_type": "stc_connector", "mm_use_im_patch_token": False, "mm_use_im_start_end": False,
            "mm_vision_select_feature": "patch", "mm_vision_select_layer": -2,
            "mm_vision_tower": "openai/clip-vit-large-patch14-336", "model_type": "videollama2_mistral",
            "num_frames": 4, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "sliding_window": None,
            "tie_word_embeddings": False, "tokenizer_model_max_length": 2048, "tokenizer_padding_side": "right",
            "torch_dtype": "bfloat16", "transformers_version": "4.37.2", "tune_mm_mlp_adapter": False,
            "use_cache": True, "use_mm_proj": True, "vocab_size": VOCAB, **LLM, **meta}  # fmt: skip


def write_clip(root: Path) -> Path:
    """openai/clip-vit-large-patch14-336's folder layout (a CLIPConfig with vision_config) at reduced width."""
    text = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    CLIPConfig(vision_config=CLIPVisionConfig(**VISION).to_dict(), text_config=text).save_pretrained(root)
    return root


def write_released(
    root: Path, *, drop: str = "", extra: dict | None = None, meta: dict | None = None
) -> dict:
    """The released folder; returns the tensors written."""
    root.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(123)
    shapes = llm_keys() | tower_keys()
    shapes |= {"model.mm_projector." + k: v for k, v in stc_keys(VISION["hidden_size"], LLM["hidden_size"],
                                                                 LLM["hidden_size"], DEPTH).items()}  # fmt: skip
    state = {k: torch.randn(v, generator=gen) for k, v in shapes.items() if k != drop} | (extra or {})
    names = list(state)
    shards = [names[i::4] for i in range(4)]
    weight_map = {}
    for i, part in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-00004.safetensors"
        save_file({k: state[k] for k in part}, root / name, metadata={"format": "pt"})
        weight_map |= dict.fromkeys(part, name)
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (root / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (root / "config.json").write_text(json.dumps(released_config(**(meta or {})), indent=2))
    tiny_tokenizer().save_pretrained(root)
    return state


def build(tmp_path: Path, **write):
    state = write_released(tmp_path / "VideoLLaMA2-7B", **write)
    cfg = dataclasses.replace(CFG, vision_tower=str(write_clip(tmp_path / "clip-vit-large-patch14-336")),
                              videollama2=str(tmp_path / "VideoLLaMA2-7B"))  # fmt: skip
    return state, cfg


def tower_state(model) -> dict[str, torch.Tensor]:
    return {k.removeprefix("vision_model."): v for k, v in model.exo_tower.state_dict().items()}


def test_released_layout_loads_strictly(tmp_path):
    state, cfg = build(tmp_path)
    assert sorted(p.name for p in (tmp_path / "VideoLLaMA2-7B").glob("model-*.safetensors")) == [
        f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)
    ]
    model, tokenizer = build_model(cfg)
    # the LLM's architecture and tokenizer are the checkpoint's (CFG.llm names no folder and is not read)
    assert (model.llm.config.hidden_size, model.llm.config.num_hidden_layers) == (48, 3)
    assert (model.llm.config.intermediate_size, model.llm.config.num_key_value_heads) == (96, 2)
    assert len(tokenizer) == VOCAB
    # every released tensor landed, under its real name, except the ones VideoLLaMA2 never uses
    tower, sd = tower_state(model), model.state_dict()
    dropped = {TOWER + "post_layernorm.weight", TOWER + "post_layernorm.bias"}
    dropped |= {k for k in state if k.startswith(TOWER + "encoder.layers.2.")}  # after select_layer -2
    for key, tensor in state.items():
        if key in dropped:
            continue
        if key.startswith(TOWER):
            got = tower[key[len(TOWER) :]]
        elif key.startswith("model.mm_projector."):
            got = sd["projector." + key[len("model.mm_projector.") :]]
        else:
            got = sd["llm." + key]
        assert torch.equal(got, tensor), key
    assert torch.equal(model.llm.get_input_embeddings().weight, state["model.embed_tokens.weight"])
    assert torch.equal(model.llm.lm_head.weight, state["lm_head.weight"])
    assert all(torch.equal(v, tower[k.removeprefix("vision_model.")])
               for k, v in model.ego_tower.state_dict().items())  # fmt: skip
    # the report: counts per module, the dropped tensors by name
    report = model.videollama2_report
    assert set(report.dropped) == dropped
    n = {m: sum(1 for k in state if k not in dropped and k.startswith(p)) for m, p in
         (("exo_tower", TOWER), ("projector", "model.mm_projector."))}  # fmt: skip
    n["llm"] = len(state) - len(dropped) - n["exo_tower"] - n["projector"]
    params = {m: sum(v.numel() for k, v in sd.items() if k.startswith(m + ".")) for m in n}
    assert report.per_module == {m: [n[m], params[m]] for m in ("exo_tower", "projector", "llm")}
    assert all(f"{m} {n[m]} tensors" in report.summary() for m in n)


@pytest.mark.parametrize(
    "drop",
    [
        TOWER + "encoder.layers.1.self_attn.k_proj.bias",
        "model.mm_projector.s2.b1.se.fc1.bias",
        "lm_head.weight",
        "model.layers.2.mlp.down_proj.weight",
    ],  # fmt: skip
)
def test_a_missing_tensor_fails_naming_it(tmp_path, drop):
    _, cfg = build(tmp_path, drop=drop)
    with pytest.raises(KeyError, match="1 of our weights missing.*" + drop.replace(".", r"\.")):
        build_model(cfg)


@pytest.mark.parametrize(
    "extra",
    [
        "model.mm_projector.s3.b1.conv1.conv.weight",
        TOWER + "encoder.layers.3.mlp.fc1.weight",
        "model.vision_tower.vision_tower.logit_scale",
        "model.layers.3.input_layernorm.weight",
        "lm_head.bias",
    ],  # fmt: skip
)
def test_an_extra_tensor_fails_naming_it(tmp_path, extra):
    _, cfg = build(tmp_path, extra={extra: torch.zeros(4)})
    with pytest.raises(
        KeyError, match="1 checkpoint tensors that load nowhere: " + extra.replace(".", r"\.")
    ):
        build_model(cfg)


def test_features_equal_videollama2s_select_layer(tmp_path):
    """Our exo features = hidden_states[-2][:, 1:] of the checkpoint's full CLIP tower, as VideoLLaMA2 computes."""
    state, cfg = build(tmp_path)
    model, _ = build_model(cfg)
    full = CLIPVisionModel(CLIPVisionConfig(**VISION))
    ours = {k.removeprefix("vision_model."): k for k in full.state_dict()}
    full.load_state_dict({ours[k[len(TOWER) :]]: v for k, v in state.items() if k.startswith(TOWER)})
    frames = torch.randn(1, CFG.n_frames, 3, CFG.image_size, CFG.image_size)
    want = full.eval()(pixel_values=frames[0], output_hidden_states=True).hidden_states[-2][:, 1:]
    got = model.eval().encode(frames, "exo")[0].flatten(1, 2)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize(
    ("meta", "cfg", "match"),
    [
        ({"mm_projector_type": "stc_connector_v35"}, {}, "model.connector='stc'"),
        ({"mm_projector_type": "mlp2x_gelu"}, {}, "mm_projector_type='mlp2x_gelu'"),
        ({"mm_vision_select_layer": -1}, {}, "model.feature_layer=-2"),
        ({"mm_hidden_size": 1024}, {}, "mm_hidden_size 1024"),
        ({"architectures": ["Videollama2Qwen2ForCausalLM"]}, {}, "Videollama2Qwen2ForCausalLM"),
        ({}, {"connector_depth": 1}, "model.connector_depth=1"),
        ({}, {"connector_width": 16}, "model.connector_width=16"),
    ],
)
def test_mismatches_are_errors_naming_them(tmp_path, meta, cfg, match):
    _, base = build(tmp_path, meta=meta)
    with pytest.raises(ConfigError, match=match):
        build_model(dataclasses.replace(base, **cfg))


def test_report_notes_settings_that_differ_from_the_checkpoints(tmp_path):
    _, cfg = build(tmp_path, meta={"num_frames": 16})
    report = build_model(dataclasses.replace(cfg, aspect="crop"))[0].videollama2_report
    assert any("n_frames=4" in n and "16 frames" in n for n in report.notes)
    assert any("model.aspect='crop'" in n and "'pad'" in n for n in report.notes)
