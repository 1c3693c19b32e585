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
- choice, open answer over the vocabulary (EgoTaskQA direct / indirect, choice.OPEN_VOCABULARY): the options are
  the answer vocabulary (any number); (a) the greedy reply to the open prompt, matched exactly to an entry
  (choice.match_answer), (b) every entry scored as the answer to that prompt, argmax (the baselines classify
  over the vocabulary); reported (b). The MCQ variant (egotaskqa_mcq) is a lettered choice, reported apart.
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
process died mid-write) is dropped and cut from the file. run.json records the model's fingerprint (sha256 of the
checkpoint's files, or of the tiny model's config and seed; outdir.py) and the settings the predictions were made
with; a rerun with another model or other settings (frames, size, prompts, bench) is refused, one line naming
both fingerprints, unless --overwrite (which replaces the four outputs once the new model has loaded).

Bad command lines and unusable inputs stop before any work with exit status 2 and one line on stderr
("error: ..."), nothing written: an unknown option or choice value (with the closest one as a hint; cli.py),
--out naming a file or an unwritable place, a --bench folder that is missing or has no stats.json (not a
finished EgoBench build), a --tasks entry the build does not have, a --ckpt that is not a save_pretrained
folder or whose weights are cut short or missing (export.ExportError names the file), --out holding another
model's predictions, a --device this machine lacks.

Lost items (a shard cut short or unreadable, a shard missing): the items that can be read are scored; the others
are counted per task against what the build says it wrote (bench_io.read_build: stats.json, manifest.parquet's
ids, the shards' own stats) and listed in scores.json (`n_expected`, `n_scored`, `n_not_scored`, `not_scored` by
reason, `lost` per shard with the ids) and table.md ("Items per task"). A damaged or missing manifest.parquet
only costs the lost items' names (a warning). Exit policy: 0 when at least one item was scored, with a WARNING
on stderr and the summary line saying how many items were lost; 1 when items were lost and none could be scored.
A rerun with the repaired shards scores the lost items (they were never recorded as done).
"""

from __future__ import annotations

import json
import sys
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from pipeline.datasets import EGOBENCH_TASKS as TASKS

from .bench_io import (  # noqa: F401
    SENTENCES_FILE,
    STATS_FILE,
    BenchError,
    BuildIndex,
    find_shards,
    iter_samples,
    load_sentences,
    read_build,
    sentences_path,
)
from .cli import UsageError, parse_args  # noqa: F401
from .outdir import MODEL_KEY, check_out, check_resume, model_fingerprint, start
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
from .scoring import (  # noqa: F401
    LOST_IDS_SHOWN,
    add_accounting,
    compute_scores,
    latest,
    read_predictions,
    render_table,
)
from .submission import write_egoplan_submissions

# ------------------------------------------------------------------------------------------------ main


def _run_info(cfg: EvalConfig, model_sha256: str, frames: int, size: int) -> dict:
    return {
        "ckpt": str(Path(cfg.ckpt).resolve()) if cfg.ckpt else None,
        "seed": None if cfg.ckpt else cfg.seed,
        MODEL_KEY: model_sha256,
        "bench": str(Path(cfg.bench).resolve()),
        "frames": frames,
        "size": size,
        "max_new_tokens": cfg.max_new_tokens,
        "prompts": PROMPTS_DIGEST,
        "shortlist": cfg.shortlist,  # EPIC MIR's sentences: all (0) or the top k of the cheap similarity
    }


def _check_inputs(cfg: EvalConfig) -> tuple[BuildIndex, dict[str, list[str]], list[str]]:
    """(the build's index, task -> shard names to read, tasks), or BenchError / ValueError / OutError."""
    bench = Path(cfg.bench)
    build = read_build(bench)
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; known: {', '.join(TASKS)}")
    on_disk = {t: [p.name for p in ps] for t, ps in find_shards(bench).items()}
    shards = {t: sorted(set(on_disk.get(t, [])) | set(build.shards.get(t, []))) for t in TASKS}
    available = [t for t in TASKS if t in build.tasks or shards[t]]
    missing = [t for t in cfg.tasks if t not in available]
    if missing:
        raise BenchError(
            f"--tasks {','.join(missing)}: not in the build at {bench} (it has: {', '.join(available) or 'none'})"
        )
    tasks = list(cfg.tasks) or available
    if not tasks:
        raise BenchError(f"--bench {bench}: the build has no task")
    check_out(Path(cfg.out))
    return build, shards, tasks


def evaluate(cfg: EvalConfig, model=None, tokenizer=None, log=print) -> dict:
    """Run (or resume) the evaluation; writes OUT/predictions.jsonl, scores.json, table.md, run.json (and
    EgoPlan v1's challenge files, egoplan_submission_<set>.json, when it ran EgoPlan v1 items) and
    returns scores.json's content plus "n_run" (items run by this call). Unusable inputs raise (module doc)
    before anything is written; a model passed in must be the one cfg.ckpt / cfg.seed names (its fingerprint)."""
    bench, out = Path(cfg.bench), Path(cfg.out)
    build, shards, tasks = _check_inputs(cfg)
    device = resolve_device(cfg.device)
    fingerprint = model_fingerprint(cfg.ckpt, cfg.seed)
    check_resume(out, {MODEL_KEY: fingerprint}, cfg.overwrite)  # before the (long) model load
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    note = ""
    if model is None:
        model, tokenizer, note = load_model(cfg.ckpt, device, cfg.seed)
    frames = cfg.frames or model.cfg.n_frames
    size = cfg.size or model.cfg.image_size
    info = _run_info(cfg, fingerprint, frames, size)
    check_resume(out, info, cfg.overwrite)
    start(out, info, cfg.overwrite)
    if note:
        log(f"eval: WARNING {note}")
    for w in build.warnings:
        log(f"eval: WARNING {w}")

    sentences, sentence_error = None, ""
    if "epic_mir" in tasks:
        try:
            sentences = load_sentences(sentences_path(bench))
        except (OSError, ValueError, TypeError, KeyError) as e:
            sentence_error = f"{type(e).__name__}: {e}"
            log(f"eval: WARNING no usable {SENTENCES_FILE}: {sentence_error}")
    runner = Runner(model, tokenizer, cfg, frames, size, sentences, aspect=model.cfg.aspect)
    runner.sentence_error = sentence_error

    pred_path = out / PREDICTIONS
    records = read_predictions(pred_path)
    done = {k for k, r in latest(records).items() if not str(r.get("error", "")).startswith(INTERNAL)}
    reading = _Reading(cfg, build, runner, records, done, log)
    with open(pred_path, "a") as f:
        for task in tasks:
            t_task = time.perf_counter()
            seen, run_task = reading.task(task, [bench / name for name in shards[task]], f)
            log(f"eval: {task}: {seen} items, {run_task} run now ({time.perf_counter() - t_task:.1f} s)")

    task_scores = compute_scores(records, tasks, sentences, cfg.similarity)
    expected = {
        t: (None if t not in build.tasks else min(build.tasks[t], cfg.max_items or build.tasks[t]))
        for t in tasks
    }
    totals = add_accounting(task_scores, expected, reading.lost)
    n_cand = sum(t["n_candidates"] for t in task_scores.values())
    score_s = sum(
        t["n_candidates"] / t["candidates_per_s"] for t in task_scores.values() if t["candidates_per_s"]
    )
    scores = {
        "model": {
            "ckpt": info["ckpt"],
            MODEL_KEY: fingerprint,
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
        "items": totals,
        "shard_errors": reading.shard_errors,
        "bench_warnings": build.warnings,
        "sentence_set_error": sentence_error,
        "tasks": task_scores,
    }
    submissions = write_egoplan_submissions(records, out)  # EgoPlan v1's challenge files (submission.py)
    if submissions:
        scores["submissions"] = submissions
    (out / SCORES).write_text(json.dumps(scores, indent=1, allow_nan=False) + "\n")
    (out / TABLE).write_text(render_table(scores))
    return {**scores, "n_run": reading.n_run}


class _Reading:
    """Reads each task's shards in order, runs the items not done yet, and counts the items the build wrote
    that could not be read (`lost`: {task, shard, n, reason, ids})."""

    def __init__(self, cfg: EvalConfig, build: BuildIndex, runner: Runner, records, done, log):
        self.cfg, self.build, self.runner, self.log = cfg, build, runner, log
        self.records, self.done = records, done
        self.lost: list[dict] = []
        self.shard_errors: list[str] = []
        self.n_run = 0
        self.internal_in_a_row = 0

    def task(self, task: str, paths: list[Path], f) -> tuple[int, int]:
        """(items seen, items run now) of one task; `seen` counts lost items too (--max-items keeps the first
        N the build wrote, read or not)."""
        cap = self.cfg.max_items
        seen, run_task = 0, 0
        for path in paths:
            if cap is not None and seen >= cap:
                break
            read, error, stopped = 0, "", False
            samples = iter_samples(path) if path.exists() else None
            if samples is None:
                error = "missing (the build wrote it)"
            while samples is not None:
                if cap is not None and seen >= cap:
                    stopped = True
                    break
                try:  # only reading the shard: an error writing predictions is not the shard's
                    key, members = next(samples)
                except StopIteration:
                    break
                except (tarfile.TarError, OSError, EOFError) as e:
                    error = f"unreadable after {read} items ({type(e).__name__}: {' '.join(str(e).split())})"
                    break
                seen += 1
                read += 1
                run_task += self._item(task, key, path.name, members, f)
            if samples is not None:
                samples.close()
            if stopped:
                continue
            n_build = self.build.shard_items.get(path.name)
            if error:
                self.shard_errors.append(f"{path.name}: {error}")
            elif n_build is not None and read < n_build:
                error = f"{read} items, the build wrote {n_build}"
            if not error:
                continue
            n_lost = None if n_build is None else max(0, n_build - read)
            if n_lost is not None and cap is not None:
                n_lost = min(n_lost, cap - seen)
            self.log(
                f"eval: WARNING {task}: shard {path.name} {error}: "
                + (f"{n_lost} item(s) lost" if n_lost is not None else "its item count is unknown")
            )
            if n_lost:
                seen += n_lost
                ids = self.build.shard_ids.get(path.name, [])[read : read + n_lost]
                self._lose(task, path.name, n_lost, error, ids)
        if self.build.tasks.get(task) is not None:  # items the shards' own counts could not attribute
            want = self.build.tasks[task] if cap is None else min(cap, self.build.tasks[task])
            if seen < want:
                reason = f"{STATS_FILE} counts {self.build.tasks[task]} items, the shards held {seen}"
                self.log(f"eval: WARNING {task}: {reason}: {want - seen} item(s) lost")
                self._lose(task, None, want - seen, reason, [])
                seen = want
        return seen, run_task

    def _lose(self, task: str, shard: str | None, n: int, reason: str, ids: list[str]) -> None:
        self.lost.append(
            {"task": task, "shard": shard, "n": n, "reason": reason, "ids": ids[:LOST_IDS_SHOWN]}
        )

    def _item(self, task: str, key: str, shard: str, members: dict, f) -> int:
        item_id = _peek_id(members) or key
        if (task, item_id) in self.done:
            return 0
        rec = self.runner.run(task, key, shard, members)
        f.write(json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n")
        f.flush()
        self.records.append(rec)
        self.done.add((task, rec["id"]))
        self.n_run += 1
        if rec["status"] != "ok":
            self.log(f"eval: {task}/{rec['id']}: {rec['error']}")
        internal = str(rec.get("error", "")).startswith(INTERNAL)
        self.internal_in_a_row = self.internal_in_a_row + 1 if internal else 0
        if self.internal_in_a_row >= MAX_INTERNAL_IN_A_ROW:
            raise RuntimeError(
                f"{self.internal_in_a_row} items in a row failed inside the model (last: {rec['error']}); "
                f"predictions so far are in {self.cfg.out}/{PREDICTIONS}, a rerun retries them"
            )
        return 1


def _peek_id(members: dict[str, bytes]) -> str | None:
    try:
        doc = json.loads(members["json"])
        return doc["id"] if isinstance(doc, dict) and isinstance(doc.get("id"), str) and doc["id"] else None
    except (KeyError, ValueError):
        return None


def _one_line(e: BaseException) -> str:
    text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(str(text).split())


def _log(msg: str) -> None:
    print(msg, file=sys.stderr if "WARNING" in msg else sys.stdout, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI; exit status 0 done, 1 items lost and none scored, 2 unusable command line or inputs (module
    doc), each failure one line on stderr."""
    try:
        cfg = parse_args(argv)
        if cfg.plan:  # the cost of the real benchmark, before running anything (plan.py)
            from .plan import print_plan

            return print_plan(cfg)
        res = evaluate(cfg, log=_log)
    except KeyError as e:  # export.load_pretrained: missing / unexpected weights
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, OSError) as e:  # UsageError, BenchError, OutError, ExportError, ...
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    out = Path(cfg.out)
    print((out / TABLE).read_text())
    cps = res["candidates_per_s"]
    items = res["items"]
    print(
        f"eval: {res['n_run']} items run now; {res['n_candidates']} candidates scored"
        + (f", {cps:.1f} candidates/s" if cps else "")
    )
    print(f"eval: {out / PREDICTIONS}, {out / SCORES}, {out / TABLE}")
    expected = f" of {items['expected']} expected" if not items["expected_unknown"] else ""
    line = f"eval: items: {items['scored']}{expected} scored, {items['errors']} errors (bad input or model failures)"
    if items["lost"]:
        line += f", {items['lost']} LOST (unreadable benchmark files; scores.json `lost` names them)"
    print(line)
    if not items["lost"]:
        return 0
    if items["scored"] == 0:
        print(
            f"error: no item could be scored: {items['lost']} item(s) lost (see {out / SCORES})",
            file=sys.stderr,
        )
        return 1
    print(
        f"eval: WARNING {items['lost']} item(s) lost: the scores are over the items that were read",
        file=sys.stderr,
    )
    return 0


__all__ = [
    "EvalConfig",
    "PROMPTS",
    "REPORTED",
    "compute_scores",
    "evaluate",
    "main",
    "parse_args",
    "score_many",
]
