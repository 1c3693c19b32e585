"""Training benchmark: samples/s, tokens/s, peak memory and model FLOPs utilisation, per stage.

    make bench-train                                     # every stage of configs/run.yaml (initialisation, 1-3)
    python -m tools.bench.train --stage 2 --llm-layers 32 --llm-hidden 4096 --micro-batch 4

Models are random and built from explicit sizes (nothing is downloaded). On a GPU the defaults are the paper's
shapes: CLIP ViT-L/14 at 336 px towers, a Mistral-7B-shaped LLM, 16 frames, bf16 autocast. Without a GPU the
defaults are a tiny model (--tiny; --full forces the real shapes) so that the same command shows the pipeline
working on a CPU; its numbers say nothing about a GPU. Batches are synthetic at the configured shapes, so the
figures measure the model, not the loader (`make bench-loader` measures that).

Tokens/s: the tokens the LLM processes, video (the spliced visual tokens, twice the connector's for "x+Fx") and
text (the prompt and answer ids, the placeholder excluded) separately and together, counted as training logs them
(Exo2EgoModel.llm_token_counts).

MFU, two ways, each divided by the GPU's dense bf16 peak (--peak-tflops, or looked up from
torch.cuda.get_device_name in PEAK_BF16_TFLOPS; on a CPU or an unknown GPU there is no peak: "MFU: n/a"):
- formula (`mfu`): 6 FLOPs per parameter and token for the trained parameters, 4 for frozen ones that the backward
  pass goes through (the LLM: activation gradients only), 2 for frozen forward-only ones (the teacher tower in stage
  2); tokens are LLM tokens for the LLM and patch tokens for a tower; plus attention, 12 * layers * sequence * width
  per token (4 forward-only); embedding tables are lookups and do not count. The connector and F / G are
  convolutional and left out of the formula. The LM head counts on every token (training keeps its logits only
  from the first answer on), and attention as if not causal: the formula exceeds what the step computes.
- counted (`mfu_counted`): the FLOPs of one training step as torch's FlopCounterMode counts them (matmuls including
  attention, the connector's and F / G's convolutions), forward and backward, measured once before timing.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, MistralConfig, MistralForCausalLM

from exo2ego_model.config import ModelConfig, load_run_config
from exo2ego_model.memory import enable_checkpointing
from exo2ego_model.model import Exo2EgoModel, apply_stage
from exo2ego_model.optim import build_optimizer
from exo2ego_model.prompt import VIDEO_TOKEN_INDEX

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0, "4090": 165.0}


def peak_tflops(device: torch.device, override: float) -> float:
    if override:
        return override
    if device.type != "cuda":
        return 0.0
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), 0.0)


def build(args, cfg: ModelConfig, device) -> Exo2EgoModel:
    vision = CLIPVisionConfig(
        image_size=args.image_size,
        patch_size=args.patch,
        hidden_size=args.vision_hidden,
        intermediate_size=4 * args.vision_hidden,
        num_hidden_layers=args.vision_layers,
        num_attention_heads=args.vision_hidden // 64,
    )
    llm_cfg = MistralConfig(
        vocab_size=32000,
        hidden_size=args.llm_hidden,
        intermediate_size=int(3.5 * args.llm_hidden),
        num_hidden_layers=args.llm_layers,
        num_attention_heads=args.llm_hidden // 128,
        num_key_value_heads=max(1, args.llm_hidden // 512),
        max_position_embeddings=4096,
    )
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with torch.device(device):
        # the constructor cuts each tower at cfg.feature_layer and drops its post-layernorm
        exo, ego = CLIPVisionModel(vision), CLIPVisionModel(copy.deepcopy(vision))
        llm = MistralForCausalLM(llm_cfg).to(dtype)
        model = Exo2EgoModel(cfg, exo, ego, llm)
    return model


def synthetic_batch(args, kind: str, device) -> dict:
    B, T, S, L = args.micro_batch, args.frames, args.image_size, args.text_tokens
    batch = {
        "keys": [f"s{i}" for i in range(B)],
        "input_ids_BL": torch.randint(3, 32000, (B, L), device=device),
        "attention_mask_BL": torch.ones(B, L, dtype=torch.long, device=device),
    }
    batch["input_ids_BL"][:, 1] = VIDEO_TOKEN_INDEX  # where the visual tokens go (after bos, as in training)
    labels = batch["input_ids_BL"].clone()
    labels[:, : L // 2] = -100  # the prompt half
    batch["labels_BL"] = labels
    for view in ["exo"] if kind == "exo" else ["ego", "exo"] if kind == "pairs" else ["ego"]:
        batch[f"{view}_BTCHW"] = torch.randn(B, T, 3, S, S, device=device)
    return batch


def step_flops(model: Exo2EgoModel, batch: dict, losses: dict, autocast, visual_input=None) -> float:
    """FLOPs of one training step (forward + backward) as torch counts them; gradients are dropped after."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        with autocast:
            out = model(batch, losses, visual_input=visual_input)
        out["loss"].backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def formula_flops(model: Exo2EgoModel, batch: dict, visual_input: str | None) -> float:
    """Model FLOPs of one training step by the per-parameter formula of the module docstring."""
    text, video = model.llm_token_counts(batch, visual_input)
    rows = batch["input_ids_BL"].shape[0]
    seq = (text + video) // rows
    # the LLM's backward runs when something before it or in it (LoRA) trains
    through_llm = any(p.requires_grad for m in (model.ego_tower, model.exo_tower, model.projector, model.map_f,
                                                model.llm) for p in m.parameters())  # fmt: skip

    def per_token(module, attn_layers: int, attn_seq: int, width: int, backward_through: bool) -> float:
        flops = 0.0
        lookups = {id(p) for m in module.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
        for p in module.parameters():
            if id(p) not in lookups:  # an embedding is a lookup, no matmul
                flops += p.numel() * (6 if p.requires_grad else 4 if backward_through else 2)
        trained = backward_through or any(p.requires_grad for p in module.parameters())
        return flops + (12 if trained else 4) * attn_layers * attn_seq * width

    llm_cfg = model.llm.config
    total = (text + video) * per_token(model.llm, llm_cfg.num_hidden_layers, seq, llm_cfg.hidden_size,
                                       through_llm)  # fmt: skip
    views = [v for v in ("ego", "exo") if f"{v}_BTCHW" in batch]
    for view in views:
        tower = model.ego_tower if view == "ego" else model.exo_tower
        frames = batch[f"{view}_BTCHW"]
        vis, side = tower.config, tower.config.patch_size
        patches = (frames.shape[-2] // side) * (frames.shape[-1] // side) + 1  # and CLS
        tokens = frames.shape[0] * frames.shape[1] * patches
        total += tokens * per_token(tower, vis.num_hidden_layers, patches, vis.hidden_size, False)
    return total


TINY = dict(micro_batch=2, steps=3, warmup=1, frames=4, image_size=56, patch=14, text_tokens=64, vision_layers=2,
            vision_hidden=64, llm_layers=2, llm_hidden=128)  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.bench.train", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--stage", default="all", help="0 (initialisation), 1, 2, 3 or all (default)")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (the default without a GPU)")
    ap.add_argument("--full", action="store_true", help="the paper's shapes even without a GPU")
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--image-size", type=int, default=336)
    ap.add_argument("--patch", type=int, default=14)
    ap.add_argument("--text-tokens", type=int, default=128)
    ap.add_argument("--vision-layers", type=int, default=24)
    ap.add_argument("--vision-hidden", type=int, default=1024)
    ap.add_argument("--llm-layers", type=int, default=32)
    ap.add_argument("--llm-hidden", type=int, default=4096)
    ap.add_argument("--activation-checkpointing", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=0.0)
    ap.add_argument("--out", default="", help="also write the result JSON here")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.tiny or (device.type == "cpu" and not args.full):
        explicit = {a.dest for a in ap._actions if any(o in (argv or sys.argv[1:]) for o in a.option_strings)}
        for key, value in TINY.items():  # tiny defaults; sizes given on the command line win
            if key not in explicit:
                setattr(args, key, value)
    stages = load_run_config("configs/run.yaml").stages
    chosen = range(len(stages)) if args.stage == "all" else [int(args.stage)]
    results = [bench_stage(args, stages[i], device) for i in chosen]
    for r in results:
        print(json.dumps(r))
    print(table(results), file=sys.stderr)
    for r in results:
        print(summary(r), file=sys.stderr)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results if len(results) > 1 else results[0], f, indent=1)
    return 0


def table(results: list[dict]) -> str:
    lines = [f"{'stage':26} {'samples/s':>9} {'video tok/s':>11} {'text tok/s':>10} {'tokens/s':>10} "
             f"{'TFLOP/s':>8} {'MFU':>6} {'counted':>7} {'peak GiB':>8}"]  # fmt: skip
    for r in results:
        mfu, counted = (f"{100 * r[k]:.1f}%" if r[k] is not None else "n/a" for k in ("mfu", "mfu_counted"))
        mem = r["peak_memory_gib"] if r["peak_memory_gib"] is not None else "n/a"
        lines.append(f"{r['stage']:26} {r['samples_per_s']:>9} {r['video_tokens_per_s']:>11} "
                     f"{r['text_tokens_per_s']:>10} {r['tokens_per_s']:>10} {r['achieved_tflops']:>8} {mfu:>6} "
                     f"{counted:>7} {mem:>8}")  # fmt: skip
    return "\n".join(lines)


def summary(r: dict) -> str:
    """The stage's throughput in words: tokens/s (video + text = total) and MFU, or why there is none."""
    tokens = (f"tokens/s: video {r['video_tokens_per_s']:g} + text {r['text_tokens_per_s']:g} = "
              f"{r['tokens_per_s']:g}")  # fmt: skip
    if r["device"] == "cpu":
        mfu = "MFU: n/a (CPU)"
    elif r["mfu"] is None:
        mfu = f"MFU: n/a (no peak known for {r['device']}; give --peak-tflops)"
    else:
        mfu = (f"MFU: {100 * r['mfu']:.1f}% (formula), {100 * r['mfu_counted']:.1f}% (counted), "
               f"peak {r['peak_tflops']:g} TFLOP/s bf16 ({r['device']})")  # fmt: skip
    return f"[{r['stage']}] {tokens}; {mfu}"


def sig(x: float) -> float:
    """x to 4 significant digits (a CPU run's 0.02 samples/s keeps its precision)."""
    return float(f"{x:.4g}")


def bench_stage(args, stage, device) -> dict:
    """One stage: build the model at the configured shapes, time `steps` optimizer steps after `warmup`."""
    # the paper's feature layer (-2: the last tower layer is cut) unless the tower has a single layer
    feature_layer = -2 if args.vision_layers > 1 else -1
    cfg = ModelConfig(
        vision_tower="synthetic",
        llm="synthetic",
        n_frames=args.frames,
        image_size=args.image_size,
        feature_layer=feature_layer,
    )
    torch.manual_seed(0)
    model = build(args, cfg, device)
    apply_stage(model, stage)
    if args.activation_checkpointing:  # what train.py switches on: the LLM's layers, each trained tower's
        enable_checkpointing(model)
    opt = build_optimizer(model, stage, fused=device.type == "cuda")  # train.py's groups
    batch = synthetic_batch(args, stage.data_kind, device)
    visual_input = stage.visual_input or None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    flops = step_flops(model, batch, stage.losses, autocast, visual_input)  # before timing: it slows the step
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with autocast:
            out = model(batch, stage.losses, visual_input=visual_input)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    text, video = model.llm_token_counts(batch, visual_input)  # per step, as training logs them
    steps_s = args.steps / seconds
    samples_s = args.micro_batch * steps_s
    achieved = flops * steps_s
    model_flops_s = formula_flops(model, batch, visual_input) * steps_s
    peak = peak_tflops(device, args.peak_tflops)
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "stage": stage.name,
        "micro_batch": args.micro_batch,
        "frames": args.frames,
        "image_size": args.image_size,
        "llm_params": sum(p.numel() for p in model.llm.parameters()),
        "vision_params_per_tower": sum(p.numel() for p in model.ego_tower.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "visual_tokens": video // args.micro_batch,
        "samples_per_s": sig(samples_s),
        "video_tokens_per_s": sig(video * steps_s),
        "text_tokens_per_s": sig(text * steps_s),
        "tokens_per_s": sig((text + video) * steps_s),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        if device.type == "cuda"
        else None,
        "achieved_tflops": round(achieved / 1e12, 4),
        "model_tflops": round(model_flops_s / 1e12, 4),
        "peak_tflops": peak or None,
        "mfu": round(model_flops_s / (peak * 1e12), 4) if peak else None,
        "mfu_counted": round(achieved / (peak * 1e12), 4) if peak else None,
    }


if __name__ == "__main__":
    raise SystemExit(main())
