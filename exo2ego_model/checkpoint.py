"""Sharded checkpoints of a training stage (torch.distributed.checkpoint), whole or ignored.

Layout under a stage directory (<output_dir>/<stage name>/):

    checkpoints/step_000004/      one checkpoint, a DCP directory:
        .metadata                 DCP's index of every tensor (written last, by the coordinator rank)
        __0_0.distcp ...          each rank's shards of the trainable weights ("model.<name>") and of the
                                  optimizer state ("optim.state.<name>.exp_avg", ...): no rank gathers
                                  the whole model
        rank_00000.pt ...         each rank's RNG states (torch, cuda, python, numpy) and data position
        trainer.pt                step, epoch, data position, world size, scheduler state (rank 0)
    checkpoints/latest            the directory name of the newest whole checkpoint: written last, atomically
                                  (tmp + rename); a step directory it does not name is a partial one, ignored
                                  and deleted; the newest `keep` whole ones are kept
    final/                        DCP directory of the weights trained so far ("model.<name>": this stage's
                                  trainable weights and those of the earlier stages), sharded like the above

Loading is strict for trained weights: every trainable parameter must be in the checkpoint and every weight in
the checkpoint must be one the model expects, else CheckpointError names the keys. Frozen base weights come
from the model build and are never saved. Without a process group (one process) DCP reads and writes directly.
"""

from __future__ import annotations

import os
import random
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.metadata import TensorStorageMetadata
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from exo2ego_model.parallel import Dist, barrier

LATEST = "latest"
STEP_PREFIX = "step_"
MODEL = "model"
OPTIM = "optim"
# subsets of the model's state dict are set: the keys are checked by `check_keys` first
_PARTIAL = StateDictOptions(strict=False)


class CheckpointError(RuntimeError):
    """A checkpoint does not match the model (missing or unexpected trained weights), or the run's shape."""


# ------------------------------------------------------------------------------------------- state


def trainable_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def model_state(model: nn.Module, names: Iterable[str]) -> dict[str, torch.Tensor]:
    """The tensors of `names` in the model's state dict, as they are (DTensor shards under FSDP2: nothing is
    gathered). `model` is the unwrapped module (FSDP2 shards in place; DDP's wrapper holds the same one)."""
    names = set(names)
    return {k: v for k, v in get_model_state_dict(model).items() if k in names}


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _dcp(fn, state: dict, path: Path, no_dist: bool = False) -> None:
    """dcp.save / dcp.load; without a process group (or no_dist) in this process alone, which is intended
    here (one process, or rank 0 alone for the export), so DCP's warning about it is not shown."""
    if not no_dist and dist.is_available() and dist.is_initialized():
        fn(state, checkpoint_id=str(path))
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        fn(state, checkpoint_id=str(path), no_dist=True)


# ------------------------------------------------------------------------------------------- keys


def checkpoint_keys(path: str | Path, prefix: str = MODEL) -> set[str]:
    """Names of the tensors saved under `prefix` in a DCP directory (read from its .metadata only)."""
    if not (Path(path) / ".metadata").exists():
        raise CheckpointError(
            f"{path}: not a checkpoint (no .metadata; a run from before sharded checkpoints?)"
        )
    meta = dcp.FileSystemReader(str(path)).read_metadata()
    head = prefix + "."
    return {k[len(head) :] for k in meta.state_dict_metadata if k.startswith(head)}


def _names(keys: Iterable[str], limit: int = 12) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:limit]) + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def check_keys(path: str | Path, expected: set[str], what: str) -> None:
    """CheckpointError naming the missing and unexpected keys unless the checkpoint holds just `expected`."""
    have = checkpoint_keys(path)
    missing, unexpected = expected - have, have - expected
    if missing or unexpected:
        parts = [f"{path} does not match {what}"]
        if missing:
            parts.append(f"missing {len(missing)} trained weight(s): {_names(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} weight(s): {_names(unexpected)}")
        raise CheckpointError("; ".join(parts))


# ------------------------------------------------------------------------------------------- weights


def save_weights(path: str | Path, model: nn.Module, names: set[str], ctx: Dist) -> None:
    """The weights `names` of `model` as a sharded DCP directory `path` (replaced if present)."""
    path = Path(path)
    if ctx.is_main and path.exists():
        shutil.rmtree(path)
    barrier(ctx)
    _dcp(dcp.save, {MODEL: model_state(model, names)}, path)
    barrier(ctx)


def load_weights(
    path: str | Path, model: nn.Module, expected: set[str], what: str = "the model", *, no_dist: bool = False
) -> None:
    """Load the weights saved by `save_weights` into `model` (plain, DDP-held or FSDP2-sharded), strictly:
    the checkpoint must hold exactly `expected` (CheckpointError names the difference). Every rank calls it,
    or one process alone with no_dist=True (a plain model)."""
    check_keys(path, expected, what)
    state = model_state(model, expected)
    _dcp(dcp.load, {MODEL: state}, Path(path), no_dist)
    set_model_state_dict(model, state, options=_PARTIAL)


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The full tensors of a weights or step checkpoint directory, in this process (tests, tools, export)."""
    meta = dcp.FileSystemReader(str(path)).read_metadata()
    head = MODEL + "."
    state = {
        k[len(head) :]: torch.empty(m.size, dtype=m.properties.dtype)
        for k, m in meta.state_dict_metadata.items()
        if k.startswith(head) and isinstance(m, TensorStorageMetadata)
    }
    _dcp(dcp.load, {MODEL: state}, Path(path), no_dist=True)
    return state


# ------------------------------------------------------------------------------------------- step checkpoints


def _step_of(path: Path) -> int:
    return int(path.name[len(STEP_PREFIX) :])


def _step_dirs(root: Path) -> list[Path]:
    found = [p for p in root.glob(STEP_PREFIX + "*") if p.is_dir() and p.name[len(STEP_PREFIX) :].isdigit()]
    return sorted(found, key=_step_of)


def latest(root: str | Path) -> Path | None:
    """The newest whole checkpoint under `root` (a stage's checkpoints/), or None."""
    marker = Path(root) / LATEST
    if not marker.exists():
        return None
    path = Path(root) / marker.read_text().strip()
    if not (path / ".metadata").exists():
        raise CheckpointError(f"{marker} names {path.name}, which is not a whole checkpoint")
    return path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def prune(root: str | Path, keep: int) -> None:
    """Delete partial step directories (newer than `latest` or never named by it) and all but the newest
    `keep` whole ones. Main rank only, while no rank writes."""
    root = Path(root)
    newest = latest(root)
    newest_step = _step_of(newest) if newest else -1
    whole = [p for p in _step_dirs(root) if _step_of(p) <= newest_step]
    for path in _step_dirs(root):
        if _step_of(path) > newest_step or path in whole[: max(0, len(whole) - keep)]:
            shutil.rmtree(path, ignore_errors=True)


def save(
    root: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    step: int,
    epoch: int,
    consumed: int,
    ctx: Dist,
    keep: int = 2,
) -> Path:
    """A step checkpoint under `root`: trainable weights and optimizer state sharded by DCP, per-rank RNG and
    data position, trainer state; then `latest` names it and older ones beyond `keep` are deleted."""
    root = Path(root)
    path = root / f"{STEP_PREFIX}{step:06d}"
    if latest(root) == path:  # this very step is already saved whole (a resume at a stage's last step)
        return path
    if ctx.is_main:
        root.mkdir(parents=True, exist_ok=True)
        if path.exists():  # a partial one left by a killed run
            shutil.rmtree(path)
    barrier(ctx)
    state = {
        MODEL: model_state(model, trainable_names(model)),
        OPTIM: get_optimizer_state_dict(model, optimizer),
    }
    _dcp(dcp.save, state, path)
    position = {"step": step, "epoch": epoch, "consumed": consumed}
    torch.save({**position, "rng": rng_state()}, path / f"rank_{ctx.rank:05d}.pt")
    if ctx.is_main:
        torch.save(
            {**position, "world_size": ctx.world_size, "scheduler": scheduler.state_dict()},
            path / "trainer.pt",
        )
    barrier(ctx)  # every rank's files are written
    if ctx.is_main:
        _write_atomic(root / LATEST, path.name + "\n")
        prune(root, keep)
    barrier(ctx)
    return path


def load(path: str | Path, *, model: nn.Module, optimizer, scheduler, ctx: Dist) -> dict:
    """Restore a step checkpoint written by `save` (strict on the trainable weights); returns
    {step, epoch, consumed}. The run must have the world size the checkpoint was written with (the data
    position and RNG streams are per rank)."""
    path = Path(path)
    trainer = torch.load(path / "trainer.pt", map_location="cpu", weights_only=False)
    if trainer["world_size"] != ctx.world_size:
        raise CheckpointError(
            f"{path} was written by {trainer['world_size']} ranks, this run has {ctx.world_size}: resume "
            f"with "
            f"--nproc_per_node={trainer['world_size']} (the data position and RNG streams are per rank)"
        )
    names = trainable_names(model)
    check_keys(path, names, "the trainable parameters of this stage")
    state = {MODEL: model_state(model, names), OPTIM: get_optimizer_state_dict(model, optimizer)}
    _dcp(dcp.load, state, path)
    set_model_state_dict(model, state[MODEL], options=_PARTIAL)
    set_optimizer_state_dict(model, optimizer, state[OPTIM])
    scheduler.load_state_dict(trainer["scheduler"])
    mine = torch.load(path / f"rank_{ctx.rank:05d}.pt", map_location="cpu", weights_only=False)
    set_rng_state(mine["rng"])
    return {k: trainer[k] for k in ("step", "epoch", "consumed")}
