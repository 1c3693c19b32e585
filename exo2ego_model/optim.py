"""The optimiser of a training stage: AdamW over parameter groups per module, each with its own lr and decay.

What trains is set before, by model.apply_stage (requires_grad from StageConfig.trained: `trainable` with its
vision towers left out unless the stage trains them); frozen parameters are in no group. Each trainable group
of config.MODULE_GROUPS (exo_tower, ego_tower, projector, map_f, map_g, lora, llm) gives two AdamW groups:
"<group>" (matrices, at the weight decay of its optimiser module: config.OPTIM_MODULE) and "<group>.no_decay"
(norms, biases, embeddings and every other parameter of fewer than 2 dims, weight decay 0), both at the
module's lr (StageConfig.group_lr). Groups come in MODULE_GROUPS order, parameters in named_parameters order:
the same layout on every rank and every run, which the optimiser state of a step checkpoint relies on.

Build the optimiser after the model is wrapped for its parallel mode (parallel.wrap_model): FSDP2 replaces the
parameters by sharded ones in place, and the groups must hold those (DDP's wrapper holds the same module).
`describe` gives the lines train.py prints at the start of a stage, one per group.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import MODULE_GROUPS, OPTIM_MODULE, StageConfig
from .model import group_of

NO_DECAY = ".no_decay"


def is_no_decay(module: nn.Module, param: torch.Tensor) -> bool:
    """Norm weights and biases, embeddings (token, position, class) and every other vector or scalar."""
    kind = type(module).__name__.lower()
    return param.ndim < 2 or isinstance(module, nn.Embedding) or "norm" in kind or "embedding" in kind


def named_trainable(model: nn.Module) -> list[tuple[str, nn.Parameter, bool]]:
    """(name, parameter, no decay) of every parameter that requires grad, in named_parameters order."""
    owner = {}
    for module in model.modules():
        for param in module.parameters(recurse=False):
            owner.setdefault(id(param), module)  # a shared (tied) parameter: its first owner
    return [
        (name, param, is_no_decay(owner[id(param)], param))
        for name, param in model.named_parameters()
        if param.requires_grad
    ]


def param_groups(model: nn.Module, stage: StageConfig) -> list[dict]:
    """AdamW parameter groups of the trainable parameters (each dict: params, name, lr, weight_decay)."""
    buckets: dict[str, list[nn.Parameter]] = {}
    for name, param, no_decay in named_trainable(model):
        group = group_of(name)
        buckets.setdefault(group + (NO_DECAY if no_decay else ""), []).append(param)
    groups = []
    for group in MODULE_GROUPS:
        for suffix, wd in (("", stage.group_weight_decay(group)), (NO_DECAY, 0.0)):
            params = buckets.pop(group + suffix, [])
            if params:
                groups.append({"params": params, "name": group + suffix, "lr": stage.group_lr(group),
                               "weight_decay": wd})  # fmt: skip
    return groups


def build_optimizer(model: nn.Module, stage: StageConfig, *, fused: bool = False) -> torch.optim.AdamW:
    """AdamW over `param_groups` (on `model`, the unwrapped module, after it was wrapped: see above)."""
    groups = param_groups(model, stage)
    if not groups:
        raise ValueError(f"stage[{stage.name}]: no parameter requires grad (apply_stage first)")
    return torch.optim.AdamW(groups, lr=stage.lr, weight_decay=stage.weight_decay, fused=fused or None)


def optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every parameter the optimiser steps (for gradient clipping)."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def scheduled_lr(optimizer: torch.optim.Optimizer, base_lr: float) -> float:
    """The stage's lr on its schedule now: base_lr times the scheduler's factor (the same for every group)."""
    group = optimizer.param_groups[0]
    return base_lr * group["lr"] / group.get("initial_lr", group["lr"])


def _count(n: int) -> str:
    return f"{n:,}"


def describe(model: nn.Module, stage: StageConfig) -> list[str]:
    """One line per model group: name, its optimiser module, parameters, trainable ones, lr, weight decay (and
    how many of the trainable ones are norms, biases or embeddings, at weight decay 0), or 'frozen'."""
    total = dict.fromkeys(MODULE_GROUPS, 0)
    trainable = dict.fromkeys(MODULE_GROUPS, 0)
    no_decay = dict.fromkeys(MODULE_GROUPS, 0)
    for name, param in model.named_parameters():
        total[group_of(name)] += param.numel()
    for name, param, nd in named_trainable(model):
        trainable[group_of(name)] += param.numel()
        no_decay[group_of(name)] += param.numel() if nd else 0
    width = max(len(g) for g in MODULE_GROUPS)
    lines = []
    for group in MODULE_GROUPS:
        if not total[group]:
            continue  # no lora adapters (yet)
        head = (
            f"[{stage.name}] group {group:<{width}} {OPTIM_MODULE[group]:<12} params {_count(total[group]):>13} "
            f"trainable {_count(trainable[group]):>13}"
        )
        if not trainable[group]:
            lines.append(f"{head}  frozen")
            continue
        lines.append(
            f"{head}  lr {stage.group_lr(group):.2e}  weight_decay {stage.group_weight_decay(group):g} "
            f"({_count(no_decay[group])} norm/bias/embedding params at 0)"
        )
    return lines
