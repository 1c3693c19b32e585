"""lmms-eval task functions over EgoBench shards (tests/test_lmms_adapter.py renders the task YAMLs beside a copy
of this file; lmms-eval resolves `!function utils.<name>` relative to the YAML).

The shards are read by Hugging Face datasets' "webdataset" builder: the `json` member becomes a struct column
(the item as records_json.item_json writes it), `mp4` a Video column, cast here to decode=False so a doc holds
the clip's bytes ({"bytes", "path"}) and the Exo2Ego adapter decodes them (no torchcodec needed); JPEG-frame
items (`00.jpg`..) arrive as PIL images, one column per frame.
"""

import re
import string

import datasets

from exo2ego_model.eval.choice import parse_choice

LETTERS = string.ascii_uppercase
_FRAME = re.compile(r"^\d+\.jpg$")


def process_docs(dataset: datasets.Dataset) -> datasets.Dataset:
    if "mp4" in dataset.features:
        dataset = dataset.cast_column("mp4", datasets.Video(decode=False))
    return dataset


def doc_to_visual(doc):
    if doc.get("mp4"):
        return [doc["mp4"]]
    return [[doc[k] for k in sorted(doc) if _FRAME.match(k)]]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    item = doc["json"]
    options = "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(item["options"]))
    return f"{item['question']}\nOptions:\n{options}\nAnswer with the option's letter from the given choices directly."


def doc_to_target(doc):
    return LETTERS[doc["json"]["answer_index"]]


def process_results(doc, results):
    item = doc["json"]
    pred = parse_choice(results[0], len(item["options"]), item["options"])
    return {"accuracy": float(pred == item["answer_index"]), "unparsed": float(pred is None)}


def doc_to_text_mc(doc, lmms_eval_specific_kwargs=None):
    return doc["json"]["question"]


def doc_to_choice(doc):
    return list(doc["json"]["options"])


def doc_to_target_mc(doc):
    return doc["json"]["answer_index"]
