"""Greedy answer generation from an ego clip, as at inference in the paper: only ego video goes in.

The LLM receives [projector(cat[x, F(x)]), prompt embeddings] (the same layout as training: visual tokens
first) and decodes greedily. Used by the benchmark evaluator.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

from .model import Exo2EgoModel

# Mistral-7B-Instruct's chat format, the same turn layout as training (data.PROMPT_TEMPLATE; tests check it).
DEFAULT_PROMPT_TEMPLATE = "[INST] {question} [/INST]"


@torch.no_grad()
def generate(
    model: Exo2EgoModel,
    tokenizer: PreTrainedTokenizerBase,
    ego_BTCHW: torch.Tensor,
    question: str,
    *,
    max_new_tokens: int = 64,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
) -> str:
    """Answer `question` about one ego clip (ego_BTCHW with B = 1, or TCHW). Returns the decoded new text."""
    if ego_BTCHW.dim() == 4:
        ego_BTCHW = ego_BTCHW.unsqueeze(0)
    if ego_BTCHW.shape[0] != 1:
        raise ValueError(f"generate takes one clip, got a batch of {ego_BTCHW.shape[0]}")
    was_training = model.training
    model.eval()  # no dropout (LoRA) while decoding
    try:
        embed = model.llm.get_input_embeddings()
        device = embed.weight.device
        visual_1ND = model.visual_tokens(ego_BTCHW=ego_BTCHW.to(device))
        prompt = prompt_template.format(question=question)
        # bos + prompt pieces, exactly as data.tokenize_conversation builds a training sequence (it encodes
        # without special tokens and prepends bos itself; tokenizers differ on whether they add one).
        ids = tokenizer.encode(prompt, add_special_tokens=False)
        if tokenizer.bos_token_id is not None:
            ids = [tokenizer.bos_token_id, *ids]
        input_ids_1L = torch.tensor([ids], device=device)
        text_1LD = embed(input_ids_1L)
        embeds_1LD = torch.cat([visual_1ND.to(text_1LD.dtype), text_1LD], dim=1)
        mask_1L = torch.ones(embeds_1LD.shape[:2], dtype=torch.long, device=device)
        # With inputs_embeds and no input_ids, a decoder-only generate returns only the new tokens.
        new_ids_1L = model.llm.generate(
            inputs_embeds=embeds_1LD,
            attention_mask=mask_1L,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        return tokenizer.decode(new_ids_1L[0], skip_special_tokens=True).strip()
    finally:
        model.train(was_training)
