"""The JSON form of a BenchItem (schemas/egobench.schema.json): items.jsonl rows and the shards' json member.

Every item has the same keys with the same types (HF `datasets` infers one schema from the first samples), so
absent values are "" / -1 / -1.0 / [] / false, never null:

    id, task, metric, source_file        strings (metric = TASKS[task])
    videos         [{path, start_sec, end_sec (-1.0 = the file's start / end), frames ([] for a video file)}]
    question       "" for charades_ego and epic_mir
    options        choice: the options; multilabel: the class names; video_choice: the clips' texts; else []
    has_answer     false only for EgoSchema items outside the 500 public answers
    answer_index   choice / video_choice: the correct option (-1 when not public); else -1
    answer_indices multilabel: the positive classes (sorted); else []
    answer_text    open: the reference answer; choice / video_choice: the correct option's text; else ""
    sentence_id    retrieval: the item's own sentence (epic_mir.sentence_set row id); else ""
    metadata       the union of every reader's fields (META_FIELDS), absent ones at their default
"""

from __future__ import annotations

from pipeline.core.schemas import schema_problem
from pipeline.egobench.records import BenchItem

# field -> (type, default). Lists hold str or int as named. Readers put only these keys in BenchItem.metadata.
META_FIELDS: dict[str, tuple[str, object]] = {
    "split": ("str", ""),  # the source split (qaego4d, egotaskqa)
    "video_id": (
        "str",
        "",
    ),  # the source video (Ego4D clip uid, LEMMA video, Charades id, EPIC video id, ...)
    "video_uid": ("str", ""),  # the Ego4D video uid (egoschema, qaego4d closed)
    "google_drive_id": ("str", ""),  # egoschema
    "source_start_sec": ("float", -1.0),  # the item's window in the full source video (egoschema, qaego4d)
    "source_end_sec": ("float", -1.0),
    "moment_start_sec": ("float", -1.0),  # qaego4d: the answer's moment, s from the clip start
    "moment_end_sec": ("float", -1.0),
    "wrong_answers": ("list[str]", []),  # qaego4d closed, in the file's order
    "option_order": ("list[int]", []),  # qaego4d closed: option k = [answer, *wrong_answers][option_order[k]]
    "seed": ("int", -1),  # qaego4d closed: the order's seed
    "interval": ("str", ""),  # egotaskqa: "<video>|<P1|P2>|<start>|<end>"
    "view": ("str", ""),  # egotaskqa: P1 | P2
    "start_frame": ("int", -1),  # egotaskqa / egoplan / epic_mir: the clip's first source frame
    "end_frame": ("int", -1),  # ... and one past its last (epic_mir: stop_frame as annotated)
    "fps": ("float", -1.0),  # egoplan: the frame rate used to turn frames into seconds
    "question_type": ("list[str]", []),  # egotaskqa original: type, category, semantic, structural, ...
    "category": ("list[str]", []),
    "semantic": ("str", ""),
    "structural": ("str", ""),
    "reasoning_type": ("str", ""),
    # egotaskqa original: in_train | not_in_train | no_train_file (whether the baselines' train vocabulary
    # holds the answer; the options are the vocabulary)
    "answer_group": ("str", ""),
    "length_sec": ("float", -1.0),  # charades_ego
    "n_actions": ("int", -1),  # charades_ego: annotated actions (0: no positive class)
    "participant_id": ("str", ""),  # epic_mir
    "narration": ("str", ""),
    "verb": ("str", ""),
    "verb_class": ("int", -1),
    "noun_class": ("int", -1),
    "nouns": ("list[str]", []),
    "noun_classes": ("list[int]", []),  # all_noun_classes: with verb_class, the relevancy inputs
    "video_source": ("str", ""),  # egoplan: Ego4D | EpicKitchens
    "task_goal": ("str", ""),
    "domain": ("str", ""),  # egoplan Bench2
    "scenario": ("str", ""),
    "progress": ("list[str]", []),  # egoplan: task progress narrations, with their frames
    "progress_start_frames": ("list[int]", []),
    "progress_stop_frames": ("list[int]", []),
    "action": ("str", ""),  # vlnqa: the gold action folder
    "types": ("int", -1),  # egomcq: 1 = inter-video, 2 = intra-video (the data's meaning)
    "type_name": ("str", ""),  # egomcq: inter | intra
    "video_uids": ("list[str]", []),  # egomcq: the 5 choices' videos
    "n_videos": ("int", -1),  # egomcq: distinct videos among the choices
    "query_text": ("str", ""),  # egomcq: the query's clip_text as written
    "tag_verb": ("list[int]", []),  # egomcq: the query's tags
    "tag_noun": ("list[int]", []),
}
_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool}


def typed_metadata(metadata: dict) -> dict:
    """Every META_FIELDS key, typed; unknown keys and wrong types raise ValueError."""
    unknown = sorted(set(metadata) - set(META_FIELDS))
    if unknown:
        raise ValueError(f"unknown metadata fields {unknown}: add them to META_FIELDS and the schema")
    out = {}
    for name, (kind, default) in META_FIELDS.items():
        value = metadata.get(name)
        if value is None:
            value = list(default) if isinstance(default, list) else default
        if kind.startswith("list["):
            item_type = _TYPES[kind[5:-1]]
            ok = isinstance(value, list | tuple) and all(
                isinstance(v, item_type) and not isinstance(v, bool) for v in value
            )
            value = list(value) if ok else value
        else:
            ok = isinstance(value, _TYPES[kind]) and (kind == "bool" or not isinstance(value, bool))
            value = float(value) if ok and kind == "float" else value
        if not ok:
            raise ValueError(f"metadata field {name}={value!r} is not {kind}")
        out[name] = value
    return out


def item_json(item: BenchItem) -> dict:
    """The item as schemas/egobench.schema.json describes it."""
    metric = item.metric
    answer = item.answer
    choice = metric in ("choice", "video_choice")
    index = answer if choice and isinstance(answer, int) else -1
    return {
        "id": item.item_id,
        "task": item.task,
        "metric": metric,
        "source_file": item.source_file,
        "videos": [
            {
                "path": v.path,
                "start_sec": -1.0 if v.start_sec is None else float(v.start_sec),
                "end_sec": -1.0 if v.end_sec is None else float(v.end_sec),
                "frames": list(v.frames),
            }
            for v in item.videos
        ],
        "question": item.question,
        "options": list(item.options),
        "has_answer": answer is not None,
        "answer_index": index,
        "answer_indices": sorted(answer) if metric == "multilabel" and isinstance(answer, tuple) else [],
        "answer_text": answer if metric == "open" else item.options[index] if index >= 0 else "",
        "sentence_id": answer if metric == "retrieval" and isinstance(answer, str) else "",
        "metadata": typed_metadata(item.metadata),
    }


def validate_item_json(doc: dict) -> None:
    """Raise ValueError naming the item and the first failing field."""
    problem = schema_problem(doc, "egobench.schema.json")
    if problem is not None:
        raise ValueError(f"item {doc.get('task', '?')}/{doc.get('id', '?')}: {problem.replace('<record>', '<item>')}")
