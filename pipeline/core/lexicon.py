"""The English lexicon of EgoIT's first-person text: closed word classes and verb forms.

Every verb form comes from lemminflect's lexicon (getInflection / getAllLemmas / getAllInflections); the word
lists below are closed classes (determiners, prepositions, auxiliaries), which no inflection lexicon covers.
"""

from __future__ import annotations

from functools import lru_cache

from lemminflect import getAllInflections, getAllLemmas, getInflection


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


DETERMINERS = _words(
    "a an the this that these those some any my your his her its our their each every another no both all "
    "either neither several many few much more most one two three four five six seven eight nine ten half "
    "enough"
)
PRONOUN_OBJECTS = _words("something someone somebody anything nothing everything it them me myself him us")
# Prepositions that never open a clause: "you" after them is an object ("in front of you" -> "in front of me").
PREPOSITIONS = _words(
    "about above across against along among around at behind below beneath beside between beyond by down "
    "during for from in inside into near of off on onto opposite out outside over past per through to "
    "toward towards under underneath up upon via with within without than like"
)
# Words after which a new clause (and so possibly a subject) starts.
CLAUSE_OPENERS = _words(
    "and or but so then while when whenever as after before until till if because once since where "
    "whereas although though unless that which nor yet"
)
AUXILIARIES = _words(
    "am is are was were be been being do does did have has had can could will would shall should may "
    "might must can't cannot don't doesn't didn't won't wouldn't shouldn't couldn't isn't aren't wasn't "
    "weren't haven't hasn't hadn't"
)
# Sentence adverbs that stay in front of an inserted subject ("Then use" -> "Then I use").
LEAD_ADVERBS = _words(
    "then next finally first firstly secondly thirdly afterwards afterward lastly subsequently meanwhile "
    "now again later also"
)
UNTIL = _words("until till while when before after")  # "Wait until ...", "Stir while ..."
PARTICLES = _words("up down out off in on over away back aside together apart around through")
BODY_PARTS = _words("hand hands finger fingers thumb thumbs palm palms arm arms wrist wrists fist fists")
BODY_PART_COMPOUNDS = _words("towel towels mixer blender cream soap sanitizer sanitiser wash brush saw drill")
SIDES = _words("left right other")
# Agreement when the subject becomes "I": from "you" (are/were) or from a third person singular (is/has/does).
I_FORMS = {
    "are": "am", "were": "was", "aren't": "am not", "weren't": "wasn't", "is": "am", "isn't": "am not",
    "has": "have", "hasn't": "haven't", "does": "do", "doesn't": "don't",
}  # fmt: skip
ACTOR_NOUNS = _words("person wearer cameraman host chef")  # "The person holds" -> "I hold"
ACTOR_MENTION = r"\b(?:his|her|their)\s+(?:left\s+|right\s+|other\s+)?hands?\b|\bthe\s+(?:person|host|chef)\b"
YOU_CONTRACTIONS = {"you're": "I'm", "you've": "I've", "you'll": "I'll", "you'd": "I'd"}
YOUR_FORMS = {"your": "my", "yours": "mine", "yourself": "myself", "yourselves": "ourselves"}


# ---------------------------------------------------------------------------------------------- lexicon helpers
@lru_cache(maxsize=65536)
def verb_tags(word: str) -> frozenset[str]:
    """Penn tags (VB, VBD, VBG, VBN, VBP, VBZ) `word` can have as a verb, per lemminflect's lexicon."""
    w = word.lower()
    if w in DETERMINERS or w in PREPOSITIONS or w in CLAUSE_OPENERS or "'" in w:
        return frozenset()
    tags: set[str] = set()
    for lemma in getAllLemmas(w, upos="VERB").get("VERB", ()):
        if w == lemma:
            tags.update(("VB", "VBP"))
        for tag, forms in getAllInflections(lemma, upos="VERB").items():
            if w in forms:
                tags.add(tag)
    if not tags and "-" in w:  # "stir-fry", "pan-fry": the last part carries the verb
        tags = set(verb_tags(w.rsplit("-", 1)[1])) & {"VB", "VBP", "VBZ", "VBD", "VBG", "VBN"}
    return frozenset(tags)


def is_base_verb(word: str) -> bool:
    return "VB" in verb_tags(word)


def is_adverb(word: str) -> bool:
    if word.lower() in PREPOSITIONS or word.lower() in CLAUSE_OPENERS:
        return False
    pos = getAllLemmas(word.lower())
    return bool(pos) and set(pos) == {"ADV"} or (word.lower().endswith("ly") and not verb_tags(word))


def inflect(verb: str, tag: str) -> str:
    """`verb` (base form, may be hyphenated) in form `tag` via lemminflect; OOV words use its rules."""
    forms = getInflection(verb, tag=tag)
    return forms[0] if forms else verb


def base_form(word: str) -> str:
    lemmas = getAllLemmas(word.lower(), upos="VERB").get("VERB")
    return lemmas[0] if lemmas else word.lower()
