"""Initialise the exo branch (exo tower + connector + LLM) from a VideoLLaMA2 checkpoint, the paper's base model.

A VideoLLaMA2 checkpoint directory holds config.json (a Mistral config plus mm_* fields) and the weights
(model.safetensors, or shards listed in model.safetensors.index.json; pytorch_model*.bin also read). Key names,
from DAMO-NLP-SG/VideoLLaMA2 (videollama2/model/videollama2_mistral.py `Videollama2MistralForCausalLM`:
`model` = MistralModel + Videollama2MetaModel, whose `vision_tower` is a CLIPVisionTower wrapping a
CLIPVisionModel as `.vision_tower`, and `mm_projector` the connector of videollama2/model/projector.py):

    model.vision_tower.vision_tower.vision_model.<k>  ->  exo_tower.<k>      (CLIPVisionModel; transformers >= 5
                                                                           has no `vision_model.` level)
    model.mm_projector.<k>                            ->  projector.<k>      (same names: connector.STCConnector)
    model.<k> (embed_tokens, layers, norm)            ->  llm.model.<k>
    lm_head.<k>                                       ->  llm.lm_head.<k>

Strict: every weight of our exo tower, connector and LLM must be in the file (else KeyError naming them), with
the same shape (else ValueError). Keys we knowingly drop (tower layers after mm_vision_select_layer, the tower's
post-layernorm, position-id / rotary buffers) are listed as `unused`; anything else the file holds that we do not
load is `unexpected` (returned and warned about). The ego tower then copies the exo tower, as the paper does.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import ConfigError

# VideoLLaMA2's mm_projector_type -> our model.connector
CONNECTOR_TYPES = {"stc_connector": "stc", "stc_connector_v35": "stc_v35"}
# their prefix -> ours, first match wins (the longer tower prefixes before the generic "model.")
PREFIXES = (
    ("model.vision_tower.vision_tower.vision_model.", "exo_tower."),
    ("model.vision_tower.vision_tower.", "exo_tower."),
    ("model.mm_projector.", "projector."),
    ("model.", "llm.model."),
    ("lm_head.", "llm.lm_head."),
)
_BUFFERS = re.compile(r"(position_ids|rotary_emb\.inv_freq)$")


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)  # our keys that took the file's tensors
    unused: list[str] = field(default_factory=list)  # file keys dropped on purpose (see the module doc)
    unexpected: list[str] = field(default_factory=list)  # file keys that map onto nothing of ours


def map_key(key: str) -> str | None:
    """A VideoLLaMA2 checkpoint key -> our Exo2EgoModel key (None: not one of the prefixes above)."""
    for theirs, ours in PREFIXES:
        if key.startswith(theirs):
            return ours + key[len(theirs) :]
    return None


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
                state.update(
                    load_file(path) if name.endswith(".safetensors") else torch.load(path, map_location="cpu")
                )
            return state
    raise FileNotFoundError(f"{root}: no model.safetensors(.index.json) or pytorch_model.bin(.index.json)")


def _check_config(meta: dict, model, where: str) -> None:
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
    width_D = model.llm.get_input_embeddings().embedding_dim
    _need(
        cfg.connector_width in (0, meta.get("hidden_size", width_D)),
        f"model.connector_width={cfg.connector_width}: VideoLLaMA2's connector is as wide as its LLM "
        f"({meta.get('hidden_size')}); use 0",
    )


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _unused(our_key: str, model) -> bool:
    """Keys of the file we drop on purpose: the tower past its cut, its post-layernorm, derived buffers."""
    if _BUFFERS.search(our_key):
        return True
    if not our_key.startswith("exo_tower."):
        return False
    rest = our_key[len("exo_tower.") :]
    m = re.match(r"encoder\.layers\.(\d+)\.", rest)
    kept = len(getattr(model.exo_tower, "vision_model", model.exo_tower).encoder.layers)
    return rest.startswith("post_layernorm.") or (m is not None and int(m[1]) >= kept)


def load_videollama2_into(model, checkpoint_dir: str | Path) -> LoadReport:
    """Copy a VideoLLaMA2 checkpoint's vision tower, connector and LLM into `model`'s exo branch (see the module
    doc), then the exo tower into the ego tower. Call it before LoRA adapters are added."""
    from peft import PeftModel

    root = Path(checkpoint_dir)
    if isinstance(model.llm, PeftModel):
        raise ValueError(
            "load_videollama2_into: the llm already carries LoRA adapters; load the checkpoint first"
        )
    config_path = root / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"model.videollama2={str(checkpoint_dir)!r}: no config.json there")
    _check_config(json.loads(config_path.read_text()), model, str(root))
    theirs = read_state_dict(root)
    depth = max(
        (int(m[1]) for k in theirs if (m := re.match(r"model\.mm_projector\.s1\.b(\d+)\.", k))), default=0
    )
    _need(
        depth == model.cfg.connector_depth,
        f"model.connector_depth={model.cfg.connector_depth}: {root} has a connector of depth {depth}",
    )

    ours = model.state_dict()  # tensors sharing storage with the parameters: copy_ writes into the model
    expected = [k for k in ours if k.startswith(("exo_tower.", "projector.", "llm."))]
    wanted = set(expected)
    report, mapped = LoadReport(), {}
    for key, tensor in theirs.items():
        our_key = map_key(key)
        if our_key in wanted:
            mapped[our_key] = (key, tensor)
        elif our_key is not None and _unused(our_key, model):
            report.unused.append(key)
        else:
            report.unexpected.append(key)
    missing = [k for k in expected if k not in mapped]
    if missing:
        raise KeyError(
            f"{root}: {len(missing)} weights of the exo branch are not in the checkpoint: {missing[:20]}"
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
        model.ego_tower.load_state_dict(model.exo_tower.state_dict())
    if report.unexpected:
        warnings.warn(
            f"{root}: {len(report.unexpected)} keys not loaded: {report.unexpected[:20]}", stacklevel=2
        )
    return report
