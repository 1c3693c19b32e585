"""lmms-eval model adapter: `lmms-eval --model exo2ego --model_args pretrained=CKPT --tasks ...` on our checkpoints.

    pretrained      a folder written by export.save_pretrained; "" or "tiny": the seeded tiny random CPU model
                    of configs/smoke/run.yaml (meaningless numbers: for tests)
    device          auto (cuda if available) | cpu | cuda | cuda:N
    frames, size    frames fed to the model (default: the checkpoint's model config); frames are made square
                    as the checkpoint's model.aspect says (video.fit_square, as in training)
    max_new_tokens  generation cap when a task's generation_kwargs has none (default 64)
    seed            the tiny model's seed
    loglikelihood   "loss" (default) or "logprob": what loglikelihood requests return (see below)

Registration (lmms-eval 0.7.3, lmms_eval/models/__init__.py + models/registry_v2.py): external models come in
through the Python entry-point group "lmms_eval.models", whose payload is a ModelManifest (or a callable
returning them); `manifests` below is that payload. With the project installed (`pip install -e .`) and this in
pyproject.toml the plain CLI finds the model:

    [project.entry-points."lmms_eval.models"]
    exo2ego = "exo2ego_model.eval.lmms:manifests"

Without the entry point, `python -m exo2ego_model.eval.lmms <lmms-eval CLI args>` registers it and runs
lmms-eval's CLI, and `register()` does it in-process (lmms_eval.evaluator.simple_evaluate(model="exo2ego")).
(LMMS_EVAL_PLUGINS, the older way, is deprecated in 0.7.3 and needs a `<plugin>.models` package layout.)

Requests (lmms_eval/api/model.py):
- generate_until: (context, gen_kwargs, doc_to_visual, doc_id, task, split) -> greedy inference.generate on the
  context as the user turn (`[INST] <video>\\n{context} [/INST]`), max_new_tokens from gen_kwargs, cut at the
  first `until` string. Sampling settings (temperature > 0, do_sample) are not supported: greedy, with a warning.
- loglikelihood: (context, continuation | doc_to_target, doc_to_visual, doc_id, task, split) -> (value,
  is_greedy: whether greedy decoding gives exactly the continuation's tokens). The continuation is scored as the
  answer of a training target (inference.score): lmms-eval's target delimiter (one leading space, " B") is that
  template's own space, so one leading space is removed. `value` follows model_args `loglikelihood`:
    "loss" (default): the mean negative log-likelihood per answer token, eos included (= the LM loss; minus
        run.py's ranking score). lmms-eval 0.7.3's multiple_choice takes the ARGMIN of these values
        (api/task.py: "we return the actual loss in many model loglikelihood, we just use the argmin"; its
        built-in models return the loss, lmms-eval issue 370), so this is what makes its `acc` pick the most
        likely option: EgoPlan's protocol, the same option run.py's ranking picks.
    "logprob": the API docstring's meaning, the sum of the continuation's token log-probabilities without eos
        (higher = likelier; lmms-eval 0.7.3's multiple_choice would then pick the LEAST likely option).
  Each pair travels inside a GenerationResult (its .text): lmms-eval 0.7.3's evaluator passes every output
  through unwrap_generation_output, which turns a bare (float, bool) tuple into its str.
  Requests that share (doc, context) (a multiple_choice task's options) are scored together on one prefix.
  Requests without a visual (acc_mutual_info's unconditional ones) see a mid-grey clip.
Visuals (doc_to_visual's list; the first is used, a warning when there are more): a video file path, a folder
of frame images, mp4 bytes, {"bytes": ...} / {"path": ...} (datasets' Video(decode=False)), a list of JPEG
bytes, a list of PIL images, or a uint8 tensor TCHW / THWC.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from lmms_eval.api.instance import GenerationResult, Instance
from lmms_eval.api.model import lmms
from loguru import logger as eval_logger

MODEL_ID = "exo2ego"
CLASS_PATH = "exo2ego_model.eval.lmms.Exo2EgoLMMS"
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def manifests():
    """The entry-point payload: one ModelManifest for `--model exo2ego`."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=MODEL_ID, simple_class_path=CLASS_PATH)]


def register() -> None:
    """Make `exo2ego` resolvable by lmms_eval.models.get_model in this process (no entry point needed)."""
    from lmms_eval import models

    for manifest in manifests():
        models.MODEL_REGISTRY_V2.register_manifest(manifest, overwrite=True)
    models.AVAILABLE_MODELS[MODEL_ID] = CLASS_PATH.rsplit(".", 1)[-1]
    models.AVAILABLE_SIMPLE_MODELS[MODEL_ID] = CLASS_PATH  # what `lmms-eval models` lists


def _frames_from_arrays(frames_THWC: np.ndarray, n_frames: int, size: int, aspect: str) -> torch.Tensor:
    from exo2ego_model.video import fit_square, uniform_indices

    idx = uniform_indices(len(frames_THWC), n_frames)
    return fit_square(np.ascontiguousarray(frames_THWC[idx]), size, aspect)


def load_visual(visual, n_frames: int, size: int, aspect: str = "pad") -> torch.Tensor:
    """One visual in any of the forms the module docstring lists -> uint8 frames_TCHW (n_frames, 3, size, size),
    made square by video.fit_square(aspect) as in training (aspect: the model config's model.aspect)."""
    from exo2ego_model.video import decode_clip

    if isinstance(visual, dict):
        if visual.get("bytes"):
            return decode_clip(bytes(visual["bytes"]), n_frames, size, aspect=aspect)
        if visual.get("path"):
            return load_visual(visual["path"], n_frames, size, aspect)
        raise ValueError(f"visual dict without bytes or path: {sorted(visual)}")
    if isinstance(visual, bytes | bytearray | memoryview):
        return decode_clip(bytes(visual), n_frames, size, aspect=aspect)
    if isinstance(visual, str | os.PathLike):
        path = Path(visual)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_EXT)
            if not files:
                raise ValueError(f"{path}: no frame images")
            return decode_clip([p.read_bytes() for p in files], n_frames, size, aspect=aspect)
        return decode_clip(path.read_bytes(), n_frames, size, aspect=aspect)
    if isinstance(visual, torch.Tensor | np.ndarray):
        t = torch.as_tensor(visual)
        if t.dim() != 4 or t.dtype != torch.uint8:
            raise ValueError(f"a video tensor must be uint8 TCHW or THWC, got {t.dtype} {tuple(t.shape)}")
        if t.shape[1] == 3 and t.shape[-1] != 3:
            t = t.permute(0, 2, 3, 1)
        return _frames_from_arrays(t.numpy(), n_frames, size, aspect)
    if isinstance(visual, list | tuple) and visual:
        if all(isinstance(v, bytes | bytearray) for v in visual):
            return decode_clip([bytes(v) for v in visual], n_frames, size, aspect=aspect)
        from PIL import Image

        if all(isinstance(v, Image.Image) for v in visual):
            return _frames_from_arrays(
                np.stack([np.asarray(v.convert("RGB")) for v in visual]), n_frames, size, aspect
            )
    raise ValueError(f"unsupported visual {type(visual).__name__}")


def _cut(text: str, until: Sequence[str]) -> str:
    for stop in until:
        if stop:
            text = text.split(stop, 1)[0]
    return text


class Exo2EgoLMMS(lmms):
    """An Exo2Ego checkpoint as an lmms-eval simple model (one clip, greedy generation, answer likelihoods)."""

    is_simple = True

    def __init__(
        self,
        pretrained: str = "",
        device: str = "auto",
        frames: int | str | None = None,
        size: int | str | None = None,
        max_new_tokens: int | str = 64,
        seed: int | str = 0,
        batch_size: int | str | None = 1,
        loglikelihood: str = "loss",
        **kwargs,
    ) -> None:
        super().__init__()
        if loglikelihood not in ("loss", "logprob"):
            raise ValueError(f"loglikelihood={loglikelihood!r}: expected loss or logprob")
        self.ll_mode = loglikelihood
        from .run import load_model, resolve_device

        for key in kwargs:
            if kwargs[key] is not None:
                eval_logger.warning(f"exo2ego: ignoring model argument {key}={kwargs[key]!r}")
        ckpt = None if str(pretrained) in ("", "tiny", "None") else str(pretrained)
        self._device = resolve_device(str(device or "auto"))
        self.model, self.tokenizer, note = load_model(ckpt, self._device, int(seed))
        if note:
            eval_logger.warning(f"exo2ego: {note}")
        self.n_frames = int(frames) if frames not in (None, "") else self.model.cfg.n_frames
        self.size = int(size) if size not in (None, "") else self.model.cfg.image_size
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size_per_gpu = int(batch_size or 1)
        self._warned: set[str] = set()

    @property
    def device(self) -> torch.device:
        return self._device

    # ------------------------------------------------------------------------------------------ helpers

    def _warn_once(self, what: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            eval_logger.warning(f"exo2ego: {what}")

    def _video(self, doc_to_visual, doc_id, task, split) -> torch.Tensor:
        visuals = None
        if doc_to_visual is not None:
            visuals = doc_to_visual(self.task_dict[task][split][doc_id])
        if visuals is not None and not isinstance(visuals, list | tuple):
            visuals = [visuals]
        if not visuals:
            self._warn_once("a request without a visual sees a mid-grey clip")
            return torch.full((self.n_frames, 3, self.size, self.size), 128, dtype=torch.uint8)
        if len(visuals) > 1:
            self._warn_once(f"{len(visuals)} visuals for one request: the model takes the first clip only")
        return load_visual(visuals[0], self.n_frames, self.size, self.model.cfg.aspect)

    def _continuation(self, target, doc_id, task, split) -> str:
        cont = target if isinstance(target, str) else target(self.task_dict[task][split][doc_id])
        if isinstance(cont, list | tuple):
            cont = cont[0]
        cont = str(cont)
        return cont[1:] if cont.startswith(" ") else cont  # the answer template's own leading space

    # ------------------------------------------------------------------------------------------ requests

    def generate_until(self, requests: list[Instance]) -> list[str]:
        from exo2ego_model.inference import generate

        out = []
        for req in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = req.args
            gen_kwargs = dict(gen_kwargs or {})
            if float(gen_kwargs.get("temperature", 0) or 0) > 0 or gen_kwargs.get("do_sample"):
                self._warn_once("sampling is not supported: greedy decoding")
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            video = self._video(doc_to_visual, doc_id, task, split)
            text = generate(
                self.model,
                self.tokenizer,
                video,
                context,
                max_new_tokens=int(gen_kwargs.get("max_new_tokens") or self.max_new_tokens),
            )
            text = _cut(text, until)
            out.append(text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return out

    def loglikelihood(self, requests: list[Instance]) -> list[GenerationResult]:
        from exo2ego_model.inference import candidate_ids, generate_ids, score

        groups: dict[tuple, list[int]] = {}
        parsed = []
        for i, req in enumerate(requests):
            args = req.args
            if len(args) == 2:  # acc_mutual_info's unconditional request: (context, continuation)
                context, target, doc_to_visual, doc_id, task, split = args[0], args[1], None, None, None, None
            else:
                context, target, doc_to_visual, doc_id, task, split = args
            cont = self._continuation(target, doc_id, task, split)
            parsed.append((context, cont, doc_to_visual, doc_id, task, split))
            groups.setdefault((task, split, doc_id, context, doc_to_visual is None), []).append(i)
        results: list[GenerationResult | None] = [None] * len(requests)
        for members in groups.values():
            context, _, doc_to_visual, doc_id, task, split = parsed[members[0]]
            video = self._video(doc_to_visual, doc_id, task, split)
            conts = [parsed[i][1] for i in members]
            if self.ll_mode == "loss":
                values = [-v for v in score(self.model, self.tokenizer, video, context, conts)]
            else:
                values = score(
                    self.model, self.tokenizer, video, context, conts, reduction="sum", with_eos=False
                )
            ids = [candidate_ids(self.tokenizer, c, with_eos=False) for c in conts]
            # greedy decoding is deterministic: one decode as long as the longest continuation serves them all
            greedy = generate_ids(
                self.model, self.tokenizer, video, context, max_new_tokens=max(len(x) for x in ids)
            )
            for i, cont, value, cont_ids in zip(members, conts, values, ids, strict=True):
                pair = (float(value), greedy[: len(cont_ids)] == cont_ids)
                # lmms-eval 0.7.3's evaluator passes every model output through unwrap_generation_output, which
                # turns a plain (float, bool) tuple into its str (so multiple_choice's process_results fails on
                # it); a GenerationResult's text is passed through as it is, so the pair travels in one.
                results[i] = GenerationResult(text=pair)  # type: ignore[arg-type]
                self.cache_hook.add_partial("loglikelihood", (context, cont), pair)
        return results  # type: ignore[return-value]

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError("exo2ego: loglikelihood_rolling (perplexity tasks) is not supported")

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("exo2ego: generate_until_multi_round is not supported")


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m exo2ego_model.eval.lmms --model exo2ego --model_args pretrained=DIR --tasks ...`: lmms-eval's
    CLI with the model registered (no entry point needed)."""
    register()
    from lmms_eval.cli.dispatch import main as lmms_main

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    lmms_main()


if __name__ == "__main__":
    main()
