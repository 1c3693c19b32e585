"""Ego-ExoClip, EgoClip and EgoIT shards -> training batches for the Exo2Ego stages, as small webdataset stages.

    ShardSource            the shard URLs of this (rank, worker): disjoint split, or resampled (infinite)
    tarfile_to_samples     webdataset: tar members grouped into samples ({"__key__", "ego.mp4", "json", ...})
    expand_samples         a shard sample -> the stage's samples ("exo" | "pairs" | "instruct"), still undecoded
    shuffle_samples        buffer shuffle seeded by (seed, epoch, rank, worker)
    take_samples           resampled only: the per-worker share of epoch_samples // world_size
    batched                webdataset: lists of batch_size samples
    decode_batches         decode the clips (decord / PIL), tokenize and collate; skipped batches stay undecoded

Both layouts of the build are read, detected per sample from its member names (README "What the build
writes"): pairs (`ego.mp4`/`exo.mp4` or `ego.NN.jpg`/`exo.NN.jpg`) and moments (`exo.<cam>.mp4` or
`exo.<cam>.NN.jpg` per view). Keys of expanded samples are pair keys in both layouts: `<narration key>-<cam>`
for "exo" and "pairs", the narration key for "instruct" and "ego". EgoClip shards (pipeline/egoclip: `ego.mp4` or
`ego.NN.jpg`, `txt`, `json`, no exo view) feed "ego" (the initialisation stage: the caption answers data.prompt)
and "instruct"; EgoIT shards (`mp4` or `NN.jpg` + conversation) feed "instruct".

Errors: every stage takes `handler` (webdataset's convention: raise, or return True to skip the sample / False
to stop). The default re-raises a `SampleError` whose message names the shard URL and the sample key;
`webdataset.warn_and_continue` logs and skips it. A sample that fails to decode is dropped from its batch, so
that batch is one smaller: batch boundaries are fixed before decoding, which keeps `skip_batches` exact.

Batches (dict): keys (list[str]), input_ids_BL, attention_mask_BL, labels_BL (int64), and ego_BTCHW and/or
exo_BTCHW (float32, CLIP-normalised): "exo" -> exo only, "pairs" -> both, "instruct" and "ego" -> ego only.
"""

from __future__ import annotations

import glob
import json
import logging
import posixpath
import random
import re
import shlex
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path

import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from exo2ego_model.config import STAGE_DATA, DataConfig
from exo2ego_model.prompt import (  # the chat format, shared with inference (one VIDEO_TOKEN_INDEX per row)
    IGNORE_INDEX,
    PROMPT_TEMPLATE,
    VIDEO_PLACEHOLDER,
    VIDEO_TOKEN_INDEX,
    tokenize_conversation,
)
from exo2ego_model.video import CLIP_MEAN, CLIP_STD, decode_clip, normalize, uniform_indices

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "IGNORE_INDEX",
    "PROMPT_TEMPLATE",
    "VIDEO_PLACEHOLDER",
    "VIDEO_TOKEN_INDEX",
    "SampleError",
    "ShardSource",
    "decode_batches",
    "decode_clip",
    "expand_samples",
    "expand_urls",
    "make_collate",
    "make_loader",
    "normalize",
    "shuffle_samples",
    "take_samples",
    "tokenize_conversation",
    "uniform_indices",
]

LOG = logging.getLogger(__name__)

Handler = Callable[[Exception], bool]


class SampleError(RuntimeError):
    """A sample could not be read, expanded or decoded; the message names the shard URL and the sample key."""


def _handle(handler: Handler, exn: Exception, url: str, key: str) -> bool:
    """Wrap `exn` with where it happened and hand it to `handler`: True = skip and go on, False = stop."""
    err = SampleError(f"{url}: sample {key}: {type(exn).__name__}: {exn}")
    err.__cause__ = exn
    return handler(err)


def _worker() -> tuple[int, int]:
    """(worker id, number of workers) of the DataLoader process this runs in; (0, 1) in the main process."""
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


# ----------------------------------------------------------------------------------------------- shard URLs


def gopen_url(url: str) -> str:
    """gs:// and s3:// URLs as `pipe:` commands (webdataset has no s3 opener; both go through the vendors'
    CLIs, which must be installed and authenticated). Other URLs (local paths, http(s)://, pipe:) unchanged."""
    if url.startswith("gs://"):
        return f"pipe:gsutil cat {shlex.quote(url)}"
    if url.startswith("s3://"):
        return f"pipe:aws s3 cp {shlex.quote(url)} -"
    return url


_LIST_FILES = (".txt", ".list", ".shards")


def _is_local(spec: str) -> bool:
    return "://" not in spec and not spec.startswith("pipe:")


def _read_index(spec: str) -> str:
    """The text of a list file or wids index: a local file, or any URL webdataset opens (gs://, s3:// through
    gopen_url)."""
    if _is_local(spec):
        return Path(spec).read_text()
    with wds.gopen(gopen_url(spec), "rb") as f:
        return f.read().decode()


def resolve_url(index: str, url: str) -> str:
    """`url` named by the list file / wids index at `index`: relative ones are relative to the index's folder
    (wids' rule); absolute paths, URLs and pipe: commands are kept."""
    if not _is_local(url) or url.startswith("/"):
        return url
    if _is_local(index):
        return posixpath.normpath(posixpath.join(posixpath.dirname(index), url))
    return f"{index.rsplit('/', 1)[0]}/{url}"


def wids_urls(index: str) -> list[str]:
    """Shard URLs of a wids index (`*.wids.json`, as the builders write one per split): its `shardlist`, then
    the shardlists of its `datasets` (inline, or `source_url` read in turn), resolved against their index."""
    try:
        doc = json.loads(_read_index(index))
    except (OSError, ValueError) as err:
        raise ValueError(f"data.shards={index!r}: not a readable wids index ({err})") from None
    if not isinstance(doc, dict) or doc.get("wids_version") != 1:
        raise ValueError(f"data.shards={index!r}: not a wids index (no \"wids_version\": 1)")
    urls = [resolve_url(index, s["url"]) for s in doc.get("shardlist", [])]
    for part in doc.get("datasets", []):
        if "source_url" in part:
            urls += wids_urls(resolve_url(index, part["source_url"]))
        else:
            base = part.get("base")
            urls += [resolve_url(index, f"{base}/{s['url']}" if base else s["url"]) for s in part["shardlist"]]
    if not urls:
        raise ValueError(f"data.shards={index!r}: the wids index lists no shard")
    return urls


def expand_urls(spec: str | Sequence[str]) -> list[str]:
    """Shard URLs of a DataConfig.shards value, in order.

    - a brace pattern (`data/egoexoclip-train-{000000..000009}.tar`), several joined by `::`;
    - a manifest: a wids index (`*.json`, e.g. the `<prefix>-<split>.wids.json` each builder writes) or a list
      file (`*.txt` / `*.list` / `*.shards`: one URL, pattern or index a line, `#` comments); relative entries
      are relative to the manifest's folder; local, or any URL (gs://, s3://, http(s)://);
    - a local glob (`data/*.tar`, sorted);
    - a list of any of these.
    Each URL is then passed through `gopen_url` (gs:// and s3:// become `pipe:` commands).
    """
    if not isinstance(spec, str):
        return [u for s in spec for u in expand_urls(s)]
    spec = spec.strip()
    if not spec:
        raise ValueError("data.shards is empty: give a brace pattern, list file, wids index or URL of .tar shards")
    if spec.endswith(".json") and not spec.startswith("pipe:"):
        return expand_urls(wids_urls(spec))
    if spec.endswith(_LIST_FILES) and not spec.startswith("pipe:"):
        lines = [ln.strip() for ln in _read_index(spec).splitlines()]
        entries = [resolve_url(spec, ln) for ln in lines if ln and not ln.startswith("#")]
        if not entries:
            raise ValueError(f"data.shards={spec!r}: the list file names no shard")
        return expand_urls(entries)
    if _is_local(spec) and any(c in spec for c in "*?["):
        found = sorted(glob.glob(spec))
        if not found:
            raise ValueError(f"data.shards={spec!r}: the glob matches no file")
        return found
    return [gopen_url(u) for u in wds.shardlists.expand_urls(spec)]


class ShardSource(IterableDataset):
    """dict(url=...) for the shards of this (rank, DataLoader worker).

    Finite (resampled=False): the shard list, shuffled by (seed, epoch) identically on every rank when
    `shuffle`, is dealt round-robin to the world_size x num_workers readers: slot rank * num_workers + worker
    reads shards slot, slot + R*W, ... Each shard is read by exactly one (rank, worker); with fewer shards than
    ranks x workers some readers get none (a rank with none would stall a distributed step), so give at
    least ranks x workers shards.
    Resampled: an infinite stream of shards drawn with replacement from the whole list by an RNG seeded with
    (seed, epoch, rank, worker); the epoch is cut to a sample count downstream (take_samples).
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        epoch: int = 0,
        shuffle: bool = True,
        resampled: bool = False,
    ):
        super().__init__()
        if not urls:
            raise ValueError("no shard URLs")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank}, world_size={world_size}: need 0 <= rank < world_size")
        self.urls, self.rank, self.world_size = list(urls), rank, world_size
        self.seed, self.epoch, self.shuffle, self.resampled = seed, epoch, shuffle, resampled

    def __iter__(self) -> Iterator[dict]:
        worker, n_workers = _worker()
        if self.resampled:
            # str seeds are hashed with sha512 by random.Random: stable across processes and PYTHONHASHSEED
            rng = random.Random(f"resample:{self.seed}:{self.epoch}:{self.rank}:{worker}")
            while True:
                yield dict(url=rng.choice(self.urls))
        urls = list(self.urls)
        if self.shuffle:
            random.Random(f"shards:{self.seed}:{self.epoch}").shuffle(urls)
        readers = self.world_size * n_workers
        for url in urls[self.rank * n_workers + worker :: readers]:
            yield dict(url=url)


# ------------------------------------------------------------------------------------------- expansion

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
            raise ValueError(f"an EgoIT sample has no exo view and no caption: it feeds data_kind instruct, not {kind}")
        return [{"url": url, "text": "", "key": key, "conversations": _conversations(meta, "", prompt), "ego": clip}]
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
    worker, _ = _worker()
    rng = random.Random(f"shuffle:{seed}:{epoch}:{rank}:{worker}")
    # initial = bufsize: fill the buffer before the first pick (the default 100 mixes the start poorly)
    yield from wds.filters.shuffle(bufsize, initial=bufsize, rng=rng)(iter(src))


def take_samples(src: Iterable[dict], per_rank: int):
    """Stage: this worker's share of `per_rank` samples (the rank's workers together yield exactly per_rank)."""
    worker, n_workers = _worker()
    yield from islice(src, per_rank // n_workers + (1 if worker < per_rank % n_workers else 0))


# --------------------------------------------------------------------------------------- tokenization


def make_collate(
    tokenizer, cfg: DataConfig, *, normalize_frames: bool = True
) -> Callable[[list[dict]], dict]:
    """Decoded samples (key, conversations, ego/exo uint8 frames_TCHW) -> a batch (see module doc).

    Text is right-padded with pad_token_id (eos when the tokenizer has no pad token); padding has attention
    mask 0 and label IGNORE_INDEX. Each row of input_ids_BL holds one VIDEO_TOKEN_INDEX (negative, not a
    vocabulary id: decode only the other ids), where the model splices in the clip's visual tokens.
    Frames are normalised here, in the loader workers; normalize_frames=False keeps them uint8 (4x less to
    send from the workers; measured ~3x more pairs/s on 2 cores at 16x336x336): the trainer then calls
    `normalize` on the device.
    """
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def collate(samples: list[dict]) -> dict:
        encoded = [tokenize_conversation(tokenizer, s["conversations"], cfg.max_text_tokens) for s in samples]
        length = max(len(ids) for ids, _ in encoded)
        input_ids_BL = torch.full((len(samples), length), pad, dtype=torch.long)
        attention_mask_BL = torch.zeros((len(samples), length), dtype=torch.long)
        labels_BL = torch.full((len(samples), length), IGNORE_INDEX, dtype=torch.long)
        for b, (ids, labels) in enumerate(encoded):
            input_ids_BL[b, : len(ids)] = torch.tensor(ids)
            attention_mask_BL[b, : len(ids)] = 1
            labels_BL[b, : len(ids)] = torch.tensor(labels)
        batch = {
            "keys": [s["key"] for s in samples],
            "input_ids_BL": input_ids_BL,
            "attention_mask_BL": attention_mask_BL,
            "labels_BL": labels_BL,
        }
        for view in ("ego", "exo"):
            if view in samples[0]:
                frames_BTCHW = torch.stack([s[view] for s in samples])
                batch[f"{view}_BTCHW"] = normalize(frames_BTCHW) if normalize_frames else frames_BTCHW
        return batch

    return collate


# ------------------------------------------------------------------------------------------- decoding


class Undecoded(list):
    """A batch of undecoded samples, sent for batches that `skip_batches` will (almost surely) drop."""


def decode_batch(items: list[dict], collate, n_frames: int, size: int, handler: Handler):
    """(collated batch or None when every sample failed, stop?) of undecoded samples."""
    decoded = []
    for item in items:
        try:
            views = {v: decode_clip(item[v], n_frames, size) for v in ("ego", "exo") if v in item}
        except Exception as exn:
            if _handle(handler, exn, item["url"], item["key"]):
                continue
            return (collate(decoded) if decoded else None), True
        decoded.append({"key": item["key"], "conversations": item["conversations"], **views})
    return (collate(decoded) if decoded else None), False


def decode_batches(
    src: Iterable[list[dict]],
    collate,
    n_frames: int,
    size: int,
    skip_batches: int = 0,
    handler: Handler = wds.reraise_exception,
):
    """Stage: lists of samples -> collated batches.

    With W DataLoader workers the rank's stream interleaves the workers' batches round-robin, so worker w's
    j-th batch is at position j*W + w while every worker still has batches, and earlier once some worker has
    run out. Batches at positions j*W + w < skip_batches are therefore always among the first skip_batches
    of the stream: they are sent undecoded (cheap) and the loader drops them. (Near an epoch's end a few
    batches that will be dropped are decoded anyway; the loader decodes any undecoded batch it would keep,
    a safety net should the DataLoader ever order batches differently, so resume stays exact.)
    A batch whose every sample fails to decode is dropped.
    """
    worker, n_workers = _worker()
    for j, items in enumerate(src):
        if j * n_workers + worker < skip_batches:
            yield Undecoded(items)
            continue
        batch, stop = decode_batch(items, collate, n_frames, size, handler)
        if batch is not None:
            yield batch
        if stop:
            return


def _identity(x):
    return x


class Loader:
    """Iterable of batches of one rank (see make_loader); iterate once per epoch."""

    def __init__(self, dataset, *, num_workers: int, skip_batches: int, decode, per_rank: int | None):
        self.dataset, self.num_workers, self.skip_batches = dataset, num_workers, skip_batches
        self.decode = decode
        self.per_rank = per_rank  # samples per rank per epoch when resampled, else None (one pass)

    def __iter__(self) -> Iterator[dict]:
        loader = wds.WebLoader(
            self.dataset,
            batch_size=None,  # batched in the workers
            num_workers=self.num_workers,
            collate_fn=_identity,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=False,
        )
        for batch in islice(loader, self.skip_batches, None):
            if isinstance(batch, Undecoded):
                batch, stop = self.decode(list(batch))
                if batch is not None:
                    yield batch
                if stop:
                    return
                continue
            yield batch


def make_loader(
    cfg: DataConfig,
    kind: str,
    tokenizer,
    *,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    epoch: int = 0,
    skip_batches: int = 0,
    handler: Handler = wds.reraise_exception,
    normalize_frames: bool = True,
) -> Loader:
    """Batches of stage `kind` ("exo" | "pairs" | "instruct" | "ego") for one rank, from cfg.shards.

    Shards: brace patterns, wids indexes and list files, globs, http(s)://, pipe:, and gs:// / s3:// (read through
    `gsutil cat` / `aws s3 cp <url> -` pipe: commands; see gopen_url). Each shard is read by exactly one
    (rank, worker) per epoch (ShardSource): give at least world_size x max(1, num_workers) shards.
    Order is deterministic for a given (cfg.seed, epoch, rank, world_size, num_workers, batch_size): shards
    are shuffled by (seed, epoch), samples in a buffer of cfg.shuffle_buffer seeded by (seed, epoch, rank,
    worker); shuffle_buffer=0 reads in shard order. skip_batches=k resumes exactly: the first k batches of
    this rank's stream are dropped (without decoding their clips, see decode_batches).
    cfg.resampled: shards drawn with replacement, each rank yields cfg.epoch_samples // world_size samples.
    Ranks can get different batch counts in finite mode (shards differ in size); a distributed trainer must
    stop all ranks together (or use resampled mode, where counts are equal).
    handler: see the module doc. normalize_frames=False: uint8 frames (see make_collate).
    """
    if kind not in STAGE_DATA:
        raise ValueError(f"kind={kind!r}: expected one of {STAGE_DATA}")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be >= 1")
    if skip_batches < 0:
        raise ValueError(f"skip_batches={skip_batches}: must be >= 0")
    urls = expand_urls(cfg.shards)
    readers = world_size * max(1, cfg.num_workers)
    if not cfg.resampled and len(urls) < readers:
        warnings.warn(
            f"{len(urls)} shards for {world_size} ranks x {max(1, cfg.num_workers)} workers: "
            "some readers get no shard (give at least ranks x workers shards)",
            stacklevel=2,
        )
    collate = make_collate(tokenizer, cfg, normalize_frames=normalize_frames)
    per_rank = cfg.epoch_samples // world_size if cfg.resampled else None
    if per_rank is not None and per_rank < 1:
        raise ValueError(
            f"data.epoch_samples={cfg.epoch_samples} gives no sample to each of {world_size} ranks"
        )
    stages = [
        ShardSource(
            urls,
            rank=rank,
            world_size=world_size,
            seed=cfg.seed,
            epoch=epoch,
            shuffle=cfg.shuffle_buffer > 0,
            resampled=cfg.resampled,
        ),
        wds.tarfile_to_samples(handler=handler),
        wds.pipelinefilter(expand_samples)(kind, cfg.prompt, handler),
        wds.pipelinefilter(shuffle_samples)(cfg.shuffle_buffer, cfg.seed, epoch, rank),
    ]
    if per_rank is not None:
        stages.append(wds.pipelinefilter(take_samples)(per_rank))
    stages += [
        wds.batched(batch_size, collation_fn=None, partial=True),
        wds.pipelinefilter(decode_batches)(collate, cfg.n_frames, cfg.image_size, skip_batches, handler),
    ]

    def decode(items):
        return decode_batch(items, collate, cfg.n_frames, cfg.image_size, handler)

    return Loader(
        wds.DataPipeline(*stages),
        num_workers=cfg.num_workers,
        skip_batches=skip_batches,
        decode=decode,
        per_rank=per_rank,
    )
