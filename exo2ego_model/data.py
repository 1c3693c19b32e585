"""Ego-ExoClip, EgoClip and EgoIT shards -> training batches for the Exo2Ego stages, as small webdataset stages.

    ShardSource            the shard URLs of this (rank, worker): disjoint split, or resampled (infinite)
    tarfile_to_samples     webdataset: tar members grouped into samples ({"__key__", "ego.mp4", "json", ...})
    expand_samples         a shard sample -> the stage's samples ("exo" | "pairs" | "instruct"), still undecoded
    shuffle_samples        buffer shuffle seeded by (seed, epoch, rank, worker)
    take_samples           resampled only: the per-worker share of epoch_samples // world_size
    batched                webdataset: lists of batch_size samples
    decode_batches         decode the clips (decord / PIL), tokenize and collate; skipped batches stay undecoded

Modules by role: data_urls.py (shard URLs), data_samples.py (expansion, shuffle, take, SampleError), this one
(shards per reader, tokenization, decoding, make_loader); every public name of the three is importable from here.

Both layouts of the build are read, detected per sample from its member names (docs/egoexoclip.md "What the build
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

import random
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice

import torch
import webdataset as wds
from torch.utils.data import IterableDataset

from exo2ego_model.config import STAGE_DATA, DataConfig
from exo2ego_model.data_samples import (  # noqa: F401  (the stages; re-exported: data.<name> is the public API)
    Handler,
    SampleError,
    _handle,
    caption_turns,
    egoit_clip,
    expand_sample,
    expand_samples,
    sample_views,
    shuffle_samples,
    take_samples,
    worker_slot,
)
from exo2ego_model.data_urls import expand_urls, gopen_url, resolve_url, wids_urls  # noqa: F401  (re-exported)
from exo2ego_model.prompt import (  # the chat format, shared with inference (one VIDEO_TOKEN_INDEX per row)
    IGNORE_INDEX,
    PROMPT_TEMPLATE,
    VIDEO_PLACEHOLDER,
    VIDEO_TOKEN_INDEX,
    tokenize_conversation,
)
from exo2ego_model.video import CLIP_MEAN, CLIP_STD, DEFAULT_ASPECT, decode_clip, normalize, uniform_indices

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "IGNORE_INDEX",
    "PROMPT_TEMPLATE",
    "VIDEO_PLACEHOLDER",
    "VIDEO_TOKEN_INDEX",
    "SampleError",
    "ShardSource",
    "caption_turns",
    "decode_batches",
    "decode_clip",
    "egoit_clip",
    "expand_sample",
    "expand_samples",
    "expand_urls",
    "gopen_url",
    "make_collate",
    "make_loader",
    "normalize",
    "resolve_url",
    "sample_views",
    "shuffle_samples",
    "take_samples",
    "tokenize_conversation",
    "uniform_indices",
    "wids_urls",
]

_worker = worker_slot  # (worker id, workers) of this DataLoader process: a test stands in for one


# ------------------------------------------------------------------------------------------- shards per reader


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


def decode_batch(
    items: list[dict], collate, n_frames: int, size: int, handler: Handler, aspect: str = DEFAULT_ASPECT
):
    """(collated batch or None when every sample failed, stop?) of undecoded samples; frames made square by
    video.fit_square(aspect), as evaluation does."""
    decoded = []
    for item in items:
        try:
            views = {
                v: decode_clip(item[v], n_frames, size, aspect=aspect) for v in ("ego", "exo") if v in item
            }
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
    aspect: str = DEFAULT_ASPECT,
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
        batch, stop = decode_batch(items, collate, n_frames, size, handler, aspect)
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
    aspect: str = DEFAULT_ASPECT,
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
    aspect: how frames become square (video.fit_square): pass the model config's `model.aspect`.
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
        wds.pipelinefilter(decode_batches)(
            collate, cfg.n_frames, cfg.image_size, skip_batches, handler, aspect
        ),
    ]

    def decode(items):
        return decode_batch(items, collate, cfg.n_frames, cfg.image_size, handler, aspect)

    return Loader(
        wds.DataPipeline(*stages),
        num_workers=cfg.num_workers,
        skip_batches=skip_batches,
        decode=decode,
        per_rank=per_rank,
    )
