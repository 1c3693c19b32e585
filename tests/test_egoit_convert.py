"""EgoIT conversion: first-person text, the instruction templates, and records -> VideoLLaMA2 conversations.

SourceRecords are built by hand here (the readers in pipeline/egoit/sources/ are tested on their own); the real
label vocabularies in ../shared/real are converted in full."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pipeline.core.firstperson import answer_in_first_person, fix_person, to_first_person
from pipeline.egoit.convert import (
    TEMPLATES_PATH,
    TemplateError,
    item_id,
    load_templates,
    template_index,
    to_items,
    to_videollama2,
)
from pipeline.egoit.labels import egtea_sentence, ssv2_sentence
from pipeline.egoit.records import SOURCES, SourceRecord, VideoRef
from tests.conftest import SHARED_REAL, needs_real

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def templates():
    return load_templates()


def record(source: str, record_id: str = "r1", task: str = "description", **fields) -> SourceRecord:
    return SourceRecord(
        source=source,
        record_id=record_id,
        source_file="annotations.json",
        source_split="train",
        video_id="vid",
        video=VideoRef("videos/vid.mp4", 1.0, 3.0),
        task=task,
        fields=fields,
    )


def assert_first_person(text: str) -> None:
    """What must never survive the conversion."""
    assert not re.search(r"\bC\b(?=\s+\w)", text), text  # Ego4D's camera wearer as a subject
    assert not re.search(r"\byou(?:r|rs|rself|rselves)?\b", text, re.I), text
    assert "[" not in text and "]" not in text, text
    assert text[:1].isupper(), text
    assert text[-1:] in ".!?", text


# ---------------------------------------------------------------------------------------------- exact outputs
EXACT = [
    # the three examples of the issue
    (
        to_first_person,
        "Use your left hand to hold down the meat piece, and use your right hand to take a knife and slice "
        "the cooked meat for later use.",
        "I use my left hand to hold down the meat piece, and use my right hand to take a knife and slice the "
        "cooked meat for later use.",
    ),
    (to_first_person, "Open the fridge.", "I open the fridge."),
    (to_first_person, "The left hand presses down the meat", "My left hand presses down the meat."),
    (
        to_first_person,
        "Using your right hand, add a spoonful of salt.",
        "Using my right hand, I add a spoonful of salt.",
    ),
    (to_first_person, "#C C picks a bag", "I pick a bag."),
    (to_first_person, "C picks a bag and puts it in the box.", "I pick a bag and put it in the box."),
    (to_first_person, "#O man X gives the cup to C", "Man X gives the cup to me."),
    (
        to_first_person,
        "After boiling the water, hold a bowl in your left hand.",
        "After boiling the water, I hold a bowl in my left hand.",
    ),
    (
        to_first_person,
        "Finally, use the left hand to hold the pot. Afterward, you can remove it from the stove.",
        "Finally, I use my left hand to hold the pot. Afterward, I can remove it from the stove.",
    ),
    (
        to_first_person,
        "The person holds a towel with their left hand and uses it to grip the pot.",
        "I hold a towel with my left hand and use it to grip the pot.",
    ),
    (
        to_first_person,
        "Holding a bowl in the left hand, and a spoon in the right hand, stir the sauce.",
        "Holding a bowl in my left hand, and a spoon in my right hand, I stir the sauce.",
    ),
    (
        to_first_person,
        "Stir the pepper slices, dried tofu, scallion segments, and garlic slices in a wok.",
        "I stir the pepper slices, dried tofu, scallion segments, and garlic slices in a wok.",
    ),
    (to_first_person, "Water is boiling in the pot.", "Water is boiling in the pot."),
    (
        to_first_person,
        "With their right hand, they hold a spatula. Once the surface turns golden, they are ready.",
        "With my right hand, I hold a spatula. Once the surface turns golden, they are ready.",
    ),
    (
        to_first_person,
        "Video 1: Use your left hand to hold the eggplant.",
        "Video 1: I use my left hand to hold the eggplant.",
    ),
    (to_first_person, "Continuously stir-fry the meat.", "I continuously stir-fry the meat."),
    (fix_person, "Where can you see the lamp?", "Where can I see the lamp?"),
    (fix_person, "Are you holding the cup?", "Am I holding the cup?"),
    (
        fix_person,
        "Yes a can of redbull right in front of you when you enter the room",
        "Yes a can of redbull right in front of me when I enter the room",
    ),
    (fix_person, "BARRON's AP Physics C", "BARRON's AP Physics C"),  # not Ego4D's C
    (fix_person, "gave it to Person C", "gave it to Person C"),
]


@pytest.mark.parametrize(("convert", "text", "expected"), EXACT, ids=[t[1][:40] for t in EXACT])
def test_exact_first_person(convert, text, expected):
    assert convert(text) == expected


@pytest.mark.parametrize(
    ("verb", "nouns", "expected"),
    [
        ("Put", ["cup", "table"], "I am putting the cup on the table."),  # the example
        ("Put", ["cup"], "I am putting the cup down."),
        ("Put", ["trash", "trash_container"], "I am putting the trash into the trash container."),
        ("Inspect/Read", ["recipe"], "I am reading the recipe."),
        ("Turn on", ["faucet"], "I am turning on the faucet."),
        ("Move Around", ["bacon"], "I am moving the bacon around."),
        ("Divide/Pull Apart", ["lettuce"], "I am pulling the lettuce apart."),
        ("Clean/Wipe", ["counter"], "I am wiping the counter."),
        (
            "Pour",
            ["oil", "oil_container", "pan"],
            "I am pouring the oil from the oil container into the pan.",
        ),
        ("Wash", ["hand"], "I am washing my hands."),
        (
            "Stir-fry",
            ["bell_pepper"],
            "I am stir-frying the bell pepper.",
        ),  # not in the table: lemminflect alone
    ],
)
def test_egtea_sentences(templates, verb, nouns, expected):
    assert egtea_sentence(verb, nouns, templates.egtea) == expected


@pytest.mark.parametrize(
    ("template", "placeholders", "expected"),
    [
        ("Spinning [something] that quickly stops spinning", ["cube"], "I am spinning the cube that quickly stops spinning."),
        ("Approaching [something] with your camera", ["red punching machine"], "I am approaching the red punching machine with my camera."),
        (
            "Plugging [something] into [something] but pulling it right out as you remove your hand",
            ["charger", "wall socket"],
            "I am plugging the charger into the wall socket but pulling it right out as I remove my hand.",
        ),
        ("[Something] falling like a rock", ["a pen"], "I see a pen falling like a rock."),
        ("Stacking [number of] [something]", ["3", "books"], "I am stacking 3 books."),
        ("Showing that [something] is empty", ['\\"a bowl.'], "I am showing that a bowl is empty."),
        ("Trying to bend [something unbendable] so nothing happens", ["pen"], "I am trying to bend the pen, which cannot be bent, so nothing happens."),
        ("Taking [one of many similar things on the table]", ["one coin of many similar coins on the table"], "I am taking one coin of many similar coins on the table."),
    ],
)  # fmt: skip
def test_ssv2_sentences(templates, template, placeholders, expected):
    assert ssv2_sentence(template, placeholders, templates.ssv2_slots) == expected


def test_ssv2_rejects_slot_count_mismatch():
    with pytest.raises(ValueError, match="2 slots"):
        ssv2_sentence("Putting [something] onto [something]", ["cup"])


@pytest.mark.parametrize(
    ("question", "answer", "expected"),
    [
        ("What did I do with the coffee?", "gave it to Person B", "I gave it to Person B."),
        ("What did I do after washing the cup?", "put it on the rack", "I put it on the rack."),
        ("What did I do with the apple?", "peels it", "I peeled it."),
        ("What was I doing in the garage?", "fixing the bike", "I was fixing the bike."),
        ("What did I do with the knife?", "#C C cuts the onion with it", "I cut the onion with it."),
        ("What did I put in the drawer?", "the scissors", "the scissors"),  # not an action question
        ("Where is the mirror?", "to your left", "to my left"),
    ],
)
def test_answers_in_first_person(question, answer, expected):
    assert answer_in_first_person(answer, question) == expected


# ---------------------------------------------------------------------------------------------- real vocabularies
def egtea_actions() -> list[tuple[str, list[str]]]:
    actions = []
    for line in (SHARED_REAL / "egtea_gaze_plus" / "action_idx.txt").read_text().splitlines():
        label = line.rsplit(" ", 1)[0]
        verb, nouns = label.rsplit(" ", 1)
        actions.append((verb, nouns.split(",")))
    return actions


@needs_real
def test_every_egtea_action(templates):
    actions = egtea_actions()
    assert len(actions) == 106
    answers = set()
    for n, (verb, nouns) in enumerate(actions):
        rec = record(
            "egtea", f"clip{n}", "action_recognition", verb=verb, nouns=nouns, action=f"{verb} {nouns}"
        )
        (item,) = to_items(rec, templates)
        answer = item.conversations[1].text
        assert_first_person(answer)
        assert answer.startswith("I am ") and answer.split()[2].endswith("ing"), answer
        assert "_" not in answer and "/" not in answer, answer
        answers.add(answer)
    assert len(answers) == 106  # no two actions collapse into one sentence


@needs_real
def test_every_ssv2_template(templates):
    folder = SHARED_REAL / "something_something_v2"
    labels = json.loads((folder / "something-something-v2-labels.json").read_text())
    by_class = {}
    for rec in json.loads((folder / "something-something-v2-validation.json").read_text()):
        by_class.setdefault(rec["template"].replace("[", "").replace("]", ""), rec)
    assert len(labels) == 174
    from_real = 0
    for name, index in labels.items():
        real = by_class.get(name)
        if real is not None:
            template, placeholders = real["template"], real["placeholders"]
            from_real += 1
        else:  # bracket every "something" of the class name, fill with generic objects
            template = re.sub(r"\bsomething\b", "[something]", name, flags=re.I)
            placeholders = ["cup", "box", "pen"][: template.count("[")]
        rec = record("ssv2", f"v{index}", "action_recognition", template=template, placeholders=placeholders)
        (item,) = to_items(rec, templates)
        answer = item.conversations[1].text
        assert_first_person(answer)
        assert answer.startswith(("I am ", "I see ")), answer
    assert from_real == 174  # every class has a validation record to take its placeholders from


@needs_real
def test_every_egoexolearn_narration(templates):
    with open(SHARED_REAL / "egoexolearn" / "exo_train.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6270
    first_person = 0
    for row in rows:
        rec = record(
            "egoexolearn", row["annotation_id"], narration=row["narration_en"], scenario=row["scenario"]
        )
        (item,) = to_items(rec, templates)
        answer = item.conversations[1].text
        assert_first_person(answer)
        first_person += bool(re.search(r"\b(I|my|My|me)\b", answer))
    assert first_person / len(rows) > 0.99  # the rest are noun fragments ("Chicken essence.")


@needs_real
def test_openeqa_keeps_the_content(templates):
    data = json.loads((SHARED_REAL / "openeqa" / "open-eqa-v0.json").read_text())
    for q in data:
        fields = {k: q[k] for k in ("question", "answer", "category")}
        rec = record(
            "openeqa", q["question_id"], "open_qa", extra_answers=q.get("extra_answers", []), **fields
        )
        (item,) = to_items(rec, templates)
        human, answer = item.conversations[0].text, item.conversations[1].text
        assert not re.search(r"\byou(?:r|rs|rself)?\b", human + " " + answer, re.I), (human, answer)
        if not re.search(r"\byou", q["answer"], re.I):
            assert answer == q["answer"].strip()  # "Air conditioning unit" stays as it is


# ---------------------------------------------------------------------------------------------- templates
def test_templates_file_is_valid(templates):
    assert set(templates.by_source) == set(SOURCES)
    for source, entries in templates.by_source.items():
        assert len(entries) == 10
        assert len(set(entries)) == 10
        for t in entries:
            assert t.instruction and (bool(t.question) == (source not in ("egotimeqa", "openeqa")))


def write_templates(tmp_path, mutate) -> Path:
    doc = yaml.safe_load(TEMPLATES_PATH.read_text())
    mutate(doc)
    path = tmp_path / "templates.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["sources"]["ssv2"].pop(), r"source 'ssv2': 9 templates, need exactly 10"),
        (lambda d: d["sources"]["egtea"][3].pop("question"), r"source 'egtea' template 3: 'question' missing"),
        (lambda d: d["sources"]["openeqa"][7].update(question="Where?"), r"source 'openeqa' template 7: has a 'question'"),
        (lambda d: d["sources"]["egoexolearn"][5].update(instruction="Tell me what you do."), r"'egoexolearn' template 5: says 'you'"),
        (lambda d: d["sources"]["egotimeqa"][2].update(d["sources"]["egotimeqa"][1]), r"'egotimeqa' template 2: duplicate of template 1"),
        (lambda d: d["sources"].pop("openeqa"), r"source 'openeqa': missing"),
        (lambda d: d["sources"].update(epic=[]), r"unknown source"),
        (lambda d: d["egtea"]["prepositions"].update(Put=[True]), r"egtea.prepositions"),  # a bare YAML `on`
        (lambda d: d["multiple_choice"].update(option="{text}"), r"multiple_choice.option"),
    ],
)  # fmt: skip
def test_template_errors_name_source_and_index(tmp_path, mutate, message):
    with pytest.raises(TemplateError, match=message):
        load_templates(write_templates(tmp_path, mutate))


def test_template_index_is_sha256_and_stable_across_processes(templates):
    ids = [f"clip-{n}" for n in range(1000)]
    expected = [int(hashlib.sha256(f"egtea:{i}".encode()).hexdigest(), 16) % 10 for i in ids]
    assert [template_index("egtea", i) for i in ids] == expected
    counts = Counter(expected)
    assert set(counts) == set(range(10)) and min(counts.values()) > 60  # all 10 used, roughly evenly
    code = "from pipeline.egoit.convert import template_index as t; print([t('egtea', f'clip-{n}') for n in range(50)])"
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == expected[:50]
    # the item uses that template
    rec = record("ssv2", "clip-7", "action_recognition", template="Holding [something]", placeholders=["cup"])
    chosen = templates.by_source["ssv2"][expected[7]]
    (item,) = to_items(rec, templates)
    assert item.conversations[0].text == f"<video>\n{chosen.instruction} {chosen.question}"
    assert item.metadata["template_index"] == expected[7]


# ---------------------------------------------------------------------------------------------- items
WRONG = ("drank it myself", "left it on the table", "spilled it on the floor")


def egotimeqa(record_id: str = "s1", answer: str = "gave it to Person B", wrong=WRONG) -> SourceRecord:
    question = "What did I do with the coffee?"
    return record(
        "egotimeqa",
        record_id,
        "open_qa",
        question=question,
        answer=answer,
        wrong_answers=list(wrong),
        moment_start_sec=None,
    )


def test_egotimeqa_gives_open_and_multiple_choice_items(templates):
    open_item, mc = to_items(egotimeqa(), templates)
    assert (open_item.id, open_item.task) == ("egotimeqa-s1", "open_qa")
    assert open_item.conversations[1].text == "I gave it to Person B."
    assert (mc.id, mc.task) == ("egotimeqa-s1-mc", "multiple_choice")
    human, letter = mc.conversations[0].text, mc.conversations[1].text
    lines = human.split("\n")
    assert lines[0] == "<video>" and lines[1].endswith("What did I do with the coffee?")
    assert lines[-1] == "Answer with the option's letter from the given choices directly."
    options = [re.fullmatch(r"\(([A-D])\) (.+)", line).groups() for line in lines[2:-1]]
    assert [o[0] for o in options] == ["A", "B", "C", "D"]
    texts = [o[1] for o in options]
    assert texts.count("gave it to Person B") == 1 and len(set(texts)) == 4
    assert re.fullmatch(r"[A-D]", letter) and texts["ABCD".index(letter)] == "gave it to Person B"
    meta = mc.metadata
    assert meta["answer_index"] == "ABCD".index(letter) and meta["options"] == texts
    assert sorted(meta["option_order"]) == [0, 1, 2, 3] and meta["option_order"][meta["answer_index"]] == 0
    assert to_items(egotimeqa(), templates)[1] == mc  # deterministic


def test_multiple_choice_order_varies_by_sample_and_drops_duplicate_answers(templates):
    positions = Counter(
        to_items(egotimeqa(f"s{n}"), templates)[1].metadata["answer_index"] for n in range(200)
    )
    assert set(positions) == {0, 1, 2, 3}
    _, mc = to_items(egotimeqa(wrong=("Gave it to Person B", "drank it", "drank it")), templates)
    assert mc.metadata["options"].count("gave it to Person B") == 1 and len(mc.metadata["options"]) == 2
    assert len(to_items(egotimeqa(wrong=()), templates)) == 1  # open-only variant


def test_ids_are_sanitised_short_and_unique():
    assert item_id("ssv2", "a/b c.d") == "ssv2-a_b_c_d"
    long_a, long_b = item_id("openeqa", "x" * 100 + "a"), item_id("openeqa", "x" * 100 + "b")
    for ident in (long_a, long_b):
        assert len(ident) == 80 and re.fullmatch(r"[A-Za-z0-9_-]{63}-[0-9a-f]{16}", ident)
    assert long_a != long_b


@needs_real
def test_ids_unique_over_real_egtea_and_ssv2_records():
    folder = SHARED_REAL / "egtea_gaze_plus"
    clips = [
        line.split()[0]
        for f in ("train_split1.txt", "test_split1.txt")
        for line in (folder / f).open()
        if line.strip()
    ]
    ssv2 = json.loads(
        (SHARED_REAL / "something_something_v2" / "something-something-v2-validation.json").read_text()
    )
    ids = [item_id("egtea", c) for c in clips] + [item_id("ssv2", r["id"]) for r in ssv2]
    assert len(ids) == len(set(ids)) == len(clips) + len(ssv2)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,80}", i) for i in ids)


def test_metadata_has_no_none_and_keeps_the_source_fields(templates):
    open_item, mc = to_items(egotimeqa(), templates)
    for item in (open_item, mc):
        assert item.metadata["wrong_answers"] == list(WRONG) and item.metadata["template_version"] == "1"
        assert item.metadata["moment_start_sec"] == -1  # documented field absent from this record: -1
        assert item.metadata["answer"] == "gave it to Person B" and item.metadata["record_id"] == "s1"
        assert "None" not in json.dumps(item.metadata) and "null" not in json.dumps(item.metadata)
    assert (open_item.video, open_item.video_id, open_item.split) == (
        VideoRef("videos/vid.mp4", 1.0, 3.0),
        "vid",
        "train",
    )
    # a documented field that is None or missing: -1 for numbers (ids, times), "" for text
    rec = record(
        "egtea", "P01-R01", "action_recognition", verb="Open", nouns=["fridge"], start_ms=None, session=None
    )
    (item,) = to_items(rec, templates)
    meta = item.metadata
    assert (meta["start_ms"], meta["end_ms"], meta["action_id"], meta["session"], meta["action"]) == (
        -1,
        -1,
        -1,
        "",
        "",
    )
    assert None not in meta.values()


def test_to_videollama2_shape(templates):
    rec = record(
        "egoexolearn", "hIOL2zPZ", narration="Use your left hand to hold the pot.", scenario="kitchen"
    )
    (item,) = to_items(rec, templates, split="val")
    entry = to_videollama2(item, "egoit/egoexolearn/hIOL2zPZ.mp4")
    assert set(entry) == {"id", "video", "conversations"}
    assert entry["id"] == "egoexolearn-hIOL2zPZ" and entry["video"] == "egoit/egoexolearn/hIOL2zPZ.mp4"
    assert [set(t) for t in entry["conversations"]] == [{"from", "value"}] * 2
    assert [t["from"] for t in entry["conversations"]] == ["human", "gpt"]
    assert entry["conversations"][0]["value"].startswith("<video>\n")
    assert json.dumps(entry).count("<video>") == 1
    assert entry["conversations"][1]["value"] == "I use my left hand to hold the pot."
    assert json.loads(json.dumps(entry)) == entry


def test_bad_split_and_source_are_rejected(templates):
    with pytest.raises(ValueError, match="split"):
        to_items(egotimeqa(), templates, split="test")
    with pytest.raises(ValueError, match="unknown source"):
        to_items(record("epic", "x"), templates)
