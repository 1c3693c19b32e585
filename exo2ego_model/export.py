"""A trained Exo2Ego model as a self-describing folder, loadable without the checkpoints it was built from.

    out_dir/
        exo2ego.json        {"format": 1, "model": ModelConfig fields, "lora": LoRA settings or null}
        vision/config.json  the CLIP vision config of both towers, as cut to model.feature_layer
        llm/config.json     the LLM's config (the base model's when LoRA-wrapped)
        tokenizer/          the tokenizer (pad token included)
        model.safetensors   every tensor of model.state_dict() under its Exo2EgoModel name

LoRA adapters are saved unmerged, with the settings they were made with: load_pretrained re-applies the same
adapters (model.apply_lora) before loading, so the loaded model computes exactly what the saved one did and can
keep training. The model's `cfg.vision_tower` / `cfg.llm` / `cfg.videollama2` are kept as provenance only:
loading reads nothing but this folder.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, CLIPVisionConfig, CLIPVisionModel

from .config import LoraSettings, ModelConfig, _build
from .model import Exo2EgoModel, apply_lora, finish_llm

FORMAT = 1
WEIGHTS = "model.safetensors"


def _lora_settings(model: Exo2EgoModel) -> LoraSettings | None:
    from peft import PeftModel

    if not isinstance(model.llm, PeftModel):
        return None
    peft = model.llm.peft_config["default"]
    return LoraSettings(
        r=peft.r,
        alpha=peft.lora_alpha,
        dropout=peft.lora_dropout,
        target_modules=tuple(sorted(peft.target_modules)),
    )


def _base_llm(model: Exo2EgoModel):
    from peft import PeftModel

    return model.llm.get_base_model() if isinstance(model.llm, PeftModel) else model.llm


def save_pretrained(model: Exo2EgoModel, tokenizer, out_dir: str | Path) -> Path:
    """Write `model` (an unwrapped Exo2EgoModel with full parameters, e.g. rank 0 after gathering) and its
    tokenizer to out_dir (created; files there are overwritten)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lora = _lora_settings(model)
    meta = {
        "format": FORMAT,
        "model": dataclasses.asdict(model.cfg),
        "lora": None
        if lora is None
        else {**dataclasses.asdict(lora), "target_modules": list(lora.target_modules)},
    }
    (out / "exo2ego.json").write_text(json.dumps(meta, indent=1) + "\n")
    model.exo_tower.config.save_pretrained(out / "vision")
    _base_llm(model).config.save_pretrained(out / "llm")
    tokenizer.save_pretrained(out / "tokenizer")
    state, seen = {}, set()
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        if tensor.data_ptr() in seen:  # safetensors refuses tensors sharing memory (tied weights)
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        state[key] = tensor
    save_file(state, out / WEIGHTS, metadata={"format": "pt", "exo2ego_format": str(FORMAT)})
    return out


def load_pretrained(out_dir: str | Path, device: str | torch.device = "cpu"):
    """(model, tokenizer) from a save_pretrained folder; architecture from its configs, weights loaded strictly.

    Missing or unexpected weights raise KeyError naming them. As build_model: the LLM takes the saved
    model.dtype on an accelerator and float32 on CPU, the towers, connector, F and G float32.
    """
    from safetensors.torch import load_file

    root = Path(out_dir)
    meta = json.loads((root / "exo2ego.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{root}/exo2ego.json: format {meta.get('format')!r}, this code reads {FORMAT}")
    cfg = _build(ModelConfig, meta["model"], f"{root}/exo2ego.json:model")
    device = torch.device(device)
    llm_dtype = torch.float32 if device.type == "cpu" else getattr(torch, cfg.dtype)

    # already cut at feature_layer (recorded in the config): Exo2EgoModel does not cut the towers again
    vision_config = CLIPVisionConfig.from_pretrained(root / "vision")
    llm_config = AutoConfig.from_pretrained(root / "llm")
    tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
    with device:  # built where it will run: the random init of a 7B LLM takes minutes on a CPU
        exo_tower, ego_tower = CLIPVisionModel(vision_config), CLIPVisionModel(vision_config)
        llm = AutoModelForCausalLM.from_config(llm_config, dtype=llm_dtype)
        finish_llm(llm, tokenizer)
        model = Exo2EgoModel(cfg, exo_tower, ego_tower, llm)
        if meta.get("lora"):
            apply_lora(model, _build(LoraSettings, meta["lora"], f"{root}/exo2ego.json:lora"))

    state = load_file(root / WEIGHTS)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise KeyError(
            f"{root / WEIGHTS}: missing weights {missing[:20]}, unexpected weights {unexpected[:20]}"
        )
    model.load_state_dict(state, strict=True)
    return model.to(device), tokenizer
