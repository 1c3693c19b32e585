"""exo2ego_model.prompt: the Mistral chat format with the video placeholder inside the first [INST] turn, labels on
the answers only, truncation that keeps answers and placeholder, and the inference prefix = the training prefix."""

from __future__ import annotations

import pytest

from exo2ego_model.prompt import (
    IGNORE_INDEX,
    VIDEO_TOKEN_INDEX,
    answer_ids,
    prompt_ids,
    tokenize_conversation,
)
from exo2ego_model.tiny import tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def show(tok, ids) -> str:
    """Decoded text with the placeholder id shown as "<video>"."""
    parts, start = [], 0
    for i, t in enumerate([*ids, VIDEO_TOKEN_INDEX]):
        if t == VIDEO_TOKEN_INDEX:
            parts.append(tok.decode(ids[start:i]))
            start = i + 1
    return "<video>".join(parts)


def targets(tok, ids, labels) -> str:
    return tok.decode([t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE_INDEX])


EGOIT = [
    {"from": "human", "value": "<video>\nWatch the video. What am I doing?"},
    {"from": "gpt", "value": "I am cutting an onion."},
    {"from": "human", "value": "And then?"},
    {"from": "gpt", "value": "I wash the knife."},
]


def test_two_turn_egoit_conversation_exact_string_and_labels(tok):
    ids, labels = tokenize_conversation(tok, EGOIT, 512)
    assert show(tok, ids) == (
        "<s>[INST] <video>\nWatch the video. What am I doing? [/INST] I am cutting an onion.</s>"
        "[INST] And then? [/INST] I wash the knife.</s>"
    )
    assert ids.count(VIDEO_TOKEN_INDEX) == 1 and ids[0] == tok.bos_token_id
    assert targets(tok, ids, labels) == " I am cutting an onion.</s> I wash the knife.</s>"
    # VideoLLaMA2's tokenizer_multimodal_token: text cut at the placeholder, each side tokenized on its own
    enc = lambda text: tok.encode(text, add_special_tokens=False)  # noqa: E731
    first_turn = [tok.bos_token_id, *enc("[INST] "), VIDEO_TOKEN_INDEX,
                  *enc("\nWatch the video. What am I doing? [/INST]")]  # fmt: skip
    assert ids[: len(first_turn)] == first_turn


@pytest.mark.parametrize(
    "human",
    ["Describe what the camera-wearer is doing.", "<video>\nDescribe what the camera-wearer is doing.",
     "Describe what the camera-wearer is doing. <video>"],
)  # fmt: skip
def test_placeholder_goes_to_the_start_of_the_first_user_turn(tok, human):
    """Ego-ExoClip captions have no "<video>": the placeholder is put first, as VideoLLaMA2 moves its marker."""
    ids, _ = tokenize_conversation(
        tok, [{"from": "human", "value": human}, {"from": "gpt", "value": "C."}], 512
    )
    assert show(tok, ids) == "<s>[INST] <video>\nDescribe what the camera-wearer is doing. [/INST] C.</s>"


def test_later_markers_and_a_leading_answer_are_dropped(tok):
    conv = [{"from": "gpt", "value": "Hello."}, {"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"},
            {"from": "human", "value": "<video>\nQ2"}, {"from": "gpt", "value": "A2"}]  # fmt: skip
    ids, labels = tokenize_conversation(tok, conv, 512)
    assert show(tok, ids) == "<s>[INST] <video>\nQ1 [/INST] A1</s>[INST] Q2 [/INST] A2</s>"
    with pytest.raises(ValueError, match="no user turn"):
        tokenize_conversation(tok, [{"from": "gpt", "value": "x"}], 16)
    with pytest.raises(ValueError, match="from='system'"):
        tokenize_conversation(tok, [{"from": "system", "value": "x"}], 16)


def test_truncation_keeps_bos_placeholder_and_answers(tok):
    conv = [{"from": "human", "value": "<video>\n" + "x" * 60}, {"from": "gpt", "value": "short answer"}]
    ids, labels = tokenize_conversation(
        tok, conv, 26
    )  # bos, placeholder, 2 x, " [/INST]" (8), answer + eos (14)
    assert len(ids) == 26 and ids[0] == tok.bos_token_id and ids.count(VIDEO_TOKEN_INDEX) == 1
    assert targets(tok, ids, labels) == " short answer</s>"
    assert show(tok, ids) == "<s><video>xx [/INST] short answer</s>"  # dropped from the left: [/INST] stays
    # the targets alone do not fit: cut at the end, no eos forced (a cut answer must not teach stopping there)
    ids, labels = tokenize_conversation(tok, [conv[0], {"from": "gpt", "value": "y" * 40}], 16)
    assert len(ids) == 16 and tok.eos_token_id not in ids and ids[-1] == labels[-1] == tok.convert_tokens_to_ids("y")
    assert ids[:2] == [tok.bos_token_id, VIDEO_TOKEN_INDEX]


def test_inference_prefix_is_the_training_prefix(tok):
    """prompt_ids (generate / score) = the training ids up to the first answer token, for a question and for a
    conversation ending with a user turn."""
    ids, labels = tokenize_conversation(tok, EGOIT[:2], 512)
    first = next(i for i, lab in enumerate(labels) if lab != IGNORE_INDEX)
    assert prompt_ids(tok, EGOIT[0]["value"]) == ids[:first]
    assert prompt_ids(tok, "Watch the video. What am I doing?") == ids[:first]  # with or without "<video>\n"
    ids, labels = tokenize_conversation(tok, EGOIT, 512)
    last = max(i for i, lab in enumerate(labels) if lab == IGNORE_INDEX)
    assert prompt_ids(tok, EGOIT[:3]) == ids[: last + 1]
    with pytest.raises(ValueError, match="end with a user turn"):
        prompt_ids(tok, EGOIT[:2])


class PrefixSpace:
    """A SentencePiece-like tokenizer: every standalone encode starts with a "▁" id (here 99), as Llama's and
    Mistral's do; in-context text gets no extra one."""

    def __init__(self, tok):
        self.tok, self.bos_token_id, self.eos_token_id = tok, tok.bos_token_id, tok.eos_token_id

    def encode(self, text, add_special_tokens=False):
        return [99, *self.tok.encode(text, add_special_tokens=False)]


def test_answers_tokenize_as_after_inst_not_standalone(tok):
    """VideoLLaMA2 tokenizes "[/INST] answer" in one string: the answer gets no second "▁" id."""
    sp = PrefixSpace(tok)
    assert answer_ids(sp, "I cut.") == tok.encode(" I cut.", add_special_tokens=False)
    assert answer_ids(tok, "I cut.") == tok.encode(
        " I cut.", add_special_tokens=False
    )  # byte-level: the same
    ids, labels = tokenize_conversation(sp, EGOIT[:2], 512)
    assert [t for t in labels if t != IGNORE_INDEX] == [
        *tok.encode(" I am cutting an onion."),
        tok.eos_token_id,
    ]
