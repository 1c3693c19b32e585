"""GPU training benchmark: samples/s, tokens/s, peak memory and model FLOPs utilisation for a stage.

    python -m exo2ego_model.bench_train --stage 2 --llm-layers 32 --llm-hidden 4096 --micro-batch 4

Models are random and built from explicit sizes (nothing is downloaded): the vision towers are CLIP ViT
(defaults: ViT-L/14 at 336) and the LLM a Mistral (defaults: 7B shapes). Batches are synthetic, at the real
shapes (16 frames x 336 x 336, text of --text-tokens), so the figure measures the model, not the loader
(`make bench-loader` measures that). A benchmark, not a test: run it on the GPU box.

MFU counts matmul FLOPs per token (attention scores excluded): forward 2*N over all parameters the tokens go
through, backward 2*N for activation gradients through every module upstream of a trainable one, plus 2*N for
the weight gradients of trainable parameters; divided by the GPU's dense bf16 peak (--peak-tflops, or looked up
from the device name).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, MistralConfig, MistralForCausalLM

from exo2ego_model.config import ModelConfig, load_run_config
from exo2ego_model.model import Exo2EgoModel, apply_stage

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
        exo = CLIPVisionModel(vision)
        getattr(exo, "vision_model", exo).post_layernorm = torch.nn.Identity()
        ego = CLIPVisionModel(vision)
        getattr(ego, "vision_model", ego).post_layernorm = torch.nn.Identity()
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
    labels = batch["input_ids_BL"].clone()
    labels[:, : L // 2] = -100  # the prompt half
    batch["labels_BL"] = labels
    for view in ["exo"] if kind == "exo" else ["ego", "exo"] if kind == "pairs" else ["ego"]:
        batch[f"{view}_BTCHW"] = torch.randn(B, T, 3, S, S, device=device)
    return batch


def flops_per_sample(model: Exo2EgoModel, kind: str, args, n_visual: int) -> float:
    def n(module, trainable=False):
        return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)

    frame_tokens = args.frames * ((args.image_size // args.patch) ** 2 + 1)
    text = args.text_tokens + n_visual
    total = 0.0
    towers = {
        "exo": [model.exo_tower],
        "pairs": [model.exo_tower, model.ego_tower],
        "instruct": [model.ego_tower],
    }
    for tower in towers[kind]:
        grads = n(tower, trainable=True)
        total += frame_tokens * (2 * n(tower) + (4 * n(tower) if grads else 0))
    llm_all, llm_train = n(model.llm), n(model.llm, trainable=True)
    # the LLM sits after every trainable vision part, so activation gradients always flow through it
    total += text * (2 * llm_all + 2 * llm_all + 2 * llm_train)
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m exo2ego_model.bench_train", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--stage", type=int, default=2, choices=(1, 2, 3))
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
    stage = load_run_config("configs/run.yaml").stages[args.stage - 1]
    cfg = ModelConfig(
        vision_tower="synthetic", llm="synthetic", n_frames=args.frames, image_size=args.image_size
    )
    torch.manual_seed(0)
    model = build(args, cfg, device)
    apply_stage(model, stage)
    if args.activation_checkpointing:
        model.llm.gradient_checkpointing_enable()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")
    batch = synthetic_batch(args, stage.data_kind, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with autocast:
            out = model(batch, stage.losses)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    with torch.no_grad(), autocast:  # ego takes precedence, as in the forward pass
        views = {k: v[:1] for k, v in batch.items() if k.endswith("_BTCHW")}
        n_visual = model.visual_tokens(**views).shape[1]
    samples_s = args.steps * args.micro_batch / seconds
    achieved = flops_per_sample(model, stage.data_kind, args, n_visual) * samples_s
    peak = peak_tflops(device, args.peak_tflops)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "stage": stage.name,
        "micro_batch": args.micro_batch,
        "frames": args.frames,
        "image_size": args.image_size,
        "llm_params": sum(p.numel() for p in model.llm.parameters()),
        "vision_params_per_tower": sum(p.numel() for p in model.ego_tower.parameters()),
        "trainable_params": sum(p.numel() for p in params),
        "samples_per_s": round(samples_s, 3),
        "tokens_per_s": round(samples_s * (args.text_tokens + n_visual), 1),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        if device.type == "cuda"
        else None,
        "achieved_tflops": round(achieved / 1e12, 2),
        "mfu": round(achieved / (peak * 1e12), 4) if peak else None,
    }
    print(json.dumps(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
