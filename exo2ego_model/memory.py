"""Training memory per GPU: weights, gradients, optimizer state and activations of one stage, before the run.

The model is given built (on the meta device for the real size: exo2ego_model/plan.py; tests pass tiny real
ones), after `apply_stage`, so what trains and every parameter's dtype are the run's own. Byte counts:

- weights: every parameter at its dtype (the LLM in model.dtype, towers / connector / F / G / LoRA in fp32).
- gradients: the trainable parameters at their dtype. DDP adds its gradient buckets (one more copy).
- optimizer: torch AdamW, exp_avg + exp_avg_sq at the parameter's dtype. No master copy: the trainer keeps
  every trained parameter in fp32 (model.build_model), so fp32 Adam needs none.
- FSDP2 (parallel.py): weights, gradients and optimizer state / world size, plus what is unsharded at once
  during a step: the root's own parameters (towers, connector, F, G, embeddings, head; not resharded after
  the forward) in bf16, their gradients (bf16 + the fp32 reduce copy), and two decoder layers (prefetch).

Activations: what autograd keeps from the forward for the backward, per micro-batch. The two transformer stacks
are analytic, per token per layer (e = bytes of an activation: 2 under bf16 autocast, 4 in fp32; h hidden,
i MLP width, r LoRA rank; memory-efficient / flash SDPA keeps q, k, v, the output and a row statistic):

    Mistral decoder layer, weights frozen:   2 (4h + 4)  [RMSNorm: the fp32 input and its rsqrt]
                                            + 4 e h + 4 heads + e S  [SDPA q, k, v (k, v repeated to all
                                              heads when a padding mask is passed), output, logsumexp, and
                                              its additive mask made from the padding mask: S x S a row]
                                            + 3 e i  [SiLU input, SiLU output, up projection]
        + LoRA, per adapted Linear of input width d: d (dropout mask; e d on CPU, where it is a float
          tensor) + e d (lora_A input) + e r (lora_B input)
    CLIP encoder layer, weights trained:   2 (4h + 8)  [LayerNorm input, mean, rstd]
                                            + (3 e if e < 4 else 4) h  [the q/k/v input; autocast: 3 casts]
                                            + 5 e h + 4 heads  [SDPA q, k, v, output + the reshaped output]
                                            + (e if e < 4 else 4) h  [fc1 input] + 3 e i  [quick-GELU, fc2]

A frozen tower keeps nothing (its input needs no gradient). The connector, F, G and the KL / cycle losses are
convolutional: their saved tensors are traced once on the meta device at the real shapes (one clip, scaled by
the micro-batch). The head keeps 4h + 4 per token (final norm) and 4 V per kept logit (the fp32 log-softmax).
Activation checkpointing keeps only each checkpointed layer's input (e h for the LLM's bf16 residual, 4 h for
CLIP's fp32 residual) and recomputes one layer at a time in the backward: the peak adds the largest layer.

tests/test_memory.py checks the activation figure against saved-tensor hooks and torch's MemTracker on CPU
(fp32, tiny shapes): the bf16 figure of a GPU has not been measured here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks

from .losses import cycle_loss, kl_loss

GiB = 2**30
CHECKPOINTING = ("auto", "on", "off")


@dataclass(frozen=True)
class StageShape:
    """What one micro-batch of a stage puts through the model."""

    micro_batch: int
    text_tokens: int  # text ids per sample, the video placeholder included (data.max_text_tokens)
    data_kind: str
    losses: tuple[str, ...]
    visual_input: str  # "x" or "x+Fx" (ego); ignored for exo-only stages


@dataclass
class Activations:
    parts: dict[str, float] = field(default_factory=dict)  # saved bytes per part
    recompute: float = 0.0  # the largest checkpointed layer, rebuilt in the backward

    @property
    def saved(self) -> float:
        return sum(self.parts.values())

    @property
    def peak(self) -> float:
        return self.saved + self.recompute


def _trains(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


# ---- the transformer stacks, per token per layer -----------------------------------------------------------
def llm_layer_bytes(
    cfg, e: int, lora: tuple[int, tuple[str, ...], float] | None, trained: bool, seq: int, gpu: bool = True
) -> float:
    """Bytes one Mistral decoder layer keeps per token of a `seq`-token sequence (see the module doc);
    lora = (r, targets, dropout). gpu=False: CPU dropout keeps a float mask (e bytes, not 1)."""
    h, i, heads = cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads
    total = 2 * (4 * h + 4) + 4 * e * h + 4 * heads + e * seq + 3 * e * i
    if trained:  # full fine-tuning: the norms' outputs, the o_proj and down_proj inputs
        total += 2 * e * h + e * h + e * i
    if lora:
        r, targets, dropout = lora
        widths = {"down_proj": i}
        for name in targets:
            d = widths.get(name, h)
            total += ((1 if gpu else e) * d if dropout > 0 else 0) + e * d + e * r
    return total


def vit_layer_bytes(cfg, e: int) -> float:
    """Bytes one trained CLIP encoder layer keeps per token (see the module doc)."""
    h, i, heads = cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads
    cast = e if e < 4 else 4
    qkv = 3 * e * h if e < 4 else 4 * h
    return 2 * (4 * h + 8) + qkv + 5 * e * h + 4 * heads + cast * h + 3 * e * i


# ---- the convolutional parts: traced on the meta device ----------------------------------------------------
def traced_bytes(fn, params: list[nn.Parameter]) -> float:
    """Bytes of the distinct tensors autograd saves while `fn()` runs (parameters excluded)."""
    skip = {p.untyped_storage()._cdata for p in params}
    seen: dict[int, torch.UntypedStorage] = {}  # held until the end: a freed storage's address can come back

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        if storage._cdata not in skip:
            seen[storage._cdata] = storage
        return t

    with saved_tensors_hooks(pack, lambda t: t):
        fn()
    return float(sum(storage.nbytes() for storage in seen.values()))


def _lora_of(llm: nn.Module) -> tuple[int, tuple[str, ...], float] | None:
    config = getattr(llm, "peft_config", {}).get("default")
    if config is None or not any(p.requires_grad for n, p in llm.named_parameters() if "lora_" in n):
        return None
    dropout = config.lora_dropout
    return config.r, tuple(sorted(config.target_modules)), dropout


def _llm_config(model):
    llm = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
    return llm.config


def visual_side(model, shape: StageShape, e: int) -> tuple[dict[str, float], dict]:
    """Saved bytes of the connector, F, G and the KL / cycle losses for one clip (traced on meta at dtype of
    width e), and what flows: {'n_visual': tokens into the LLM, 'llm_grad': whether the LLM's input needs one}."""
    cfg, tower = model.cfg, model.ego_tower.config
    side = cfg.image_size // tower.patch_size
    dtype = torch.bfloat16 if e == 2 else torch.float32
    ego = shape.data_kind != "exo"
    exo = shape.data_kind == "exo" or bool({"kl", "cycle"} & set(shape.losses))
    x_grad, y_grad = ego and _trains(model.ego_tower), exo and _trains(model.exo_tower)

    def feats(grad: bool) -> torch.Tensor:
        t = torch.zeros(1, cfg.n_frames, side, side, tower.hidden_size, device="meta", dtype=dtype)
        return t.requires_grad_(grad)

    # meta copies (the model itself keeps its dtypes and devices), at the activations' dtype
    map_f, map_g, projector = (_meta_copy(m).to(dtype) for m in (model.map_f, model.map_g, model.projector))
    params = [p for m in (map_f, map_g, projector) for p in m.parameters()]
    visual_input = shape.visual_input if ego else "exo"
    n = projector.n_tokens(cfg.n_frames, side, side) * (2 if visual_input == "x+Fx" else 1)
    out: dict[str, float] = {}
    flow = {"n_visual": n, "llm_grad": False}

    def run():
        x = feats(x_grad) if ego else None
        y = feats(y_grad) if exo else None
        fx = map_f(x) if ego and (visual_input == "x+Fx" or exo) else None
        vis = projector(torch.cat([x, fx], dim=0) if visual_input == "x+Fx" else x if ego else y)
        flow["llm_grad"] = vis.requires_grad
        if "kl" in shape.losses:
            kl_loss(y.detach().flatten(1, 3), fx.flatten(1, 3), cfg.kl_temperature)
        if "cycle" in shape.losses:
            cycle_loss(x, map_g(fx), y, map_f(map_g(y)))

    out["connector, F, G, losses"] = traced_bytes(run, params)
    return out, flow


def _meta_copy(module: nn.Module) -> nn.Module:
    import copy

    clone = copy.deepcopy(module).to("meta")
    for p, q in zip(module.parameters(), clone.parameters(), strict=True):
        q.requires_grad_(p.requires_grad)
    return clone


def _visual_cached(model, shape: StageShape, e: int):
    flags = tuple(
        _trains(m) for m in (model.ego_tower, model.exo_tower, model.map_f, model.map_g, model.projector)
    )
    key = (shape.text_tokens, shape.data_kind, shape.losses, shape.visual_input, e, flags)
    cache = model.__dict__.setdefault("_memory_visual", {})
    if key not in cache:
        cache[key] = visual_side(model, shape, e)
    return cache[key]


def activations(model, shape: StageShape, e: int, checkpointing: bool, gpu: bool = True) -> Activations:
    """Saved activation bytes of one micro-batch of `shape` (see the module doc), per part. gpu=False counts
    what CPU kernels keep where they differ (dropout masks), for the CPU check."""
    b = shape.micro_batch
    visual, flow = _visual_cached(model, shape, e)
    act = Activations({k: v * b for k, v in visual.items()})
    largest = 0.0
    for view in ("ego", "exo"):
        tower = model.ego_tower if view == "ego" else model.exo_tower
        runs = shape.data_kind != "exo" if view == "ego" else (shape.data_kind == "exo" or
                                                               bool({"kl", "cycle"} & set(shape.losses)))  # fmt: skip
        if not (runs and _trains(tower)):
            continue
        vc = tower.config
        tokens = b * model.cfg.n_frames * ((model.cfg.image_size // vc.patch_size) ** 2 + 1)
        per_layer = vit_layer_bytes(vc, e) * tokens
        if checkpointing:
            act.parts[f"{view} tower (checkpointed inputs)"] = (
                vc.num_hidden_layers * 4 * vc.hidden_size * tokens
            )
            largest = max(largest, per_layer)
        else:
            act.parts[f"{view} tower"] = vc.num_hidden_layers * per_layer
    lc = _llm_config(model)
    seq = shape.text_tokens - 1 + flow["n_visual"]
    tokens = b * seq
    lora = _lora_of(model.llm)
    llm_trained = any(p.requires_grad for n, p in model.llm.named_parameters() if "lora_" not in n)
    if flow["llm_grad"] or lora or llm_trained:
        per_layer = llm_layer_bytes(lc, e, lora, llm_trained, seq, gpu) * tokens
        if checkpointing:  # each layer's input, and the one boolean padding mask they share
            act.parts["LLM (checkpointed inputs)"] = (
                lc.num_hidden_layers * e * lc.hidden_size + seq
            ) * tokens
            largest = max(largest, per_layer)
        else:
            act.parts["LLM layers"] = lc.num_hidden_layers * per_layer
        act.parts["LLM head"] = (4 * lc.hidden_size + 4) * tokens + 4 * lc.vocab_size * b * shape.text_tokens
    act.recompute = largest
    return act


# ---- weights, gradients, optimizer state ----------------------------------------------------------------
def _layers(model) -> list[nn.Module]:
    llm = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
    return list(llm.model.layers)


def states(model, world: int, mode: str) -> dict[str, float]:
    """Per-GPU bytes of weights, gradients, optimizer state (and FSDP's unsharded working set) for `mode`."""
    params = list(model.parameters())
    weights = sum(p.numel() * p.element_size() for p in params)
    trained = [p for p in params if p.requires_grad]
    grads = sum(p.numel() * p.element_size() for p in trained)
    optim = 2 * grads
    if mode == "ddp":
        return {
            "weights": weights,
            "gradients": grads,
            "DDP buckets": grads if world > 1 else 0,
            "optimizer": optim,
        }
    in_layers = {id(p) for layer in _layers(model) for p in layer.parameters()}
    root = [p for p in params if id(p) not in in_layers]
    layer = max(sum(p.numel() for p in layer.parameters()) for layer in _layers(model))
    unsharded = (
        2 * sum(p.numel() for p in root) + 6 * sum(p.numel() for p in root if p.requires_grad) + 2 * 2 * layer
    )
    return {"weights": weights / world, "gradients": grads / world, "optimizer": optim / world,
            "FSDP unsharded": unsharded}  # fmt: skip


@dataclass
class Fit:
    micro_batch: int
    accumulation: int
    checkpointing: bool
    peak: float  # bytes per GPU
    fits: bool


# Usable share of a GPU's memory: the CUDA context, NCCL buffers and the allocator's fragmentation take the rest.
USABLE = 0.9
RESERVED = 2 * GiB


def usable(gpu_bytes: float) -> float:
    return gpu_bytes * USABLE - RESERVED


def micro_batches(global_batch: int, world: int) -> list[int]:
    """Micro-batches that keep the global batch exactly (global = micro x world x accumulation), largest first."""
    per_rank = global_batch // world if global_batch % world == 0 else 0
    return [m for m in range(per_rank, 0, -1) if per_rank % m == 0]


# ---- activation checkpointing in the training model ------------------------------------------------------
def enable_checkpointing(model) -> list[str]:
    """Recompute in the backward (torch.utils.checkpoint, non-reentrant, through transformers'
    activation_checkpointing_enable): the LLM's decoder layers, and the layers of each vision tower that
    trains. Call after apply_stage, before wrapping (DDP / FSDP2). Returns the modules switched."""
    kwargs = {"use_reentrant": False}
    llm = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
    done = []
    for name, module in (("llm", llm), ("exo_tower", model.exo_tower), ("ego_tower", model.ego_tower)):
        if name != "llm" and not _trains(module):
            continue
        enable = getattr(module, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs=kwargs)
        else:  # transformers < 5
            module.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        done.append(name)
    return done
