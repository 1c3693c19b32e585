"""Ego4D narration text: one parser for EgoClip captions, EgoMCQ options and EgoIT's first-person answers.

    parse(raw)          -> Narration(tag, speaker, text): which tag, who acts, the predicate with every tag removed
    caption(raw)        third person: "#C C picks a bag" -> "Camera-wearer picks a bag", "#O man X hands C a cup" ->
                        "Man X hands the camera-wearer a cup"; "" when nothing usable is left
    first_person(raw)   the wearer speaks: "#C C adjusts his hair" -> "I adjust my hair.", "#O man X hands C a cup"
                        -> "Man X hands me a cup."; None when nothing usable is left

Tags, as written in the real release: "#C C", "#C c", "#c c", "#c", "#C", "#CC", "# C C", "# C c", a bare "C C" or
"C" in front of a verb (the camera wearer); "#O" + a speaker ("man X", "A lady", "person Y", "O": another person);
"#unsure" (alone: nothing usable; in the text: an object the annotator could not name); "#Summary" (a summary
of minutes of video: tag "summary", converted like any narration, so callers that want moment-level text drop
it by its tag). The text is cleaned the same way for both outputs: doubled words ("the the"), capitalised words
("C Picks"), spaces before punctuation, stray punctuation after an article or a preposition ("a ;spoon") and a
stray "#" ("the # #unsure"), "apiece of", "form the" (for "from the").

"#unsure": after an article or "some" -> "something" with the article dropped ("opens the #unsure" -> "opens
something"); in front of a noun it is a modifier and goes ("#unsure lid" -> "the lid"); after a noun it marks
that noun as a guess and goes ("picks a sponge #unsure" -> "picks a sponge"); elsewhere it is "something".

First person (wearer lines): the subject becomes "I" and its verbs (the first, and verbs coordinated with it)
the base form (the first even where the lexicon knows its -s form only as a noun: "deeps" -> "deep"); after a
plural noun, "and" + a word that can be a plural noun or a verb ("plates and cups together") is a noun unless an
object follows it; "C" elsewhere is "me" ("I" before a verb), "C's" and "the hand of C" are "my"; his/her are the
wearer's ("my") unless another person was named before them, where they stay, except on a body part after
"with"/"using" (the wearer's tool); "the hands" is "my hands". Other people's lines keep the third person:
only the wearer's references become "me"/"my". Letters after a person noun ("man C", "woman X") are names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lemminflect import getAllLemmas, getLemma

from pipeline.core.lexicon import (
    BODY_PARTS,
    CLAUSE_OPENERS,
    DETERMINERS,
    PARTICLES,
    PREPOSITIONS,
    PRONOUN_OBJECTS,
    base_form,
    verb_tags,
)
from pipeline.core.text import clean_text

TAGS = ("C", "O", "unsure", "summary", "none")
PERSON_NOUNS = frozenset(
    [
        "man",
        "woman",
        "person",
        "lady",
        "girl",
        "boy",
        "kid",
        "child",
        "baby",
        "guy",
        "gentleman",
        "friend",
        "teenager",
        "toddler",
        "men",
        "women",
        "people",
        "ladies",
        "girls",
        "boys",
        "kids",
        "children",
        "cook",
        "chef",
        "worker",
        "customer",
        "cameraman",
    ]
)
UNSURE = "#unsure"
_TOKEN = re.compile(r"#unsure\b|\w+(?:['’]\w+)*(?:-\w+)*|[^\w\s]", re.I)
_SUMMARY = re.compile(r"#\s*summary\b[\s:.-]*", re.I)
_TAG = re.compile(r"#\s*([CcOo])([Cc]?)(?![\w'’])\s*")
_UNSURE_TAG = re.compile(r"#\s*unsure\b", re.I)
_WEARER = re.compile(r"[Cc](?![\w'’])\s*")
_OTHER = re.compile(r"[Oo](?![\w'’])\s*")
_SPEAKER = re.compile(
    rf"(?:(a|an|the|another|one)\s+)?(?:([a-z]+)\s+)?({'|'.join(sorted(PERSON_NOUNS))})"
    r"(?:\s+([A-Z]|[b-hj-z]))?(?![\w'’])\s*",
    re.I,
)
_TAGGED = re.compile(r"\s*(?:#\s*(?:[CcOo]{1,2}|unsure|summary)(?![\w'’])|C C\b)", re.I)
_KEEP_DOUBLED = frozenset({"had", "that"})
_POSSESSIVES = frozenset({"my", "his", "her", "its", "their", "our", "your"})
_FIRST_PERSON_BE = {"is": "am", "isn't": "am not", "has": "have", "hasn't": "haven't", "does": "do",
                    "doesn't": "don't"}  # fmt: skip
_PURE_PARTICLES = frozenset(["up", "down", "out", "away", "back"])
_VERB_ADVERBS = frozenset(
    ["then", "also", "again", "still", "just", "slowly", "quickly", "carefully", "gently", "first", "now"]
)


@dataclass(frozen=True)
class Narration:
    """One narration, parsed: `tag` one of TAGS; `speaker` "C" (the camera wearer), another person's phrase
    ("a man X", "a person" for "O") or "" (none named); `text` the predicate, tags and speaker removed and the
    words cleaned ("picks something from the pot"); "" when nothing usable is left."""

    tag: str
    speaker: str
    text: str

    @property
    def wearer(self) -> bool:
        return self.speaker == "C"


# ---------------------------------------------------------------------------------------------- tokens
def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def join(toks: list[str]) -> str:
    out = ""
    for tok in toks:
        if not tok:
            continue
        if out and not (tok in ",.;:!?)" or tok.startswith("'s") or out.endswith(("(", " "))):
            out += " "
        out += tok
    return out


def is_word(tok: str) -> bool:
    return bool(tok) and (tok[0].isalnum() or tok[0] == "_" or tok == UNSURE)


def has_noun(word: str) -> bool:
    return "NOUN" in getAllLemmas(word.lower())


def _person_at(toks: list[str], i: int) -> bool:
    """Is toks[i] a named person's letter ("man X", "woman C")?"""
    return i > 0 and len(toks[i]) == 1 and toks[i - 1].lower() in PERSON_NOUNS


def _cleaned(toks: list[str]) -> list[str]:
    """Doubled words, capitalised words, the release's common typos; name letters upper-case."""
    out: list[str] = []
    for i, tok in enumerate(toks):
        low = tok.lower()
        if out and low == out[-1].lower() and (is_word(tok) or tok in ",.") and low not in _KEEP_DOUBLED:
            continue  # "the the", "puts puts", "a a"
        if _person_at(out + [tok], len(out)):
            tok = tok.upper()
        elif len(tok) > 1 and tok[0].isupper() and tok[1:].islower() and getAllLemmas(low):
            tok = low  # "C Picks", "A Man Z", "Person A Moves"
        nxt = toks[i + 1].lower() if i + 1 < len(toks) else ""
        if low == "apiece" and nxt == "of":
            out += ["a", "piece"]
            continue
        if low == "form" and out and nxt in DETERMINERS and out[-1].lower() not in ("to", "a", "the"):
            tok = "from"  # "takes the knife form the shelf"
        elif (
            low == "of"
            and out
            and out[-1].lower() in ("turns", "turn", "switches", "switch")
            and nxt in DETERMINERS
        ):
            tok = "off"  # "Turns of the tap"
        elif low == "he" and out and out[-1].lower() in PREPOSITIONS:
            tok = "the"  # "inside he dust bin"
        elif tok == "A" and out and not _person_at(out + [tok], len(out)):
            tok = "a"  # "passes the cup to A Woman P"
        elif tok in ",;:#" and (tok == "#" or out and out[-1].lower() in PREPOSITIONS | DETERMINERS):
            continue  # "talks to ,man X", "picks a ;spoon", a stray "#" ("picks up the # #unsure")
        out.append(tok)
    return out


def _resolve_unsure(toks: list[str], verb: int) -> list[str]:
    """Each "#unsure" -> "something", or dropped where it only qualifies a noun (see the module docstring)."""
    out: list[str] = []
    for i, tok in enumerate(toks):
        if tok != UNSURE:
            out.append(tok)
            continue
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        prev = out[-1].lower() if out else ""
        closed = DETERMINERS | PREPOSITIONS | PARTICLES | CLAUSE_OPENERS | PRONOUN_OBJECTS | _POSSESSIVES
        if is_word(nxt) and nxt != UNSURE and nxt.lower() not in closed and has_noun(nxt.split("'")[0]):
            if prev not in DETERMINERS | _POSSESSIVES | {"of"} and not prev[:1].isdigit():
                out.append("the")  # "picks #unsure lid" -> "picks the lid"
            if nxt.lower().endswith("'s"):
                toks[i + 1] = nxt[:-2] + "s"  # "#Unsure lid's" -> "the lids"
            continue
        if prev in DETERMINERS | _POSSESSIVES and prev not in ("both", "all", "two", "one"):
            out[-1] = "something"  # "opens the #unsure"
        elif (
            prev
            and is_word(out[-1])
            and len(out) - 1 > verb
            and prev not in closed
            and (has_noun(prev) or len(out) > 1 and out[-2].lower() in DETERMINERS)
            and not verb_tags(prev) & {"VBD", "VBN"}
            and not prev.endswith("ing")
            and (len(out) < 2 or out[-2].lower() != "to")
        ):
            if verb + 1 < len(out) and out[verb + 1].lower() in PREPOSITIONS:
                out.insert(verb + 1, "something")  # "puts on the sink #unsure": the object is unknown
            continue  # "picks a sponge #unsure": the noun was a guess
        else:
            out.append("something")
    return out


# ---------------------------------------------------------------------------------------------- parse
def _speaker(rest: str) -> tuple[str, str]:
    """("a man X", the rest) for another person's phrase at the start of `rest`; ("", rest) if none."""
    if m := _OTHER.match(rest):
        return "a person", rest[m.end() :]
    m = _SPEAKER.match(rest)
    if not m:
        return "", rest
    det, adj, noun, letter = m.groups()
    if adj and (adj.lower() in PERSON_NOUNS or verb_tags(adj) & {"VBZ", "VBD"}):
        return "", rest
    words = [w.lower() for w in (det, adj, noun) if w] + ([letter.upper()] if letter else [])
    return " ".join(words), rest[m.end() :]


def parse(raw: str) -> Narration:
    """See Narration and the module docstring."""
    s = " ".join(clean_text(str(raw)).split())
    s = _UNSURE_TAG.sub(UNSURE, s)
    tag, wearer = "none", False
    if m := _SUMMARY.match(s):
        tag, s = "summary", s[m.end() :]
    elif m := _TAG.match(s):
        tag, s = m.group(1).upper(), s[m.end() :]
        wearer = tag == "C"
        if m.group(2) and tag == "O":
            s = "C " + s  # "#OC" is no real tag: read it as "#O C"
    elif s.lower().startswith(UNSURE) and not s[len(UNSURE) :].strip():
        return Narration("unsure", "", "")
    elif s.lower().startswith(UNSURE + " "):
        tag, s = "unsure", s[len(UNSURE) + 1 :]
    speaker = ""
    if (m := _WEARER.match(s)) and (tag in ("C", "summary", "unsure") or s[0] == "C") and s[m.end() :]:
        speaker, s = "C", s[m.end() :]
        if (m2 := _WEARER.match(s)) and s[0] == "C" and s[m2.end() :]:
            s = s[m2.end() :]  # "C C C picks"
    elif tag != "C" or _other_person_first(s):
        speaker, s = _speaker(s)
    elif wearer:
        speaker = "C"  # "#C unwraps some tomatoes", "#CC switches on the light"
    toks = _cleaned(tokens(s))
    verb = _first_verb(toks)
    toks = _resolve_unsure(toks, verb)
    text = join(toks).strip()
    if not any(is_word(t) for t in toks) or text.lower() in ("something", "something."):
        text = ""  # "#C C #unsure": nothing usable
    return Narration(tag, speaker, text)


def _other_person_first(s: str) -> bool:
    """A "#C" line that names another person first ("#C man X hands C a cup")."""
    name, rest = _speaker(s)
    first = tokens(rest)[:1]
    return bool(name) and bool(first) and bool(verb_tags(first[0]) & {"VBZ", "VBD"})


def _first_verb(toks: list[str]) -> int:
    i = 0
    while i < len(toks) - 1 and toks[i].lower() in _VERB_ADVERBS:
        i += 1
    return i


# ---------------------------------------------------------------------------------------------- caption
def caption(raw: str) -> str:
    """Third-person caption (EgoClip, EgoMCQ): the wearer is "Camera-wearer" as subject and "the camera-wearer"
    elsewhere, another person's "O" "a person"; no tag, "#" or tag letter is left. "" when nothing usable is."""
    n = parse(raw)
    if not n.text:
        return ""
    toks = tokens(n.text)
    for i, tok in enumerate(toks):
        if _person_at(toks, i):
            continue
        if tok in ("C", "c"):
            toks[i] = "the camera-wearer"
        elif tok in ("C's", "c's", "C’s"):
            toks[i] = "the camera-wearer's"
        elif tok == "O":
            toks[i] = "a person"
    subject = {"C": "Camera-wearer", "": ""}.get(n.speaker, n.speaker)
    text = join(([subject] if subject else []) + toks).replace("#", "")
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------------------------------------- first person
def first_person(raw: str) -> str | None:
    """The narration as the wearer's own sentence (see the module docstring); None when nothing usable is left."""
    n = parse(raw)
    if not n.text:
        return None
    toks = tokens(n.text)
    if n.wearer:
        toks = ["I", *toks]
        _agree(toks, 1 + _first_verb(toks[1:]))
    else:
        toks = tokens(n.speaker) + toks if n.speaker else toks
    _wearer_references(toks, wearer_line=n.wearer)
    return sentence(join(toks).replace("#", ""))


def sentence(text: str) -> str:
    """One space between words, a capital first letter, a final full stop."""
    text = " ".join(text.split()).rstrip(",;: ")
    text = text[:1].upper() + text[1:]
    return text if not text or text[-1] in ".!?" else text + "."


def is_tagged(text: str) -> bool:
    """Does `text` start with an Ego4D narration tag ("#C C", "#c", "# C C", "#O", "#unsure", "#Summary", "C C")?"""
    return bool(_TAGGED.match(text))


def agree_with_i(word: str, *, verb: bool = False) -> str:
    """A verb whose subject became "I": "picks" -> "pick", "is" -> "am", "has" -> "have"; other forms kept.
    `verb`: the word is known to be the verb (the first after the subject), so an -s word the lexicon knows
    only as a noun is a misspelt verb too ("deeps" -> "deep")."""
    low = word.lower()
    if low in _FIRST_PERSON_BE:
        return _FIRST_PERSON_BE[low]
    tags = verb_tags(low)
    if "VBZ" in tags and "VB" not in tags:
        return base_form(low)
    if (
        not tags
        and low.isalpha()
        and low.endswith("s")
        and not low.endswith("ss")
        and (verb or not has_noun(low))
    ):
        return getLemma(low, upos="VERB")[0]  # an unknown verb: "scoops", "deseeds"
    return word if word == "I" else low if tags else word


def _agree(toks: list[str], v: int) -> None:
    """The verb at `v` and the verbs coordinated with it ("picks a cup and puts it down") agree with "I"."""
    if v >= len(toks) or not is_word(toks[v]):
        return
    toks[v] = agree_with_i(toks[v], verb=True)
    for j in range(v + 1, len(toks) - 1):
        if toks[j].lower() not in ("and", "or", "then", ","):
            continue
        k = j + 1
        while k < len(toks) - 1 and toks[k].lower() in _VERB_ADVERBS:
            k += 1
        if _coordinated_verb(toks, k):
            toks[k] = agree_with_i(toks[k])


def _coordinated_verb(toks: list[str], k: int) -> bool:
    word = toks[k].lower()
    tags = verb_tags(word)
    if "VBZ" not in tags or "VB" in tags:
        return False
    nxt = toks[k + 1].lower() if k + 1 < len(toks) else ""
    if not has_noun(word):
        return True
    before = toks[k - 2].lower() if k >= 2 else ""
    plural_list = before.endswith("s") and has_noun(before)  # "cups and plates from the table"
    if plural_list and nxt in PARTICLES | PREPOSITIONS:  # "moves the plates and cups together / in the sink"
        after = toks[k + 2].lower() if k + 2 < len(toks) else ""  # "and puts down the sponge": a verb
        return nxt in _PURE_PARTICLES and after in DETERMINERS | _POSSESSIVES or word in ("turns", "switches")
    if nxt in DETERMINERS | PRONOUN_OBJECTS | PARTICLES | _POSSESSIVES | {"c", "something"}:
        return True
    return nxt in PREPOSITIONS and not plural_list


def _wearer_references(toks: list[str], *, wearer_line: bool) -> None:
    """C -> me / I, C's -> my, "the hand of C" -> "my hand"; in the wearer's own lines his/her/the + body part
    -> my (see the module docstring)."""
    other_named = False
    for i, tok in enumerate(toks):
        low = tok.lower()
        nxt = toks[i + 1].lower() if i + 1 < len(toks) else ""
        prev = toks[i - 1].lower() if i > 0 else ""
        if _person_at(toks, i) or (low in PERSON_NOUNS and i > 0):
            other_named = True
            continue
        if low in ("c", "c's", "c’s"):
            if low != "c":
                toks[i] = "my"
            elif nxt and verb_tags(nxt) & {"VBZ", "VBD"} and prev not in PREPOSITIONS:
                toks[i] = "I"  # "... as C walks" -> "as I walk"
                _agree(toks, i + 1)
            elif prev == "of" and i >= 3 and toks[i - 3].lower() in ("the", "a"):
                toks[i - 3], toks[i - 1], toks[i] = "my", "", ""  # "the hand of C" -> "my hand"
            else:
                toks[i] = "me"
        elif tok == "O" and i > 0:
            toks[i] = "a person"
        elif not wearer_line:
            continue
        elif low in ("himself", "herself"):
            toks[i] = "myself"
        elif low in ("he", "she") and i > 1 and nxt and verb_tags(nxt) & {"VBZ", "VBD"} and not other_named:
            toks[i] = "I"
            _agree(toks, i + 1)
        elif (
            low in ("his", "her") and is_word(nxt) and nxt not in DETERMINERS | PREPOSITIONS | CLAUSE_OPENERS
        ):
            body = nxt in BODY_PARTS or nxt in ("left", "right") or nxt == "other"
            if not other_named or (body and prev in ("with", "using", "by")):
                toks[i] = "my"
        elif low in ("the", "a") and _body_part_at(toks, i + 1) and not other_named and prev != "of":
            toks[i] = "my"
        elif (
            low in BODY_PARTS
            and i > 1
            and _body_part_at(toks, i)
            and not other_named
            and _bare_object(toks, i)
        ):
            side = toks[i - 1].lower() in ("left", "right", "other")
            toks[i - side] = (
                "my " + toks[i - side]
            )  # "wipes hands with a towel", "moves hand away", "with hands"


def _body_part_at(toks: list[str], j: int) -> bool:
    if j < len(toks) and toks[j].lower() in ("left", "right", "other"):
        j += 1
    if j >= len(toks) or toks[j].lower() not in BODY_PARTS:
        return False
    after = toks[j + 1].lower() if j + 1 < len(toks) else ""
    return after != "of" and not (
        is_word(after) and has_noun(after) and after not in PREPOSITIONS | PARTICLES
    )


def _bare_object(toks: list[str], i: int) -> bool:
    """A body part without a determiner right after the wearer's verb or a preposition ("wipes hands")."""
    j = i - 1 if toks[i - 1].lower() in ("left", "right", "other") else i
    return toks[j - 1].lower() in PREPOSITIONS or toks[j - 2] == "I"
