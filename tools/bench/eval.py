"""`make bench-eval`: candidate scoring over one shared video prefix vs the prefix re-encoded per candidate.

    python -m tools.bench.eval [--bench data/egobench] [--threads 1] [--only bundled|realistic]

Runs the evaluation (exo2ego_model/eval) of the tiny random model on the bundled mini-benchmark (every task
that scores candidates: choice ranking, EgoTaskQA's vocabulary, Charades-Ego's classes, EPIC MIR's sentences and
its prior, EgoMCQ's clips) and times every inference.score call twice on the same input: shared_prefix=True (the
prefix's KV cache shared by packed candidates, what the evaluation uses) and shared_prefix=False (a full forward
over [prefix, candidate] per candidate). It checks both give the same scores (max |difference|) and reports the
seconds of each and their ratio, in two settings:

- bundled: the tiny model as `make eval` runs it (configs/smoke/run.yaml: 4 frames of 32 px, 18 visual tokens):
  the prefix is short, so there is little to share;
- realistic: the same tiny model built for 16 frames of 192 px (24 x 24 patches of 8 px, as CLIP-L/14 at 336
  px gives), so the STC connector and x+Fx give 3,042 visual tokens per clip: the REAL configuration's prefix
  length (configs/run.yaml; exo2ego_model/eval/plan.py) with the tiny LLM's width.

Also times one prefix pass (the figure `--plan --pass-ms` takes, for this model on this device). Writes
bench_results/eval-bench-<date>.json. Numbers are for the tiny model on this machine's CPU; a GPU run of the real
model is what `--plan` needs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
SCORED_TASKS = (
    "egoschema,qaego4d_closed,egotaskqa_direct,egotaskqa_indirect,egotaskqa_mcq,charades_ego,epic_mir,egoplan,"
    "vlnqa,egomcq"
)
SETTINGS = {"bundled": None, "realistic": {"n_frames": 16, "image_size": 192}}


def _timed_score(stats: dict):
    """An inference.score that runs both ways, times each, checks they agree and returns the shared one."""
    from exo2ego_model import inference

    real = inference.score

    def score(model, tokenizer, video, prompt, candidates, **kw):
        kw.pop("shared_prefix", None)
        t = time.perf_counter()
        shared = real(model, tokenizer, video, prompt, candidates, shared_prefix=True, **kw)
        t_shared = time.perf_counter() - t
        t = time.perf_counter()
        again = real(model, tokenizer, video, prompt, candidates, shared_prefix=False, **kw)
        t_again = time.perf_counter() - t
        # the clip's visual tokens + prompt embedding, the same work in both: timed apart
        t = time.perf_counter()
        with torch.no_grad():
            inference.prefix_embeds(model, tokenizer, video, prompt, view=kw.get("view", "ego"))
        t_embed = time.perf_counter() - t
        stats["calls"] += 1
        stats["candidates"] += len(candidates)
        stats["shared_s"] += t_shared
        stats["reencoded_s"] += t_again
        stats["embed_s"] += t_embed
        k = len(candidates)
        band = "1" if k == 1 else "2-9" if k < 10 else "10+"
        b = stats["by_candidates"].setdefault(
            band, {"calls": 0, "candidates": 0, "shared_s": 0.0, "reencoded_s": 0.0}
        )
        b["calls"] += 1
        b["candidates"] += k
        b["shared_s"] += t_shared - t_embed
        b["reencoded_s"] += t_again - t_embed
        stats["max_abs_diff"] = max(
            stats["max_abs_diff"], max(abs(a - b) for a, b in zip(shared, again, strict=True))
        )
        return shared

    return real, score


def _prefix_pass_ms(model, tok, frames: int, size: int, repeats: int = 5) -> tuple[float, int]:
    from exo2ego_model.inference import prefix_embeds

    video = torch.randint(0, 256, (frames, 3, size, size), dtype=torch.uint8)
    with torch.no_grad():
        embeds = prefix_embeds(model, tok, video, "Describe what I am doing in this video.")
        model.llm(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
        t = time.perf_counter()
        for _ in range(repeats):
            model.llm(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
    return (time.perf_counter() - t) / repeats * 1e3, int(embeds.shape[1])


def run_setting(name: str, bench: str, seed: int) -> dict:
    from exo2ego_model import inference
    from exo2ego_model.config import load_run_config
    from exo2ego_model.eval import protocol, run
    from exo2ego_model.model import build_model

    cfg_model = load_run_config(protocol.SMOKE_CONFIG).model
    if SETTINGS[name]:
        cfg_model = dataclasses.replace(cfg_model, **SETTINGS[name])
    torch.manual_seed(seed)
    model, tok = build_model(cfg_model)
    model.eval()
    patch = model.ego_tower.config.patch_size
    side = cfg_model.image_size // patch
    n_visual = model.projector.n_tokens(cfg_model.n_frames, side, side) * (
        2 if cfg_model.visual_input == "x+Fx" else 1
    )
    stats = {
        "calls": 0,
        "candidates": 0,
        "shared_s": 0.0,
        "reencoded_s": 0.0,
        "embed_s": 0.0,
        "max_abs_diff": 0.0,
        "by_candidates": {},
    }
    real, timed = _timed_score(stats)
    inference.score = timed
    try:
        with tempfile.TemporaryDirectory() as out:
            ecfg = run.parse_args(
                ["--bench", bench, "--out", out, "--tasks", SCORED_TASKS, "--max-new-tokens", "4"]
            )
            ecfg = dataclasses.replace(ecfg, frames=cfg_model.n_frames, size=cfg_model.image_size)
            t = time.perf_counter()
            res = run.evaluate(ecfg, model=model, tokenizer=tok, log=lambda m: None)
            wall = time.perf_counter() - t
    finally:
        inference.score = real
    pass_ms, prefix_tokens = _prefix_pass_ms(model, tok, cfg_model.n_frames, cfg_model.image_size)
    return {
        "setting": name,
        "frames": cfg_model.n_frames,
        "image_size": cfg_model.image_size,
        "visual_tokens": n_visual,
        "prefix_tokens": prefix_tokens,
        "prefix_pass_ms": pass_ms,
        **stats,
        "speedup": stats["reencoded_s"] / stats["shared_s"] if stats["shared_s"] else None,
        # the LLM part alone: each call's visual-token + prompt embedding time (the same in both) taken out
        "speedup_llm": (stats["reencoded_s"] - stats["embed_s"]) / (stats["shared_s"] - stats["embed_s"])
        if stats["shared_s"] > stats["embed_s"]
        else None,
        "items_per_task": {t: v["n_items"] for t, v in res["tasks"].items()},
        "errors_per_task": {t: v["errors"] for t, v in res["tasks"].items() if v["n_errors"]},
        "eval_wall_s": wall,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench.eval", description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default="data/egobench", help="an EgoBench build (make build-egobench)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady on a shared box)")
    ap.add_argument("--only", choices=sorted(SETTINGS), default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="result json (default bench_results/eval-bench-<date>.json)")
    a = ap.parse_args(argv)
    if not (Path(a.bench) / "stats.json").exists():
        print(f"error: {a.bench} is not an EgoBench build (make build-egobench)", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    results = []
    for name in [a.only] if a.only else list(SETTINGS):
        r = run_setting(name, a.bench, a.seed)
        results.append(r)
        print(
            f"{name}: {r['visual_tokens']} visual tokens ({r['prefix_tokens']}-token prefix), {r['calls']} score "
            f"calls, {r['candidates']} candidates: shared prefix {r['shared_s']:.2f} s, re-encoded per candidate "
            f"{r['reencoded_s']:.2f} s, {r['speedup']:.1f}x (LLM part, the clip's embedding taken out: "
            f"{r['speedup_llm']:.1f}x); max |difference| {r['max_abs_diff']:.1e}; one prefix pass "
            f"{r['prefix_pass_ms']:.1f} ms",
            flush=True,
        )
        for band, b in sorted(r["by_candidates"].items()):
            ratio = b["reencoded_s"] / b["shared_s"] if b["shared_s"] > 0 else float("nan")
            print(
                f"  calls with {band} candidates: {b['calls']} calls, {b['candidates']} candidates, LLM part "
                f"shared {b['shared_s']:.2f} s vs re-encoded {b['reencoded_s']:.2f} s: {ratio:.1f}x"
            )
        if r["errors_per_task"]:
            print(f"  item errors: {r['errors_per_task']}")
    device = "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    doc = {
        "date": datetime.date.today().isoformat(),
        "machine": {
            "device": device,
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "threads": a.threads,
            "load_avg": os.getloadavg(),
            "torch": torch.__version__,
        },
        "model": f"tiny random model of configs/smoke/run.yaml (seed {a.seed}), float32",
        "results": results,
    }
    out = Path(a.out or REPO / "bench_results" / f"eval-bench-{doc['date']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"bench-eval: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
