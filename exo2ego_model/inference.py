"""Inference on one clip: greedy answers (`generate`) and answer likelihoods (`score`).

As at inference in the paper only ego video goes in: the LLM sees cat[connector(x), connector(F(x))] (or
connector(x) with visual_input="x"); view="exo" gives the teacher's connector(y) instead. The prompt is built by
prompt.prompt_ids, the very function that builds the training prefix, so a question asked here yields the ids a
training sample has up to its answer:

    <s>[INST] <video tokens>\\n{question} [/INST]

`video`: frames_TCHW or frames_BTCHW with B = 1, uint8 (normalised here) or already CLIP-normalised floats.
`prompt`: a question, or a conversation ([{from, value}, ...]) ending with a user turn.
Both functions run in eval mode (no LoRA dropout) and restore the model's mode afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from .model import Exo2EgoModel
from .prompt import answer_ids, prompt_ids
from .video import normalize

VIEWS = ("ego", "exo")


@contextmanager
def _eval(model: Exo2EgoModel):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _clip(video: torch.Tensor, device: torch.device) -> torch.Tensor:
    if video.dim() == 4:
        video = video.unsqueeze(0)
    if video.dim() != 5 or video.shape[0] != 1:
        raise ValueError(f"one clip expected (TCHW or 1TCHW), got shape {tuple(video.shape)}")
    video = video.to(device)
    return normalize(video) if video.dtype == torch.uint8 else video


def prefix_embeds(
    model: Exo2EgoModel,
    tokenizer: PreTrainedTokenizerBase,
    video: torch.Tensor,
    prompt: str | Sequence[dict],
    *,
    view: str = "ego",
    visual_input: str | None = None,
) -> torch.Tensor:
    """The LLM input before the answer: prompt ids with the clip's visual tokens spliced in, [1, S, D]."""
    if view not in VIEWS:
        raise ValueError(f"view={view!r}: expected one of {VIEWS}")
    device = model.llm.get_input_embeddings().weight.device
    clip_1TCHW = _clip(video, device)
    if view == "ego":
        visual_1ND = model.visual_tokens(ego_BTCHW=clip_1TCHW, visual_input=visual_input)
    else:
        visual_1ND = model.visual_tokens(exo_BTCHW=clip_1TCHW)
    ids_1L = torch.tensor([prompt_ids(tokenizer, prompt)], device=device)
    return model.splice(visual_1ND, ids_1L)["embeds_BSD"]


@torch.no_grad()
def generate_ids(
    model: Exo2EgoModel,
    tokenizer: PreTrainedTokenizerBase,
    video: torch.Tensor,
    prompt: str | Sequence[dict],
    *,
    max_new_tokens: int = 64,
    view: str = "ego",
    visual_input: str | None = None,
) -> list[int]:
    """Greedy decoding with a key/value cache; the new token ids, up to (not including) eos."""
    with _eval(model):
        embeds_1SD = prefix_embeds(model, tokenizer, video, prompt, view=view, visual_input=visual_input)
        out = model.llm(inputs_embeds=embeds_1SD, use_cache=True, logits_to_keep=1)
        new: list[int] = []
        while len(new) < max_new_tokens:
            token = int(out.logits[0, -1].argmax())
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
            if len(new) < max_new_tokens:
                step_11 = torch.tensor([[token]], device=embeds_1SD.device)
                out = model.llm(input_ids=step_11, cache=out.cache, use_cache=True, logits_to_keep=1)
        return new


def generate(model: Exo2EgoModel, tokenizer: PreTrainedTokenizerBase, video: torch.Tensor,
             prompt: str | Sequence[dict], **options) -> str:  # fmt: skip
    """Greedy answer to `prompt` about one clip, decoded without special tokens; options as generate_ids'
    (max_new_tokens, view, visual_input)."""
    ids = generate_ids(model, tokenizer, video, prompt, **options)
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


def candidate_ids(tokenizer: PreTrainedTokenizerBase, candidate: str, with_eos: bool = True) -> list[int]:
    """A candidate answer's ids exactly as a training target: " {answer}" then eos."""
    ids = answer_ids(tokenizer, candidate)
    return [*ids, tokenizer.eos_token_id] if with_eos else ids


@torch.no_grad()
def score(
    model: Exo2EgoModel,
    tokenizer: PreTrainedTokenizerBase,
    video: torch.Tensor,
    prompt: str | Sequence[dict],
    candidates: Sequence[str],
    *,
    reduction: str = "mean",
    with_eos: bool = True,
    view: str = "ego",
    visual_input: str | None = None,
    chunk_size: int = 64,
) -> list[float]:
    """Log-likelihood of each candidate answer given the clip and the prompt, one float per candidate.

    reduction "mean" (default): mean log-probability per answer token = minus the LM loss on that answer, so
    ranking by max score is EgoPlan's protocol (argmin LM loss over the options); "sum": the total
    log-probability. The answer tokens are those of a training target (" {answer}" + eos; with_eos=False
    leaves eos out). The video + prompt prefix goes through the LLM once; its key/value cache is repeated
    over the candidates, which then run as right-padded batches of `chunk_size` (padding comes after every
    real token, so under the causal mask it changes nothing that is read; the cache is copied per chunk, so
    memory grows with cache x chunk_size, not with the number of candidates: EPIC-100's 3,842 sentences).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction={reduction!r}: expected mean or sum")
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size}: must be >= 1")
    cand = [candidate_ids(tokenizer, c, with_eos) for c in candidates]
    if not cand or any(not ids for ids in cand):
        raise ValueError(f"candidates={list(candidates)!r}: need at least one, each with at least one token")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    results: list[float] = []
    with _eval(model):
        embeds_1SD = prefix_embeds(model, tokenizer, video, prompt, view=view, visual_input=visual_input)
        out = model.llm(inputs_embeds=embeds_1SD, use_cache=True, logits_to_keep=1)
        last_11V = out.logits[:, -1:].float()
        chunks = [cand[lo : lo + chunk_size] for lo in range(0, len(cand), chunk_size)]
        for chunk in chunks:
            # one chunk may use the prefix cache itself; several need their own copy of it
            cache = out.cache if len(chunks) == 1 else copy.deepcopy(out.cache)
            total_K, lengths_K = _score_chunk(model, chunk, last_11V, cache, pad, embeds_1SD.device)
            result_K = total_K / lengths_K if reduction == "mean" else total_K
            results += [float(v) for v in result_K]
    return results


def _score_chunk(model, chunk, last_11V, cache, pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed log-probability, length) of each candidate of the chunk after the prefix (its cache and the
    logits of its last position)."""
    K, Lc = len(chunk), max(len(ids) for ids in chunk)
    cand_KL = torch.full((K, Lc), pad, dtype=torch.long, device=device)
    for k, ids in enumerate(chunk):
        cand_KL[k, : len(ids)] = torch.tensor(ids, device=device)
    # position 0 of every candidate is predicted by the prefix's last logits; position t > 0 by the logits
    # after feeding candidate token t - 1 (so the last token is never fed)
    logits_KLV = last_11V.expand(K, 1, -1)
    if Lc > 1:
        cache.batch_repeat_interleave(K)
        rest = model.llm(input_ids=cand_KL[:, :-1], cache=cache, use_cache=True).logits.float()
        logits_KLV = torch.cat([logits_KLV, rest], dim=1)
    logp_KL = F.log_softmax(logits_KLV, dim=-1).gather(2, cand_KL[..., None])[..., 0]
    lengths_K = torch.tensor([len(ids) for ids in chunk], device=device)
    valid_KL = torch.arange(Lc, device=device)[None] < lengths_K[:, None]
    return (logp_KL * valid_KL).sum(dim=1), lengths_K
