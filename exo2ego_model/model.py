"""The Exo2Ego model: two CLIP vision towers, mapping networks F / G, a connector and a causal LLM.

Tensor names carry their shape as a suffix:
    B  batch                        T  frames per clip (cfg.n_frames)
    C  channels: 3 for pixels, the vision tower's hidden size for visual features
    H, W  image height / width      P  patches per frame (CLS dropped)   h, w  patch grid
    M  B * T frames flattened       N  visual tokens per clip (the connector's output, twice that for "x+Fx")
    D  LLM embedding dim            L  text ids (one of them the video placeholder)
    S  LLM sequence: L - 1 + N      V  vocabulary
e.g. frames_BTCHW, feats_BThwC, visual_BND, embeds_BSD, logits_BSV.

Data flow. encode(frames, view) -> x (ego) or y (exo): CLIP features [B, T, h, w, C] from hidden_states
[cfg.feature_layer] (VideoLLaMA2: -2), CLS dropped, no post-layernorm. F: ego -> exo, G: exo -> ego, both on
those grids (mapping.py). The connector (connector.py; VideoLLaMA2's STC by default) turns features into LLM
token embeddings, which `splice` puts where the prompt's video placeholder is (prompt.py: inside the first
`[INST]` turn, as in VideoLLaMA2).
    stage 1 (exo):   LLM sees connector(y)
    stage 2/3 (ego): LLM sees cat[connector(x), connector(F(x))] ("x+Fx", the paper's inference input)
    init (ego):      LLM sees connector(x) (forward(..., visual_input="x"): before F is trained)
Which parameters learn is set by `apply_stage` from a StageConfig; parameter groups are the submodule names
(exo_tower, ego_tower, projector (= the connector), map_f, map_g, llm) plus "lora" for LoRA adapters in the llm.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    CLIPVisionConfig,
    CLIPVisionModel,
    MistralForCausalLM,
    PreTrainedTokenizerBase,
)

from .config import MODULE_GROUPS, VISUAL_INPUTS, ConfigError, LoraSettings, ModelConfig, StageConfig
from .connector import build_connector
from .losses import IGNORE_INDEX, cycle_loss, kl_loss, vtg_loss
from .mapping import build_mapping
from .prompt import VIDEO_TOKEN_INDEX
from .tiny import tiny_llm_config, tiny_tokenizer, tiny_vision_config

VIEWS = ("ego", "exo")


def prepare_tower(tower: CLIPVisionModel, feature_layer: int) -> CLIPVisionModel:
    """Cut a CLIP tower after the layer whose output is hidden_states[feature_layer], drop its post-layernorm.

    Features then are simply last_hidden_state, and no parameter is "trainable" yet never gets a gradient (the
    unused last layer and post-layernorm would, and would make DDP need find_unused_parameters). The cut is
    recorded in the config (num_hidden_layers, exo2ego_feature_layer), so a tower rebuilt from a saved config
    (export.load_pretrained) is not cut twice. Idempotent.
    """
    root = getattr(
        tower, "vision_model", tower
    )  # transformers >= 5 keeps the layers on CLIPVisionModel itself
    root.post_layernorm = nn.Identity()
    config = tower.config
    done = getattr(config, "exo2ego_feature_layer", None)
    if done is not None:
        if done != feature_layer:
            raise ConfigError(f"model.feature_layer={feature_layer}: this tower was cut for {done}")
        keep = config.num_hidden_layers  # another tower sharing this config may already have cut it
    else:
        n = len(root.encoder.layers)
        keep = n + 1 + feature_layer if feature_layer < 0 else feature_layer
        if not 1 <= keep <= n:
            raise ConfigError(f"model.feature_layer={feature_layer}: the vision tower has {n} layers")
    root.encoder.layers = root.encoder.layers[:keep]
    config.num_hidden_layers, config.exo2ego_feature_layer = keep, feature_layer
    return tower


class Exo2EgoModel(nn.Module):
    def __init__(
        self, cfg: ModelConfig, exo_tower: CLIPVisionModel, ego_tower: CLIPVisionModel, llm: nn.Module
    ):
        super().__init__()
        self.cfg = cfg
        # Submodule names are the parameter-group names of config.MODULE_GROUPS; apply_stage relies on it.
        self.exo_tower = prepare_tower(exo_tower, cfg.feature_layer)
        self.ego_tower = prepare_tower(ego_tower, cfg.feature_layer)
        dim_C = exo_tower.config.hidden_size
        dim_D = llm.get_input_embeddings().embedding_dim
        self.projector = build_connector(cfg, dim_C, dim_D)
        self.map_f = build_mapping(cfg, dim_C)
        self.map_g = build_mapping(cfg, dim_C)
        self.llm = llm

    # ---- visual features and tokens -----------------------------------------------------------------
    def encode(self, frames_BTCHW: torch.Tensor, view: str) -> torch.Tensor:
        """Frames of one view -> CLIP features [B, T, h, w, C] (every frame through the tower on its own)."""
        if view not in VIEWS:
            raise ValueError(f"view={view!r}: expected one of {VIEWS}")
        tower = self.ego_tower if view == "ego" else self.exo_tower
        B, T, _, H, W = frames_BTCHW.shape
        pixels_MCHW = frames_BTCHW.reshape(B * T, *frames_BTCHW.shape[2:]).to(tower.dtype)
        # Interpolated position embeddings only when the frames differ from the checkpoint's resolution.
        resize = (tower.config.image_size,) * 2 != (H, W)
        hidden_MPC = tower(pixel_values=pixels_MCHW, interpolate_pos_encoding=resize).last_hidden_state[:, 1:]
        patch = tower.config.patch_size
        return hidden_MPC.reshape(B, T, H // patch, W // patch, hidden_MPC.shape[-1])

    def _visual_input(self, visual_input: str | None) -> str:
        visual_input = visual_input or self.cfg.visual_input
        if visual_input not in VISUAL_INPUTS:
            raise ValueError(f"visual_input={visual_input!r}: expected one of {VISUAL_INPUTS}")
        return visual_input

    def ego_tokens(
        self, x_BThwC: torch.Tensor, fx_BThwC: torch.Tensor | None, visual_input: str
    ) -> torch.Tensor:
        """connector(x), or cat[connector(x), connector(F(x))] along tokens for "x+Fx" (one connector pass)."""
        if visual_input == "x":
            return self.projector(x_BThwC)
        both_BND = self.projector(torch.cat([x_BThwC, fx_BThwC], dim=0))
        return torch.cat(both_BND.chunk(2, dim=0), dim=1)

    def visual_tokens(
        self,
        ego_BTCHW: torch.Tensor | None = None,
        exo_BTCHW: torch.Tensor | None = None,
        visual_input: str | None = None,
    ) -> torch.Tensor:
        """LLM token embeddings [B, N, D] of a clip. Ego takes precedence when both views are given, as in
        training (VTG on ego whenever the batch has it); exo alone is the stage-1 teacher input."""
        if ego_BTCHW is not None:
            visual_input = self._visual_input(visual_input)
            x_BThwC = self.encode(ego_BTCHW, "ego")
            fx_BThwC = self.map_f(x_BThwC) if visual_input == "x+Fx" else None
            return self.ego_tokens(x_BThwC, fx_BThwC, visual_input)
        if exo_BTCHW is not None:
            return self.projector(self.encode(exo_BTCHW, "exo"))
        raise ValueError("visual_tokens needs ego_BTCHW or exo_BTCHW")

    # ---- the LLM sequence ---------------------------------------------------------------------------
    def splice(
        self,
        visual_BND: torch.Tensor,
        input_ids_BL: torch.Tensor,
        attention_mask_BL: torch.Tensor | None = None,
        labels_BL: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Put each row's visual tokens where its VIDEO_TOKEN_INDEX is -> embeds_BSD, attention_mask_BS and
        (given labels) labels_BS, with S = L - 1 + N and IGNORE_INDEX on the visual positions.

        The placeholder may sit at a different position per row (a prompt truncated from the left moves it);
        text is right-padded, so each row stays contiguous: [text before, N visual tokens, text after, padding]. Done with gathers, not a
        Python loop over rows.
        """
        is_video_BL = input_ids_BL == VIDEO_TOKEN_INDEX
        counts_B = is_video_BL.sum(dim=1)
        if (counts_B != 1).any():
            bad = {int(b): int(counts_B[b]) for b in (counts_B != 1).nonzero().flatten()}
            raise ValueError(
                f"rows {bad} (row: count) do not hold exactly one video placeholder {VIDEO_TOKEN_INDEX}; "
                "build input ids with prompt.tokenize_conversation / prompt.prompt_ids"
            )
        B, L = input_ids_BL.shape
        N = visual_BND.shape[1]
        pos_B1 = is_video_BL.int().argmax(dim=1, keepdim=True)
        rel_BS = torch.arange(L - 1 + N, device=input_ids_BL.device)[None] - pos_B1  # offset from placeholder
        is_visual_BS = (rel_BS >= 0) & (rel_BS < N)
        # text index of each position: itself before the placeholder, shifted by N - 1 after the visual run
        text_idx_BS = torch.where(rel_BS < 0, rel_BS + pos_B1, rel_BS + pos_B1 - N + 1)
        text_idx_BS = text_idx_BS.masked_fill(is_visual_BS, 0)
        text_BLD = self.llm.get_input_embeddings()(input_ids_BL.masked_fill(is_video_BL, 0))
        D = text_BLD.shape[-1]
        text_BSD = text_BLD.gather(1, text_idx_BS[..., None].expand(-1, -1, D))
        visual_BSD = visual_BND.to(text_BLD.dtype).gather(
            1, rel_BS.clamp(0, N - 1)[..., None].expand(-1, -1, D)
        )
        out = {"embeds_BSD": torch.where(is_visual_BS[..., None], visual_BSD, text_BSD)}
        if attention_mask_BL is None:
            attention_mask_BL = torch.ones_like(input_ids_BL)
        out["attention_mask_BS"] = attention_mask_BL.gather(1, text_idx_BS).masked_fill(is_visual_BS, 1)
        if labels_BL is not None:
            out["labels_BS"] = labels_BL.gather(1, text_idx_BS).masked_fill(is_visual_BS, IGNORE_INDEX)
        return out

    def vtg(self, visual_BND: torch.Tensor, batch: dict) -> torch.Tensor:
        """Vision-grounded text generation: the spliced sequence through the LLM, CE on the answer tokens.

        Logits are kept only from the position before the batch's first target on (the answers follow the
        video and prompt): with ~1.5k visual tokens that skips most of the 32k-vocabulary head.
        """
        s = self.splice(visual_BND, batch["input_ids_BL"], batch["attention_mask_BL"], batch["labels_BL"])
        labels_BS = s["labels_BS"]
        S = labels_BS.shape[1]
        positions_S = torch.arange(S, device=labels_BS.device)
        # the batch's first target position (S - 1 when there is none)
        first = int(torch.where(labels_BS != IGNORE_INDEX, positions_S, S - 1).min())
        keep = S - max(first - 1, 0)
        logits_BSV = self.llm(
            inputs_embeds=s["embeds_BSD"], attention_mask=s["attention_mask_BS"], use_cache=False,
            logits_to_keep=keep,
        ).logits  # fmt: skip
        return vtg_loss(logits_BSV, labels_BS[:, -keep:])

    def llm_token_counts(self, batch: dict, visual_input: str | None = None) -> tuple[int, int]:
        """(text, video) tokens the LLM processes for `batch` in a VTG forward, for throughput logs.

        text: attended text ids, the video placeholders excluded (each stands for the visual tokens); video:
        the visual tokens spliced in per row, of the view VTG uses (ego when the batch has it, as forward),
        twice the connector's count for "x+Fx". From shapes only: nothing is encoded.
        """
        rows = int(batch["input_ids_BL"].shape[0])
        text = int(batch["attention_mask_BL"].sum()) - rows
        frames_BTCHW = batch.get("ego_BTCHW")
        copies = 2 if frames_BTCHW is not None and self._visual_input(visual_input) == "x+Fx" else 1
        if frames_BTCHW is None:
            frames_BTCHW = batch["exo_BTCHW"]
        T, (H, W) = frames_BTCHW.shape[1], frames_BTCHW.shape[-2:]
        patch = self.ego_tower.config.patch_size
        return text, rows * copies * self.projector.n_tokens(T, H // patch, W // patch)

    # ---- losses -------------------------------------------------------------------------------------
    def forward(
        self, batch: dict, losses: dict[str, float], visual_input: str | None = None
    ) -> dict[str, torch.Tensor]:
        """Weighted sum of the requested losses ("vtg", "kl", "cycle") -> {"loss": total, name: value}.

        batch: input_ids_BL (one video placeholder per row), attention_mask_BL, labels_BL, and ego_BTCHW and/or
        exo_BTCHW. Each view is encoded once and shared by every loss that needs it. visual_input overrides
        cfg.visual_input for this call ("x": the LLM sees connector(x) only; the initialisation stage trains
        the ego tower and connector on ego-only batches before F exists).
        """
        unknown = sorted(set(losses) - {"vtg", "kl", "cycle"})
        if unknown:
            raise ValueError(f"unknown loss(es) {unknown}")
        visual_input = self._visual_input(visual_input)
        ego_BTCHW, exo_BTCHW = batch.get("ego_BTCHW"), batch.get("exo_BTCHW")
        pair_losses = sorted({"kl", "cycle"} & set(losses))
        if pair_losses and (ego_BTCHW is None or exo_BTCHW is None):
            raise ValueError(f"losses {pair_losses} need both ego_BTCHW and exo_BTCHW in the batch")
        if ego_BTCHW is None and exo_BTCHW is None:
            raise ValueError("batch has neither ego_BTCHW nor exo_BTCHW")

        x_BThwC = self.encode(ego_BTCHW, "ego") if ego_BTCHW is not None else None
        need_y = pair_losses or x_BThwC is None  # exo is only needed by KL/cycle, or as the stage-1 VTG input
        y_BThwC = self.encode(exo_BTCHW, "exo") if need_y else None
        need_fx = x_BThwC is not None and (pair_losses or visual_input == "x+Fx")
        fx_BThwC = self.map_f(x_BThwC) if need_fx else None

        out: dict[str, torch.Tensor] = {}
        if "vtg" in losses:
            if x_BThwC is not None:
                visual_BND = self.ego_tokens(x_BThwC, fx_BThwC, visual_input)
            else:
                visual_BND = self.projector(y_BThwC)
            out["vtg"] = self.vtg(visual_BND, batch)
        if "kl" in losses:
            # y is the teacher's target distribution: detached, so KL moves only the student side (ego tower,
            # F) even if the exo tower were left trainable by a config. Per grid position, over C.
            out["kl"] = kl_loss(
                y_BThwC.detach().flatten(1, 3), fx_BThwC.flatten(1, 3), self.cfg.kl_temperature
            )
        if "cycle" in losses:
            gfx_BThwC, fgy_BThwC = self.map_g(fx_BThwC), self.map_f(self.map_g(y_BThwC))
            out["cycle"] = cycle_loss(x_BThwC, gfx_BThwC, y_BThwC, fgy_BThwC)
        out["loss"] = sum(losses[name] * value for name, value in out.items())
        return out


# ---- building ---------------------------------------------------------------------------------------------
def _vision_tower(cfg: ModelConfig, weights: bool = True) -> CLIPVisionModel:
    """The CLIP tower of cfg (uncut: Exo2EgoModel cuts it). weights=False builds the architecture only (its
    weights are about to be overwritten, e.g. by a VideoLLaMA2 checkpoint)."""
    if cfg.vision_tower == "tiny":
        return CLIPVisionModel(tiny_vision_config(cfg.image_size))
    if not weights:
        return CLIPVisionModel(CLIPVisionConfig.from_pretrained(cfg.vision_tower))
    return CLIPVisionModel.from_pretrained(cfg.vision_tower, dtype=torch.float32)


def finish_llm(llm: nn.Module, tokenizer: PreTrainedTokenizerBase) -> None:
    """Pad token: Mistral ships without one; padding is masked out anyway, so eos serves."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    llm.config.pad_token_id = tokenizer.pad_token_id
    if getattr(llm, "generation_config", None) is not None:
        llm.generation_config.pad_token_id = tokenizer.pad_token_id


def _llm(
    cfg: ModelConfig, dtype: torch.dtype, weights: bool = True
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    if cfg.llm == "tiny":
        tokenizer = tiny_tokenizer()
        llm = MistralForCausalLM(tiny_llm_config(len(tokenizer))).to(dtype)
    else:
        tokenizer = AutoTokenizer.from_pretrained(cfg.llm)
        if weights:
            llm = AutoModelForCausalLM.from_pretrained(cfg.llm, dtype=dtype)
        else:
            llm = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(cfg.llm), dtype=dtype)
    finish_llm(llm, tokenizer)
    return llm, tokenizer


def build_model(
    cfg: ModelConfig, *, device: str | torch.device = "cpu"
) -> tuple[Exo2EgoModel, PreTrainedTokenizerBase]:
    """Towers + LLM from local checkpoints (or "tiny" random ones), everything on `device`.

    cfg.videollama2 set: the exo tower, connector and LLM take that checkpoint's weights, strictly, and the LLM's
    architecture and tokenizer are the checkpoint's (videollama2.py; cfg.vision_tower then gives only the tower's
    architecture, cfg.llm is not read); the ego tower copies the exo tower; `model.videollama2_report` says what
    was loaded. The LLM weights take cfg.dtype on an accelerator and float32 on CPU. The towers, F, G and the
    connector stay float32 (they are what stages 1-2 train; AdamW on bf16 weights loses small updates); their
    outputs are cast to the LLM's dtype at the embedding boundary.
    """
    device = torch.device(device)
    llm_dtype = torch.float32 if device.type == "cpu" else getattr(torch, cfg.dtype)
    own_weights = not cfg.videollama2
    exo_tower = _vision_tower(cfg, weights=own_weights)
    ego_tower = copy.deepcopy(exo_tower)  # the paper initialises both towers from the same CLIP
    if cfg.videollama2:  # the LLM's architecture and tokenizer are the checkpoint's own (its config.json)
        from .videollama2 import build_llm, load_videollama2_into

        llm, tokenizer = build_llm(cfg.videollama2, llm_dtype)
        finish_llm(llm, tokenizer)
    else:
        llm, tokenizer = _llm(cfg, llm_dtype)
    model = Exo2EgoModel(cfg, exo_tower, ego_tower, llm)
    if cfg.videollama2:
        model.videollama2_report = load_videollama2_into(model, cfg.videollama2)  # summary(): what was loaded
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
    """requires_grad = True exactly for the parameters of stage.trained's groups (`trainable`, its vision towers
    left out unless stage.trains_vision_tower), False for all others.

    "lora" first adds adapters to the llm (its base weights stay frozen unless "llm" is trainable too).
    Stages apply in sequence to one model; adapters added by an earlier stage stay, frozen, in later ones.
    The optimiser's groups (lr, weight decay per module) are built from this by optim.build_optimizer.
    """
    if "lora" in stage.trainable:
        apply_lora(model, stage.lora)
    trainable = set(stage.trained)
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
