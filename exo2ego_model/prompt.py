"""Conversation -> token ids for training and inference: one Mistral-Instruct chat format, the video inside it.

The sequence (VideoLLaMA2's Mistral layout, videollama2/train.py `preprocess` + mm_utils
`tokenizer_multimodal_token`; no system prompt on either side):

    <s>[INST] <video>\\n{first question} [/INST] {answer}</s>[INST] {question} [/INST] {answer}</s>...

`<video>` is not text: it becomes ONE id, VIDEO_TOKEN_INDEX (VideoLLaMA2's MODAL_INDEX_MAP["<video>"] = -201,
never a vocabulary id), which the model replaces by the clip's visual token embeddings (Exo2EgoModel.splice).
As in VideoLLaMA2 the text is cut at the placeholder and each side is tokenized on its own, so "[INST] " keeps
its trailing space token and the question starts with "\\n".

Training (`tokenize_conversation`) and inference (`prompt_ids`) build the prefix with the same function, so the
ids a model sees before its answer are identical in both (tests/test_inference.py checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice

IGNORE_INDEX = -100  # labels ignored by torch's cross-entropy
VIDEO_TOKEN_INDEX = -201  # the placeholder id of the visual tokens (VideoLLaMA2's MODAL_INDEX_MAP["<video>"])
VIDEO_PLACEHOLDER = "<video>"  # VideoLLaMA2's marker in the first human turn (EgoIT conversations carry it)
# One user turn. bos comes from the tokenizer, not from this string; the first turn's prompt starts with the
# placeholder ("<video>\n{question}").
PROMPT_TEMPLATE = "[INST] {prompt} [/INST]"
ANSWER_TEMPLATE = (
    " {answer}"  # followed by the eos id (not text: "</s>" must not depend on the tokenizer's parsing)
)
USER_ROLES, ASSISTANT_ROLES = ("human", "user"), ("gpt", "assistant")


def answer_ids(tokenizer, answer: str) -> list[int]:
    """The ids of " {answer}" as it tokenizes right after "[/INST]", as in VideoLLaMA2's whole-string encoding.

    Encoded alone, SentencePiece tokenizers (Mistral's) prepend their own "▁" to " {answer}", giving an extra
    space token the chat template never produces; encoding "[/INST] {answer}" and removing the ids of "[/INST]"
    avoids that, and gives the same ids as encoding " {answer}" for byte-level tokenizers.
    """
    text = ANSWER_TEMPLATE.format(answer=answer)
    context = tokenizer.encode("[/INST]", add_special_tokens=False)
    both = tokenizer.encode("[/INST]" + text, add_special_tokens=False)
    if both[: len(context)] == context and len(both) > len(context):
        return both[len(context) :]
    return tokenizer.encode(text, add_special_tokens=False)  # "[/INST]" merged with the answer: no clean cut


def _user_pieces(tokenizer, text: str, first: bool) -> list[tuple[list[int], bool]]:
    """[(ids, protected)] of one user turn. The first turn carries the placeholder (protected: truncation never
    drops it); VideoLLaMA2 moves a `<video>` found anywhere in the turn to its start, and so do we."""
    question = text.replace(VIDEO_PLACEHOLDER, "").strip()
    if not first:
        return [(tokenizer.encode(PROMPT_TEMPLATE.format(prompt=question), add_special_tokens=False), False)]
    prompt = VIDEO_PLACEHOLDER + ("\n" + question if question else "")  # empty: "[INST] <video> [/INST]"
    before, after = PROMPT_TEMPLATE.format(prompt=prompt).split(VIDEO_PLACEHOLDER)
    return [
        (tokenizer.encode(before, add_special_tokens=False), False),
        ([VIDEO_TOKEN_INDEX], True),
        (tokenizer.encode(after, add_special_tokens=False), False),
    ]


def _pieces(tokenizer, conversations: Sequence[dict]) -> list[tuple[list[int], bool, bool]]:
    """[(ids, is_target, protected)] of a conversation: bos, then the turns in order."""
    turns = list(conversations)
    while turns and turns[0]["from"] in ASSISTANT_ROLES:  # VideoLLaMA2 skips a leading assistant turn
        turns = turns[1:]
    if not turns:
        raise ValueError("conversation has no user turn")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pieces: list[tuple[list[int], bool, bool]] = [] if bos is None else [([bos], False, True)]
    first = True
    for turn in turns:
        role = turn["from"]
        if role in USER_ROLES:
            pieces += [(ids, False, prot) for ids, prot in _user_pieces(tokenizer, turn["value"], first)]
            first = False
        elif role in ASSISTANT_ROLES:
            pieces.append(([*answer_ids(tokenizer, turn["value"]), eos], True, False))
        else:
            raise ValueError(f"turn from={role!r}: expected one of {USER_ROLES + ASSISTANT_ROLES}")
    return pieces


def tokenize_conversation(tokenizer, conversations: Sequence[dict], max_tokens: int) -> tuple[list, list]:
    """(input ids, labels) of `<s>[INST] <video>\\n q [/INST] a</s>[INST] q [/INST] a</s>...`.

    input ids hold exactly one VIDEO_TOKEN_INDEX, in the first user turn (whether that turn starts with
    "<video>\\n", as EgoIT / VideoLLaMA2 conversations do, or not, as Ego-ExoClip caption prompts).
    Labels are IGNORE_INDEX everywhere except the answers and their eos. Each piece is encoded on its own
    (add_special_tokens=False) so that the label boundaries are exact.
    max_tokens counts text ids, the placeholder included (it stands for the visual tokens, which are not counted).
    Truncation keeps the targets: prompt tokens (never bos, never the placeholder) are dropped first, from the
    left, so the `[/INST]` marker stays next to its answer; only if the targets alone do not fit is the sequence
    cut at the end, with no eos put back: a cut answer must not teach the model to stop mid-answer (its last
    target is the last token that fits).
    """
    ids: list[int] = []
    target: list[bool] = []
    protected: list[bool] = []
    for piece, is_target, prot in _pieces(tokenizer, conversations):
        ids += piece
        target += [is_target] * len(piece)
        protected += [prot] * len(piece)
    excess = len(ids) - max_tokens
    if excess > 0:
        droppable = (i for i in range(len(ids)) if not target[i] and not protected[i])
        drop = set(islice(droppable, excess))
        keep = [i for i in range(len(ids)) if i not in drop]
        ids, target = [ids[i] for i in keep], [target[i] for i in keep]
    if len(ids) > max_tokens:
        ids, target = ids[:max_tokens], target[:max_tokens]
    labels = [t if is_target else IGNORE_INDEX for t, is_target in zip(ids, target, strict=True)]
    return ids, labels


def prompt_ids(tokenizer, prompt: str | Sequence[dict]) -> list[int]:
    """The ids the model sees before it answers: a question (str) or a conversation ending with a user turn
    (earlier answers included). Exactly the prefix `tokenize_conversation` builds for training."""
    conversations = [{"from": "human", "value": prompt}] if isinstance(prompt, str) else list(prompt)
    if not conversations or conversations[-1]["from"] not in USER_ROLES:
        raise ValueError("prompt_ids: the conversation must end with a user turn")
    return [t for piece, _, _ in _pieces(tokenizer, conversations) for t in piece]
