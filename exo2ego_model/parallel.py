"""Process group set-up and model wrapping, apart from the model code.

Launched by torchrun (RANK / WORLD_SIZE / LOCAL_RANK in the environment) or as a single process. DDP wraps the
whole model when it fits one GPU; FSDP2 (`fully_shard`) shards the LLM's decoder layers and the root for the 7B
LLM. `auto` picks FSDP when more than one GPU is used and the LLM is large, DDP otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

FSDP_MIN_LLM_PARAMS = 1_000_000_000


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, local, world, device)


def choose_mode(mode: str, ctx: Dist, llm: nn.Module) -> str:
    if ctx.world_size == 1 or mode == "none":
        return "none"
    if mode != "auto":
        return mode
    n = sum(p.numel() for p in llm.parameters())
    return "fsdp" if n >= FSDP_MIN_LLM_PARAMS and ctx.device.type == "cuda" else "ddp"


def wrap_model(model: nn.Module, mode: str, ctx: Dist) -> nn.Module:
    """The module to call in the training loop; `model` itself keeps the unwrapped parameters' names."""
    mode = choose_mode(mode, ctx, model.llm)
    if mode == "none":
        return model
    if mode == "ddp":
        # frozen groups are simply parameters without grad; unused ones (e.g. map_g outside stage 2) are allowed
        return nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None, find_unused_parameters=True
        )
    if mode == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        layers = getattr(getattr(model.llm, "model", model.llm), "layers", None)
        if layers is None:  # peft-wrapped: base_model.model.model.layers
            layers = model.llm.get_base_model().model.layers
        for layer in layers:
            fully_shard(layer, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        return model
    raise ValueError(f"run.parallel={mode!r}: expected auto, ddp, fsdp or none")


def all_reduce_mean(value: float, ctx: Dist) -> float:
    if ctx.world_size == 1:
        return value
    t = torch.tensor([value], device=ctx.device, dtype=torch.float64)
    dist.all_reduce(t)
    return t.item() / ctx.world_size


def barrier(ctx: Dist) -> None:
    if ctx.world_size > 1:
        dist.barrier()
