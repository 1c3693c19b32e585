"""SourceRecord -> EgoITItem(s): a first-person conversation in VideoLLaMA2's training format.

    load_templates(path)              templates.yaml -> Templates (checked: 10 per source, questions where needed)
    to_items(record, templates)       one item per record; EgoTimeQA with wrong answers adds a multiple-choice item
    to_videollama2(item, video_path)  {"id", "video", "conversations": [{"from", "value"}, ...]}

The template of a record is fixed by sha256("<source>:<record_id>") % 10, and the option order of a multiple-choice
item by sha256 of its id, so a rebuild (any process, any machine) produces the same items.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.firstperson import answer_in_first_person, fix_person, to_first_person
from pipeline.egoit.labels import ActionPhrasing, egtea_sentence, ssv2_sentence
from pipeline.egoit.records import SOURCES, EgoITItem, SourceRecord, Turn, item_key

TEMPLATES_PATH = Path(__file__).with_name("templates.yaml")
TEMPLATES_PER_SOURCE = 10
QUESTION_SOURCES = frozenset({"egotimeqa", "openeqa"})  # records bring their own question
SPLITS = ("train", "val")
VIDEO_TOKEN = "<video>"
LETTERS = "ABCDEFGHIJ"
# The fields each source's records carry (SourceRecord's docstring) and metadata keeps; other fields a reader
# adds are left out so that every item of a source has the same metadata keys (samples.META_FIELDS).
METADATA_FIELDS = {
    "egtea": ("verb", "nouns", "action", "action_id", "verb_id", "noun_ids", "session", "start_ms", "end_ms"),
    "ssv2": ("template", "placeholders", "label", "class_index"),
    "egotimeqa": ("question", "answer", "wrong_answers", "moment_start_sec", "moment_end_sec"),
    "openeqa": ("question", "answer", "category", "extra_answers"),
    "egoexolearn": ("narration", "scenario", "view"),
}
_SECOND_PERSON = re.compile(r"\byou(?:r|rs|rself|rselves)?\b", re.I)


class TemplateError(ValueError):
    """templates.yaml is malformed; the message names the source and template index."""


@dataclass(frozen=True)
class Template:
    instruction: str
    question: str = ""  # "" for sources whose records carry the question


@dataclass(frozen=True)
class MultipleChoiceFormat:
    option: str  # "({letter}) {text}"
    instruction_suffix: str  # the answer-format line after the options
    answer: str  # "{letter}" (may also use {text})


@dataclass(frozen=True)
class Templates:
    by_source: dict[str, tuple[Template, ...]]
    multiple_choice: MultipleChoiceFormat
    egtea: ActionPhrasing
    ssv2_slots: dict[str, str]
    version: str  # templates.yaml's `version`, kept in each item's metadata


# ---------------------------------------------------------------------------------------------- templates
def load_templates(path: str | os.PathLike | None = None) -> Templates:
    path = Path(path) if path is not None else TEMPLATES_PATH
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    where = path.name
    if not isinstance(doc, dict):
        raise TemplateError(f"{where}: expected a mapping at the top level")
    sources = doc.get("sources")
    if not isinstance(sources, dict):
        raise TemplateError(f"{where}: 'sources' must map each source to its templates")
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise TemplateError(f"{where}: unknown source(s) {unknown}; expected {list(SOURCES)}")
    by_source = {s: _source_templates(where, s, sources.get(s)) for s in SOURCES}
    mc = doc.get("multiple_choice") or {}
    fmt = MultipleChoiceFormat(
        option=_text(where, "multiple_choice.option", mc.get("option")),
        instruction_suffix=_text(where, "multiple_choice.instruction_suffix", mc.get("instruction_suffix")),
        answer=_text(where, "multiple_choice.answer", mc.get("answer")),
    )
    if "{letter}" not in fmt.option or "{text}" not in fmt.option or "{letter}" not in fmt.answer:
        raise TemplateError(
            f"{where}: multiple_choice.option needs {{letter}} and {{text}}, answer {{letter}}"
        )
    eg = doc.get("egtea") or {}
    phrasing = ActionPhrasing(
        verbs=_str_map(where, "egtea.verbs", eg.get("verbs")),
        one_noun=_str_map(where, "egtea.one_noun", eg.get("one_noun")),
        prepositions=_list_map(where, "egtea.prepositions", eg.get("prepositions")),
        action_prepositions=_list_map(where, "egtea.action_prepositions", eg.get("action_prepositions")),
        nouns=_str_map(where, "egtea.nouns", eg.get("nouns")),
    )
    slots = _str_map(where, "ssv2_slots", doc.get("ssv2_slots"))
    for slot, pattern in slots.items():
        if "{}" not in pattern:
            raise TemplateError(f"{where}: ssv2_slots[{slot!r}] needs '{{}}' where the noun phrase goes")
    return Templates(by_source, fmt, phrasing, slots, str(doc.get("version", "")))


def _source_templates(where: str, source: str, entries: Any) -> tuple[Template, ...]:
    if not isinstance(entries, list):
        raise TemplateError(f"{where}: source {source!r}: missing (needs a list of {TEMPLATES_PER_SOURCE})")
    if len(entries) != TEMPLATES_PER_SOURCE:
        raise TemplateError(
            f"{where}: source {source!r}: {len(entries)} templates, need exactly {TEMPLATES_PER_SOURCE}"
        )
    out: list[Template] = []
    for i, entry in enumerate(entries):
        at = f"{where}: source {source!r} template {i}"
        if not isinstance(entry, dict) or set(entry) - {"instruction", "question"}:
            raise TemplateError(f"{at}: expected a mapping with 'instruction' and optionally 'question'")
        instruction = _text(at, "instruction", entry.get("instruction"))
        if source in QUESTION_SOURCES:
            if "question" in entry:
                raise TemplateError(f"{at}: has a 'question', but {source} records bring their own")
            question = ""
        else:
            question = _text(at, "question", entry.get("question"))
        template = Template(instruction, question)
        if template in out:
            raise TemplateError(f"{at}: duplicate of template {out.index(template)}")
        if _SECOND_PERSON.search(f"{instruction} {question}"):
            raise TemplateError(f"{at}: says 'you'/'your'; templates speak as the camera wearer (I/my)")
        out.append(template)
    return tuple(out)


def _text(at: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TemplateError(f"{at}: {key!r} missing or not a non-empty string")
    return " ".join(value.split())


def _str_map(at: str, key: str, value: Any) -> dict[str, str]:
    value = value or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TemplateError(f"{at}: {key} must map strings to strings")
    return dict(value)


def _list_map(at: str, key: str, value: Any) -> dict[str, list[str]]:
    value = value or {}
    ok = isinstance(value, dict) and all(
        isinstance(v, list) and v and all(isinstance(p, str) for p in v) for v in value.values()
    )
    if not ok:
        raise TemplateError(f"{at}: {key} must map labels to non-empty lists of strings")
    return {str(k): list(v) for k, v in value.items()}


def template_index(source: str, record_id: str) -> int:
    """Stable across processes and Python versions (unlike hash())."""
    digest = hashlib.sha256(f"{source}:{record_id}".encode()).hexdigest()
    return int(digest, 16) % TEMPLATES_PER_SOURCE


def item_id(source: str, record_id: str, suffix: str = "") -> str:
    """`<source>-<record_id>[-<suffix>]` with [^A-Za-z0-9_-] -> '_'; over 80 chars -> 63 chars + '-' + 16 hex
    (records.item_key: the keys the readers claimed, so no two items of a source share one)."""
    return item_key(source, record_id, suffix)


# ---------------------------------------------------------------------------------------------- items
def to_items(record: SourceRecord, templates: Templates, *, split: str = "train") -> list[EgoITItem]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if record.source not in SOURCES:
        raise ValueError(f"record {record.record_id!r}: unknown source {record.source!r}")
    index = template_index(record.source, record.record_id)
    template = templates.by_source[record.source][index]
    question, answer, task = _question_answer(record, template, templates)
    if not question or not answer:
        raise ValueError(f"{record.source} record {record.record_id!r}: empty question or answer")
    metadata = {
        "record_id": record.record_id,
        "source_file": record.source_file,
        "source_split": record.source_split,
        "template_index": index,
        "template_version": templates.version,
        **{k: _plain(k, record.fields.get(k)) for k in METADATA_FIELDS[record.source]},
    }
    human = f"{VIDEO_TOKEN}\n{template.instruction} {question}"
    items = [_item(record, item_id(record.source, record.record_id), task, split, human, answer, metadata)]
    if record.source == "egotimeqa" and record.fields.get("wrong_answers"):
        mc = _multiple_choice(record, template, question, templates.multiple_choice, split, metadata)
        if mc is not None:
            items.append(mc)
    return items


def _question_answer(record: SourceRecord, template: Template, templates: Templates) -> tuple[str, str, str]:
    f, source = record.fields, record.source
    if source == "egtea":
        return template.question, egtea_sentence(f["verb"], list(f["nouns"]), templates.egtea), record.task
    if source == "ssv2":
        answer = ssv2_sentence(f["template"], list(f["placeholders"]), templates.ssv2_slots)
        return template.question, answer, record.task
    if source == "egoexolearn":
        return template.question, to_first_person(f["narration"]), record.task
    question = _as_question(fix_person(str(f["question"])))
    if source == "egotimeqa":  # my own past actions: "gave it to Person B" -> "I gave it to Person B."
        return question, answer_in_first_person(str(f["answer"]), question), "open_qa"
    return question, fix_person(str(f["answer"])).strip(), record.task  # openeqa: keep the content


def _as_question(text: str) -> str:
    text = " ".join(text.split())
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    return text if not text or text[-1] in "?.!" else text + "?"


def _multiple_choice(
    record: SourceRecord,
    template: Template,
    question: str,
    fmt: MultipleChoiceFormat,
    split: str,
    metadata: dict[str, Any],
) -> EgoITItem | None:
    """Options = answer + distinct wrong answers, in an order fixed by sha256 of the item id."""
    answer = fix_person(str(record.fields["answer"])).strip()
    candidates = {0: answer}  # 0 = the answer, 1 + j = wrong_answers[j]
    for j, wrong in enumerate(record.fields["wrong_answers"]):
        text = fix_person(str(wrong)).strip()
        if text and text.casefold() not in {c.casefold() for c in candidates.values()}:
            candidates[1 + j] = text
    if len(candidates) < 2 or len(candidates) > len(LETTERS):
        return None
    ident = item_id(record.source, record.record_id, "mc")
    order = sorted(candidates, key=lambda k: hashlib.sha256(f"{ident}:{k}".encode()).hexdigest())
    options = [candidates[k] for k in order]
    correct = order.index(0)
    letter = LETTERS[correct]
    lines = [fmt.option.format(letter=LETTERS[k], text=text) for k, text in enumerate(options)]
    human = "\n".join([f"{VIDEO_TOKEN}\n{template.instruction} {question}", *lines, fmt.instruction_suffix])
    meta = {
        **metadata,
        "options": options,
        "option_order": order,
        "answer_index": correct,
        "answer_letter": letter,
    }
    return _item(
        record, ident, "multiple_choice", split, human, fmt.answer.format(letter=letter, text=answer), meta
    )


def _item(
    record: SourceRecord, ident: str, task: str, split: str, human: str, answer: str, meta: dict
) -> EgoITItem:
    return EgoITItem(
        id=ident,
        source=record.source,
        task=task,
        split=split,
        video_id=record.video_id,
        video=record.video,
        conversations=(Turn("human", human), Turn("gpt", answer)),
        metadata=meta,
    )


def _plain(key: str, value: Any) -> Any:
    """Metadata without None (JSON consumers and Arrow columns choke on it): numbers -> -1, text -> ""."""
    if value is None:
        return -1 if key.endswith(("_id", "_ids", "_ms", "_sec", "_index")) else ""
    if isinstance(value, (list, tuple)):
        return [_plain(key, v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(str(k), v) for k, v in value.items()}
    return value


def to_videollama2(item: EgoITItem, video_path: str | os.PathLike) -> dict:
    """One entry of VideoLLaMA2's training JSON."""
    return {
        "id": item.id,
        "video": os.fspath(video_path),
        "conversations": [{"from": t.speaker, "value": t.text} for t in item.conversations],
    }
