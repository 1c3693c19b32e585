"""Ego-ExoClip's --validate (pipeline/core/validate.py): the release's annotation files read and checked without
videos, by the build's own steps called in plain Python (their DoFns' process methods; no pipeline, no probe):

    splits.json                       one record per take_uid_to_split entry
    takes.json                        one record per take record: parsed (views resolved under --root, never
                                      opened), repeated uids and names, excluded takes ("take dropped", "no exo
                                      view"; takes of splits not selected are neither read nor reported)
    atomic_descriptions_<split>.json  one record per description of each selected split: parsed, filtered, and
                                      joined with its take ("take not in takes.json", or its take's exclusion)

What needs the videos (a view's frame count and rate, windows inside the take) is the build's alone.
"""

from __future__ import annotations

from apache_beam.pvalue import TaggedOutput

from pipeline.core.validate import NotARow
from pipeline.egoexoclip import transforms as T
from pipeline.egoexoclip.plan import Failure

NOT_SELECTED = "not selected"


def _tagged(outputs):
    """(tag, value) of a DoFn's outputs: tag None for the main output."""
    for out in outputs:
        yield (out.tag, out.value) if isinstance(out, TaggedOutput) else (None, out)


def validate_sources(cfg) -> dict:
    root = cfg.root.rstrip("/")
    split_of: dict[str, str] = {}
    takes: dict[str, tuple[str | None, str]] = {}  # take_uid -> (exclusion reason or None, take_name)

    def splits_rows():
        for tag, value in _tagged(T.ReadSplitsFn().process(f"{root}/annotations/splits.json")):
            if tag is None:
                split_of[value[0]] = value[1]
            yield None if tag is None else value

    def takes_rows():
        parse = T.ParseTakeFn(root, cfg.resolution, cfg.splits, cfg.trust_symlinks)
        for tag, value in _tagged(T.ReadTakeRecordsFn().process(f"{root}/takes.json")):
            if tag == T.EXCLUDED:
                takes.setdefault(value[0], value[1])
                continue
            if tag is not None:  # a repeated take_uid or take_name
                yield value
                continue
            outcome = None
            for tag2, out in _tagged(parse.process(value, split_of)):
                if tag2 == T.EXCLUDED:
                    takes.setdefault(out[0], out[1])
                elif tag2 is None:
                    takes.setdefault(out[0], (None, out[1].take_name))
                elif out.scope == "view":
                    yield NotARow(out)
                elif NOT_SELECTED not in out.reason:
                    outcome = out
            yield outcome

    def description_rows(split: str):
        parse = T.ParseDescriptionsFn(cfg.filters)
        path = f"{root}/annotations/atomic_descriptions_{split}.json"
        for tag, value in _tagged(T.ReadDescriptionsFn().process((path, split))):
            if tag is not None:
                yield value
                continue
            for tag2, out in _tagged(parse.process(value)):
                if tag2 == T.COUNTS:
                    continue
                if tag2 == T.DROPPED:
                    uid, f = out
                    f = Failure(**{**f.to_dict(), "take_name": takes.get(uid, (None, ""))[1]})
                    yield NotARow(f) if f.scope == "pass" else f
                    continue
                uid, n = out
                excluded, name = takes.get(uid, ("take not in takes.json", ""))
                yield None if excluded is None else Failure(excluded, "narration", n.split, uid, name,
                                                            narration=n.source_id)  # fmt: skip

    sources = {"splits.json": splits_rows, "takes.json": takes_rows}
    for split in cfg.splits:
        if split != "test":  # the release ships no atomic descriptions for test
            sources[f"atomic_descriptions_{split}.json"] = lambda s=split: description_rows(s)
    return sources
