"""The text the bundled builds ship is clean of the source releases' markup: no EgoIT answer, EgoClip caption or
EgoMCQ question/option holds a '#', a bare Ego4D tag letter (C or O as a word) or EgoExoLearn's "Video 1:"
cell labels. The bundled samples carry the real variants (tools/samples: "#c c", "# C C", a bare "C C", "#CC",
doubled words, "#unsure", "#O" speakers; a two-caption EgoExoLearn cell), so these fail when a rule breaks.
"""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

# a tag letter standing alone ("C picks", "hands C a cup"); letters after a person noun are names ("man X")
BARE_TAG = re.compile(r"(?<![\w'’-])[CO](?![\w'’-])")
CELL_LABEL = re.compile(r"\bVideo\s*\d\s*:", re.IGNORECASE)


def markup(text: str) -> list[str]:
    """What is wrong with one shipped text ([] when clean)."""
    found = []
    if "#" in text:
        found.append("'#'")
    names = re.sub(r"\b(?:man|woman|person|lady|girl|boy|guy)\s+[A-Z]\b", "", text, flags=re.IGNORECASE)
    if BARE_TAG.search(names):
        found.append("bare tag letter")
    if CELL_LABEL.search(text):
        found.append("'Video N:'")
    return found


def members(out: Path, suffix: str):
    for tar in sorted(out.glob("*.tar")):
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                if m.name.endswith(suffix):
                    yield f"{tar.name}:{m.name}", t.extractfile(m).read().decode("utf-8")


def test_the_checker_sees_each_kind_of_markup():
    assert markup("#C C picks a cup") and markup("C picks a cup.") and markup("A person hands C a cup.")
    assert markup("Video 1: I use my left hand.") and markup("I open the # lid.")
    assert markup("Man X hands me a cup.") == markup("I take vitamin tablets.") == []


def test_egoit_answers_carry_no_markup(egoit_build):
    out, _ = egoit_build
    entries = json.loads((out / "egoit.json").read_text())
    answers = [
        (e["id"], turn["value"]) for e in entries for turn in e["conversations"] if turn["from"] == "gpt"
    ]
    assert len(answers) >= 40
    # a multiple-choice item's answer is its option letter ("C"): not a tag
    answers = [(i, a) for i, a in answers if not (i.endswith("-mc") and re.fullmatch(r"[A-Z]", a))]
    bad = [(i, a, markup(a)) for i, a in answers if markup(a)]
    assert bad == []


def test_egoclip_captions_carry_no_markup(egoclip_build):
    out, _ = egoclip_build
    captions = list(members(out, ".txt"))
    assert len(captions) >= 15
    bad = [(where, text, markup(text)) for where, text in captions if markup(text)]
    assert bad == []
    # the sample's variants reached the shards as captions ("#c c lifts the tyre" -> "Camera-wearer lifts ...")
    texts = {text for _, text in captions}
    assert {"Camera-wearer lifts the tyre", "Camera-wearer picks the tyre lever"} <= texts


def test_egomcq_questions_and_options_carry_no_markup(egobench_build):
    out, _ = egobench_build
    texts = []
    for where, doc in members(out, ".json"):
        item = json.loads(doc)
        if item.get("task") == "egomcq":
            texts += [(where, t) for t in [item["question"], *item["options"]]]
    assert len(texts) >= 10
    assert [(where, t, markup(t)) for where, t in texts if markup(t)] == []
