"""Exo2Ego progressive training: the stages of a run in order, each resuming where it stopped.

    torchrun --nproc_per_node=8 -m exo2ego_model.train --config configs/run.yaml [--stage 2] [--parallel fsdp]
    python -m exo2ego_model.train --config configs/smoke/run.yaml          # CPU smoke run

Each stage builds its model afresh (the same seed on every rank), adds the structure of the earlier stages
(LoRA adapters), loads the previous stage's final weights strictly, sets what trains and wraps the model for
the run's parallel mode (none, DDP, FSDP2): no model is wrapped twice. Per stage, under <output_dir>/<stage>/:
checkpoints/ (sharded step checkpoints and their `latest` marker: see checkpoint.py), log.jsonl (loss, lr,
samples/s, tokens/s; rank 0), final/ (the weights trained up to this stage, sharded) and done.json. After the
run's last stage, <output_dir>/final is the exported model (exo2ego_model.export.save_pretrained).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import hashlib
import importlib
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
import yaml
from transformers import get_cosine_schedule_with_warmup

from exo2ego_model import checkpoint
from exo2ego_model.checkpoint import CheckpointError
from exo2ego_model.config import ConfigError, DataConfig, RunConfig, StageConfig, load_run_config
from exo2ego_model.data import expand_urls, make_loader
from exo2ego_model.memory import enable_checkpointing
from exo2ego_model.model import apply_stage, build_model, group_of
from exo2ego_model.optim import build_optimizer, describe, optimizer_params, scheduled_lr
from exo2ego_model.parallel import (
    Dist,
    all_reduce_mean,
    barrier,
    choose_mode,
    gradient_sync,
    init_distributed,
    shutdown,
    wrap_model,
)
from exo2ego_model.plan import check as check_memory
from exo2ego_model.plan import checkpointing_needed, gpu_memory_gib
from exo2ego_model.samples import count_samples
from exo2ego_model.video import normalize


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def rank_seed(seed: int, stage_index: int, rank: int) -> int:
    """The training RNG seed of one rank in one stage (dropout masks differ between ranks)."""
    digest = hashlib.sha256(f"train:{seed}:{stage_index}:{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@contextmanager
def isolated_rng() -> Iterator[None]:
    """The global RNGs as they were before: the data loader draws from torch's when it starts (DataLoader's
    base seed), which would tie dropout masks to when loaders are created and break exact resume."""
    state = torch.get_rng_state(), random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        torch.set_rng_state(state[0])
        random.setstate(state[1])
        np.random.set_state(state[2])


def isolated_batches(loader: Iterable[dict]) -> Iterator[dict]:
    it = iter(loader)
    while True:
        with isolated_rng():
            try:
                batch = next(it)
            except StopIteration:
                return
        yield batch


def trained_names(model: torch.nn.Module, stages: Iterable[StageConfig]) -> set[str]:
    """Parameters of the groups that any of `stages` trains: what a stage's final weights hold."""
    groups = {g for s in stages for g in s.trained}
    return {name for name, _ in model.named_parameters() if group_of(name) in groups}


def total_steps(stage: StageConfig, n_samples: int) -> int:
    if stage.max_steps:
        return stage.max_steps
    per_epoch = n_samples // stage.global_batch
    if per_epoch == 0:
        raise ConfigError(
            f"stage[{stage.name}].global_batch={stage.global_batch}: more than the {n_samples} samples"
        )
    return math.ceil(stage.epochs * per_epoch)


def check_data(stage: StageConfig, ctx: Dist) -> None:
    """Start-up checks of a stage's data for this world size (ConfigError naming the numbers and the fix)."""
    where = f"stage[{stage.name}].data"
    stage.accumulation_steps(ctx.world_size)  # global_batch a multiple of micro_batch x ranks
    try:
        urls = expand_urls(stage.data.shards)
    except (ValueError, OSError) as err:
        raise ConfigError(f"{where}.shards={stage.data.shards!r}: {err}") from None
    data, world = stage.data, ctx.world_size
    workers = max(1, data.num_workers)
    readers = world * workers
    if not data.resampled and len(urls) < readers:
        fixes = [
            "data.resampled: true with data.epoch_samples: N (shards drawn with replacement, N samples an "
            "epoch)",
            f"at least {readers} shards",
        ]
        if len(urls) >= world:
            fixes.append(f"data.num_workers: {len(urls) // world}")
        raise ConfigError(
            f"{where}: {len(urls)} shard(s) for {world} rank(s) x {workers} loader worker(s) = {readers} "
            f"readers; with data.resampled false every reader needs a shard of its own, else ranks stall. "
            f"Fix: " + ", or ".join(fixes)
        )
    if data.resampled and data.epoch_samples < world * stage.micro_batch:
        raise ConfigError(
            f"{where}.epoch_samples={data.epoch_samples}: less than one micro-batch ({stage.micro_batch}) "
            f"for each of {world} ranks"
        )


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


def _write_json(path: Path, record: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record) + "\n")
    os.replace(tmp, path)


def build_stage_model(run_cfg: RunConfig, index: int, ctx: Dist, *, no_dist: bool = False):
    """A fresh model holding the weights trained by the stages before `index` (their LoRA adapters added,
    the previous stage's final weights loaded strictly): (model, tokenizer, earlier stages)."""
    seed_all(run_cfg.seed)  # the same build on every rank, in every run
    model, tokenizer = build_model(run_cfg.model, device=ctx.device)
    if ctx.is_main and getattr(model, "videollama2_report", None) is not None:
        print(model.videollama2_report.summary(), flush=True)  # what the VideoLLaMA2 checkpoint filled, per module
    earlier = run_cfg.stages[:index]
    for stage in earlier:
        apply_stage(model, stage)
    if earlier:
        prev = Path(run_cfg.output_dir) / earlier[-1].name
        if not (prev / "done.json").exists():
            raise ConfigError(
                f"stage {index + 1} starts from the final weights of stage {earlier[-1].name}, which has not "
                f"finished ({prev / 'done.json'} missing): run it first"
            )
        checkpoint.load_weights(
            prev / "final",
            model,
            trained_names(model, earlier),
            f"the weights trained by stages {[s.name for s in earlier]}",
            no_dist=no_dist,
        )
    return model, tokenizer, earlier


def train_stage(run_cfg: RunConfig, stage: StageConfig, ctx: Dist, stop_after: int = 0) -> bool:
    """Train one stage to its end (True) or until `stop_after` steps (False: a simulated preemption)."""
    stage_dir = Path(run_cfg.output_dir) / stage.name
    if (stage_dir / "done.json").exists():
        return True
    index = run_cfg.stages.index(stage)
    stage_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer, earlier = build_stage_model(run_cfg, index, ctx)
    apply_stage(model, stage)
    if checkpointing_needed(run_cfg, stage, ctx.world_size, gpu_memory_gib(run_cfg.gpu_memory_gib)):
        switched = enable_checkpointing(model)  # activation_checkpointing: on, or auto where the planner needs it
        if ctx.is_main:
            print(f"[{stage.name}] activation checkpointing: {', '.join(switched)}", flush=True)
    model.to(ctx.device)
    mode = choose_mode(run_cfg.parallel, ctx, model.llm)
    wrapped = wrap_model(model, run_cfg.parallel, ctx)
    wrapped.train()  # from_pretrained returns eval-mode modules: LoRA dropout must be on while training
    seed_all(rank_seed(run_cfg.seed, index, ctx.rank))
    # after wrapping: FSDP2 shards the parameters in place (optim.py); one AdamW group per module and decay
    optimizer = build_optimizer(model, stage)
    params = optimizer_params(optimizer)
    n_samples = stage.data.epoch_samples or count_samples(stage.data.shards, stage.data_kind)
    total = total_steps(stage, n_samples)
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(stage.warmup_ratio * total), total)
    accum = stage.accumulation_steps(ctx.world_size)
    micro_per_epoch = (n_samples // stage.global_batch) * accum or accum
    step, epoch, consumed = 0, 0, 0  # consumed: micro-batches of this epoch already trained on
    keep = stage.keep_checkpoints
    forward_kwargs = {"visual_input": stage.visual_input} if stage.visual_input else {}

    ckpt_root = stage_dir / "checkpoints"
    if ctx.is_main and ckpt_root.exists():
        checkpoint.prune(ckpt_root, keep)  # partial checkpoints of a killed run go
    barrier(ctx)
    ckpt = checkpoint.latest(ckpt_root)
    if ckpt is not None:
        position = checkpoint.load(ckpt, model=model, optimizer=optimizer, scheduler=scheduler, ctx=ctx)
        step, epoch, consumed = position["step"], position["epoch"], position["consumed"]
    logger = Logger(stage_dir / "log.jsonl", ctx, stage.name, total)
    if ctx.is_main:
        print(
            f"[{stage.name}] {total} steps, {accum} micro-batches of {stage.micro_batch} per step on "
            f"{ctx.world_size} rank(s) ({mode})" + (f", resumed at step {step}" if step else ""),
            flush=True,
        )
        print("\n".join(describe(model, stage)), flush=True)  # parameter groups: counts, lr, weight decay

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
            aspect=run_cfg.model.aspect,  # frames made square as evaluation makes them (video.fit_square)
        )
        for batch in isolated_batches(loader):
            batch = {
                k: v.to(ctx.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
            }
            batch.update({k: normalize(v) for k, v in batch.items() if k.endswith("_BTCHW")})
            consumed += 1
            sync = consumed % accum == 0
            with autocast, gradient_sync(wrapped, sync):
                out = wrapped(batch, stage.losses, **forward_kwargs)
                (out["loss"] / accum).backward()
            window["samples"] += len(batch["keys"])
            window["tokens"] += sum(model.llm_token_counts(batch, stage.visual_input or None))  # text + video
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
                        "lr": scheduled_lr(optimizer, stage.lr),  # the stage's lr; each group: its own
                        "samples_per_s": window["samples"] * ctx.world_size / seconds,
                        "tokens_per_s": window["tokens"] * ctx.world_size / seconds,
                    }
                )
                window = {"samples": 0, "tokens": 0, "t0": time.monotonic(), "losses": {}}
            if consumed >= micro_per_epoch:
                epoch, consumed = epoch + 1, 0
            if step % stage.checkpoint_every == 0 or step in (total, stop_after):
                checkpoint.save(
                    ckpt_root,
                    model=model,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    step=step,
                    epoch=epoch,
                    consumed=consumed,
                    ctx=ctx,
                    keep=keep,
                )
            if step == stop_after and step < total:
                if ctx.is_main:
                    print(f"[{stage.name}] stopped after step {step} (--stop-after-steps)", flush=True)
                return False
            if step >= total or consumed == 0:
                break
        else:  # the shards ran out before the epoch's planned micro-batches (all ranks must step together)
            raise RuntimeError(
                f"stage[{stage.name}]: rank {ctx.rank} got {consumed} micro-batches in epoch {epoch}, "
                f"expected {micro_per_epoch}: use more shards than ranks x workers, or data.resampled with "
                "epoch_samples"
            )
    checkpoint.save_weights(stage_dir / "final", model, trained_names(model, [*earlier, stage]), ctx)
    if ctx.is_main:  # written last: a stage is done exactly when its final weights are whole
        _write_json(
            stage_dir / "done.json",
            {"steps": step, "samples": n_samples, "world_size": ctx.world_size, "parallel": mode},
        )
    barrier(ctx)
    return True


def release_memory() -> None:
    """After a stage: its model, wrappers and optimizer (gone with train_stage's frame) leave the device."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def export_final(run_cfg: RunConfig, ctx: Dist) -> Path | None:
    """After the run's last stage: the whole model (every stage's weights) through export.save_pretrained into
    <output_dir>/final, by rank 0 alone (a fresh model on its device, the last stage's final weights read
    whole), written into final.partial and renamed; skipped once it exists."""
    out = Path(run_cfg.output_dir) / "final"
    if out.exists() or not (Path(run_cfg.output_dir) / run_cfg.stages[-1].name / "done.json").exists():
        return None
    try:
        export = importlib.import_module("exo2ego_model.export")
    except ModuleNotFoundError as err:
        if err.name != "exo2ego_model.export":
            raise
        if ctx.is_main:
            print("note: exo2ego_model.export is not available: the final export is skipped", flush=True)
        return None
    if ctx.is_main:
        model, tokenizer, _ = build_stage_model(run_cfg, len(run_cfg.stages), ctx, no_dist=True)
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        export.save_pretrained(model, tokenizer, tmp)
        os.replace(tmp, out)
        print(f"exported the trained model to {out}", flush=True)
    # no barrier: the other ranks may finish (loading and saving a 7B model can outlast a collective timeout)
    return out


def run(run_cfg: RunConfig, stages: list[StageConfig], stop_after: int = 0) -> bool:
    """Train `stages` (of run_cfg.stages) in order; True when they all finished (False: stopped by
    `stop_after`, see main). The process group is created here when launched by torchrun and destroyed at the
    end, also on errors."""
    ctx = init_distributed()
    try:
        for stage in stages:
            if not (Path(run_cfg.output_dir) / stage.name / "done.json").exists():
                check_data(stage, ctx)
        for stage in stages:
            finished = train_stage(run_cfg, stage, ctx, stop_after)
            release_memory()
            if not finished:
                return False
        export_final(run_cfg, ctx)
        return True
    finally:
        shutdown(ctx)


def override_data(run_cfg: RunConfig, pairs: list[str]) -> RunConfig:
    """`--data KEY=VALUE` (a YAML value) on the data config of every stage, like the run file's `data:`."""
    known = {f.name for f in dataclasses.fields(DataConfig)}
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key.strip() not in known:
            raise ConfigError(f"--data {pair!r}: expected KEY=VALUE with KEY one of {sorted(known)}")
        values[key.strip()] = yaml.safe_load(value)
    if not values:
        return run_cfg
    stages = tuple(dataclasses.replace(s, data=dataclasses.replace(s.data, **values)) for s in run_cfg.stages)
    return dataclasses.replace(run_cfg, stages=stages)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m exo2ego_model.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="run config (YAML), e.g. configs/run.yaml")
    ap.add_argument("--stage", action="append", help="stage name or 1-based index (repeatable); default all")
    ap.add_argument("--output-dir", help="override run.output_dir")
    ap.add_argument("--parallel", choices=("auto", "ddp", "fsdp", "none"), help="override run.parallel")
    ap.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a data field of every stage, e.g. --data resampled=true --data epoch_samples=64",
    )
    ap.add_argument(
        "--stop-after-steps",
        type=int,
        default=0,
        help="checkpoint and stop once a stage reaches step N in this invocation (a simulated preemption; "
        "the next invocation resumes there)",
    )
    ap.add_argument(
        "--activation-checkpointing", choices=("auto", "on", "off"), help="override run.activation_checkpointing"
    )
    ap.add_argument(
        "--gpu-mem",
        type=float,
        default=0.0,
        help="GiB per GPU for the memory check (default: torch.cuda's, else run.gpu_memory_gib; none on CPU)",
    )
    args = ap.parse_args(argv)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    try:
        run_cfg = load_run_config(args.config)
        over = {
            k: v
            for k, v in (
                ("output_dir", args.output_dir),
                ("parallel", args.parallel),
                ("activation_checkpointing", args.activation_checkpointing),
            )
            if v
        }
        run_cfg = override_data(dataclasses.replace(run_cfg, **over), args.data)
        stages = [run_cfg.stage(s) for s in args.stage] if args.stage else list(run_cfg.stages)
        if args.gpu_mem:
            run_cfg = dataclasses.replace(run_cfg, gpu_memory_gib=args.gpu_mem)
        gpu = gpu_memory_gib(run_cfg.gpu_memory_gib)
        if gpu:  # before any weight loads: a run that cannot fit stops here (exit 2, the planner's numbers)
            check_memory(run_cfg, stages, int(os.environ.get("WORLD_SIZE", "1")), gpu)
        run(run_cfg, stages, args.stop_after_steps)
    except (ConfigError, CheckpointError) as err:
        if main_rank:
            kind = "config" if isinstance(err, ConfigError) else "checkpoint"
            print(f"{kind} error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
