"""The evaluation protocols per metric kind (exo2ego_model/eval/run.py's docstring): prompts, and running one
item through the model (generation + parse_choice, option ranking, candidate scoring)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# LAST_FRAME_TASKS: tasks whose question is about the clip's last frame (EgoPlan: "my current observation in the
# last frame"): it is always the last frame the model is shown (video.last_indices; frames mode stores it last)
from pipeline.datasets import EGOBENCH_LAST_FRAME_TASKS as LAST_FRAME_TASKS
from pipeline.datasets import EGOBENCH_TASKS as TASKS

from .bench_io import ItemError, SentenceSet, clips_of, digest_of
from .choice import OPEN_VOCABULARY, match_answer, parse_choice
from .mir import sentence_scores

REPO = Path(__file__).resolve().parents[2]
SMOKE_CONFIG = REPO / "configs" / "smoke" / "run.yaml"
PREDICTIONS, SCORES, TABLE, RUN_INFO = "predictions.jsonl", "scores.json", "table.md", "run.json"
TINY_NOTE = (
    "no --ckpt: the tiny RANDOM CPU model of configs/smoke/run.yaml (seed {seed}); its numbers are "
    "meaningless (a smoke test of the evaluation, not a result)"
)

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CHOICE_INSTRUCTION = "Answer with the option's letter from the given choices directly."
PROMPTS = {
    "choice_generation": "{question}\nOptions:\n{options}\n" + CHOICE_INSTRUCTION,
    "choice_option": "({letter}) {text}",
    "choice_ranking": "{question}",
    "open": "{question}\nAnswer the question with a short phrase.",
    "multilabel": "Which action am I performing in this video?",
    "retrieval": "Describe what I am doing in this video.",
    "video_choice": "Describe what I am doing in this video.",
}
PROMPTS_DIGEST = hashlib.sha256(json.dumps(PROMPTS, sort_keys=True).encode()).hexdigest()[:16]
# choice tasks: which protocol the table (and scores.json "accuracy") reports; the other is in scores.json too
REPORTED = {"egoplan": "ranking"} | dict.fromkeys(OPEN_VOCABULARY, "ranking")  # EgoTaskQA: as its baselines
DEFAULT_REPORTED = "generation"


# An exception inside the model on one item: recorded like bad input, but retried by a rerun (not "done"), and
# MAX_INTERNAL_IN_A_ROW of them in a row stop the run (a broken setup, e.g. out of memory on every item).
INTERNAL = "internal error"
MAX_INTERNAL_IN_A_ROW = 10


@dataclass
class EvalConfig:
    ckpt: str | None = None
    bench: str = "data/egobench"
    tasks: tuple[str, ...] = ()  # () = every task with shards in the bench
    out: str = "runs/eval"
    max_items: int | None = None
    frames: int | None = None  # None: the model config's n_frames
    size: int | None = None  # None: the model config's image_size
    device: str = "auto"
    max_new_tokens: int = 32
    candidate_batch: int = 64  # candidates per forward over one cached prefix (memory: the KV cache x this)
    similarity: bool = True  # QAEgo4D open: sentence similarity (loads all-MiniLM-L6-v2 from its wheel)
    seed: int = 0
    threads: int = 0  # torch CPU threads (0: torch's default)
    overwrite: bool = False  # replace the outputs in `out` (predictions of another model or other settings)
    shortlist: int = 0  # EPIC MIR: the LLM scores the top k sentences of a cheap similarity (0: all; mir.py)
    plan: bool = False  # print the cost plan for the real benchmark sizes and stop (plan.py)
    pass_ms: float | None = None  # the plan's time per forward pass of the prefix (None: plan.py's default)


# ------------------------------------------------------------------------------------------------ model


def resolve_device(device: str) -> torch.device:
    """auto (cuda if available), cpu, cuda, cuda:N, mps; ValueError (one line) for a device this machine lacks."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"--device {device}: {e}") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(
                f"--device {device}: torch sees no CUDA device on this machine (use --device cpu)"
            )
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"--device {device}: this machine has {n} CUDA device(s), cuda:0..cuda:{n - 1}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available on this machine (use --device cpu)")
    return dev


def load_model(ckpt: str | None, device: torch.device, seed: int = 0):
    """(model, tokenizer, note): a save_pretrained folder, or the seeded tiny random model (note says so)."""
    if ckpt:
        from exo2ego_model.export import load_pretrained

        model, tok = load_pretrained(ckpt, device)
        note = ""
    else:
        from exo2ego_model.config import load_run_config
        from exo2ego_model.model import build_model

        torch.manual_seed(seed)
        model, tok = build_model(load_run_config(SMOKE_CONFIG).model, device=device)
        note = TINY_NOTE.format(seed=seed)
    model.eval()
    return model, tok, note


@torch.no_grad()
def score_many(model, tokenizer, video, prompt, candidates: Sequence[str], batch: int = 64) -> list[float]:
    """inference.score (mean log-likelihood per answer token, eos included) over any number of candidates, in
    chunks of `batch`: the video + prompt prefix runs once, its KV cache is shared (never copied) by them."""
    from exo2ego_model.inference import score

    return score(model, tokenizer, video, prompt, candidates, chunk_size=batch)


# ------------------------------------------------------------------------------------------------ items


def choice_prompt(question: str, options: Sequence[str]) -> str:
    lines = "\n".join(
        PROMPTS["choice_option"].format(letter=LETTERS[i], text=t) for i, t in enumerate(options)
    )
    return PROMPTS["choice_generation"].format(question=question, options=lines)


def _options(doc: dict, lo: int = 2, hi: int = len(LETTERS)) -> list[str]:
    """The option texts (choice: 2..26, one letter each; multilabel's class names: hi=None, any number)."""
    opts = doc.get("options")
    if (
        not isinstance(opts, list)
        or len(opts) < lo
        or (hi is not None and len(opts) > hi)
        or not all(isinstance(o, str) and o.strip() for o in opts)
    ):
        raise ItemError(f"broken option list: {opts!r:.120}")
    return opts


def _answer_index(doc: dict, n: int) -> int | None:
    """The correct option, None when not public (EgoSchema outside its 500 answers)."""
    if doc.get("has_answer") is False:
        return None
    a = doc.get("answer_index")
    if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a < n:
        letter = LETTERS[a] if isinstance(a, int) and 0 <= a < len(LETTERS) else a
        raise ItemError(f"unknown answer: answer_index {a!r} ({letter}) names none of {n} options")
    return a


class Runner:
    """Runs one item at a time and returns its predictions.jsonl record."""

    def __init__(
        self, model, tokenizer, cfg: EvalConfig, frames: int, size: int, sentences=None, aspect: str = "pad"
    ):
        self.model, self.tok, self.cfg = model, tokenizer, cfg
        self.frames, self.size = frames, size
        self.aspect = aspect  # the model config's model.aspect: frames made square as in training
        self.sentences: SentenceSet | None = sentences
        self.sentence_error = ""

    def video(self, clips: dict, k: int, n: int, last: bool = False) -> torch.Tensor:
        from exo2ego_model.video import decode_clip

        if k not in clips:
            name = "mp4 / NN.jpg" if n == 1 else f"v{k}.mp4 / v{k}.NN.jpg"
            raise ItemError(f"missing clip: no {name} member")
        try:
            return decode_clip(clips[k], self.frames, self.size, last=last, aspect=self.aspect)
        except Exception as e:  # decord / PIL raise various types on bad bytes
            raise ItemError(f"undecodable clip {k}: {type(e).__name__}: {str(e)[:200]}") from None

    def _score(self, video, prompt: str, candidates: Sequence[str], rec: dict) -> list[float]:
        t = time.perf_counter()
        s = score_many(self.model, self.tok, video, prompt, candidates, self.cfg.candidate_batch)
        rec["n_candidates"] = rec.get("n_candidates", 0) + len(candidates)
        rec["score_s"] = rec.get("score_s", 0.0) + time.perf_counter() - t
        return s

    def _generate(self, video, prompt: str) -> str:
        from exo2ego_model.inference import generate

        return generate(self.model, self.tok, video, prompt, max_new_tokens=self.cfg.max_new_tokens)

    def run(self, task: str, key: str, shard: str, members: dict[str, bytes]) -> dict:
        t0 = time.perf_counter()
        rec: dict = {"task": task, "id": key, "key": key, "shard": shard, "metric": TASKS[task]}
        try:
            try:
                doc = json.loads(members["json"])
                if not isinstance(doc, dict):
                    raise ValueError("not an object")
            except KeyError:
                raise ItemError("no json member") from None
            except ValueError as e:
                raise ItemError(f"unreadable json: {e}") from None
            if isinstance(doc.get("id"), str) and doc["id"]:
                rec["id"] = doc["id"]
            if doc.get("task") != task:
                raise ItemError(f"json task {doc.get('task')!r} in a {task} shard")
            question = doc.get("question", "")
            if not isinstance(question, str):
                raise ItemError("question is not a string")
            clips = clips_of(members)
            getattr(self, "_" + TASKS[task])(doc, clips, question, rec)
            rec["status"] = "ok"
        except ItemError as e:
            rec.update(status="error", error=str(e))
        except Exception as e:  # the model failed on this item (too long a prompt, out of memory, ...)
            rec.update(status="error", error=f"{INTERNAL}: {type(e).__name__}: {str(e)[:300]}")
        rec["time_s"] = round(time.perf_counter() - t0, 6)
        return rec

    def _choice(self, doc, clips, question, rec):
        if doc["task"] in OPEN_VOCABULARY:
            return self._open_vocabulary(doc, clips, question, rec)
        options = _options(doc)
        answer = _answer_index(doc, len(options))
        if not question.strip():
            raise ItemError("empty question")
        video = self.video(clips, 0, 1, last=doc["task"] in LAST_FRAME_TASKS)
        gen_prompt = choice_prompt(question, options)
        rank_prompt = PROMPTS["choice_ranking"].format(question=question)
        reply = self._generate(video, gen_prompt)
        scores = self._score(video, rank_prompt, options, rec)
        rec.update(
            prompt_generation=gen_prompt,
            prompt_ranking=rank_prompt,
            options=options,
            option_letters=list(LETTERS[: len(options)]),
            option_order=list(range(len(options))),  # presented position -> the item's option index
            reply=reply,
            pred_generation=parse_choice(reply, len(options), options),
            option_scores=scores,
            pred_ranking=int(np.argmax(scores)),
            answer_index=answer,
        )

    def _open_vocabulary(self, doc, clips, question, rec):
        """Open answer over the answer vocabulary (the options, any number): (a) the greedy reply to the open
        prompt, matched exactly to a vocabulary entry (choice.match_answer), and (b) every entry scored as the
        answer to that prompt, argmax (the baselines' classification over the vocabulary)."""
        vocab = _options(doc, hi=None)
        answer = _answer_index(doc, len(vocab))
        if not question.strip():
            raise ItemError("empty question")
        video = self.video(clips, 0, 1)
        prompt = PROMPTS["open"].format(question=question)
        reply = self._generate(video, prompt)
        order = np.argsort(-np.asarray(self._score(video, prompt, vocab, rec)), kind="stable")
        rec.update(
            prompt_generation=prompt,
            prompt_ranking=prompt,
            n_options=len(vocab),
            options_digest=digest_of(vocab),
            reply=reply,
            pred_generation=match_answer(reply, vocab),
            pred_ranking=int(order[0]),
            top5=[vocab[i] for i in order[:5]],
            answer_index=answer,
            answer_rank=None if answer is None else int(np.flatnonzero(order == answer)[0]) + 1,
            answer_group=(doc.get("metadata") or {}).get("answer_group", ""),
        )

    def _open(self, doc, clips, question, rec):
        ref = doc.get("answer_text")
        if not isinstance(ref, str) or not ref.strip():
            raise ItemError("no reference answer")
        if not question.strip():
            raise ItemError("empty question")
        video = self.video(clips, 0, 1)
        prompt = PROMPTS["open"].format(question=question)
        rec.update(prompt=prompt, reply=self._generate(video, prompt), answer_text=ref)

    def _multilabel(self, doc, clips, question, rec):
        classes = _options(doc, lo=1, hi=None)
        positives = doc.get("answer_indices", [])
        if not isinstance(positives, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c < len(classes) for c in positives
        ):
            raise ItemError(f"answer_indices {positives!r:.120} name no class of {len(classes)}")
        video = self.video(clips, 0, 1)
        prompt = PROMPTS["multilabel"]
        scores = self._score(video, prompt, classes, rec)
        rec.update(
            prompt=prompt,
            classes_digest=digest_of(classes),
            n_classes=len(classes),
            scores=scores,
            answer_indices=sorted(positives),
            top5=[int(i) for i in np.argsort(-np.asarray(scores), kind="stable")[:5]],
        )

    def _retrieval(self, doc, clips, question, rec):
        if self.sentences is None:
            raise ItemError(f"no sentence set: {self.sentence_error}")
        meta = doc.get("metadata") or {}
        verb, nouns = meta.get("verb_class", -1), meta.get("noun_classes", [])
        if not isinstance(verb, int) or verb < 0 or not isinstance(nouns, list) or not nouns:
            raise ItemError(f"no relevancy classes: verb_class={verb!r}, noun_classes={nouns!r}")
        video = self.video(clips, 0, 1)
        prompt = PROMPTS["retrieval"]
        own = doc.get("sentence_id", "")
        raw, calibrated = sentence_scores(self, video, prompt, rec, own)  # mir.py: raw - prior, shortlist
        sim = raw.astype(np.float32)
        order = np.argsort(-sim, kind="stable")
        rec.update(
            prompt=prompt,
            n_sentences=len(sim),
            sentences_digest=digest_of(self.sentences.ids),
            sim_f32_b64=base64.b64encode(sim.astype("<f4").tobytes()).decode(),
            sim_calibrated_f32_b64=base64.b64encode(calibrated.astype("<f4").tobytes()).decode(),
            top5=[self.sentences.ids[i] for i in order[:5]],
            sentence_id=own,
            own_rank=(int(np.flatnonzero(np.asarray(self.sentences.ids)[order] == own)[0]) + 1)
            if own in self.sentences.ids
            else None,
            verb_class=verb,
            noun_classes=[int(c) for c in nouns],
        )

    def _video_choice(self, doc, clips, question, rec):
        n = len(doc.get("videos") or [])
        if n < 2:
            raise ItemError(f"video_choice item with {n} videos")
        answer = _answer_index(doc, n)
        types = (doc.get("metadata") or {}).get("types")
        if types not in (1, 2):
            raise ItemError(f"types {types!r} is neither 1 (inter) nor 2 (intra)")
        if not question.strip():
            raise ItemError("empty query text")
        videos = [self.video(clips, k, n) for k in range(n)]  # all decoded first: a bad clip costs no scoring
        prompt = PROMPTS["video_choice"]
        scores = [self._score(v, prompt, [question], rec)[0] for v in videos]
        rec.update(
            prompt=prompt,
            candidate=question,
            clip_scores=scores,
            pred=int(np.argmax(scores)),
            answer_index=answer,
            types=types,
        )
