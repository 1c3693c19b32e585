"""Memory planner: per stage, what one GPU holds and the largest micro-batch that fits, before any weight loads.

    python -m exo2ego_model.plan configs/run.yaml --gpus 8 --gpu-mem 80      (make plan ARGS="--gpus 8 ...")

The model is built at its real size on the meta device (no memory, no weights): the CLIP tower's and the LLM's
config.json from the config's checkpoint folders when present (model.vision_tower; model.videollama2, else
model.llm), else CLIP ViT-L/14-336's and Mistral-7B-Instruct-v0.2's shapes built in code; the frames, connector
and mapping as configured. Each stage is then applied to it (its LoRA, what trains) and exo2ego_model/memory.py
counts weights, gradients, AdamW state and activations, for DDP and FSDP2. A stage's micro-batches are those
that keep its global batch exactly (global = micro x GPUs x accumulation). train.py uses `check` to refuse a run
that does not fit (exit 2) and `checkpointing_needed` for `activation_checkpointing: auto`.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, MistralConfig, MistralForCausalLM

from .config import ConfigError, ModelConfig, RunConfig, StageConfig, load_run_config
from .memory import Fit, GiB, StageShape, activations, micro_batches, states, usable
from .model import Exo2EgoModel, apply_stage
from .tiny import tiny_llm_config, tiny_tokenizer, tiny_vision_config

# The paper's checkpoints' shapes, for a config whose folders are not on this machine.
CLIP_L_336 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                  image_size=336, patch_size=14, hidden_act="quick_gelu", projection_dim=768)  # fmt: skip
MISTRAL_7B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768,
                  rope_theta=1e6, sliding_window=None)  # fmt: skip
LLM_FIELDS = tuple(MISTRAL_7B)


def _json(folder: str) -> dict | None:
    path = Path(folder) / "config.json" if folder else None
    return json.loads(path.read_text()) if path and path.is_file() else None


def vision_config(cfg: ModelConfig) -> tuple[CLIPVisionConfig, str]:
    if cfg.vision_tower == "tiny":
        return tiny_vision_config(cfg.image_size), "tiny"
    raw = _json(cfg.vision_tower)
    if raw is not None:
        return CLIPVisionConfig.from_pretrained(cfg.vision_tower), f"{cfg.vision_tower}/config.json"
    return CLIPVisionConfig(**CLIP_L_336), "CLIP ViT-L/14-336 (built in)"


def llm_config(cfg: ModelConfig) -> tuple[MistralConfig, str]:
    if cfg.llm == "tiny" and not cfg.videollama2:
        return tiny_llm_config(len(tiny_tokenizer())), "tiny"
    for folder in (cfg.videollama2, cfg.llm):
        raw = _json(folder)
        if raw is not None:  # VideoLLaMA2's config.json holds the Mistral fields beside its own
            return MistralConfig(**{k: raw[k] for k in LLM_FIELDS if k in raw}), f"{folder}/config.json"
    return MistralConfig(**MISTRAL_7B), "Mistral-7B-Instruct-v0.2 (built in)"


def meta_model(cfg: ModelConfig, dtype: torch.dtype = torch.bfloat16) -> tuple[Exo2EgoModel, str]:
    """The run's model at its real size on the meta device: towers, connector, F, G in fp32, the LLM in
    `dtype`, as build_model puts them on a GPU. Returns (model, where the shapes came from)."""
    vision, v_src = vision_config(cfg)
    llm_cfg, l_src = llm_config(cfg)
    with torch.device("meta"):
        exo, ego = CLIPVisionModel(vision), CLIPVisionModel(copy.deepcopy(vision))
        llm = MistralForCausalLM(llm_cfg).to(dtype)
        model = Exo2EgoModel(cfg, exo, ego, llm)
    return model, f"vision {v_src}; LLM {l_src}"


def _apply(model: Exo2EgoModel, stage: StageConfig) -> None:
    with torch.device("meta"):  # LoRA adapters too (peft would initialise them on the CPU first)
        apply_stage(model, stage)


def shape_of(stage: StageConfig, cfg: ModelConfig, micro_batch: int) -> StageShape:
    return StageShape(micro_batch, stage.data.max_text_tokens, stage.data_kind, tuple(stage.losses),
                      stage.visual_input or cfg.visual_input)  # fmt: skip


def fit(
    model,
    stage: StageConfig,
    cfg: ModelConfig,
    world: int,
    mode: str,
    gpu_bytes: float,
    e: int,
    checkpointing: str,
    micro_batch: int | None = None,
) -> Fit:
    """Peak per GPU at `micro_batch` (None: the largest that fits, else the smallest) with checkpointing on,
    off, or (auto) on only where off does not fit."""
    limit, static = usable(gpu_bytes), sum(states(model, world, mode).values())
    candidates = [micro_batch] if micro_batch else micro_batches(stage.global_batch, world) or [1]
    best = None
    for mb in candidates:
        for ckpt in {"on": [True], "off": [False]}.get(checkpointing, [False, True]):
            p = static + activations(model, shape_of(stage, cfg, mb), e, ckpt).peak
            accum = max(1, stage.global_batch // (mb * world))
            best = Fit(mb, accum, ckpt, p, p <= limit)
            if best.fits:
                return best
    return best


def _modes(world: int) -> list[str]:
    return ["ddp", "fsdp"] if world > 1 else ["ddp"]


def plan(run_cfg: RunConfig, world: int, gpu_gib: float, checkpointing: str = "auto") -> list[dict]:
    """One row per (stage, mode): the counts and the fit (see the module doc)."""
    model, _ = meta_model(run_cfg.model, getattr(torch, run_cfg.model.dtype))
    rows = []
    for stage in run_cfg.stages:
        _apply(model, stage)
        shape1 = shape_of(stage, run_cfg.model, 1)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        off, on = activations(model, shape1, 2, False), activations(model, shape1, 2, True)
        for mode in _modes(world):
            f = fit(model, stage, run_cfg.model, world, mode, gpu_gib * GiB, 2, checkpointing)
            rows.append({"stage": stage.name, "mode": mode, "trainable": trainable, "frozen": frozen,
                         **{k: v / GiB for k, v in states(model, world, mode).items()},
                         "act_mb1_off": off.peak / GiB, "act_mb1_on": on.peak / GiB,
                         "micro_batch": f.micro_batch, "accumulation": f.accumulation,
                         "checkpointing": f.checkpointing, "peak": f.peak / GiB, "fits": f.fits,
                         "global_batch": stage.global_batch})  # fmt: skip
    return rows


def table(rows: list[dict], world: int, gpu_gib: float) -> str:
    head = (f"{'stage':26} {'mode':4} {'train M':>8} {'frozen M':>8} {'weights':>7} {'grads':>6} {'optim':>6} "
            f"{'extra':>6} {'act/mb1':>8} {'ckpt/mb1':>8} {'mb':>3} {'acc':>4} {'ckpt':>4} {'peak':>6}  fits")  # fmt: skip
    lines = [
        f"{world} GPU(s) x {gpu_gib:g} GiB (usable {usable(gpu_gib * GiB) / GiB:.1f} GiB); GiB per GPU",
        head,
    ]
    for r in rows:
        extra = r.get("DDP buckets", r.get("FSDP unsharded", 0.0))
        lines.append(
            f"{r['stage']:26} {r['mode']:4} {r['trainable'] / 1e6:8.1f} {r['frozen'] / 1e6:8.1f} "
            f"{r['weights']:7.1f} {r['gradients']:6.1f} {r['optimizer']:6.1f} {extra:6.1f} {r['act_mb1_off']:8.1f} "
            f"{r['act_mb1_on']:8.1f} {r['micro_batch']:3d} {r['accumulation']:4d} {'on' if r['checkpointing'] else 'off':>4} "
            f"{r['peak']:6.1f}  {'yes' if r['fits'] else 'NO'}"
        )  # fmt: skip
    return "\n".join(lines)


def chosen_mode(run_cfg: RunConfig, world: int) -> str:
    """The parallel mode train.py will use (parallel.choose_mode on a GPU box): auto is FSDP on > 1 GPU."""
    if world == 1 or run_cfg.parallel == "none":
        return "ddp"  # one process: DDP's figures without buckets
    return "fsdp" if run_cfg.parallel == "auto" else run_cfg.parallel


def check(run_cfg: RunConfig, stages, world: int, gpu_gib: float) -> None:
    """ConfigError naming the planner's numbers when a stage at its configured micro-batch does not fit."""
    model, _ = meta_model(run_cfg.model, getattr(torch, run_cfg.model.dtype))
    mode = chosen_mode(run_cfg, world)
    for stage in run_cfg.stages:
        _apply(model, stage)  # every stage: later ones carry the structure of earlier ones
        if stage not in stages:
            continue
        f = fit(model, stage, run_cfg.model, world, mode, gpu_gib * GiB, 2, run_cfg.activation_checkpointing,
                stage.micro_batch)  # fmt: skip
        if f.fits:
            continue
        best = fit(
            model, stage, run_cfg.model, world, mode, gpu_gib * GiB, 2, run_cfg.activation_checkpointing
        )
        fix = (f"micro_batch {best.micro_batch} fits (accumulation {best.accumulation}, peak {best.peak / GiB:.1f} "
               f"GiB{', activation checkpointing' if best.checkpointing else ''})" if best.fits
               else "no micro-batch fits: use more GPUs or FSDP")  # fmt: skip
        raise ConfigError(
            f"stage[{stage.name}].micro_batch={stage.micro_batch} does not fit: the planner's per-GPU peak is "
            f"{f.peak / GiB:.1f} GiB ({mode}, {world} GPU(s), activation checkpointing "
            f"{'on' if f.checkpointing else 'off'}) against {usable(gpu_gib * GiB) / GiB:.1f} GiB usable of "
            f"{gpu_gib:g} GiB; {fix} (python -m exo2ego_model.plan for the table)"
        )


def stage_model(run_cfg: RunConfig, stage: StageConfig) -> Exo2EgoModel:
    """The meta model of `stage`: every stage up to it applied (their LoRA), then its own."""
    model, _ = meta_model(run_cfg.model, getattr(torch, run_cfg.model.dtype))
    for s in run_cfg.stages[: run_cfg.stages.index(stage) + 1]:
        _apply(model, s)
    return model


def checkpointing_needed(run_cfg: RunConfig, stage: StageConfig, world: int, gpu_gib: float) -> bool:
    """activation_checkpointing: on -> True, off -> False, auto -> whether the stage's micro-batch needs it on
    `gpu_gib` (0: no GPU figure, False)."""
    setting = run_cfg.activation_checkpointing
    if setting != "auto":
        return setting == "on"
    if not gpu_gib:
        return False
    model = stage_model(run_cfg, stage)
    f = fit(model, stage, run_cfg.model, world, chosen_mode(run_cfg, world), gpu_gib * GiB, 2, "off",
            stage.micro_batch)  # fmt: skip
    return not f.fits


def gpu_memory_gib(override: float = 0.0) -> float:
    """The GPU's memory: `override` when given, else torch.cuda's total when there is a GPU, else 0."""
    if override:
        return override
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory / GiB
    return 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m exo2ego_model.plan", description=__doc__.split("\n\n")[0])
    ap.add_argument("config", help="the run YAML (configs/run.yaml)")
    ap.add_argument("--gpus", type=int, default=8, help="GPUs of the run (world size)")
    ap.add_argument("--gpu-mem", type=float, default=0.0, help="GiB per GPU (default: this GPU's, else 80)")
    ap.add_argument("--activation-checkpointing", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--json", default="", help="also write the rows here")
    args = ap.parse_args(argv)
    try:
        run_cfg = load_run_config(args.config)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    gpu = gpu_memory_gib(args.gpu_mem) or 80.0
    _, source = meta_model(run_cfg.model)
    rows = plan(run_cfg, args.gpus, gpu, args.activation_checkpointing)
    print(f"{args.config}: {source}; {run_cfg.model.n_frames} frames, connector {run_cfg.model.connector}")
    print(table(rows, args.gpus, gpu))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(r["fits"] for r in rows if r["mode"] == chosen_mode(run_cfg, args.gpus)) else 1


if __name__ == "__main__":
    sys.exit(main())
