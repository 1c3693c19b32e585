"""Exo2Ego progressive training: the stages of a run in order, each resuming where it stopped.

    torchrun --nproc_per_node=8 -m exo2ego_model.train --config configs/run.yaml [--stage 2]
    python -m exo2ego_model.train --config configs/smoke/run.yaml          # CPU smoke run

Per stage, under <output_dir>/<stage name>/: checkpoints/step_NNNNNN.pt (trainable weights, optimizer,
scheduler, data position, RNG states), log.jsonl (loss, lr, samples/s, tokens/s), final.pt (the weights this
stage trained) and done.json. A later stage starts from the final weights of the earlier ones.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from transformers import get_cosine_schedule_with_warmup

from exo2ego_model.config import ConfigError, RunConfig, StageConfig, load_run_config
from exo2ego_model.data import make_loader
from exo2ego_model.model import apply_stage, build_model, trainable_groups
from exo2ego_model.parallel import Dist, all_reduce_mean, barrier, init_distributed, wrap_model
from exo2ego_model.samples import count_samples
from exo2ego_model.video import normalize

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v for k, v in get_model_state_dict(model, options=FULL).items() if k in names}


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=False))


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_checkpoint(stage_dir: Path) -> Path | None:
    found = sorted((stage_dir / "checkpoints").glob("step_*.pt"))
    return found[-1] if found else None


def total_steps(stage: StageConfig, n_samples: int) -> int:
    if stage.max_steps:
        return stage.max_steps
    per_epoch = n_samples // stage.global_batch
    if per_epoch == 0:
        raise ConfigError(
            f"stage[{stage.name}].global_batch={stage.global_batch}: more than the {n_samples} samples"
        )
    return math.ceil(stage.epochs * per_epoch)


class Logger:
    """Writes log.jsonl on the main rank and prints a one-line progress display."""

    def __init__(self, path: Path, ctx: Dist, stage: str, total: int):
        self.path, self.ctx, self.stage, self.total = path, ctx, stage, total

    def log(self, record: dict) -> None:
        if not self.ctx.is_main:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        losses = " ".join(f"{k} {v:.4f}" for k, v in record.items() if k.startswith("loss"))
        print(
            f"[{self.stage}] step {record['step']}/{self.total} {losses} lr {record['lr']:.2e} "
            f"{record['samples_per_s']:.1f} samples/s {record['tokens_per_s']:.0f} tokens/s",
            flush=True,
        )


def train_stage(run: RunConfig, stage: StageConfig, model, tokenizer, ctx: Dist, stop_after: int = 0) -> bool:
    """Train one stage to its end (True) or until `stop_after` steps (False: a simulated preemption)."""
    stage_dir = Path(run.output_dir) / stage.name
    if (stage_dir / "done.json").exists():
        load_weights(model, torch.load(stage_dir / "final.pt", map_location="cpu"))
        return True
    stage_dir.mkdir(parents=True, exist_ok=True)
    apply_stage(model, stage)
    model.to(ctx.device)
    wrapped = wrap_model(model, run.parallel, ctx)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=stage.lr, weight_decay=stage.weight_decay)
    n_samples = stage.data.epoch_samples or count_samples(stage.data.shards, stage.data_kind)
    total = total_steps(stage, n_samples)
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(stage.warmup_ratio * total), total)
    accum = stage.accumulation_steps(ctx.world_size)
    micro_per_epoch = (n_samples // stage.global_batch) * accum or accum
    step, epoch, consumed = 0, 0, 0  # consumed: micro-batches of this epoch already trained on

    ckpt = latest_checkpoint(stage_dir)
    if ckpt is not None:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        load_weights(model, state["model"])
        set_optimizer_state_dict(model, optimizer, state["optimizer"], options=FULL)
        scheduler.load_state_dict(state["scheduler"])
        step, epoch, consumed = state["step"], state["epoch"], state["consumed"]
        set_rng_state(state["rng"])
    logger = Logger(stage_dir / "log.jsonl", ctx, stage.name, total)
    if ctx.is_main:
        print(
            f"[{stage.name}] {total} steps, {accum} micro-batches of {stage.micro_batch} per step, "
            f"trainable {trainable_groups(model)}" + (f", resumed at step {step}" if step else ""),
            flush=True,
        )

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if ctx.device.type == "cuda" else nullcontext()
    window = {"samples": 0, "tokens": 0, "t0": time.monotonic(), "losses": {}}
    while step < total:
        # uint8 frames cross from the loader workers (4x fewer bytes than float) and are normalised on device
        loader = make_loader(
            stage.data,
            stage.data_kind,
            tokenizer,
            batch_size=stage.micro_batch,
            rank=ctx.rank,
            world_size=ctx.world_size,
            epoch=epoch,
            skip_batches=consumed,
            normalize_frames=False,
        )
        for batch in loader:
            batch = {k: v.to(ctx.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            batch.update({k: normalize(v) for k, v in batch.items() if k.endswith("_BTCHW")})
            consumed += 1
            sync = consumed % accum == 0
            no_sync = getattr(wrapped, "no_sync", None)
            with autocast, nullcontext() if sync or no_sync is None else no_sync():
                out = wrapped(batch, stage.losses)
                (out["loss"] / accum).backward()
            window["samples"] += len(batch["keys"])
            window["tokens"] += int(batch["attention_mask_BL"].sum())
            for k, v in out.items():
                window["losses"][k] = window["losses"].get(k, 0.0) + float(v.detach()) / accum
            if not sync:
                continue
            if stage.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % stage.log_every == 0 or step == total:
                seconds = max(time.monotonic() - window["t0"], 1e-9)
                n_steps = stage.log_every if step % stage.log_every == 0 else step % stage.log_every
                losses = {
                    f"loss_{k}" if k != "loss" else "loss": all_reduce_mean(v / n_steps, ctx)
                    for k, v in sorted(window["losses"].items())
                }
                logger.log(
                    {
                        "step": step,
                        "epoch": epoch,
                        **losses,
                        "lr": scheduler.get_last_lr()[0],
                        "samples_per_s": window["samples"] * ctx.world_size / seconds,
                        "tokens_per_s": window["tokens"] * ctx.world_size / seconds,
                    }
                )
                window = {"samples": 0, "tokens": 0, "t0": time.monotonic(), "losses": {}}
            if consumed >= micro_per_epoch:
                epoch, consumed = epoch + 1, 0
            if step % stage.checkpoint_every == 0 or step in (total, stop_after):
                save_checkpoint(stage_dir, model, optimizer, scheduler, step, epoch, consumed, ctx)
            if step == stop_after and step < total:
                return False
            if step >= total or consumed == 0:
                break
        else:  # the shards ran out before the epoch's planned micro-batches (all ranks must step together)
            raise RuntimeError(
                f"stage[{stage.name}]: rank {ctx.rank} got {consumed} micro-batches in epoch {epoch}, expected "
                f"{micro_per_epoch}: use more shards than ranks x workers, or data.resampled with epoch_samples"
            )
    final = trainable_state(model)  # a collective under FSDP: every rank takes part, rank 0 writes
    if ctx.is_main:
        torch.save(final, stage_dir / "final.pt")
        (stage_dir / "done.json").write_text(json.dumps({"steps": step, "samples": n_samples}) + "\n")
    barrier(ctx)
    return True


def save_checkpoint(stage_dir: Path, model, optimizer, scheduler, step, epoch, consumed, ctx: Dist) -> None:
    state = {
        "model": trainable_state(model),
        "optimizer": get_optimizer_state_dict(model, optimizer, options=FULL),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "epoch": epoch,
        "consumed": consumed,
        "rng": rng_state(),
    }
    if ctx.is_main:
        path = stage_dir / "checkpoints" / f"step_{step:06d}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)  # a checkpoint is either whole or absent
    barrier(ctx)


def run(run_cfg: RunConfig, stages: list[StageConfig], stop_after: int = 0) -> None:
    ctx = init_distributed()
    torch.manual_seed(run_cfg.seed)
    model, tokenizer = build_model(run_cfg.model, device=ctx.device)
    first = run_cfg.stages.index(stages[0])
    for earlier in run_cfg.stages[:first]:  # `--stage 2` starts from stage 1's final weights
        final = Path(run_cfg.output_dir) / earlier.name / "final.pt"
        if not final.exists():
            raise ConfigError(f"--stage {stages[0].name}: {final} missing; run stage {earlier.name} first")
        load_weights(model, torch.load(final, map_location="cpu"))
    for stage in stages:
        if not train_stage(run_cfg, stage, model, tokenizer, ctx, stop_after):
            return


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m exo2ego_model.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="run config (YAML), e.g. configs/run.yaml")
    ap.add_argument("--stage", action="append", help="stage name or 1-based index (repeatable); default all")
    ap.add_argument("--output-dir", help="override run.output_dir")
    ap.add_argument(
        "--stop-after-steps", type=int, default=0, help="checkpoint and stop after N steps of a stage"
    )
    args = ap.parse_args(argv)
    try:
        run_cfg = load_run_config(args.config)
        if args.output_dir:
            run_cfg = RunConfig(
                run_cfg.model, run_cfg.stages, args.output_dir, run_cfg.parallel, run_cfg.seed
            )
        stages = [run_cfg.stage(s) for s in args.stage] if args.stage else list(run_cfg.stages)
        run(run_cfg, stages, args.stop_after_steps)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
