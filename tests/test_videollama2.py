"""exo2ego_model.videollama2: a tiny checkpoint in VideoLLaMA2's on-disk layout (config.json + safetensors with its
key names) loads into the exo branch; the connector's names are VideoLLaMA2's / timm's; mismatches are errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import CLIPVisionModel, MistralForCausalLM

from exo2ego_model.config import ConfigError, ModelConfig
from exo2ego_model.connector import STCConnector
from exo2ego_model.model import build_model
from exo2ego_model.tiny import tiny_llm_config, tiny_tokenizer, tiny_vision_config
from exo2ego_model.videollama2 import load_videollama2_into, map_key

CFG = ModelConfig(vision_tower="tiny", llm="tiny", n_frames=4, image_size=32, connector_depth=2, mapping_blocks=1,
                  mapping_downsample=1, dtype="float32")  # fmt: skip
TOWER = "model.vision_tower.vision_tower.vision_model."


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


def write_checkpoint(root: Path, *, sharded: bool = False, extra: dict | None = None, drop: str = "",
                     meta: dict | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
    """A VideoLLaMA2-7B-shaped checkpoint at tiny sizes: full CLIP tower (all its layers, post-layernorm),
    STC connector as wide as the LLM, Mistral LLM; returns the tensors written."""
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(123)
    tower = CLIPVisionModel(tiny_vision_config(CFG.image_size))
    llm = MistralForCausalLM(tiny_llm_config(len(tiny_tokenizer())))
    C, D = tower.config.hidden_size, llm.config.hidden_size
    state = {TOWER + k: v for k, v in tower.state_dict().items()}
    state |= {"model.mm_projector." + k: torch.randn(shape) for k, shape in stc_keys(C, D, D, 2).items()}
    state |= dict(llm.state_dict())  # model.embed_tokens / model.layers / model.norm / lm_head
    state |= extra or {}
    state.pop(drop, None)
    state = {k: v.contiguous() for k, v in state.items()}
    config = {**llm.config.to_dict(), "model_type": "videollama2_mistral", "architectures": ["Videollama2MistralForCausalLM"],
              "mm_projector_type": "stc_connector", "mm_hidden_size": C, "mm_vision_select_layer": -2,
              "mm_vision_select_feature": "patch", "mm_vision_tower": "openai/clip-vit-large-patch14-336",
              "num_frames": 8, **(meta or {})}  # fmt: skip
    (root / "config.json").write_text(json.dumps(config))
    if sharded:
        keys = sorted(state)
        halves = {
            "model-00001-of-00002.safetensors": keys[::2],
            "model-00002-of-00002.safetensors": keys[1::2],
        }
        for name, part in halves.items():
            save_file({k: state[k] for k in part}, root / name)
        weight_map = {k: name for name, part in halves.items() for k in part}
        (root / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    else:
        save_file(state, root / "model.safetensors")
    return state


@pytest.mark.parametrize("sharded", [False, True])
def test_checkpoint_lands_in_the_exo_branch(tmp_path, sharded):
    state = write_checkpoint(
        tmp_path / "vl2", sharded=sharded, extra={"model.some_new_head.weight": torch.zeros(2)}
    )
    with pytest.warns(UserWarning, match="some_new_head"):
        model, _ = build_model(dataclasses.replace(CFG, videollama2=str(tmp_path / "vl2")))
    ours = model.state_dict()
    n_layers = len(model.exo_tower.encoder.layers)
    for key, tensor in state.items():
        our_key = map_key(key)
        if our_key in ours:
            assert torch.equal(ours[our_key], tensor), key
    # spot checks of where things land
    assert torch.equal(ours["exo_tower.embeddings.patch_embedding.weight"],
                       state[TOWER + "embeddings.patch_embedding.weight"])  # fmt: skip
    assert torch.equal(
        ours["projector.s1.b1.conv2.conv.weight"], state["model.mm_projector.s1.b1.conv2.conv.weight"]
    )
    assert torch.equal(ours["projector.readout.2.bias"], state["model.mm_projector.readout.2.bias"])
    assert torch.equal(model.llm.get_input_embeddings().weight, state["model.embed_tokens.weight"])
    assert torch.equal(ours["llm.lm_head.weight"], state["lm_head.weight"])
    # the ego tower copies the exo tower; the layer after select_layer -2 is not part of either
    assert all(torch.equal(v, ours["exo_tower." + k[len("ego_tower.") :]]) for k, v in ours.items()
               if k.startswith("ego_tower."))  # fmt: skip
    assert f"{TOWER}encoder.layers.{n_layers}.mlp.fc1.weight" in state and n_layers == 1


def test_features_equal_videollama2s_select_layer(tmp_path):
    """Our exo features = hidden_states[-2][:, 1:] of the checkpoint's full CLIP tower, as VideoLLaMA2 computes."""
    state = write_checkpoint(tmp_path / "vl2")
    model, _ = build_model(dataclasses.replace(CFG, videollama2=str(tmp_path / "vl2")))
    tower = CLIPVisionModel(tiny_vision_config(CFG.image_size))
    tower.load_state_dict({k[len(TOWER) :]: v for k, v in state.items() if k.startswith(TOWER)})
    frames = torch.randn(1, CFG.n_frames, 3, CFG.image_size, CFG.image_size)
    want = tower.eval()(pixel_values=frames[0], output_hidden_states=True).hidden_states[-2][:, 1:]
    got = model.eval().encode(frames, "exo")[0].flatten(1, 2)
    assert torch.allclose(got, want, atol=1e-5)


def test_report_lists_unused_and_unexpected(tmp_path):
    position_ids = TOWER + "embeddings.position_ids"  # a buffer older transformers versions saved
    state = write_checkpoint(tmp_path / "vl2", extra={position_ids: torch.arange(17)[None]})
    torch.manual_seed(0)
    model, _ = build_model(CFG)
    report = load_videollama2_into(model, tmp_path / "vl2")
    assert report.unexpected == []
    # dropped on purpose: the buffer, the tower's post-layernorm, its last layer (after select_layer -2)
    last_layer = {k for k in state if k.startswith(TOWER + "encoder.layers.1.")}
    assert last_layer and set(report.unused) == {position_ids, TOWER + "post_layernorm.weight",
                                                 TOWER + "post_layernorm.bias"} | last_layer  # fmt: skip
    assert set(report.loaded) == {
        k for k in model.state_dict() if k.startswith(("exo_tower.", "projector.", "llm."))
    }


@pytest.mark.parametrize(
    ("write", "cfg", "error", "match"),
    [
        (
            dict(drop="model.mm_projector.s2.b1.se.fc1.bias"),
            {},
            KeyError,
            r"projector\.s2\.b1\.se\.fc1\.bias",
        ),
        (dict(drop="lm_head.weight"), {}, KeyError, r"llm\.lm_head\.weight"),
        (dict(meta={"mm_projector_type": "stc_connector_v35"}), {}, ConfigError, "model.connector='stc'"),
        (dict(meta={"mm_projector_type": "mlp2x_gelu"}), {}, ConfigError, "mm_projector_type='mlp2x_gelu'"),
        (dict(meta={"mm_vision_select_layer": -1}), {}, ConfigError, "model.feature_layer=-2"),
        ({}, {"connector_depth": 1}, ConfigError, "model.connector_depth=1"),
        ({}, {"connector_width": 16}, ConfigError, "model.connector_width=16"),
    ],
)
def test_mismatches_are_errors_naming_them(tmp_path, write, cfg, error, match):
    write_checkpoint(tmp_path / "vl2", **write)
    with pytest.raises(error, match=match):
        build_model(dataclasses.replace(CFG, videollama2=str(tmp_path / "vl2"), **cfg))
