"""The --out folder of an evaluation (exo2ego_model/eval/run.py): checked before any work, the model's fingerprint
and the settings in run.json, the refusal to mix predictions of two models or of two settings, --overwrite.

run.json's `model_sha256` is the model's fingerprint: for --ckpt, export.fingerprint (the sha256 of every file
loading reads: it changes when the weights change, not when the folder is moved); for the tiny default model,
the sha256 of its config (configs/smoke/run.yaml's model section) and --seed. A rerun into an --out whose
predictions.jsonl was made by another model, or without a run.json to say which, is refused (OutError, one line
with both fingerprints' prefixes) instead of resuming from the other model's predictions; `--overwrite` replaces
the outputs (only those four files: nothing else in the folder is touched), after the new model has loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

from .protocol import PREDICTIONS, RUN_INFO, SCORES, SMOKE_CONFIG, TABLE

OUTPUTS = (PREDICTIONS, SCORES, TABLE, RUN_INFO)
MODEL_KEY = "model_sha256"
# recorded in run.json, not compared on resume: the fingerprint says whether the model is the same
NOT_COMPARED = ("ckpt", "seed", MODEL_KEY)
HOW = "use a new --out, or --overwrite to replace them"


class OutError(ValueError):
    """--out cannot take this run's outputs (the message is one line)."""


def check_out(out: Path) -> None:
    """OutError unless `out` is a folder, or can be made one, that this process can write in (tried, and what
    the try made is removed: nothing is left behind)."""
    if out.exists() and not out.is_dir():
        raise OutError(f"--out {out}: a file, not a folder (the run writes {', '.join(OUTPUTS)} in a folder)")
    here = out
    while not here.exists() and here != here.parent:
        here = here.parent
    if not here.is_dir():
        raise OutError(f"--out {out}: cannot make this folder: {here} is a file")
    if not os.access(here, os.W_OK | os.X_OK):
        raise OutError(f"--out {out}: cannot write there: {here} is not writable by this user")
    _probe(out)
    for name in OUTPUTS:
        path = out / name
        if path.is_dir():
            raise OutError(f"--out {out}: {name} there is a folder, not a file")
        if path.exists() and not os.access(path, os.W_OK):
            raise OutError(f"--out {out}: {name} there is not writable by this user")


def _probe(out: Path) -> None:
    """Make `out` and a file in it, then remove what was made (a read-only or pseudo filesystem fails here)."""
    missing = []
    here = out
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    made = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            made.append(folder)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise OutError(f"--out {out}: cannot write there ({type(e).__name__}: {e.strerror or e})") from None
    finally:
        for folder in reversed(made):
            folder.rmdir()


def model_fingerprint(ckpt: str | None, seed: int) -> str:
    """run.json's model_sha256 (module doc); export.ExportError for a checkpoint that cannot be loaded."""
    if ckpt:
        from exo2ego_model.export import fingerprint

        return fingerprint(ckpt)
    from exo2ego_model.config import load_run_config

    model = dataclasses.asdict(load_run_config(SMOKE_CONFIG).model)
    doc = {"tiny_model": model, "seed": seed}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _has_predictions(out: Path) -> bool:
    path = out / PREDICTIONS
    return path.exists() and bool(path.read_bytes().strip())


def check_resume(out: Path, info: dict, overwrite: bool) -> None:
    """OutError when out/predictions.jsonl was made by another model than info[MODEL_KEY], or with other
    values of info's other settings; nothing to check with --overwrite or without predictions."""
    if overwrite or not _has_predictions(out):
        return
    path = out / RUN_INFO
    if not path.exists():
        raise OutError(
            f"--out {out} holds {PREDICTIONS} but no {RUN_INFO}, so the model that made them is unknown: {HOW}"
        )
    try:
        before = json.loads(path.read_text())
        if not isinstance(before, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as e:
        raise OutError(f"{path}: unreadable ({type(e).__name__}: {e}): {HOW}") from None
    was, now = before.get(MODEL_KEY), info[MODEL_KEY]
    if was != now:
        was_s = str(was)[:12] if was else "not recorded"
        raise OutError(
            f"--out {out} holds predictions of another model (sha256 {was_s}; this model: {now[:12]}): {HOW}"
        )
    diff = {k: (before.get(k), v) for k, v in info.items() if k not in NOT_COMPARED and before.get(k) != v}
    if diff:
        raise OutError(f"{out / PREDICTIONS} was made with other settings {diff} (was, now): {HOW}")


def start(out: Path, info: dict, overwrite: bool) -> None:
    """Make `out`, remove the old outputs with --overwrite, write run.json (OutError when that fails)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for name in OUTPUTS:
                (out / name).unlink(missing_ok=True)
        (out / RUN_INFO).write_text(json.dumps(info, indent=1) + "\n")
    except OSError as e:
        raise OutError(f"--out {out}: cannot write there ({type(e).__name__}: {e.strerror or e})") from None
