"""Initialise the exo branch (exo tower + connector + LLM) from a released VideoLLaMA2 checkpoint, the paper's
base model (default: DAMO-NLP-SG/VideoLLaMA2-7B-16F, CLIP ViT-L/336 + STC connector + Mistral-7B-Instruct-v0.2,
16 frames; VideoLLaMA2-7B is the same architecture trained on 8 frames).

The released folder (Hugging Face layout): config.json (Mistral's fields + VideoLLaMA2's: architectures
["Videollama2MistralForCausalLM"], model_type videollama2_mistral, mm_projector_type stc_connector,
mm_vision_tower openai/clip-vit-large-patch14-336, mm_hidden_size 1024, mm_vision_select_layer -2,
mm_vision_select_feature patch, image_aspect_ratio pad, num_frames), model.safetensors.index.json whose
weight_map names the shards model-0000k-of-0000n.safetensors (or one model.safetensors; pytorch_model*.bin also
read) and the tokenizer files. Key names, from DAMO-NLP-SG/VideoLLaMA2 (videollama2/model/videollama2_mistral.py
`Videollama2MistralForCausalLM`: `model` = MistralModel + Videollama2MetaModel, whose `vision_tower` is
encoder.py's CLIPVisionTower wrapping a transformers CLIPVisionModel as `.vision_tower`, and `mm_projector`
projector.py's STCConnector), saved with transformers 4.37 (CLIPVisionModel -> `vision_model.`):

    model.vision_tower.vision_tower.vision_model.<k>  ->  exo_tower.<k>   embeddings.{class_embedding,
                                      patch_embedding.weight, position_embedding.weight}, pre_layrnorm.*,
                                      encoder.layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1, mlp.fc2,
                                      layer_norm2}.*, post_layernorm.*  (our tower keeps `vision_model.` where the
                                      installed transformers has it)
    model.mm_projector.<k>                            ->  projector.<k>   s1.bN.*, sampler.0.*, s2.bN.*, readout.{0,2}.*
                                                                          (same names: connector.STCConnector)
    model.{embed_tokens, layers.N, norm}.<k>          ->  llm.model.<k>   (MistralForCausalLM)
    lm_head.weight                                    ->  llm.lm_head.weight

The vision tower's weights ARE in the checkpoint: VideoLLaMA2 builds CLIPVisionModel(config) without weights when
it loads a released model (encoder.py, load_pretrained=False) and fills it from the checkpoint; the CLIP folder
(`model.vision_tower`, as VideoLLaMA2's mm_vision_tower) gives the tower's config only. The 7B shards hold about
8.03B parameters (16.07 GB bf16 = Mistral 7.24B + CLIP-L tower 0.30B + STC connector 0.49B).

The LLM is built from the checkpoint's config.json (not from model.llm), the tokenizer read from the checkpoint
folder. Loading is strict: a weight of ours the file lacks, or a tensor of the file that lands nowhere, is a
KeyError naming it; a shape mismatch a ValueError. The only file tensors not loaded are the ones VideoLLaMA2 never
uses either, listed in the report as `dropped`: the tower's layers after mm_vision_select_layer (-2: its last
layer) and its post_layernorm, plus position-id / rotary buffers older transformers versions saved. The ego tower
then copies the exo tower, as the paper does. `LoadReport.summary()` says what was loaded, per module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import ConfigError

# VideoLLaMA2's mm_projector_type -> our model.connector
CONNECTOR_TYPES = {"stc_connector": "stc", "stc_connector_v35": "stc_v35"}
ARCHITECTURES = ("Videollama2MistralForCausalLM",)  # the Mistral-7B + CLIP-L/336 releases
# config.json fields that are VideoLLaMA2's, not the LLM's (dropped from the LLM's config)
_NOT_LLM = {"architectures", "model_type", "_name_or_path", "image_aspect_ratio", "num_frames", "use_mm_proj",
            "tune_mm_mlp_adapter", "freeze_mm_mlp_adapter", "tokenizer_model_max_length", "tokenizer_padding_side",
            "transformers_version"}  # fmt: skip
_LLM_NEEDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
_TOWER = "model.vision_tower.vision_tower."
PREFIXES = (  # theirs -> ours, first match wins
    (_TOWER + "vision_model.", "exo_tower."),
    (_TOWER, "exo_tower."),  # a checkpoint saved by a transformers without the `vision_model.` level
    ("model.mm_projector.", "projector."),
    ("model.", "llm.model."),
    ("lm_head.", "llm.lm_head."),
)
MODULES = ("exo_tower", "projector", "llm")
_BUFFERS = re.compile(r"(position_ids|rotary_emb\.inv_freq)$")


@dataclass
class LoadReport:
    root: str = ""
    loaded: list[str] = field(default_factory=list)  # our keys that took the file's tensors
    dropped: list[str] = field(default_factory=list)  # file keys VideoLLaMA2 does not use either (module doc)
    per_module: dict[str, list[int]] = field(default_factory=dict)  # module -> [tensors, parameters] loaded
    notes: list[str] = field(default_factory=list)  # differences from the checkpoint's own settings

    def summary(self) -> str:
        parts = [f"{m} {n} tensors / {p / 1e6:.2f}M params" for m, (n, p) in self.per_module.items()]
        lines = [f"VideoLLaMA2 {self.root}: loaded " + ", ".join(parts)
                 + f"; dropped {len(self.dropped)} unused by VideoLLaMA2 (tower layers after its select layer, "
                 "post_layernorm, buffers); ego_tower copied from exo_tower"]  # fmt: skip
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def read_meta(root: str | Path) -> dict:
    path = Path(root) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"model.videollama2={str(root)!r}: no config.json there")
    return json.loads(path.read_text())


def llm_config(meta: dict, where: str):
    """The LLM's MistralConfig from a VideoLLaMA2 config.json (its own fields; VideoLLaMA2's mm_* dropped)."""
    from transformers import MistralConfig

    arch = (meta.get("architectures") or [None])[0]
    _need(
        arch in ARCHITECTURES,
        f"{where}: architectures={meta.get('architectures')!r}, expected {ARCHITECTURES}",
    )
    missing = [k for k in _LLM_NEEDS if k not in meta]
    _need(not missing, f"{where}: config.json lacks {missing}")
    fields = {k: v for k, v in meta.items() if k not in _NOT_LLM and not k.startswith("mm_")}
    return MistralConfig(**fields)


def build_llm(root: str | Path, dtype: torch.dtype):
    """(MistralForCausalLM with the checkpoint's architecture, weights not yet loaded; its tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    config = llm_config(read_meta(root), str(root))
    try:
        from transformers.initialization import no_init_weights  # the weights are about to be overwritten
    except ImportError:  # transformers < 5
        from transformers.modeling_utils import no_init_weights
    with no_init_weights():
        llm = AutoModelForCausalLM.from_config(config, dtype=dtype)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # AutoTokenizer peeks at config.json and warns about videollama2_mistral
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(root))
    finally:
        hf_logging.set_verbosity(verbosity)
    return llm, tokenizer


def read_state_dict(checkpoint_dir: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a Hugging Face checkpoint directory: single-file or sharded, safetensors or .bin."""
    from safetensors.torch import load_file

    root = Path(checkpoint_dir)
    for index_name, single in (
        ("model.safetensors.index.json", "model.safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
    ):
        index = root / index_name
        files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else []
        if not files and (root / single).exists():
            files = [single]
        if files:
            state: dict[str, torch.Tensor] = {}
            for name in files:
                path = root / name
                if not path.exists():
                    raise FileNotFoundError(f"{root}: {index_name} names {name}, which is not there")
                state.update(
                    load_file(path) if name.endswith(".safetensors") else torch.load(path, map_location="cpu")
                )
            return state
    raise FileNotFoundError(f"{root}: no model.safetensors(.index.json) or pytorch_model.bin(.index.json)")


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _check_config(meta: dict, model, where: str, report: LoadReport) -> None:
    """The checkpoint's architecture fields against our ModelConfig; errors name our field and its value."""
    cfg = model.cfg
    kind = meta.get("mm_projector_type")
    _need(
        kind in CONNECTOR_TYPES,
        f"{where}: mm_projector_type={kind!r}, expected one of {list(CONNECTOR_TYPES)}",
    )
    _need(
        CONNECTOR_TYPES[kind] == cfg.connector,
        f"model.connector={cfg.connector!r}: {where} has mm_projector_type {kind!r} "
        f"(use connector: {CONNECTOR_TYPES[kind]})",
    )
    layer = meta.get("mm_vision_select_layer", cfg.feature_layer)
    _need(
        layer == cfg.feature_layer,
        f"model.feature_layer={cfg.feature_layer}: {where} uses select_layer {layer}",
    )
    feature = meta.get("mm_vision_select_feature", "patch")
    _need(
        feature == "patch",
        f"{where}: mm_vision_select_feature={feature!r}, only 'patch' (CLS dropped) is ours",
    )
    width_C = model.exo_tower.config.hidden_size
    _need(
        meta.get("mm_hidden_size", width_C) == width_C,
        f"model.vision_tower={cfg.vision_tower!r}: its tower is {width_C} wide, {where} has mm_hidden_size "
        f"{meta.get('mm_hidden_size')} ({meta.get('mm_vision_tower')})",
    )
    _need(
        cfg.connector_width in (0, meta.get("hidden_size")),
        f"model.connector_width={cfg.connector_width}: VideoLLaMA2's connector is as wide as its LLM "
        f"({meta.get('hidden_size')}); use 0",
    )
    frames = meta.get("num_frames", 8)  # VideoLLaMA2's constants.NUM_FRAMES when the config has none
    if frames != cfg.n_frames:
        report.notes.append(f"model.n_frames={cfg.n_frames}, the checkpoint was trained on {frames} frames")
    if meta.get("image_aspect_ratio", "pad") != cfg.aspect:
        report.notes.append(
            f"model.aspect={cfg.aspect!r}, the checkpoint was trained with {meta.get('image_aspect_ratio', 'pad')!r}"
        )


def _map(key: str, tower_prefix: str) -> str | None:
    for theirs, ours in PREFIXES:
        if key.startswith(theirs):
            return (tower_prefix if ours == "exo_tower." else ours) + key[len(theirs) :]
    return None


def _theirs(our_key: str, tower_prefix: str) -> str:
    """Our key -> the checkpoint key it is read from (the first prefix of each of ours in PREFIXES)."""
    for ours, theirs in ((tower_prefix, _TOWER + "vision_model."), ("projector.", "model.mm_projector."),
                         ("llm.model.", "model."), ("llm.lm_head.", "lm_head.")):  # fmt: skip
        if our_key.startswith(ours):
            return theirs + our_key[len(ours) :]
    return our_key


def _dropped(our_key: str, model, tower_prefix: str) -> bool:
    """File tensors VideoLLaMA2 never uses: the tower past its select layer, its post-layernorm, buffers."""
    if _BUFFERS.search(our_key):
        return True
    if not our_key.startswith(tower_prefix):
        return False
    rest = our_key[len(tower_prefix) :]
    kept = len(getattr(model.exo_tower, "vision_model", model.exo_tower).encoder.layers)
    layers = kept - 1 - model.cfg.feature_layer if model.cfg.feature_layer < 0 else kept  # before the cut
    m = re.match(r"encoder\.layers\.(\d+)\.", rest)
    return rest.startswith("post_layernorm.") or (m is not None and kept <= int(m[1]) < layers)


def _names(keys: list[str]) -> str:
    return ", ".join(keys[:20]) + (f" ... ({len(keys)} in all)" if len(keys) > 20 else "")


def load_videollama2_into(model, checkpoint_dir: str | Path) -> LoadReport:
    """Copy a VideoLLaMA2 checkpoint's vision tower, connector and LLM into `model`'s exo branch, strictly (see
    the module doc), then the exo tower into the ego tower. Call it before LoRA adapters are added."""
    from peft import PeftModel

    root = Path(checkpoint_dir)
    if isinstance(model.llm, PeftModel):
        raise ValueError(
            "load_videollama2_into: the llm already carries LoRA adapters; load the checkpoint first"
        )
    report = LoadReport(root=str(root))
    _check_config(read_meta(root), model, str(root), report)
    theirs = read_state_dict(root)
    depth = max(
        (int(m[1]) for k in theirs if (m := re.match(r"model\.mm_projector\.s1\.b(\d+)\.", k))), default=0
    )
    _need(
        depth == model.cfg.connector_depth,
        f"model.connector_depth={model.cfg.connector_depth}: {root} has a connector of depth {depth}",
    )

    ours = model.state_dict()  # tensors sharing storage with the parameters: copy_ writes into the model
    tower_prefix = "exo_tower.vision_model." if any(k.startswith("exo_tower.vision_model.") for k in ours) else (
        "exo_tower.")  # fmt: skip
    expected = [k for k in ours if k.startswith(tuple(m + "." for m in MODULES)) and not _BUFFERS.search(k)]
    wanted, mapped, unexpected = set(expected), {}, []
    for key, tensor in theirs.items():
        our_key = _map(key, tower_prefix)
        if our_key in wanted:
            mapped[our_key] = (key, tensor)
        elif our_key is not None and _dropped(our_key, model, tower_prefix):
            report.dropped.append(key)
        else:
            unexpected.append(key)
    missing = [f"{_theirs(k, tower_prefix)} (for {k})" for k in expected if k not in mapped]
    if missing or unexpected:
        raise KeyError(
            f"{root} does not match the exo branch (strict load): "
            + (
                f"{len(missing)} of our weights missing from the checkpoint: {_names(missing)}"
                if missing
                else ""
            )
            + ("; " if missing and unexpected else "")
            + (
                f"{len(unexpected)} checkpoint tensors that load nowhere: {_names(unexpected)}"
                if unexpected
                else ""
            )
        )
    with torch.no_grad():
        for our_key in expected:
            key, tensor = mapped[our_key]
            if tensor.shape != ours[our_key].shape:
                raise ValueError(
                    f"{root}: {key} has shape {tuple(tensor.shape)}, our {our_key} {tuple(ours[our_key].shape)}"
                )
            ours[our_key].copy_(tensor)
            report.loaded.append(our_key)
            counts = report.per_module.setdefault(our_key.split(".", 1)[0], [0, 0])
            counts[0], counts[1] = counts[0] + 1, counts[1] + tensor.numel()
        model.ego_tower.load_state_dict(model.exo_tower.state_dict())
    return report
