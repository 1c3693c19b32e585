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

from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedTokenizerBase

from .model import Exo2EgoModel
from .prompt import VIDEO_TOKEN_INDEX, answer_ids, prompt_ids
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
    video: torch.Tensor | None,
    prompt: str | Sequence[dict],
    *,
    view: str = "ego",
    visual_input: str | None = None,
) -> torch.Tensor:
    """The LLM input before the answer: prompt ids with the clip's visual tokens spliced in, [1, S, D];
    video=None: the prompt's text alone (the video placeholder dropped)."""
    if view not in VIEWS:
        raise ValueError(f"view={view!r}: expected one of {VIEWS}")
    device = model.llm.get_input_embeddings().weight.device
    if video is None:
        ids = [t for t in prompt_ids(tokenizer, prompt) if t != VIDEO_TOKEN_INDEX]
        return model.llm.get_input_embeddings()(torch.tensor([ids], device=device))
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
    video: torch.Tensor | None,
    prompt: str | Sequence[dict],
    candidates: Sequence[str],
    *,
    reduction: str = "mean",
    with_eos: bool = True,
    view: str = "ego",
    visual_input: str | None = None,
    chunk_size: int = 64,
    shared_prefix: bool = True,
) -> list[float]:
    """Log-likelihood of each candidate answer given the clip and the prompt, one float per candidate.

    reduction "mean" (default): mean log-probability per answer token = minus the LM loss on that answer, so
    ranking by max score is EgoPlan's protocol (argmin LM loss over the options); "sum": the total
    log-probability. The answer tokens are those of a training target (" {answer}" + eos; with_eos=False
    leaves eos out). video=None: the same prompt with no video (its placeholder dropped): log p(answer | no
    video), the answer's prior under the LM (EPIC MIR's calibrated score subtracts it).

    The video + prompt prefix goes through the LLM once, and its key/value cache is never copied per candidate:
    each chunk of `chunk_size` candidates is packed into ONE row after the prefix (batch 1, the prefix cache as
    it is), with a block attention mask (every candidate token sees the whole prefix and the earlier tokens of
    its own candidate, nothing of the others) and position ids that restart after the prefix for each
    candidate; the chunk's keys are cropped off the cache afterwards. shared_prefix=False is the reference
    (and `make bench-eval`'s baseline): a full forward over [prefix, candidate] per candidate, right-padded
    batches of `chunk_size`, the prefix re-encoded each time; both agree within floating-point tolerance
    (tests/test_inference.py).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction={reduction!r}: expected mean or sum")
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size}: must be >= 1")
    cand = [candidate_ids(tokenizer, c, with_eos) for c in candidates]
    if not cand or any(not ids for ids in cand):
        raise ValueError(f"candidates={list(candidates)!r}: need at least one, each with at least one token")
    results: list[float] = []
    with _eval(model):
        embeds_1SD = prefix_embeds(model, tokenizer, video, prompt, view=view, visual_input=visual_input)
        if shared_prefix:
            # a cache of full (never windowed) layers, whatever the config's sliding_window: the chunks' keys
            # are cropped off it after each chunk, and the mask below applies the window itself
            out = model.llm(inputs_embeds=embeds_1SD, cache=DynamicCache(), use_cache=True, logits_to_keep=1)
            last_V = out.logits[0, -1].float()
        for lo in range(0, len(cand), chunk_size):
            chunk = cand[lo : lo + chunk_size]
            if shared_prefix:
                total_K, lengths_K = _score_packed(model, chunk, last_V, out.cache, embeds_1SD)
            else:
                total_K, lengths_K = _score_reencoded(model, tokenizer, chunk, embeds_1SD)
            results += [float(v) for v in (total_K / lengths_K if reduction == "mean" else total_K)]
    return results


def _score_packed(model, chunk, last_V, cache, embeds_1SD) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed log-probability, length) of each candidate of the chunk after the cached prefix: token 0 of every
    candidate is predicted by the prefix's last logits, token t > 0 by the logits after its token t - 1 (the
    last token is never fed), all fed as one packed row."""
    device, S = embeds_1SD.device, embeds_1SD.shape[1]
    fed = [ids[:-1] for ids in chunk]
    T = sum(len(f) for f in fed)
    total_K = F.log_softmax(last_V, dim=-1)[torch.tensor([ids[0] for ids in chunk], device=device)]
    if T:
        ids_1T = torch.tensor([[t for f in fed for t in f]], device=device)
        block_T = torch.cat([torch.full((len(f),), k, device=device) for k, f in enumerate(fed) if f])
        step_T = torch.cat([torch.arange(len(f), device=device) for f in fed if f])
        # additive mask [1, 1, T, S + T]: the prefix for all; within the packed row, own candidate, causal
        own_TT = (block_T[:, None] == block_T[None]) & (step_T[:, None] >= step_T[None])
        allowed = torch.cat([torch.ones(T, S, dtype=torch.bool, device=device), own_TT], dim=1)
        window = getattr(model.llm.config, "sliding_window", None)
        if window:  # Mistral's sliding window, as a full forward applies it: query - key position < window
            key_pos = torch.cat([torch.arange(S, device=device), S + step_T])
            allowed &= (S + step_T)[:, None] - key_pos[None] < window
        mask = torch.zeros(allowed.shape, dtype=embeds_1SD.dtype, device=device)
        mask = mask.masked_fill(~allowed, torch.finfo(embeds_1SD.dtype).min)[None, None]
        logits_TV = (
            model.llm(
                input_ids=ids_1T,
                position_ids=(S + step_T)[None],
                attention_mask=mask,
                cache=cache,
                use_cache=True,
            )
            .logits[0]
            .float()
        )
        cache.crop(-T)  # back to the prefix alone for the next chunk
        target_T = torch.tensor([t for ids in chunk for t in ids[1:]], device=device)
        logp_T = F.log_softmax(logits_TV, dim=-1).gather(1, target_T[:, None])[:, 0]
        total_K = total_K.index_add(0, block_T, logp_T)
    lengths_K = torch.tensor([len(ids) for ids in chunk], device=device, dtype=torch.float32)
    return total_K, lengths_K


def _score_reencoded(model, tokenizer, chunk, embeds_1SD) -> tuple[torch.Tensor, torch.Tensor]:
    """_score_packed's result from one forward over [prefix, candidate] per candidate (right-padded batch)."""
    device = embeds_1SD.device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    K, Lc = len(chunk), max(len(ids) for ids in chunk)
    cand_KL = torch.full((K, Lc), pad, dtype=torch.long, device=device)
    for k, ids in enumerate(chunk):
        cand_KL[k, : len(ids)] = torch.tensor(ids, device=device)
    text_KLD = model.llm.get_input_embeddings()(cand_KL[:, :-1]).to(embeds_1SD.dtype)
    embeds = torch.cat([embeds_1SD.expand(K, -1, -1), text_KLD], dim=1)
    logits_KLV = model.llm(inputs_embeds=embeds, logits_to_keep=Lc).logits.float()
    logp_KL = F.log_softmax(logits_KLV, dim=-1).gather(2, cand_KL[..., None])[..., 0]
    lengths_K = torch.tensor([len(ids) for ids in chunk], device=device)
    total_K = (logp_KL * (torch.arange(Lc, device=device)[None] < lengths_K[:, None])).sum(dim=1)
    return total_K, lengths_K.float()


@torch.no_grad()
def clip_embedding(
    model: Exo2EgoModel, video: torch.Tensor, *, visual_input: str | None = None
) -> torch.Tensor:
    """A cheap clip vector, [D]: the clip's visual tokens (vision tower + connector, as the LLM gets them),
    mean-pooled and L2-normalised; no LLM pass. With text_embeddings: EPIC MIR's shortlist similarity."""
    with _eval(model):
        device = model.llm.get_input_embeddings().weight.device
        visual_1ND = model.visual_tokens(ego_BTCHW=_clip(video, device), visual_input=visual_input)
        return F.normalize(visual_1ND[0].float().mean(dim=0), dim=0)


@torch.no_grad()
def text_embeddings(
    model: Exo2EgoModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]
) -> torch.Tensor:
    """Cheap sentence vectors, [N, D]: the mean of each answer's LLM input embeddings (the table lookup, no
    LLM pass), L2-normalised, in the space the connector maps the clip into."""
    table = model.llm.get_input_embeddings().weight
    rows = [
        table[torch.tensor(answer_ids(tokenizer, t) or [tokenizer.eos_token_id], device=table.device)]
        for t in texts
    ]
    return F.normalize(torch.stack([r.float().mean(dim=0) for r in rows]), dim=1)
