"""A trained Exo2Ego model as a self-describing folder, loadable without the checkpoints it was built from.

    out_dir/
        exo2ego.json        {"format": 1, "model": ModelConfig fields, "lora": LoRA settings or null}
        vision/config.json  the CLIP vision config of both towers, as cut to model.feature_layer
        llm/config.json     the LLM's config (the base model's when LoRA-wrapped)
        tokenizer/          the tokenizer (pad token included)
        model.safetensors   every tensor of model.state_dict() under its Exo2EgoModel name
                            (or model.safetensors.index.json {"weight_map": {name: file}} and the files it
                            names, as Hugging Face shards large checkpoints: loaded the same way)

LoRA adapters are saved unmerged, with the settings they were made with: load_pretrained re-applies the same
adapters (model.apply_lora) before loading, so the loaded model computes exactly what the saved one did and can
keep training. The model's `cfg.vision_tower` / `cfg.llm` / `cfg.videollama2` are kept as provenance only:
loading reads nothing but this folder.

A folder that cannot be loaded (no exo2ego.json, a weights file cut short, an index naming a missing file, an
unreadable config) raises ExportError, one line naming the file and the reason, before any model is built;
missing or unexpected weight names raise KeyError naming them. `fingerprint` is the sha256 of every file loading
reads: it changes when the weights (or configs, or tokenizer) change, not when the folder is moved or copied.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, CLIPVisionConfig, CLIPVisionModel

from .config import LoraSettings, ModelConfig, _build
from .model import Exo2EgoModel, apply_lora, finish_llm

FORMAT = 1
META = "exo2ego.json"
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
CONFIG_DIRS = ("vision", "llm", "tokenizer")


class ExportError(ValueError):
    """A save_pretrained folder that cannot be loaded; the message (one line) names the file and the reason."""


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:300]


def check_safetensors(path: Path) -> dict:
    """The header of a safetensors file after checking that the file holds exactly the bytes it describes
    (ExportError: truncated, trailing bytes, not a safetensors file)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ExportError(f"{path}: truncated ({size} bytes: not even a safetensors header)")
        n = int.from_bytes(head, "little")
        if n > size - 8:
            raise ExportError(
                f"{path}: truncated or not a safetensors file (its header claims {n} bytes, the file has {size})"
            )
        try:
            header = json.loads(f.read(n))
            end = max(
                (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0
            )
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            raise ExportError(f"{path}: not a safetensors file (unreadable header: {_one_line(e)})") from None
    need = 8 + n + end
    if size < need:
        raise ExportError(
            f"{path}: truncated: {size} of {need} bytes (the file was cut short; copy or export it again)"
        )
    if size > need:
        raise ExportError(f"{path}: damaged: {size - need} bytes after the last tensor")
    return header


def weight_files(root: str | Path) -> list[Path]:
    """The weight files of a save_pretrained folder (model.safetensors, or the files its index names), each
    checked whole; ExportError for a folder that is not one or a file that is missing or cut short."""
    root = Path(root)
    if not root.is_dir():
        raise ExportError(f"{root}: " + ("not a folder" if root.exists() else "no such folder"))
    if not (root / META).is_file():
        hint = ""
        if (root / ".metadata").exists() or (root / "checkpoints").exists():
            hint = (
                " (a training checkpoint: use the stage's exported folder, written by export.save_pretrained)"
            )
        raise ExportError(f"{root}: no {META}, so not an export.save_pretrained folder{hint}")
    single = root / WEIGHTS
    if single.exists():
        check_safetensors(single)
        return [single]
    index = root / WEIGHTS_INDEX
    if not index.exists():
        raise ExportError(f"{root}: no {WEIGHTS} (nor {WEIGHTS_INDEX}): the weights are missing")
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError("weight_map is not a non-empty object")
        names = sorted(set(weight_map.values()))
        if not all(isinstance(n, str) and n and Path(n).name == n and not n.startswith(".") for n in names):
            raise ValueError("weight_map names something other than files of this folder")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ExportError(f"{index}: unreadable ({_one_line(e)})") from None
    files = [root / n for n in names]
    for path in files:
        if not path.is_file():
            raise ExportError(f"{index} names {path.name}, which is missing from {root}")
        check_safetensors(path)
    return files


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(root: str | Path) -> str:
    """sha256 over every file loading reads (exo2ego.json, vision/, llm/, tokenizer/, the weights and their
    index), each by its path in the folder and its own sha256: reads the whole checkpoint once."""
    root = Path(root)
    files = {root / META, *weight_files(root)}
    if (root / WEIGHTS_INDEX).exists() and not (root / WEIGHTS).exists():
        files.add(root / WEIGHTS_INDEX)
    for sub in CONFIG_DIRS:
        files.update(p for p in (root / sub).rglob("*") if p.is_file())
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path.relative_to(root).as_posix()}\0{_sha256_file(path)}\n".encode())
    return h.hexdigest()


def _read_weights(root: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    files = weight_files(root)
    index = None
    if files != [root / WEIGHTS]:
        index = json.loads((root / WEIGHTS_INDEX).read_text())["weight_map"]
    state: dict[str, torch.Tensor] = {}
    for path in files:
        try:
            part = load_file(path)
        except (SafetensorError, OSError) as e:
            raise ExportError(f"{path}: unreadable ({_one_line(e)})") from None
        if index is not None:
            listed = {k for k, f in index.items() if f == path.name}
            if set(part) != listed:
                raise ExportError(
                    f"{root / WEIGHTS_INDEX}: {path.name} holds {len(part)} tensors, the index names "
                    f"{len(listed)} there (e.g. {sorted(set(part) ^ listed)[:3]})"
                )
        state.update(part)
    return state


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
    root = Path(out_dir)
    weight_files(root)  # a missing or truncated weights file fails here, before the model is built
    try:
        meta = json.loads((root / META).read_text())
        if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
            raise ValueError('no "model" object')
    except (OSError, ValueError) as e:
        raise ExportError(f"{root / META}: unreadable ({_one_line(e)})") from None
    if meta.get("format") != FORMAT:
        raise ExportError(f"{root / META}: format {meta.get('format')!r}, this code reads {FORMAT}")
    cfg = _build(ModelConfig, meta["model"], f"{root}/{META}:model")
    device = torch.device(device)
    llm_dtype = torch.float32 if device.type == "cpu" else getattr(torch, cfg.dtype)

    # already cut at feature_layer (recorded in the config): Exo2EgoModel does not cut the towers again
    try:
        vision_config = CLIPVisionConfig.from_pretrained(root / "vision")
        llm_config = AutoConfig.from_pretrained(root / "llm")
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
    except (OSError, ValueError) as e:
        raise ExportError(f"{root}: a config or the tokenizer is unreadable ({_one_line(e)})") from None
    with device:  # built where it will run: the random init of a 7B LLM takes minutes on a CPU
        exo_tower, ego_tower = CLIPVisionModel(vision_config), CLIPVisionModel(vision_config)
        llm = AutoModelForCausalLM.from_config(llm_config, dtype=llm_dtype)
        finish_llm(llm, tokenizer)
        model = Exo2EgoModel(cfg, exo_tower, ego_tower, llm)
        if meta.get("lora"):
            apply_lora(model, _build(LoraSettings, meta["lora"], f"{root}/exo2ego.json:lora"))

    state = _read_weights(root)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        where = root / (WEIGHTS if (root / WEIGHTS).exists() else WEIGHTS_INDEX)
        raise KeyError(f"{where}: missing weights {missing[:20]}, unexpected weights {unexpected[:20]}")
    model.load_state_dict(state, strict=True)
    return model.to(device), tokenizer
