"""Ego4D narration text (pipeline/core/narration.py) and bare action labels (pipeline/core/action_labels.py).

The graded set (tests/data/first_person_graded.tsv) holds real lines copied verbatim from ../shared/real with the
sentence expected by judgment; at least 97% must come out right. The caption rule runs over every real narration.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from pipeline.core.action_labels import label_first_person
from pipeline.core.narration import caption, first_person, is_tagged, parse
from tests.conftest import SHARED_REAL, needs_real

GRADED = Path(__file__).with_name("data") / "first_person_graded.tsv"
# a letter after a person noun is a name ("man X", "man C", "woman O"), not a tag
NAMED = frozenset(["man", "woman", "person", "lady", "girl", "boy", "kid", "child"])


def _bare_tag(text: str) -> bool:
    words = re.findall(r"[\w'’-]+", text)
    return any(
        w.split("'")[0] in ("C", "O") and (i == 0 or words[i - 1].lower() not in NAMED)
        for i, w in enumerate(words)
    )


def _graded() -> list[tuple[str, str, str]]:
    lines = [ln for ln in GRADED.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    rows = [tuple(ln.split("\t")) for ln in lines[1:]]
    assert lines[0] == "source\traw\texpected" and all(len(r) == 3 for r in rows)
    return rows  # type: ignore[return-value]


def _convert(source: str, raw: str) -> str:
    if source.startswith("ego4d_narrations/"):
        return first_person(raw) or ""
    return label_first_person(raw)


def _real_narrations() -> list[str]:
    texts = []
    for path in sorted((SHARED_REAL / "ego4d_narrations").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            texts += [row["narration_text"] for row in csv.DictReader(f)]
    return texts


def test_graded_set_is_large_mixed_and_verbatim():
    rows = _graded()
    ego = [r for r in rows if r[0].startswith("ego4d_narrations/")]
    assert len(rows) >= 300 and len(ego) >= 200 and len(rows) - len(ego) >= 100
    for variant in (
        "#C c ",
        "#c c ",
        "#CC ",
        "# C C ",
        "C C ",
        "#C ",
        "#O ",
        "#Summary",
        "#unsure",
        "#Unsure",
    ):
        assert any(r[1].startswith(variant) or variant in r[1] for r in ego), variant
    if SHARED_REAL.exists():
        texts = {}
        for source, raw, _ in rows:
            if source not in texts:
                texts[source] = (SHARED_REAL / source).read_text(encoding="utf-8")
            assert raw in texts[source], (source, raw)


def test_graded_first_person_is_at_least_97_percent_right():
    rows = _graded()
    misses = [(raw, expected, _convert(source, raw)) for source, raw, expected in rows]
    misses = [m for m in misses if m[1] != m[2]]
    right = len(rows) - len(misses)
    print(f"\nfirst person: {right}/{len(rows)} right ({right / len(rows):.1%})")
    for raw, expected, got in misses:
        print(f"  {raw!r}\n    expected {expected!r}\n    got      {got!r}")
    assert right / len(rows) >= 0.97


@pytest.mark.parametrize(
    ("raw", "tag", "speaker", "text"),
    [
        ("#C C picks a bag", "C", "C", "picks a bag"),
        ("# C c holds the pan", "C", "C", "holds the pan"),
        ("#CC switches on the light", "C", "C", "switches on the light"),
        ("#c opens the tap", "C", "C", "opens the tap"),
        ("C C picks liquid soap", "none", "C", "picks liquid soap"),
        ("#O A Lady walks to the sink", "O", "a lady", "walks to the sink"),
        ("#O man x hands C a cup", "O", "man X", "hands C a cup"),
        ("#O O opens the door", "O", "a person", "opens the door"),
        ("#unsure", "unsure", "", ""),
        ("#C C #Unsure", "C", "C", ""),
        ("#Summary C was in the kitchen", "summary", "C", "was in the kitchen"),
    ],
)
def test_parse(raw, tag, speaker, text):
    assert parse(raw) == parse(raw) and (parse(raw).tag, parse(raw).speaker, parse(raw).text) == (
        tag,
        speaker,
        text,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("#C C picks a bag of clothes from the floor", "Camera-wearer picks a bag of clothes from the floor"),
        ("#O man X hands C a cup", "Man X hands the camera-wearer a cup"),
        ("#O O opens the door", "A person opens the door"),
        ("#C C picks the #unsure", "Camera-wearer picks something"),
        ("#c c Puts the the cup down", "Camera-wearer puts the cup down"),
        ("#C C #unsure", ""),
    ],
)
def test_caption(raw, expected):
    assert caption(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("#C C picks a bag of clothes from the floor", "I pick a bag of clothes from the floor."),
        ("#C C adjusts his hair", "I adjust my hair."),
        ("#C C looks at his watch", "I look at my watch."),
        ("#O man X hands C a cup", "Man X hands me a cup."),
        ("#O A lady walks to the sink", "A lady walks to the sink."),
        ("#O O opens the door", "A person opens the door."),
        ("#O A Lady washes her hands", "A lady washes her hands."),
        ("#C C gives man X his phone", "I give man X his phone."),
        ("#C C Exchanges the knife", "I exchange the knife."),
        ("#C C picks the #unsure", "I pick something."),
        ("#C C cleans the #unsure machine", "I clean the machine."),
    ],
)
def test_first_person(raw, expected):
    assert first_person(raw) == expected
    assert is_tagged(raw)


@needs_real
def test_captions_of_every_real_narration_keep_no_tag():
    texts = _real_narrations()
    assert len(texts) > 7000
    bad = []
    for raw in texts:
        cap = caption(raw)
        words = cap.lower().split()
        if "#" in cap or _bare_tag(cap) or any(a == b for a, b in zip(words, words[1:], strict=False)):
            bad.append((raw, cap))
        fp = first_person(raw)
        if fp is not None and ("#" in fp or _bare_tag(fp)):
            bad.append((raw, fp))
    assert not bad, bad[:20]
