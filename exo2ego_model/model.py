"""The Exo2Ego model: two CLIP vision towers, mapping networks F / G, a projector and a causal LLM.

Tensor names carry their shape as a suffix:
    B  batch                        T  frames per clip (cfg.n_frames)
    C  channels: 3 for pixels, the vision tower's hidden size for visual features
    H, W  image height / width      P  patches per frame (CLS dropped)   h, w  patch grid
    M  B * T frames flattened       S  pooled tokens per frame (pool_side ** 2)
    K  time steps after temporal pooling (T / temporal_stride)
    N  visual tokens per clip (K * S, or 2 * K * S for the "x+Fx" ego input)
    D  LLM embedding dim            L  text tokens      V  vocabulary
e.g. frames_BTCHW, feats_BNC, embeds_BLD, logits_BLV.

Data flow. encode(frames, view) -> x (ego) or y (exo) features [B, N, C]. F: ego -> exo, G: exo -> ego, both in
feature space C. The projector maps features to LLM token embeddings; visual tokens go before the text.
    stage 1 (exo):   LLM sees projector(y)
    stage 2/3 (ego): LLM sees projector(cat[x, F(x)]) (cfg.visual_input "x+Fx", the paper's inference input)
Which parameters learn is set by `apply_stage` from a StageConfig; parameter groups are the submodule names
(exo_tower, ego_tower, projector, map_f, map_g, llm) plus "lora" for LoRA adapters inside the llm.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    CLIPVisionModel,
    MistralForCausalLM,
    PreTrainedTokenizerBase,
)

from .config import MODULE_GROUPS, ConfigError, LoraSettings, ModelConfig, StageConfig
from .losses import IGNORE_INDEX, cycle_loss, kl_loss, vtg_loss
from .tiny import tiny_llm_config, tiny_tokenizer, tiny_vision_config

VIEWS = ("ego", "exo")


class ResidualBlock(nn.Module):
    """Pre-norm MLP block with a skip connection: x + fc2(gelu(fc1(norm(x))))."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, h_BNC: torch.Tensor) -> torch.Tensor:
        return h_BNC + self.fc2(F.gelu(self.fc1(self.norm(h_BNC))))


class MappingNetwork(nn.Module):
    """F (ego -> exo) or G (exo -> ego) on per-token visual features.

    Down-sample C -> C / bottleneck, `blocks` residual blocks at the small width, up-sample back to C (the
    paper: a stack of residual blocks between down- and up-sampling; its plain-linear ablation is worse).
    """

    def __init__(self, dim: int, blocks: int, bottleneck: int):
        super().__init__()
        hidden = max(1, dim // bottleneck)
        self.down = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(blocks))
        self.up = nn.Linear(hidden, dim)

    def forward(self, feats_BNC: torch.Tensor) -> torch.Tensor:
        h_BNc = self.down(feats_BNC)
        for block in self.blocks:
            h_BNc = block(h_BNc)
        return self.up(h_BNc)


class Projector(nn.Module):
    """Per-token two-layer MLP from visual features (C) to LLM token embeddings (D), as in LLaVA-1.5."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, feats_BNC: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(feats_BNC)))


class Exo2EgoModel(nn.Module):
    def __init__(
        self, cfg: ModelConfig, exo_tower: CLIPVisionModel, ego_tower: CLIPVisionModel, llm: nn.Module
    ):
        super().__init__()
        self.cfg = cfg
        # Submodule names are the parameter-group names of config.MODULE_GROUPS; apply_stage relies on it.
        self.exo_tower = exo_tower
        self.ego_tower = ego_tower
        dim_C = exo_tower.config.hidden_size
        dim_D = llm.get_input_embeddings().embedding_dim
        self.projector = Projector(dim_C, dim_D)
        self.map_f = MappingNetwork(dim_C, cfg.mapping_blocks, cfg.mapping_bottleneck)
        self.map_g = MappingNetwork(dim_C, cfg.mapping_blocks, cfg.mapping_bottleneck)
        self.llm = llm

    # ---- visual features ----------------------------------------------------------------------------
    def encode(self, frames_BTCHW: torch.Tensor, view: str) -> torch.Tensor:
        """Frames of one view -> visual features [B, N, C] with N = (T / temporal_stride) * pool_side ** 2.

        Temporal handling (the paper feeds 16 frames; VideoLLaMA2 uses a 3D-conv connector, we keep a
        parameter-free one): every frame goes through the tower on its own, its patch grid is average-pooled
        to pool_side x pool_side, then each run of temporal_stride consecutive frames is averaged. With the
        paper's 16 frames of CLIP-L/14-336 (24 x 24 patches), pool_side 4 and stride 2 that is 8 x 16 = 128
        tokens per view instead of 16 x 576 = 9216, which keeps the LLM sequence short.
        """
        if view not in VIEWS:
            raise ValueError(f"view={view!r}: expected one of {VIEWS}")
        tower = self.ego_tower if view == "ego" else self.exo_tower
        B, T, _, H, W = frames_BTCHW.shape
        stride, side = self.cfg.temporal_stride, self.cfg.pool_side
        if T % stride:
            raise ValueError(f"{view} clip has T={T} frames, not a multiple of temporal_stride={stride}")
        pixels_MCHW = frames_BTCHW.reshape(B * T, *frames_BTCHW.shape[2:]).to(tower.dtype)
        # Interpolated position embeddings only when the frames differ from the checkpoint's resolution.
        resize = (tower.config.image_size,) * 2 != (H, W)
        hidden_MPC = tower(pixel_values=pixels_MCHW, interpolate_pos_encoding=resize).last_hidden_state[:, 1:]
        patch = tower.config.patch_size
        grid_MChw = hidden_MPC.transpose(1, 2).reshape(B * T, -1, H // patch, W // patch)
        pooled_MSC = F.adaptive_avg_pool2d(grid_MChw, side).flatten(2).transpose(1, 2)
        S, C = pooled_MSC.shape[1:]
        steps_BKSC = pooled_MSC.reshape(B, T // stride, stride, S, C).mean(dim=2)
        return steps_BKSC.reshape(B, (T // stride) * S, C)

    def ego_inputs(self, x_BNC: torch.Tensor) -> torch.Tensor:
        """What the LLM sees of ego features: cat[x, F(x)] along tokens ("x+Fx") or x alone ("x")."""
        if self.cfg.visual_input == "x+Fx":
            return torch.cat([x_BNC, self.map_f(x_BNC)], dim=1)
        return x_BNC

    def visual_tokens(
        self, ego_BTCHW: torch.Tensor | None = None, exo_BTCHW: torch.Tensor | None = None
    ) -> torch.Tensor:
        """LLM token embeddings [B, N, D] of a clip. Ego takes precedence when both views are given, as in
        training (VTG on ego whenever the batch has it); exo alone is the stage-1 teacher input."""
        if ego_BTCHW is not None:
            return self.projector(self.ego_inputs(self.encode(ego_BTCHW, "ego")))
        if exo_BTCHW is not None:
            return self.projector(self.encode(exo_BTCHW, "exo"))
        raise ValueError("visual_tokens needs ego_BTCHW or exo_BTCHW")

    # ---- losses -------------------------------------------------------------------------------------
    def vtg(self, visual_BND: torch.Tensor, batch: dict) -> torch.Tensor:
        """Vision-grounded text generation: [visual tokens, text] through the LLM, CE on target text tokens.

        The loader pads text on the right, so visual tokens then text then padding keep positions contiguous.
        Only the last L + 1 positions get logits (the last visual token predicts the first text token; the
        others predict nothing): with 256 visual tokens that skips most of the 32k-vocabulary head.
        """
        input_ids_BL, labels_BL = batch["input_ids_BL"], batch["labels_BL"]
        text_BLD = self.llm.get_input_embeddings()(input_ids_BL)
        visual_BND = visual_BND.to(text_BLD.dtype)
        B, N = visual_BND.shape[:2]
        L = input_ids_BL.shape[1]
        mask_BL = batch["attention_mask_BL"]
        mask_BL = torch.cat([mask_BL.new_ones(B, N), mask_BL], dim=1)
        embeds_BLD = torch.cat([visual_BND, text_BLD], dim=1)
        logits_BLV = self.llm(
            inputs_embeds=embeds_BLD, attention_mask=mask_BL, use_cache=False, logits_to_keep=L + 1
        ).logits
        # labels aligned with the kept positions: the last visual token (never a target), then the text
        labels_BL = torch.cat([labels_BL.new_full((B, 1), IGNORE_INDEX), labels_BL], dim=1)
        return vtg_loss(logits_BLV, labels_BL)

    def forward(self, batch: dict, losses: dict[str, float]) -> dict[str, torch.Tensor]:
        """Weighted sum of the requested losses ("vtg", "kl", "cycle") -> {"loss": total, name: value}.

        batch: input_ids_BL, attention_mask_BL, labels_BL and ego_BTCHW and/or exo_BTCHW. Each view is encoded
        once and shared by every loss that needs it.
        """
        unknown = sorted(set(losses) - {"vtg", "kl", "cycle"})
        if unknown:
            raise ValueError(f"unknown loss(es) {unknown}")
        ego_BTCHW, exo_BTCHW = batch.get("ego_BTCHW"), batch.get("exo_BTCHW")
        pair_losses = sorted({"kl", "cycle"} & set(losses))
        if pair_losses and (ego_BTCHW is None or exo_BTCHW is None):
            raise ValueError(f"losses {pair_losses} need both ego_BTCHW and exo_BTCHW in the batch")
        if ego_BTCHW is None and exo_BTCHW is None:
            raise ValueError("batch has neither ego_BTCHW nor exo_BTCHW")

        x_BNC = self.encode(ego_BTCHW, "ego") if ego_BTCHW is not None else None
        need_y = pair_losses or x_BNC is None  # exo is only needed by KL/cycle, or as the stage-1 VTG input
        y_BNC = self.encode(exo_BTCHW, "exo") if need_y else None
        fx_BNC = (
            self.map_f(x_BNC)
            if x_BNC is not None and (pair_losses or self.cfg.visual_input == "x+Fx")
            else None
        )

        out: dict[str, torch.Tensor] = {}
        if "vtg" in losses:
            if x_BNC is not None:
                feats_BNC = torch.cat([x_BNC, fx_BNC], dim=1) if self.cfg.visual_input == "x+Fx" else x_BNC
            else:
                feats_BNC = y_BNC
            out["vtg"] = self.vtg(self.projector(feats_BNC), batch)
        if "kl" in losses:
            # y is the teacher's target distribution: detached, so KL moves only the student side (ego tower,
            # F) even if the exo tower were left trainable by a config.
            out["kl"] = kl_loss(y_BNC.detach(), fx_BNC, self.cfg.kl_temperature)
        if "cycle" in losses:
            out["cycle"] = cycle_loss(x_BNC, self.map_g(fx_BNC), y_BNC, self.map_f(self.map_g(y_BNC)))
        out["loss"] = sum(losses[name] * value for name, value in out.items())
        return out


# ---- building ---------------------------------------------------------------------------------------------
def _vision_tower(cfg: ModelConfig) -> CLIPVisionModel:
    if cfg.vision_tower == "tiny":
        tower = CLIPVisionModel(tiny_vision_config(cfg.image_size))
    else:
        tower = CLIPVisionModel.from_pretrained(cfg.vision_tower, dtype=torch.float32)
    # encode() reads last_hidden_state, never the pooled CLS output: the post-layernorm would be a parameter
    # set that is "trainable" yet never gets a gradient (and would make DDP need find_unused_parameters).
    # (transformers >= 5 keeps the layers on CLIPVisionModel itself, older versions under .vision_model)
    getattr(tower, "vision_model", tower).post_layernorm = nn.Identity()
    return tower


def _llm(cfg: ModelConfig, dtype: torch.dtype) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    if cfg.llm == "tiny":
        tokenizer = tiny_tokenizer()
        llm = MistralForCausalLM(tiny_llm_config(len(tokenizer))).to(dtype)
    else:
        tokenizer = AutoTokenizer.from_pretrained(cfg.llm)
        llm = AutoModelForCausalLM.from_pretrained(cfg.llm, dtype=dtype)
    if tokenizer.pad_token is None:  # Mistral ships without one; padding is masked out anyway
        tokenizer.pad_token = tokenizer.eos_token
    llm.config.pad_token_id = tokenizer.pad_token_id
    llm.generation_config.pad_token_id = tokenizer.pad_token_id
    return llm, tokenizer


def build_model(
    cfg: ModelConfig, *, device: str | torch.device = "cpu"
) -> tuple[Exo2EgoModel, PreTrainedTokenizerBase]:
    """Towers + LLM from local checkpoints (or "tiny" random ones), everything on `device`.

    The LLM weights take cfg.dtype on an accelerator and float32 on CPU. The towers, F, G and the projector
    stay float32 (they are what stages 1-2 train; AdamW on bf16 weights loses small updates); their outputs
    are cast to the LLM's dtype at the embedding boundary.
    """
    device = torch.device(device)
    llm_dtype = torch.float32 if device.type == "cpu" else getattr(torch, cfg.dtype)
    exo_tower = _vision_tower(cfg)
    ego_tower = copy.deepcopy(exo_tower)  # the paper initialises both towers from the same CLIP
    llm, tokenizer = _llm(cfg, llm_dtype)
    model = Exo2EgoModel(cfg, exo_tower, ego_tower, llm)
    return model.to(device), tokenizer


# ---- stages: which parameters learn ---------------------------------------------------------------------
def group_of(param_name: str) -> str:
    """Parameter name -> group: its top-level submodule, except LoRA adapter weights inside the llm."""
    top = param_name.split(".", 1)[0]
    if top == "llm" and "lora_" in param_name:
        return "lora"
    if top not in MODULE_GROUPS:
        raise ValueError(f"parameter {param_name!r} belongs to no group of {MODULE_GROUPS}")
    return top


def apply_lora(model: Exo2EgoModel, lora: LoraSettings) -> None:
    """Wrap model.llm with peft LoRA adapters on the configured projections that this LLM has. Idempotent:
    a model already carrying adapters (an earlier LoRA stage, a resumed run) keeps them."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if isinstance(model.llm, PeftModel):
        have = model.llm.peft_config["default"]
        if (have.r, have.lora_alpha) != (lora.r, lora.alpha):
            raise ConfigError(
                f"lora={lora!r}: the llm already carries adapters with r={have.r}, alpha={have.lora_alpha}"
            )
        return
    present = {name.rsplit(".", 1)[-1] for name, m in model.llm.named_modules() if isinstance(m, nn.Linear)}
    targets = [t for t in lora.target_modules if t in present]
    if not targets:
        raise ConfigError(f"lora.target_modules={lora.target_modules!r}: none is a Linear of the llm")
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    model.llm = get_peft_model(model.llm, config)


def apply_stage(model: Exo2EgoModel, stage: StageConfig) -> None:
    """requires_grad = True exactly for the parameters of stage.trainable's groups, False for all others.

    "lora" first adds adapters to the llm (its base weights stay frozen unless "llm" is trainable too).
    Stages apply in sequence to one model; adapters added by an earlier stage stay, frozen, in later ones.
    """
    if "lora" in stage.trainable:
        apply_lora(model, stage.lora)
    trainable = set(stage.trainable)
    for name, param in model.named_parameters():
        param.requires_grad_(group_of(name) in trainable)


def _count(model: nn.Module, trainable_only: bool) -> dict[str, int]:
    counts = dict.fromkeys(MODULE_GROUPS, 0)
    for name, param in model.named_parameters():
        if param.requires_grad or not trainable_only:
            counts[group_of(name)] += param.numel()
    return counts


def trainable_groups(model: Exo2EgoModel) -> dict[str, int]:
    """Group -> number of trainable parameters (0 for frozen groups), for logs and tests."""
    return _count(model, trainable_only=True)


def group_sizes(model: Exo2EgoModel) -> dict[str, int]:
    """Group -> number of parameters, trainable or not."""
    return _count(model, trainable_only=False)
