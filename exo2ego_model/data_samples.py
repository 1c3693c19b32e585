"""Shard samples -> the samples of a training stage (exo2ego_model/data.py's module doc: layouts, keys, errors),
still undecoded, and the stages that order and cut them.

    expand_samples    a shard sample -> the stage's samples ("exo" | "pairs" | "instruct" | "ego")
    shuffle_samples   buffer shuffle seeded by (seed, epoch, rank, worker)
    take_samples      resampled only: the per-worker share of epoch_samples // world_size
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable
from itertools import islice

import webdataset as wds
from torch.utils.data import get_worker_info

from exo2ego_model.config import STAGE_DATA

Handler = Callable[[Exception], bool]


def worker_slot() -> tuple[int, int]:
    """(worker id, number of workers) of the DataLoader process this runs in; (0, 1) in the main process."""
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class SampleError(RuntimeError):
    """A sample could not be read, expanded or decoded; the message names the shard URL and the sample key."""


def _handle(handler: Handler, exn: Exception, url: str, key: str) -> bool:
    """Wrap `exn` with where it happened and hand it to `handler`: True = skip and go on, False = stop."""
    err = SampleError(f"{url}: sample {key}: {type(exn).__name__}: {exn}")
    err.__cause__ = exn
    return handler(err)


_EGO_MEMBER = re.compile(r"^ego\.(?:(?P<idx>\d+)\.jpg|mp4)$")
# pairs: exo.mp4 / exo.NN.jpg; moments: exo.<cam>.mp4 / exo.<cam>.NN.jpg ("exo.00.jpg" backtracks to no cam)
_EXO_MEMBER = re.compile(r"^exo\.(?:(?P<cam>[^.]+)\.)?(?:(?P<idx>\d+)\.jpg|mp4)$")

Clip = bytes | list  # mp4 bytes, or the JPEG bytes of each frame in order


def _collect(found: dict, view, idx: str | None, data: bytes) -> None:
    if idx is None:
        found[view] = data
    else:
        found.setdefault(view, {})[int(idx)] = data


def _as_clip(value) -> Clip:
    return value if isinstance(value, bytes) else [value[i] for i in sorted(value)]


def sample_views(sample: dict) -> tuple[Clip, dict[str | None, Clip]]:
    """(ego clip, {exo cam: clip}) of a shard sample; the cam is None for the pairs layout (one exo view); no
    exo view ({}) for an ego-only sample (EgoClip: `ego.mp4` or `ego.NN.jpg`, `txt`, `json`)."""
    ego: dict = {}
    exos: dict = {}
    for name, data in sample.items():
        if m := _EGO_MEMBER.match(name):
            _collect(ego, "ego", m["idx"], data)
        elif m := _EXO_MEMBER.match(name):
            _collect(exos, m["cam"], m["idx"], data)
    if "ego" not in ego:
        raise ValueError(f"no ego clip (members: {sorted(k for k in sample if not k.startswith('__'))})")
    if None in exos and len(exos) > 1:
        raise ValueError("both pairs-layout (exo.mp4) and moments-layout (exo.<cam>.*) members")
    return _as_clip(ego["ego"]), {cam: _as_clip(v) for cam, v in exos.items()}


def _conversations(meta: dict, text: str, prompt: str) -> list[dict]:
    conv = meta.get("conversations")
    if conv is None:
        return [{"from": "human", "value": prompt}, {"from": "gpt", "value": text}]
    ok = (
        isinstance(conv, list)
        and conv
        and all(
            isinstance(t, dict) and t.get("from") in ("human", "gpt") and isinstance(t.get("value"), str)
            for t in conv
        )
    )
    if not ok or not any(t["from"] == "gpt" for t in conv):
        raise ValueError(
            f"json conversations must be [{{from: human|gpt, value: str}}, ...] with a gpt turn: {conv!r}"
        )
    return conv


# EgoIT samples (pipeline/egoit): one clip, `mp4` or `00.jpg`.. `NN.jpg`, and the conversation in `json`
_EGOIT_FRAME = re.compile(r"^(?P<idx>\d+)\.jpg$")


def egoit_clip(sample: dict) -> Clip | None:
    """The clip of an EgoIT sample (mp4 bytes or JPEGs in order), or None when the sample is not one."""
    if "mp4" in sample:
        return sample["mp4"]
    frames = {int(m["idx"]): data for name, data in sample.items() if (m := _EGOIT_FRAME.match(name))}
    return [frames[i] for i in sorted(frames)] if frames else None


def _first_pair_of_narration(meta: dict) -> bool:
    """Pairs layout: the ego clip is repeated once per exo view; a narration is kept once, at its first exo cam."""
    cams = sorted(meta.get("exo_cams") or [])
    return not (cams and meta.get("exo_cam") and meta["exo_cam"] != cams[0])


def caption_turns(text: str, prompt: str) -> list[dict]:
    """The caption as the answer to `prompt` (data.prompt): the conversation of "exo", "pairs" and "ego"."""
    return [{"from": "human", "value": prompt}, {"from": "gpt", "value": text}]


def expand_sample(sample: dict, kind: str, prompt: str) -> list[dict]:
    """One shard sample -> the stage's undecoded samples {key, url, text, conversations, ego?, exo?}.

    "ego" and "instruct": one per ego clip (an EgoClip sample; an Ego-ExoClip narration, once in the pairs
    layout), keyed by the narration key; "ego" answers data.prompt with the caption, "instruct" uses the json's
    conversations when it has them. "exo" / "pairs": one per exo view (Ego-ExoClip only)."""
    key, url = sample["__key__"], sample.get("__url__", "")
    meta = json.loads(sample["json"]) if "json" in sample else {}
    clip = egoit_clip(sample)
    if clip is not None:  # an EgoIT sample: the ego clip and its instruction conversation
        if kind != "instruct":
            raise ValueError(
                f"an EgoIT sample has no exo view and no caption: it feeds data_kind instruct, not {kind}"
            )
        return [
            {
                "url": url,
                "text": "",
                "key": key,
                "conversations": _conversations(meta, "", prompt),
                "ego": clip,
            }
        ]
    text = sample["txt"].decode("utf-8").strip() if "txt" in sample else str(meta.get("text", ""))
    ego, exos = sample_views(sample)
    base = {"url": url, "text": text}
    if kind in ("ego", "instruct"):
        if None in exos and not _first_pair_of_narration(meta):
            return []
        if kind == "ego" and not text:
            raise ValueError("no caption (txt / json text) for data_kind ego")
        conv = caption_turns(text, prompt) if kind == "ego" else _conversations(meta, text, prompt)
        return [{**base, "key": meta.get("key") or key, "conversations": conv, "ego": ego}]
    if not exos:
        members = sorted(k for k in sample if not k.startswith("__"))
        raise ValueError(f"no exo clip (members: {members}): an ego-only (EgoClip) sample feeds data_kind ego "
                         f"or instruct, not {kind}")  # fmt: skip
    conv = caption_turns(text, prompt)
    views = [(key, exos[None])] if None in exos else [(f"{key}-{cam}", exos[cam]) for cam in sorted(exos)]
    out = []
    for pkey, exo in views:
        item = {**base, "key": pkey, "conversations": conv, "exo": exo}
        if kind == "pairs":
            item["ego"] = ego
        out.append(item)
    return out


def expand_samples(src: Iterable[dict], kind: str, prompt: str, handler: Handler = wds.reraise_exception):
    """Stage: shard samples -> stage samples ("exo": one per exo view, "pairs": one per (ego, exo view),
    "instruct" and "ego": one per narration / EgoClip clip / EgoIT sample (not "ego"))."""
    if kind not in STAGE_DATA:
        raise ValueError(f"kind={kind!r}: expected one of {STAGE_DATA}")
    for sample in src:
        try:
            items = expand_sample(sample, kind, prompt)
        except Exception as exn:
            if _handle(handler, exn, sample.get("__url__", "?"), sample.get("__key__", "?")):
                continue
            break
        yield from items


def shuffle_samples(src: Iterable[dict], bufsize: int, seed: int, epoch: int, rank: int):
    """Stage: webdataset's buffer shuffle with an RNG seeded by (seed, epoch, rank, worker): same inputs,
    same order. bufsize < 2 passes the stream through."""
    if bufsize < 2:
        yield from src
        return
    worker, _ = worker_slot()
    rng = random.Random(f"shuffle:{seed}:{epoch}:{rank}:{worker}")
    # initial = bufsize: fill the buffer before the first pick (the default 100 mixes the start poorly)
    yield from wds.filters.shuffle(bufsize, initial=bufsize, rng=rng)(iter(src))


def take_samples(src: Iterable[dict], per_rank: int):
    """Stage: this worker's share of `per_rank` samples (the rank's workers together yield exactly per_rank)."""
    worker, n_workers = worker_slot()
    yield from islice(src, per_rank // n_workers + (1 if worker < per_rank % n_workers else 0))
