"""The command line of `python -m exo2ego_model.eval` (run.py's docstring): options -> EvalConfig.

Nothing typed is ignored or guessed: an unknown option is an error with the closest one as a hint
("unknown option --taks; did you mean --tasks?"), abbreviations are not accepted (--ckp is not --ckpt), and so is
an unknown value of a choice option (--tasks, --device). Every such error is a UsageError: one line, exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
from collections.abc import Sequence

from .protocol import TASKS, EvalConfig  # TASKS: pipeline.egobench.records'

DEVICES = ("auto", "cpu", "cuda", "mps")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class UsageError(ValueError):
    """A bad command line (one line, exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _hint(word: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _unknown_option(arg: str, options: Sequence[str]) -> UsageError:
    if not arg.startswith("-"):
        return UsageError(f"unexpected argument {arg!r} (every value follows its option, e.g. --tasks a,b)")
    name = arg.split("=", 1)[0]
    hint = _hint(name, options)
    return UsageError(f"unknown option {name}" + (hint or " (see --help)"))


def _tasks(value: str) -> tuple[str, ...]:
    tasks = tuple(t.strip() for t in value.split(",") if t.strip())
    for t in tasks:
        if t not in TASKS:
            hint = _hint(t, list(TASKS))
            raise UsageError(f"unknown --tasks value {t}" + (hint or f" (known: {', '.join(TASKS)})"))
    return tasks


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m exo2ego_model.eval",
        description="EgoBench evaluation of a checkpoint -> predictions.jsonl, scores.json, table.md",
        allow_abbrev=False,
    )
    p.add_argument("--ckpt", default=None, help="export.save_pretrained folder (default: tiny random model)")
    p.add_argument("--bench", default="data/egobench", help="EgoBench build folder (with its stats.json)")
    p.add_argument("--tasks", default="", help=f"comma-separated subset of: {','.join(TASKS)}")
    p.add_argument("--out", default="runs/eval", help="output folder (a rerun resumes there)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the outputs in --out (predictions of another model or other settings) instead of refusing",
    )
    p.add_argument("--max-items", type=int, default=None, help="first N items of each task")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: the model config's)")
    p.add_argument("--size", type=int, default=None, help="frame side (default: the model config's)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, mps")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--candidate-batch", type=int, default=64, help="candidates per forward on one prefix")
    p.add_argument("--no-similarity", action="store_true", help="QAEgo4D open without sentence similarity")
    p.add_argument(
        "--shortlist",
        type=int,
        default=0,
        help="EPIC MIR: the LLM scores only the top K sentences of a cheap visual/text similarity per clip "
        "(0, default: every sentence, the exact protocol; scores.json reports the shortlist's recall at k)",
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="print forward passes and projected GPU-hours per task for the real benchmark sizes, run nothing",
    )
    p.add_argument(
        "--pass-ms",
        type=float,
        default=None,
        help="--plan: measured ms of one prefix forward pass of the real model on the target GPU (e.g. from "
        "`make bench-eval` there); default: plan.py's stated FLOP-based assumption for Mistral-7B on an H100",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the tiny model (no --ckpt)")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default; on a busy CPU box 1 can be far faster than oversubscribing)",
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> EvalConfig:
    """EvalConfig of a command line; UsageError (one line) for anything it cannot take as typed."""
    p = parser()
    a, extra = p.parse_known_args(argv)
    if extra:
        options = sorted(o for act in p._actions for o in act.option_strings if o.startswith("--"))
        raise _unknown_option(extra[0], options)
    for name, low in (("max_items", 1), ("frames", 1), ("size", 1), ("max_new_tokens", 1), ("threads", 0)):
        value = getattr(a, name)
        if value is not None and value < low:
            raise UsageError(f"--{name.replace('_', '-')} {value}: must be >= {low}")
    if a.shortlist < 0:
        raise UsageError(f"--shortlist {a.shortlist}: must be >= 0 (0: every sentence)")
    if a.pass_ms is not None and not a.pass_ms > 0:
        raise UsageError(f"--pass-ms {a.pass_ms}: must be > 0")
    if a.candidate_batch < 1:
        raise UsageError(f"--candidate-batch {a.candidate_batch}: must be >= 1")
    if not _DEVICE.match(a.device):
        hint = _hint(a.device, DEVICES)
        raise UsageError(f"unknown --device value {a.device}" + (hint or " (auto, cpu, cuda, cuda:N or mps)"))
    if a.ckpt is not None and not a.ckpt.strip():
        raise UsageError("--ckpt is empty (leave it out for the tiny random model)")
    same = {f.name: getattr(a, f.name) for f in dataclasses.fields(EvalConfig) if hasattr(a, f.name)}
    return EvalConfig(
        **{**same, "ckpt": a.ckpt or None, "tasks": _tasks(a.tasks), "similarity": not a.no_similarity}
    )
