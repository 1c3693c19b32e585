"""Process group set-up and model wrapping, apart from the model code.

Launched by torchrun (RANK / WORLD_SIZE / LOCAL_RANK in the environment) or as a single process. DDP wraps the
whole model when it fits one GPU; FSDP2 (`fully_shard`) shards the LLM's decoder layers and the root for the
7B LLM. `auto` picks FSDP when more than one GPU is used and the LLM is large, DDP otherwise.
A model is wrapped once: each training stage builds its model afresh and wraps that (train.py); wrapping an
already wrapped model is an error. `shutdown` destroys the process group that `init_distributed` created.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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
    owns_group: bool = False  # init_distributed created the process group: shutdown destroys it

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
    owns = world > 1 and not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, local, world, device, owns)


def shutdown(ctx: Dist) -> None:
    """Destroy the process group `init_distributed` created (call in a `finally`: also after errors)."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def is_wrapped(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, nn.parallel.DistributedDataParallel | FSDPModule) or any(
        isinstance(m, FSDPModule) for m in model.modules()
    )


def choose_mode(mode: str, ctx: Dist, llm: nn.Module) -> str:
    if ctx.world_size == 1 or mode == "none":
        return "none"
    if mode != "auto":
        return mode
    n = sum(p.numel() for p in llm.parameters())
    return "fsdp" if n >= FSDP_MIN_LLM_PARAMS and ctx.device.type == "cuda" else "ddp"


def wrap_model(model: nn.Module, mode: str, ctx: Dist) -> nn.Module:
    """The module to call in the training loop; `model` itself keeps the unwrapped parameters' names.
    `model` must be a freshly built one: wrapping twice (DDP of DDP, fully_shard of a sharded model) is
    refused."""
    if is_wrapped(model):
        raise RuntimeError(
            "wrap_model: the model is already wrapped (DDP or FSDP); build a fresh one per stage"
        )
    mode = choose_mode(mode, ctx, model.llm)
    if mode == "none":
        return model
    if mode == "ddp":
        # frozen groups are simply parameters without grad; unused ones (map_g outside stage 2) are allowed
        return nn.parallel.DistributedDataParallel(
            model,
            device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None,
            find_unused_parameters=True,
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


@contextmanager
def gradient_sync(wrapped: nn.Module, enabled: bool) -> Iterator[None]:
    """Forward and backward of a micro-batch: with enabled=False (accumulation, not the last micro-batch)
    gradients stay local: DDP's no_sync, FSDP2's set_requires_gradient_sync(False)."""
    if enabled:
        yield
    elif isinstance(wrapped, nn.parallel.DistributedDataParallel):
        with wrapped.no_sync():
            yield
    elif hasattr(wrapped, "set_requires_gradient_sync"):
        wrapped.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            wrapped.set_requires_gradient_sync(True)
    else:
        yield


def all_reduce_mean(value: float, ctx: Dist) -> float:
    if ctx.world_size == 1:
        return value
    t = torch.tensor([value], device=ctx.device, dtype=torch.float64)
    dist.all_reduce(t)
    return t.item() / ctx.world_size


def barrier(ctx: Dist) -> None:
    if ctx.world_size > 1:
        dist.barrier()
