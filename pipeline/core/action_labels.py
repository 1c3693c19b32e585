"""Bare action labels (EPIC-KITCHENS "take plate", EGTEA "Cut tomato", EgoPlan steps and goals) as the camera
wearer's own sentences, in the simple present: "take plate" -> "I take the plate.", "Inspect/Read recipe" -> "I
inspect the recipe.", "pouring milk into one glass" -> "I pour the milk into one glass.".

    label_first_person(label)   the rule below; "" for an empty label

The rule: "I" + the label with its verbs in the base form (a gerund "taking out" -> "take out"); a noun phrase
without a determiner, number or pronoun gets "the" where it is the object of a verb, a particle or a preposition
("put potatoes in pan" -> "put the potatoes in the pan"), "my" where it is a bare body part ("dry hands" -> "dry
my hands", "stretch right leg" -> "stretch my right leg"), and nothing after "of" when it is a mass noun or a plural
("bag of flour") or after "with"/"using" when it is a mass noun that ends its phrase ("with oil", but "with the
paper towel"). Coordinated verbs share
the subject ("take and wash knives" -> "I take and wash the knives."); a list of three or more comma-separated
steps gets "and" before its last; a doubled word is written once ("put down down knife"). Slashed alternatives keep the first ("Clean/Wipe" -> "clean"); EGTEA's
"Put trash,trash_container" lists the nouns: the first is the object, the others take per-verb prepositions; a
verb class "Other" is "do something with" its nouns; a repeated noun is "one ... the other" ("Transfer egg,hand,hand" -> "transfer the egg from one hand to the other").
"""

from __future__ import annotations

import re

from lemminflect import getAllLemmas

from pipeline.core.firstperson import tidy
from pipeline.core.lexicon import (
    BODY_PARTS,
    DETERMINERS,
    PARTICLES,
    PREPOSITIONS,
    PRONOUN_OBJECTS,
    base_form,
    is_adverb,
    verb_tags,
)
from pipeline.core.narration import has_noun, is_word, join, tokens

# EGTEA's multi-noun actions: the prepositions of nouns 2, 3, ... (the last repeats), by verb
NOUN_PREPOSITIONS = {"put": ["in"], "pour": ["from", "into"], "spread": ["on", "with"], "squeeze": ["onto"],
                     "take": ["from"], "mix": ["with"], "cut": ["with"], "wash": ["with"],
                     "transfer": ["from", "to"]}  # fmt: skip
GERUND_VERBS = frozenset(["start", "stop", "keep", "continue", "finish", "begin", "try", "avoid"])
INFINITIVE_VERBS = frozenset(
    ["prepare", "try", "want", "need", "start", "begin", "continue", "wait", "forget", "remember"]
)
CONTAINERS = frozenset(
    [
        "bag",
        "bags",
        "bottle",
        "bottles",
        "box",
        "boxes",
        "jar",
        "jars",
        "packet",
        "packets",
        "pack",
        "can",
        "tin",
        "cup",
        "cups",
        "glass",
        "bowl",
        "piece",
        "pieces",
        "slice",
        "slices",
        "bunch",
        "handful",
        "pinch",
        "carton",
        "sachet",
        "spoonful",
    ]
)
SIDED_PARTS = frozenset(
    ["leg", "legs", "foot", "feet", "knee", "knees", "shoulder", "elbow", "eye", "ear", "cheek"]
)  # "right leg"
PURE_PARTICLES = frozenset(["up", "down", "out", "away", "back", "aside", "together", "apart", "around"])
MASS_NOUNS = frozenset(
    [
        "water",
        "milk",
        "oil",
        "salt",
        "sugar",
        "flour",
        "rice",
        "pasta",
        "butter",
        "cheese",
        "bread",
        "coffee",
        "tea",
        "juice",
        "food",
        "meat",
        "sauce",
        "soap",
        "pepper",
        "dough",
        "wine",
        "beer",
        "cereal",
        "soup",
        "honey",
        "jam",
        "yogurt",
        "yoghurt",
        "cream",
        "spinach",
        "lettuce",
        "garlic",
        "ginger",
        "paper",
        "foil",
        "tape",
    ]
)
_OBJECT_STARTS = DETERMINERS | PRONOUN_OBJECTS | {"", "my", "his", "her", "its", "their"}
LEAD = frozenset(["then", "next", "now", "again", "also", "still", "just", "first", "finally"])
_SLASH = re.compile(r"\b(\w+)(?:/\w+)+(?:\s+(?:apart|around|off|up|down|out))?\b", re.I)
_DOUBLED = re.compile(r"\b(\w+)(?:\s+\1\b)+", re.I)  # "put down down knife", "storage_container_container"
_OTHER = re.compile(r"Other\s+([a-z_]+(?:,[a-z_]+)*)")
_EGTEA_NOUNS = re.compile(r"(.+?)\s+(\w+(?:,\w+)+)")


def label_first_person(label: str) -> str:
    """See the module docstring."""
    text = " ".join(str(label).replace("_", " ").split()).strip().rstrip(".")
    if not text:
        return ""
    if m := _OTHER.fullmatch(str(label).strip()):  # EGTEA's catch-all verb class: "Other pot,water"
        text = "do something with " + " and ".join(
            "the " + n.replace("_", " ") for n in m.group(1).split(",")
        )
    elif m := _EGTEA_NOUNS.fullmatch(str(label).strip()):
        verb, nouns = m.group(1), [n.replace("_", " ") for n in m.group(2).split(",")]
        preps = NOUN_PREPOSITIONS.get(_SLASH.sub(r"\1", verb).split()[0].lower(), ["with"])
        extra = [f"{preps[min(k, len(preps) - 1)]} {n}" for k, n in enumerate(nouns[1:])]
        if len(nouns) == 3 and nouns[1] == nouns[2]:  # "Transfer eating_utensil,hand,hand"
            extra = [f"{preps[0]} one {nouns[1]}", f"{preps[min(1, len(preps) - 1)]} the other"]
        verb, _, particle = _SLASH.sub(r"\1", verb).partition(" ")
        if particle.lower() in (
            "around",
            "apart",
        ):  # "Move Around mixture,utensil" -> "move mixture around with"
            nouns[0], particle = f"{nouns[0]} {particle.lower()}", ""
        text = " ".join([verb, particle, nouns[0], *extra])
    text = _DOUBLED.sub(lambda m: m.group(0) if m.group(1).lower() in ("had", "that") else m.group(1), text)
    text = _SLASH.sub(r"\1", text)
    segments = [tokens(s) for s in text.split(",") if s.strip()]
    out: list[str] = []
    for k, seg in enumerate(segments):
        if k:
            out.append(",")
            if seg[0].lower() == "and":
                seg = seg[1:]
            if k == len(segments) - 1 and len(segments) > 2:
                out.append("and")
        first = seg[0].lower() if seg else ""
        listed = k and ("VB" not in verb_tags(first) or len(seg) == 1 and has_noun(first))
        out += seg if listed else _verb_phrase(seg)  # "Rinse spatula, fork, and knife": nouns go on
    return tidy(join(["I", *out]))


def _verb_phrase(toks: list[str]) -> list[str]:
    """One step: base-form verbs, "the"/"my" in front of bare objects."""
    toks = [t for t in toks if t]
    out: list[str] = []
    i = 0
    while i < len(toks) - 1 and toks[i].lower() in LEAD:
        out.append(toks[i].lower())
        i += 1
    if i >= len(toks):
        return out
    verb = _base(toks[i])
    out.append(verb)
    if verb == "stir" and i + 1 < len(toks) and toks[i + 1].lower() == "fry":
        out.append("fry")  # "Stir fry vegetables"
        i += 1
    expect, main = True, verb  # expect: a noun phrase may start here
    if verb == "move" and i + 1 < len(toks) and toks[i + 1].lower() == "around" and i + 2 < len(toks):
        toks = toks[: i + 1] + toks[i + 2 :] + ["around"]  # "Move Around bacon" -> "move the bacon around"
    i += 1
    while i < len(toks):
        tok, low = toks[i], toks[i].lower()
        nxt = toks[i + 1].lower() if i + 1 < len(toks) else ""
        prev = out[-1].lower() if out else ""
        if not is_word(tok):
            out.append(tok)
            expect = False
        elif low in ("and", "or"):
            out.append(low)
            if nxt and _verb_follows(toks, i + 1):
                i += 1
                main = _base(toks[i])
                out.append(main)
                expect = True
        elif low == "to" and prev in INFINITIVE_VERBS and "VB" in verb_tags(nxt):
            out += ["to", nxt]
            main, expect = nxt, True
            i += 1
        elif low in PURE_PARTICLES and not expect and prev != main and nxt and nxt not in PREPOSITIONS:
            out.append(low)  # "washing up bowl": a compound noun goes on
        elif (
            low.endswith("ing") and "VBG" in verb_tags(low) and prev in PREPOSITIONS and nxt in _OBJECT_STARTS
        ):
            out.append(low)  # "for cutting", "before adding the salt": a gerund
            expect = True
        elif low in PARTICLES or low in PREPOSITIONS or low == "using":
            out.append(low)
            expect = True
        elif (
            (low in DETERMINERS | PRONOUN_OBJECTS and not (low == "half" and "VBN" in verb_tags(nxt)))
            or low in ("my", "his", "her", "its", "their")
            or low[0].isdigit()
        ):
            out.append(tok)
            expect = False
        elif expect and main in GERUND_VERBS and "VBG" in verb_tags(low):
            out.append(low)  # "start mixing the eggs"
            main = low
        elif expect and not (is_adverb(low) and not has_noun(low)):
            compound = is_word(nxt) and has_noun(nxt) and nxt not in PREPOSITIONS | PARTICLES  # "paper towel"
            sided = low in ("left", "right") and nxt in BODY_PARTS | SIDED_PARTS
            if low in BODY_PARTS and not compound or sided:
                out += ["my", tok]  # "dry hands", "stretch right leg"
            elif (
                prev in ("with", "using")
                and low in MASS_NOUNS
                and not (compound and "ADJ" not in getAllLemmas(nxt))  # "with salt multiple times"
                or (prev == "of" and _of_bare(out, low))
            ):  # "with oil", but "with the paper towel"
                out.append(tok)
            else:
                out += ["the", tok]
            expect = False
        else:
            out.append(tok)
            expect = False
        i += 1
    return out


def _base(word: str) -> str:
    low = word.lower()
    tags = verb_tags(low)
    if ("VBG" in tags or "VBZ" in tags) and "VB" not in tags:
        return base_form(low)
    return low


def _verb_follows(toks: list[str], k: int) -> bool:
    """After "and": a coordinated verb ("and wash knives", "and preparing the toast"), not a noun ("and knife")."""
    word = toks[k].lower()
    tags = verb_tags(word)
    nxt = toks[k + 1].lower() if k + 1 < len(toks) else ""
    if "VBG" in tags and "VB" not in tags:
        return True
    if "VB" not in tags:
        return False
    if not has_noun(word):
        return True
    if not nxt:
        return False
    return nxt in DETERMINERS | PRONOUN_OBJECTS | PARTICLES or (nxt not in PREPOSITIONS and has_noun(nxt))


def _of_bare(out: list[str], noun: str) -> bool:
    """No article after "of" for a mass noun, a plural, or what a container holds ("bag of salad")."""
    holder = out[-2].lower() if len(out) > 1 else ""
    return noun in MASS_NOUNS or (noun.endswith("s") and has_noun(noun)) or holder in CONTAINERS
