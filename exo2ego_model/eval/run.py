"""`make eval`: a checkpoint on the EgoBench shards -> predictions.jsonl, scores.json, table.md.

    python -m exo2ego_model.eval [--ckpt DIR] [--bench data/egobench] [--tasks a,b] [--out runs/eval]
                                 [--max-items N] [--frames N --size S] [--device cpu|cuda]

Input: an EgoBench build (pipeline/egobench): `BENCH/egobench-<task>-NNNNNN.tar`, one sample per item, key = the
item id made tar-safe; members `mp4` (or `00.jpg`..`NN.jpg`) for single-clip items, `v0.mp4`..`v4.mp4` (or
`v0.00.jpg`..) for EgoMCQ's candidate clips, `json` = records_json.item_json(item) (extra keys ignored);
`BENCH/epic_mir_sentences.json` = the EPIC-100 sentence set ({"sentences": [{id, text, verb_class, noun_classes}]};
load_sentences takes a few spellings). Items are read in shard order (sorted names, then
tar order); --max-items N keeps the first N of each task.

Without --ckpt the model is the tiny random CPU model of configs/smoke/run.yaml (seeded), so `make eval` runs on
a fresh machine; its numbers are meaningless (the output says so).

Protocols per metric kind (PROMPTS holds the exact templates; every prediction records its prompt(s), options
and option order; the prompt goes through prompt.prompt_ids, i.e. `[INST] <video>\\n{prompt} [/INST]`):
- choice: BOTH (a) generation: the question, the options as "(A) text" lines in the item's order, and an
  instruction to answer with the letter; the greedy reply -> parse_choice (no fallback: an unparsed reply is
  wrong and counted), and (b) ranking: each option's mean log-likelihood per answer token (= minus its LM loss)
  as the answer to the bare question, argmax (EgoPlan's official protocol: argmin loss). scores.json has both;
  `reported` (and the table) is (b) for EgoPlan, whose benchmark defines it, and (a) for the others, which are
  generative QA benchmarks evaluated that way by VideoLLaMA2-family models (REPORTED).
- open (QAEgo4D open): greedy reply to the question + "short phrase" instruction -> qaego4d_open.
- multilabel (Charades-Ego): every class name scored as the answer to a fixed question -> scores [N, C]
  (mean log-likelihood per token) -> charades_map.
- retrieval (EPIC-100 MIR): every sentence of the sentence set scored as the answer to a fixed "describe"
  prompt per video -> sim [V, T]; relevancy = epic_relevancy(items' verb_class / noun_classes, sentences'
  classes) -> epic_mir. On a subset (--max-items, errors) rows without a relevancy-1 sentence and sentence
  columns without a relevancy-1 video are dropped (the metric is undefined there), and `partial` says so.
- video_choice (EgoMCQ): the query text scored as the answer to the same "describe" prompt given each of the 5
  clips -> argmax -> egomcq_accuracy by `types` as the data defines them (1 inter, 2 intra; EgoVLP's metric
  code prints the two names swapped, see choice.egomcq_accuracy).

Bad input (no clip member, an undecodable clip, unreadable json, a broken option list, an answer index that names
no option, missing classes) costs only that item: it goes to predictions.jsonl with status "error" and a
reason, and is counted in scores.json (n_errors, errors by reason); metrics are over the items that ran.

An exception inside the model on one item (e.g. out of memory) is recorded as "internal error: ..." and the
run goes on; MAX_INTERNAL_IN_A_ROW such items in a row stop it (a broken setup), and a rerun retries them.

Resume: predictions.jsonl is appended and flushed one line per item; a rerun with the same --out skips every
(task, id) already there (bad-input errors included: they are deterministic) and recomputes scores.json / table.md from
all lines, so an interrupted run ends with the scores of an uninterrupted one. A truncated last line (the
process died mid-write) is dropped and cut from the file. run.json records the settings the predictions were
made with; a rerun with different ones (checkpoint, frames, size, prompts, bench) is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from pipeline.egobench.records import TASKS

from .bench_io import SENTENCES_FILE, find_shards, iter_samples, load_sentences, sentences_path  # noqa: F401
from .protocol import (  # noqa: F401  (re-exported: the tests and lmms.py import them from run)
    DEFAULT_REPORTED,
    INTERNAL,
    MAX_INTERNAL_IN_A_ROW,
    PREDICTIONS,
    PROMPTS,
    PROMPTS_DIGEST,
    REPORTED,
    RUN_INFO,
    SCORES,
    SMOKE_CONFIG,
    TABLE,
    TINY_NOTE,
    EvalConfig,
    ItemError,
    Runner,
    load_model,
    resolve_device,
    score_many,
)
from .scoring import compute_scores, latest, read_predictions, render_table  # noqa: F401

# ------------------------------------------------------------------------------------------------ main


def _run_info(cfg: EvalConfig, frames: int, size: int) -> dict:
    return {
        "ckpt": str(Path(cfg.ckpt).resolve()) if cfg.ckpt else None,
        "seed": None if cfg.ckpt else cfg.seed,
        "bench": str(Path(cfg.bench).resolve()),
        "frames": frames,
        "size": size,
        "max_new_tokens": cfg.max_new_tokens,
        "prompts": PROMPTS_DIGEST,
    }


def evaluate(cfg: EvalConfig, model=None, tokenizer=None, log=print) -> dict:
    """Run (or resume) the evaluation; writes OUT/predictions.jsonl, scores.json, table.md, run.json and
    returns scores.json's content plus "n_run" (items run by this call)."""
    bench, out = Path(cfg.bench), Path(cfg.out)
    if not bench.is_dir():
        raise FileNotFoundError(f"no EgoBench build at {bench} (make build-egobench, or --bench DIR)")
    shards = find_shards(bench)
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; known: {', '.join(TASKS)}")
    tasks = list(cfg.tasks) or [t for t in TASKS if t in shards]
    if not tasks:
        raise FileNotFoundError(f"{bench} has no egobench-<task>-NNNNNN.tar shards")
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    note = ""
    if model is None:
        model, tokenizer, note = load_model(cfg.ckpt, device, cfg.seed)
    frames = cfg.frames or model.cfg.n_frames
    size = cfg.size or model.cfg.image_size
    if note:
        log(f"eval: WARNING {note}")

    out.mkdir(parents=True, exist_ok=True)
    info = _run_info(cfg, frames, size)
    info_path = out / RUN_INFO
    pred_path = out / PREDICTIONS
    if info_path.exists() and pred_path.exists():
        before = json.loads(info_path.read_text())
        diff = {k: (before.get(k), v) for k, v in info.items() if before.get(k) != v}
        if diff:
            raise ValueError(
                f"{pred_path} was made with other settings {diff} (was, now): use another --out or remove it"
            )
    info_path.write_text(json.dumps(info, indent=1) + "\n")

    sentences, sentence_error = None, ""
    if "epic_mir" in tasks:
        try:
            sentences = load_sentences(sentences_path(bench))
        except (OSError, ValueError, TypeError, KeyError) as e:
            sentence_error = f"{type(e).__name__}: {e}"
            log(f"eval: WARNING no usable {SENTENCES_FILE}: {sentence_error}")
    runner = Runner(model, tokenizer, cfg, frames, size, sentences)
    runner.sentence_error = sentence_error

    records = read_predictions(pred_path)
    done = {k for k, r in latest(records).items() if not str(r.get("error", "")).startswith(INTERNAL)}
    n_run, shard_errors, internal_in_a_row = 0, [], 0
    with open(pred_path, "a") as f:
        for task in tasks:
            if task not in shards:
                log(f"eval: WARNING no shards for {task} in {bench}")
                continue
            seen, t_task, run_task = 0, time.perf_counter(), 0
            for shard in shards[task]:
                if cfg.max_items is not None and seen >= cfg.max_items:
                    break
                try:
                    for key, members in iter_samples(shard):
                        if cfg.max_items is not None and seen >= cfg.max_items:
                            break
                        seen += 1
                        item_id = _peek_id(members) or key
                        if (task, item_id) in done:
                            continue
                        rec = runner.run(task, key, shard.name, members)
                        f.write(json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n")
                        f.flush()
                        records.append(rec)
                        done.add((task, rec["id"]))
                        n_run += 1
                        run_task += 1
                        if rec["status"] != "ok":
                            log(f"eval: {task}/{rec['id']}: {rec['error']}")
                        internal = str(rec.get("error", "")).startswith(INTERNAL)
                        internal_in_a_row = internal_in_a_row + 1 if internal else 0
                        if internal_in_a_row >= MAX_INTERNAL_IN_A_ROW:
                            raise RuntimeError(
                                f"{internal_in_a_row} items in a row failed inside the model (last: "
                                f"{rec['error']}); predictions so far are in {pred_path}, a rerun retries them"
                            )
                except (tarfile.TarError, OSError, EOFError) as e:
                    shard_errors.append(f"{shard.name}: {type(e).__name__}: {e}")
                    log(f"eval: WARNING shard {shard.name} unreadable after its first samples: {e}")
            dt = time.perf_counter() - t_task
            log(f"eval: {task}: {seen} items, {run_task} run now ({dt:.1f} s)")

    task_scores = compute_scores(records, tasks, sentences, cfg.similarity)
    n_cand = sum(t["n_candidates"] for t in task_scores.values())
    score_s = sum(
        t["n_candidates"] / t["candidates_per_s"] for t in task_scores.values() if t["candidates_per_s"]
    )
    scores = {
        "model": {
            "ckpt": info["ckpt"],
            "note": note or ("" if cfg.ckpt else TINY_NOTE.format(seed=cfg.seed)),
        },
        "bench": info["bench"],
        "frames": frames,
        "size": size,
        "prompts": PROMPTS,
        "reported_choice_protocol": {
            t: REPORTED.get(t, DEFAULT_REPORTED) for t in tasks if TASKS[t] == "choice"
        },
        "candidates_per_s": n_cand / score_s if score_s else None,
        "n_candidates": n_cand,
        "shard_errors": shard_errors,
        "sentence_set_error": sentence_error,
        "tasks": task_scores,
    }
    (out / SCORES).write_text(json.dumps(scores, indent=1, allow_nan=False) + "\n")
    (out / TABLE).write_text(render_table(scores))
    return {**scores, "n_run": n_run}


def _peek_id(members: dict[str, bytes]) -> str | None:
    try:
        doc = json.loads(members["json"])
        return doc["id"] if isinstance(doc, dict) and isinstance(doc.get("id"), str) and doc["id"] else None
    except (KeyError, ValueError):
        return None


def parse_args(argv: Sequence[str] | None = None) -> EvalConfig:
    p = argparse.ArgumentParser(prog="python -m exo2ego_model.eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", default=None, help="export.save_pretrained folder (default: tiny random model)")
    p.add_argument("--bench", default="data/egobench", help="EgoBench build folder")
    p.add_argument("--tasks", default="", help=f"comma-separated subset of: {','.join(TASKS)}")
    p.add_argument("--out", default="runs/eval")
    p.add_argument("--max-items", type=int, default=None, help="first N items of each task")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: the model config's)")
    p.add_argument("--size", type=int, default=None, help="frame side (default: the model config's)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--candidate-batch", type=int, default=64, help="candidates per forward on one prefix")
    p.add_argument("--no-similarity", action="store_true", help="QAEgo4D open without sentence similarity")
    p.add_argument("--seed", type=int, default=0, help="seed of the tiny model (no --ckpt)")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default; on a busy CPU box 1 can be far faster than oversubscribing)",
    )
    a = p.parse_args(argv)
    if a.max_items is not None and a.max_items < 1:
        p.error("--max-items must be >= 1")
    return EvalConfig(
        ckpt=a.ckpt or None,
        bench=a.bench,
        tasks=tuple(t.strip() for t in a.tasks.split(",") if t.strip()),
        out=a.out,
        max_items=a.max_items,
        frames=a.frames,
        size=a.size,
        device=a.device,
        max_new_tokens=a.max_new_tokens,
        candidate_batch=a.candidate_batch,
        similarity=not a.no_similarity,
        seed=a.seed,
        threads=a.threads,
    )


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        res = evaluate(cfg)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"eval: {e}", file=sys.stderr)
        return 2
    out = Path(cfg.out)
    print((out / TABLE).read_text())
    cps = res["candidates_per_s"]
    print(
        f"eval: {res['n_run']} items run now; {res['n_candidates']} candidates scored"
        + (f", {cps:.1f} candidates/s" if cps else "")
    )
    print(f"eval: {out / PREDICTIONS}, {out / SCORES}, {out / TABLE}")
    return 0


__all__ = ["EvalConfig", "PROMPTS", "REPORTED", "compute_scores", "evaluate", "main", "score_many"]

