"""Tiny, randomly initialised stand-ins for the real checkpoints, built in code (nothing is downloaded).

Tests and the CPU smoke run use them through exactly the same code paths as the real models: a byte-level
tokenizer (every UTF-8 string encodes, no merges to learn) and small configs of the real architectures.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level tokenizer with 260 tokens: 4 specials + the 256 byte symbols."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *alphabet])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def tiny_vision_config(image_size: int):
    """A 2-layer CLIP ViT (hidden 32, patch 8): the real tower's architecture at a size a CPU test affords."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(image_size=image_size, patch_size=8, hidden_size=32, intermediate_size=64,
                            num_hidden_layers=2, num_attention_heads=2)  # fmt: skip


def tiny_llm_config(vocab_size: int):
    """A 2-layer Mistral (hidden 64, GQA 4 query / 2 key-value heads); special ids match `tiny_tokenizer`.

    initializer_range 0.2 instead of Mistral's 0.02: at 0.02 a random LLM predicts a near-uniform
    distribution whatever its input, so stages that keep it frozen (1 and 2) could barely lower VTG
    (optimising free prefix embeddings directly: 5.55 -> 5.46, measured). At 0.2 it reacts to its prefix.
    """
    from transformers import MistralConfig

    return MistralConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
    )
