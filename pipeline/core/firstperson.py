"""Putting EgoIT text in the first person (the camera wearer speaks: "I am putting the cup on the table.").

    fix_person(text)                          you/your/C/the person/the left hand -> I/me/my (+ verb agreement)
    to_first_person(text)                     fix_person + imperatives get a subject ("Add salt" -> "I add salt")
    answer_in_first_person(answer, question)  "gave it to Person B" for "What did I do ...?" -> "I gave it to ..."

Verb forms and the closed word classes are in lexicon.py; Ego4D's tagged narrations go to narration.py; EGTEA
and SSv2 labels as sentences in pipeline/egoit/labels.py, bare action labels in action_labels.py.
Text is handled as a token list (words, punctuation, whitespace) so that the original spacing survives.
"""

from __future__ import annotations

import re

from lemminflect import getAllLemmas

from pipeline.core.lexicon import (
    ACTOR_MENTION,
    ACTOR_NOUNS,
    AUXILIARIES,
    BODY_PART_COMPOUNDS,
    BODY_PARTS,
    CLAUSE_OPENERS,
    DETERMINERS,
    I_FORMS,
    LEAD_ADVERBS,
    PARTICLES,
    PREPOSITIONS,
    PRONOUN_OBJECTS,
    SIDES,
    UNTIL,
    YOU_CONTRACTIONS,
    YOUR_FORMS,
    base_form,
    inflect,
    is_adverb,
    is_base_verb,
    verb_tags,
)
from pipeline.core.narration import first_person, is_tagged

_TOKEN = re.compile(r"\s+|\w+(?:['’-]\w+)*|[^\w\s]")


# ---------------------------------------------------------------------------------------------- tokens
def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _blank(tok: str) -> bool:
    return tok == "" or tok.isspace()


def _is_word(tok: str) -> bool:
    return bool(tok) and (tok[0].isalnum() or tok[0] == "_")


def _next(toks: list[str], i: int) -> int | None:
    j = i + 1
    while j < len(toks) and _blank(toks[j]):
        j += 1
    return j if j < len(toks) else None


def _prev(toks: list[str], i: int) -> int | None:
    j = i - 1
    while j >= 0 and _blank(toks[j]):
        j -= 1
    return j if j >= 0 else None


def _low(toks: list[str], i: int | None) -> str:
    return toks[i].lower() if i is not None else ""


def _same_case(new: str, old: str) -> str:
    return new[:1].upper() + new[1:] if old[:1].isupper() and new != "I" and not new.startswith("I'") else new


def _clause_start(toks: list[str], i: int) -> bool:
    p = _prev(toks, i)
    return p is None or not _is_word(toks[p]) or toks[p].lower() in CLAUSE_OPENERS


def _is_finite(word: str) -> bool:
    return word.lower() in AUXILIARIES or bool(verb_tags(word) & {"VBZ", "VBD", "VBP"})


def _skip_adverbs(toks: list[str], i: int | None) -> int | None:
    while i is not None and _is_word(toks[i]) and is_adverb(toks[i]) and not _is_finite(toks[i]):
        i = _next(toks, i)
    return i


def _agree_with_i(toks: list[str], subject: int, third_person: bool) -> None:
    """Make the verb after a subject that just became "I" agree, and verbs coordinated with it ("and puts")."""
    v = _skip_adverbs(toks, _next(toks, subject))
    if v is None or not _is_word(toks[v]):
        return
    _make_first_person_verb(toks, v, third_person)
    if not third_person:  # "you" and "I" share every verb form but be
        return
    i = v
    while (i := _next(toks, i)) is not None and toks[i] not in ".;!?":
        low = toks[i].lower()
        if low in CLAUSE_OPENERS and low not in ("and", "or", "then"):
            return  # "..., while the right hand holds": a new subject
        if low in ("and", "or", "then"):
            w = _skip_adverbs(toks, _next(toks, i))
            after = _next(toks, w) if w is not None else None
            # a plural noun in a list ("cups and plates.") is followed by punctuation or "and"; a verb by more
            if (
                w is not None
                and "VBZ" in verb_tags(toks[w])
                and after is not None
                and _is_word(toks[after])
                and toks[after].lower() not in ("and", "or")
            ):
                _make_first_person_verb(toks, w, third_person)


def _make_first_person_verb(toks: list[str], v: int, third_person: bool) -> None:
    word = toks[v].lower()
    if word in I_FORMS and (third_person or word in ("are", "were", "aren't", "weren't")):
        if word.startswith("were") and _low(toks, _prev(toks, _prev(toks, v) or 0)) in ("if", "wish"):
            return  # subjunctive "if you were" -> "if I were"
        toks[v] = _same_case(I_FORMS[word], toks[v])
    elif third_person and "VBZ" in verb_tags(word) and "VB" not in verb_tags(word):
        toks[v] = _same_case(base_form(word), toks[v])


# ---------------------------------------------------------------------------------------------- person
def fix_person(text: str, *, narration: bool = False) -> str:
    """References to the camera wearer in the second person ("you", "your") or as Ego4D's "C" -> first person,
    verbs agreeing. With `narration` (text that only describes the wearer's own actions) also third-person
    ones: "The person holds", "he/she holds", "the left hand", "with their right hand". Nothing else changes.
    A tagged Ego4D narration ("#C C picks", "#O man X ...") is narration.first_person's ("" if unusable)."""
    if is_tagged(text):  # the final full stop only where the narration had one, as for untagged text
        converted = first_person(text) or ""
        return converted if text.rstrip()[-1:] in ".!?" else converted.rstrip(".")
    text = re.sub(r"#unsure\b", "something", text, flags=re.I)
    ego4d = bool(re.search(r"#[CcOo]\b", text))  # Ego4D narration tags: "#C C picks a bag", "#O man X ..."
    text = re.sub(r"#(?:[CcOo]|summary)\b\s*", "", text)
    toks = _tokens(text)
    # "they" is the actor only where the narration already calls the actor a person ("with their right hand")
    actor_mode = narration and bool(re.search(ACTOR_MENTION, text, re.I))
    for i, tok in enumerate(toks):
        low, nxt = tok.lower(), _next(toks, i)
        after = _skip_adverbs(toks, nxt)
        if low in YOU_CONTRACTIONS:
            toks[i] = YOU_CONTRACTIONS[low]
        elif low == "you":
            _you(toks, i)
        elif low in YOUR_FORMS:
            toks[i] = _same_case(YOUR_FORMS[low], tok)
        elif tok in ("C", "c") and (ego4d or tok == "C") and _c_is_wearer(toks, i, ego4d, after):
            inverted = (
                _low(toks, _prev(toks, i)) in AUXILIARIES
                and after is not None
                and bool(verb_tags(toks[after]))
            )
            subject = inverted or after is not None and _is_finite(toks[after])
            toks[i] = "I" if subject or _clause_start(toks, i) and not ego4d else "me"
            if toks[i] == "I":
                if (p := _prev(toks, i)) is not None and toks[p].lower() in AUXILIARIES:  # "Does C" -> "Do I"
                    toks[p] = _same_case(I_FORMS.get(toks[p].lower(), toks[p].lower()), toks[p])
                _agree_with_i(toks, i, third_person=True)
        elif tok in ("C's", "c's") and ego4d:
            toks[i] = _same_case("my", tok)
        elif narration:
            _narrator(toks, i, after, actor_mode)
    return "".join(toks)


def _narrator(toks: list[str], i: int, after: int | None, actor_mode: bool) -> None:
    """Third-person references to the (only) actor of a narration -> first person."""
    tok, low, nxt = toks[i], toks[i].lower(), _next(toks, i)
    finite_follows = after is not None and _is_finite(toks[after])
    starts_clause = _clause_start(toks, i)
    if low == "the" and _low(toks, nxt) in ACTOR_NOUNS and nxt is not None:
        if starts_clause and _verb_after(toks, nxt):
            toks[i : nxt + 1] = ["I"] + [""] * (nxt - i)  # blanks keep the indexes of the loop in fix_person
            _agree_with_i(toks, i, third_person=True)
    elif low in ("the", "a", "his", "her", "their") and _body_part_follows(toks, i):
        toks[i] = _same_case("my", tok)
    elif low in ("left", "right") and _low(toks, nxt).startswith("hand") and starts_clause:
        toks[i] = _same_case("my " + low, tok)  # "Right hand passes the spatula" -> "My right hand passes"
    elif low == "one" and _low(toks, nxt) == "hand" and starts_clause and _verb_after(toks, nxt):
        toks[i], toks[nxt] = tok[0] + "ne of my", "hands"  # "One hand picked up" -> "One of my hands ..."
    elif low in ("both", "two") and _low(toks, nxt) == "hands" and starts_clause and _verb_after(toks, nxt):
        toks[i] = _same_case({"both": "both of my", "two": "my two"}[low], tok)  # "Both hands hold"
    elif low == "hands" and starts_clause and _verb_after(toks, i):
        toks[i] = _same_case("my hands", tok)  # "Hands knead the dough"
    elif low in ("he", "she") and finite_follows and starts_clause:
        toks[i] = "I"
        _agree_with_i(toks, i, third_person=True)
    elif low == "they" and finite_follows and _they_is_actor(toks, i, after, actor_mode):
        toks[i] = "I"  # "With their right hand, they hold": the actor, not the ingredients
        _agree_with_i(toks, i, third_person=False)
    elif low in ("himself", "herself"):  # not "him" ("Mix him back and forth": a translated "it")
        toks[i] = "myself"


def _they_is_actor(toks: list[str], i: int, verb: int, actor_mode: bool) -> bool:
    prev = _prev(toks, i)
    if not (prev is None or toks[prev] == "," or toks[prev].lower() in ("and", "then")):
        return False  # "until they turn golden brown": the ingredients
    if toks[verb].lower() in ("are", "were") and "VBG" not in verb_tags(_low(toks, _next(toks, verb))):
        return False  # "they are put into the pot", "they are ready"
    return actor_mode or prev is None and _hand_later(toks, i)


def _hand_later(toks: list[str], i: int) -> bool:
    """A hand mentioned later in the same sentence: "They covered the shaker ... using both hands"."""
    for tok in toks[i:]:
        if tok in ".!?;":
            return False
        if tok.lower() in BODY_PARTS:
            return True
    return False


def _verb_after(toks: list[str], i: int | None) -> bool:
    v = _skip_adverbs(toks, _next(toks, i)) if i is not None else None
    return v is not None and _is_finite(toks[v])


def _you(toks: list[str], i: int) -> None:
    p, n = _prev(toks, i), _skip_adverbs(toks, _next(toks, i))
    prev, nxt = _low(toks, p), _low(toks, n)
    verbish_next = n is not None and (nxt in AUXILIARIES or bool(verb_tags(nxt) & {"VB", "VBP", "VBD"}))
    if prev in AUXILIARIES:
        subject = True  # "Have you seen", "Would you place", "can you clean"
        if prev in I_FORMS:
            toks[p] = _same_case(I_FORMS[prev], toks[p])  # "Are you" -> "Am I"
    elif prev in PREPOSITIONS and prev not in CLAUSE_OPENERS:
        subject = False
    elif (
        p is not None
        and _is_word(toks[p])
        and prev not in CLAUSE_OPENERS
        and verb_tags(prev)
        and not verbish_next
    ):
        subject = False  # "give you the cup"
    else:
        subject = verbish_next or p is None or not _is_word(toks[p]) or prev in CLAUSE_OPENERS
    toks[i] = "I" if subject else _same_case("me", toks[i])
    if subject:
        _agree_with_i(toks, i, third_person=False)


def _c_is_wearer(toks: list[str], i: int, ego4d: bool, after: int | None) -> bool:
    """Ego4D's "C" (the camera wearer); outside #C-tagged text only a clause-initial C with a verb ("C picks")."""
    p = _prev(toks, i)
    if p is not None and (toks[p].lower() in ("person", "vitamin", "physics") or toks[p][0].isdigit()):
        return False
    if ego4d:
        return True
    if p is not None and toks[p].lower() in AUXILIARIES:  # "What did C pick ...?"
        return after is not None and bool(verb_tags(toks[after]) & {"VB", "VBG", "VBN"})
    return _clause_start(toks, i) and after is not None and bool(verb_tags(toks[after]) & {"VBZ", "VBD"})


def _body_part_follows(toks: list[str], i: int) -> bool:
    j = _next(toks, i)
    if j is not None and toks[j].lower() in SIDES:
        j = _next(toks, j)
    if j is None or toks[j].lower().split("'")[0] not in BODY_PARTS:
        return False
    k = _next(toks, j)
    return k is None or toks[k].lower() not in BODY_PART_COMPOUNDS


# ---------------------------------------------------------------------------------------------- imperatives
def to_first_person(text: str) -> str:
    """A description of the wearer's actions in any person (imperative "Add salt", "Using your right hand, add",
    "The left hand presses", "C picks") as the wearer's own words ("I add salt", "My left hand presses")."""
    text = text.strip()  # a line break without punctuation ends a sentence too
    text = re.sub(r"\s*\n\s*", lambda m: " " if text[: m.start()].rstrip()[-1:] in ".!?;:," else ". ", text)
    toks = _tokens(fix_person(text, narration=True))
    out: list[str] = []
    start = 0
    for i, tok in enumerate(toks):  # sentences, and "Video 1: Use ..." style labels
        nxt = _next(toks, i)
        if tok in ".!?;:" and (nxt is None or i + 1 < nxt and (tok != ":" or toks[nxt][:1].isupper())):
            out.extend(_give_subject(toks[start : i + 1]))
            start = i + 1
    out.extend(_give_subject(toks[start:]))
    return tidy("".join(out))


def _give_subject(sent: list[str]) -> list[str]:
    """An imperative sentence gets "I" in front of its verb; "After X, add Y" -> "After X, I add Y"."""
    i = _next(sent, -1)
    while i is not None and sent[i].lower() in LEAD_ADVERBS | {"and", "please", ","}:
        if sent[i].lower() == "please":  # "Please close the lid" -> "I close the lid"
            sent, i = sent[:i] + sent[_next(sent, i) or i + 1 :], i - 1
        i = _next(sent, i)
    if i is None or not _is_word(sent[i]):
        return sent
    low = sent[i].lower()
    if low == "be" and _imperative_context(sent, i):
        return sent[:i] + ["I am"] + sent[i + 1 :]  # "Be careful not to ..." -> "I am careful not to ..."
    if low in ("do", "don't") and (v := _next(sent, i)) is not None:
        v = _next(sent, v) if sent[v].lower() == "not" else v
        if v is not None and is_base_verb(sent[v]):
            return _insert_i(sent, i)  # "Do not fry for too long" -> "I do not fry for too long"
    if _imperative_at(sent, i, strict=False):
        return _insert_i(sent, i)
    if is_adverb(sent[i]) and (v := _next(sent, i)) is not None and _imperative_at(sent, v, strict=False):
        return _insert_i(sent, i)  # "Gently stir" -> "I gently stir"
    if low in DETERMINERS - {"one"} or low in ("i", "we", "he", "she", "they", "it", "there", "my"):
        return sent  # a sentence with its own subject
    for c, tok in enumerate(
        sent
    ):  # "After boiling the water, hold a bowl" -> "After boiling the water, I hold ..."
        if tok != ",":
            continue
        v = _next(sent, c)
        if v is not None and sent[v].lower() in ("i", "we", "my"):
            return sent
        w = v
        while w is not None and "ADV" in getAllLemmas(sent[w].lower()) and not verb_tags(sent[w]):
            w = _next(sent, w)  # "..., gently lift the pot"
        if w is not None and _imperative_at(sent, w, strict=True):
            return _insert_i(sent, v)
    g = _next(sent, i) if is_adverb(sent[i]) else i  # "Repeatedly using a dropper ..."
    if (
        g is not None
        and "VBG" in verb_tags(sent[g])
        and (_object_follows(sent, g) or not any(t.lower() in AUXILIARIES for t in sent))
    ):
        return _insert_i(
            sent, i, "I am "
        )  # "Introducing the ingredients" -> "I am introducing the ingredients"
    return sent


def _imperative_at(sent: list[str], i: int, *, strict: bool) -> bool:
    """Is sent[i] a verb in the base form that starts an imperative clause? `strict` (after a comma, where a list
    of nouns may go on: "chicken strips, green onions, ..."): a word that can be a noun or adjective too
    counts only if an object or particle follows ("hold the", "set them", "pick up", "start stirring")."""
    word, n = sent[i], _next(sent, i)
    low, nxt = word.lower(), _low(sent, n)
    if not _is_word(word) or low in AUXILIARIES or low in DETERMINERS:
        return False
    if not is_base_verb(word) and not (_unknown_word(word) and _object_follows(sent, i)):
        return False
    if n is not None and (sent[_next(sent, n) or n] == ":" or re.fullmatch(r"[A-Z]", sent[n])):
        return False  # "Video 1: ..." is a label; "man X" is Ego4D's name for another person
    if nxt in AUXILIARIES or ("VBZ" in verb_tags(nxt) and "NOUN" not in getAllLemmas(nxt)):
        return False  # "Water is boiling", "Oil sizzles": a noun subject
    if nxt in ("and", "or"):  # "flip and stir" yes, "salt and pepper" no
        return (
            (m := _next(sent, n)) is not None
            and is_base_verb(sent[m])
            and _imperative_at(sent, m, strict=strict)
        )
    noun_too = bool(set(getAllLemmas(low)) & {"NOUN", "ADJ"})
    if n is None or not _is_word(sent[n]):
        return not strict  # "..., starch, and salt": a list item; "Stir." at sentence start: a verb
    if not noun_too or _object_follows(sent, i):
        return True
    tags = verb_tags(nxt)
    if "VBG" in tags or "VBN" in tags or is_adverb(sent[n]) or nxt[:1].isdigit():
        return True  # "start stirring", "add chopped onions", "stir gently", "add 50 grams"
    if strict:
        return False
    # sentence start, then a bare noun: "Cut tomatoes into cubes" but not "Light soy sauce can be used"
    clause = [t.lower() for t in sent[i:]]
    clause = clause[: clause.index(",")] if "," in clause else clause
    return len([t for t in clause if _is_word(t)]) >= 3 and not AUXILIARIES & set(clause)


def _imperative_context(sent: list[str], i: int) -> bool:
    n = _next(sent, i)
    return n is not None and _is_word(sent[n]) and "ADJ" in getAllLemmas(sent[n].lower())


def _unknown_word(word: str) -> bool:
    """Not in lemminflect's lexicon and no closed-class word: may be a rare verb ("Pipette the ...")."""
    low = word.lower()
    closed = DETERMINERS | PREPOSITIONS | CLAUSE_OPENERS | AUXILIARIES | PRONOUN_OBJECTS | LEAD_ADVERBS
    return low.isalpha() and len(low) > 2 and low not in closed and not getAllLemmas(low)


def _object_follows(sent: list[str], i: int) -> bool:
    n = _next(sent, i)
    return (
        n is not None and sent[n].lower() in DETERMINERS | PRONOUN_OBJECTS | PREPOSITIONS | PARTICLES | UNTIL
    )


def _insert_i(sent: list[str], i: int, subject: str = "I ") -> list[str]:
    word = sent[i]
    if word[:1].isupper() and not word.isupper():
        word = word[0].lower() + word[1:]
    return sent[:i] + [subject, word] + sent[i + 1 :]


def tidy(text: str) -> str:
    """One space between words, a capital first letter, each sentence capitalised, final punctuation."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:])(?=\s|$)", r"\1", text)
    text = re.sub(r",([.!?])", r"\1", text)
    text = re.sub(r"([.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    if text and not text[0].isupper():
        text = text[0].upper() + text[1:]
    if text and text[-1] not in ".!?":
        text = text.rstrip(",;:") + "."
    return text


# ---------------------------------------------------------------------------------------------- answers
_ASKS_ACTION = re.compile(
    r"^\s*what\s+(did|do|am|was|have|had|will|would|should|can|could)\s+I\b.*\bdo(ing|ne)?\b", re.I
)


def answer_in_first_person(answer: str, question: str) -> str:
    """QA answer with the person fixed; an action answer to "What did I do ...?" becomes a sentence."""
    fixed = fix_person(answer).strip()
    m = _ASKS_ACTION.match(question)
    toks = _tokens(fixed)
    if not m or not toks or not _is_word(toks[0]) or toks[0].lower() in DETERMINERS | PRONOUN_OBJECTS:
        return fixed
    aux, first = m.group(1).lower(), toks[0].lower()
    rest = fixed[len(toks[0]) :]
    tags = verb_tags(first)
    if first == "i":
        return tidy(fixed)
    if "VBG" in tags and aux in ("am", "was"):
        return tidy(f"I {aux} {first}{rest}")  # "What was I doing?" "washing the dishes"
    if not tags & {"VB", "VBD", "VBZ"}:
        return fixed  # not a verb phrase: leave the content alone
    lemma = base_form(first)
    if aux in ("did", "was"):
        verb = inflect(lemma, "VBD")  # "What did I do?" "pick it up" -> "I picked it up."
    elif aux in ("have", "had"):
        verb = f"{aux} {inflect(lemma, 'VBN')}"
    else:
        verb = lemma
    return tidy(f"I {verb}{rest}")
