"""EGTEA and SSv2 labels as first-person sentences (the camera wearer speaks).

egtea_sentence(verb, nouns, phrasing)     EGTEA action -> "I am <verb-ing> the <noun> [<prep> the <noun>]."
ssv2_sentence(template, placeholders)     SSv2 template + placeholders -> "I am spinning the cube that ..."
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.core.firstperson import fix_person, tidy
from pipeline.core.lexicon import DETERMINERS, PRONOUN_OBJECTS, inflect


@dataclass(frozen=True)
class ActionPhrasing:
    """How EGTEA labels read as English (data from templates.yaml): verb label -> phrase with "{0}" where the
    first noun goes, a one-noun variant ("put {0} down"), prepositions for noun slots 2.., noun phrases."""

    verbs: dict[str, str] = field(default_factory=dict)
    one_noun: dict[str, str] = field(default_factory=dict)
    prepositions: dict[str, list[str]] = field(default_factory=dict)  # by verb label
    action_prepositions: dict[str, list[str]] = field(default_factory=dict)  # by action label, wins over verb
    nouns: dict[str, str] = field(default_factory=dict)


def egtea_sentence(verb: str, nouns: list[str], phrasing: ActionPhrasing | None = None) -> str:
    """("Put", ["cup", "table"]) -> "I am putting the cup on the table." (progressive, first person)."""
    ph = phrasing or ActionPhrasing()
    nps = [ph.nouns.get(n, "the " + n.replace("_", " ")) for n in nouns]
    phrase = (ph.one_noun.get(verb) if len(nps) == 1 else None) or ph.verbs.get(verb)
    if phrase is None:  # "Divide/Pull Apart" -> "divide {0}"; a particle stays with its verb ("turn on {0}")
        phrase = verb.split("/")[0].strip().lower() + " {0}"
    if "{0}" not in phrase:
        phrase += " {0}"
    text = phrase.replace("{0}", nps[0] if nps else "").strip()
    preps = ph.action_prepositions.get(f"{verb} {','.join(nouns)}") or ph.prepositions.get(verb) or ["with"]
    for k, np in enumerate(nps[1:]):
        text += f" {preps[min(k, len(preps) - 1)]} {np}"
    head, _, rest = text.partition(" ")
    return tidy(f"I am {inflect(head, 'VBG')} {rest}")


_SLOT = re.compile(r"\[([^\]]*)\]")


def clean_placeholder(text: str) -> str:
    """Crowd-typed SSv2 placeholders carry stray quotes, backslashes, brackets and full stops."""
    text = "".join(ch for ch in text if ch.isprintable())
    text = re.sub(r"['’]{2,}|[\\\"`\[\]{}]", " ", text)
    text = re.sub(r"\s+", " ", text).strip(" .,;:'")
    return text or "something"


def noun_phrase(text: str) -> str:
    """A placeholder as a definite noun phrase unless it already has a determiner, number or is a pronoun."""
    words = text.split()
    first = words[0].lower()
    if (
        first in DETERMINERS
        or first[0].isdigit()
        or first in PRONOUN_OBJECTS
        or text.lower() in PRONOUN_OBJECTS
    ):
        return text
    return "the " + text


def ssv2_sentence(template: str, placeholders: list[str], slot_phrases: dict[str, str] | None = None) -> str:
    """("Spinning [something] that quickly stops spinning", ["cube"]) -> "I am spinning the cube that quickly
    stops spinning." Slots are filled in order; `slot_phrases` keeps what a descriptive slot said ("[something
    unbendable]" -> "{}, which cannot be bent,") when the placeholder does not already say it."""
    slots = _SLOT.findall(template)
    if len(slots) != len(placeholders):
        raise ValueError(f"{len(slots)} slots in {template!r} but {len(placeholders)} placeholders")
    parts, after_number = [], False
    for slot, raw in zip(slots, placeholders, strict=True):
        text = clean_placeholder(raw)
        np = text if after_number or slot == "number of" else noun_phrase(text)
        pattern = (slot_phrases or {}).get(slot)
        if pattern and not _says_already(text, slot):
            np = pattern.replace("{}", np)
        parts.append(np)
        after_number = slot == "number of"
    filled = iter(parts)
    body = _SLOT.sub(lambda _m: next(filled), template)
    body = body[0].lower() + body[1:]
    return tidy(fix_person(("I see " if template.startswith("[") else "I am ") + body))


def _says_already(placeholder: str, slot: str) -> bool:
    generic = {"something", "some", "thing", "things", "that", "many", "other", "already"}
    keys = {w for w in re.findall(r"[a-z]+", slot.lower()) if len(w) > 3 and w not in generic}
    return bool(keys & set(re.findall(r"[a-z]+", placeholder.lower()))) or placeholder.lower() == slot.lower()
