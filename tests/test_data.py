"""exo2ego_model.data: clip decoding, stage expansion from both layouts, splitting, labels, determinism, errors."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import webdataset as wds
from PIL import Image

from exo2ego_model import data
from exo2ego_model.config import DataConfig
from exo2ego_model.data import IGNORE_INDEX, SampleError, make_collate, make_loader, tokenize_conversation
from exo2ego_model.prompt import VIDEO_TOKEN_INDEX
from exo2ego_model.samples import count_samples
from exo2ego_model.tiny import tiny_tokenizer
from exo2ego_model.video import decode_clip, normalize, uniform_indices
from pipeline.core.clips import ClipFormat
from pipeline.core.framecode import camera_code, decode_frame
from pipeline.egoexoclip import BuildConfig, run
from pipeline.egoexoclip.writer import OutputFormat

FAST = dict(n_frames=1, image_size=16)  # counting tests: the clips are decoded, but small


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def moments_build(sample_root, tmp_path_factory):
    """Moments layout, 4 JPEG frames per view, val split, small shards (2 shards: one per take)."""
    out = tmp_path_factory.mktemp("moments")
    fmt = OutputFormat("moments", ClipFormat(kind="frames", n_frames=4, size=112))
    # BuildConfig directly: conftest.build pins max_samples_per_shard
    stats = run(
        BuildConfig(root=sample_root, out=str(out), splits=("val",), output=fmt, max_samples_per_shard=10), []
    )
    return out, stats


def shards(out: Path, split: str) -> list[str]:
    return sorted(str(p) for p in Path(out).glob(f"egoexoclip-{split}-*.tar"))


def samples_of(tar_path: str) -> dict[str, dict[str, bytes]]:
    """{key: {member suffix: bytes}} of a shard, read with tarfile (independently of the loader)."""
    out: dict[str, dict[str, bytes]] = {}
    with tarfile.open(tar_path) as tf:
        for m in tf.getmembers():
            key, suffix = m.name.split(".", 1)
            out.setdefault(key, {})[suffix] = tf.extractfile(m).read()
    return out


def stamps(frames_TCHW: torch.Tensor) -> list[tuple[int, int]]:
    return [decode_frame(f.permute(1, 2, 0).numpy()) for f in frames_TCHW]


def all_keys(cfg: DataConfig, kind: str, tok, **kw) -> list[str]:
    return [k for batch in make_loader(cfg, kind, tok, batch_size=8, **kw) for k in batch["keys"]]


# ------------------------------------------------------------------------------------------- decoding


def test_uniform_indices():
    assert uniform_indices(40, 4) == [5, 15, 25, 35]
    assert uniform_indices(4, 4) == [0, 1, 2, 3]
    assert uniform_indices(3, 6) == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError):
        uniform_indices(0, 4)


@pytest.mark.parametrize("n_frames", [8, 64])  # fewer and more than the clip's frames (repeats)
def test_decode_clip_mp4_samples_uniform_frames(bundled_build, n_frames):
    out, _ = bundled_build
    sample = next(iter(samples_of(shards(out, "train")[0]).values()))
    meta = json.loads(sample["json"])
    n = meta["ego_end_frame"] - meta["ego_start_frame"]
    frames_TCHW = decode_clip(sample["ego.mp4"], n_frames, 96)
    assert frames_TCHW.shape == (n_frames, 3, 96, 96) and frames_TCHW.dtype == torch.uint8
    # Aria frames are square, so the whole stamp survives the centre crop
    want = [(camera_code(meta["ego_cam"]), meta["ego_start_frame"] + i) for i in uniform_indices(n, n_frames)]
    assert stamps(frames_TCHW) == want


def test_decode_clip_crops_centre_square(bundled_build):
    out, _ = bundled_build
    sample = next(iter(samples_of(shards(out, "train")[0]).values()))
    frames_TCHW = decode_clip(sample["exo.mp4"], 2, 64)  # 796x448 GoPro -> 64x64
    assert frames_TCHW.shape == (2, 3, 64, 64)
    floats = normalize(frames_TCHW)
    assert floats.dtype == torch.float32 and floats.shape == frames_TCHW.shape
    assert torch.allclose(
        floats[0, 0, 0, 0], (frames_TCHW[0, 0, 0, 0] / 255 - data.CLIP_MEAN[0]) / data.CLIP_STD[0]
    )


@pytest.mark.parametrize("n_frames", [2, 4, 8])
def test_decode_clip_jpeg_list_resamples(moments_build, n_frames):
    out, _ = moments_build
    sample = next(iter(samples_of(shards(out, "val")[0]).values()))
    jpegs = [sample[f"ego.{i:02d}.jpg"] for i in range(4)]
    source = [decode_frame(np.asarray(Image.open(io.BytesIO(j)).convert("RGB"))) for j in jpegs]
    frames_TCHW = decode_clip(jpegs, n_frames, 112)  # stored 112x112: no resize
    assert frames_TCHW.shape == (n_frames, 3, 112, 112)
    assert stamps(frames_TCHW) == [source[i] for i in uniform_indices(4, n_frames)]
    assert stamps(decode_clip(jpegs, n_frames, 56)) == [source[i] for i in uniform_indices(4, n_frames)]


# ----------------------------------------------------------------------------------------- expansion


def test_counts_pairs_layout(bundled_build, tok):
    out, stats = bundled_build
    cfg = DataConfig(shards=shards(out, "train"), num_workers=2, **FAST)
    want = stats["splits"]["train"]["samples"]
    exo, pairs, instruct = (all_keys(cfg, kind, tok) for kind in ("exo", "pairs", "instruct"))
    assert len(exo) == len(set(exo)) == want
    assert len(pairs) == len(set(pairs)) == want
    assert set(exo) == set(pairs)
    assert len(instruct) == len(set(instruct)) == stats["splits"]["train"]["narrations"]
    assert set(instruct) == {k.rsplit("-", 1)[0] for k in pairs}  # narration keys


def test_counts_moments_layout(moments_build, tok):
    out, stats = moments_build
    manifest = pq.read_table(Path(out) / "manifest.parquet").to_pylist()
    cfg = DataConfig(shards=shards(out, "val"), num_workers=0, **FAST)
    exo = all_keys(cfg, "exo", tok)
    want = {f"{r['key']}-{cam}" for r in manifest for cam in r["exo_cams"]}
    assert len(exo) == sum(len(r["exo_cams"]) for r in manifest) == len(want)
    assert set(exo) == want
    assert sorted(all_keys(cfg, "pairs", tok)) == sorted(exo)
    instruct = all_keys(cfg, "instruct", tok)
    assert sorted(instruct) == sorted(r["key"] for r in manifest)
    assert len(instruct) == stats["splits"]["val"]["narrations"]


def test_batches_have_expected_tensors(moments_build, tok):
    out, _ = moments_build
    cfg = DataConfig(shards=shards(out, "val"), num_workers=0, n_frames=4, image_size=32)
    for kind, views in (("exo", {"exo"}), ("pairs", {"ego", "exo"}), ("instruct", {"ego"})):
        batch = next(iter(make_loader(cfg, kind, tok, batch_size=3)))
        assert {k for k in batch if k.endswith("_BTCHW")} == {f"{v}_BTCHW" for v in views}
        for v in views:
            assert batch[f"{v}_BTCHW"].shape == (3, 4, 3, 32, 32)
            assert batch[f"{v}_BTCHW"].dtype == torch.float32
        assert batch["input_ids_BL"].dtype == batch["labels_BL"].dtype == torch.long
        assert len(batch["keys"]) == 3


def test_instruct_uses_json_conversations(moments_build, tok, tmp_path):
    out, _ = moments_build
    key, sample = next(iter(samples_of(shards(out, "val")[0]).items()))
    meta = json.loads(sample["json"])
    meta["conversations"] = [
        {"from": "human", "value": "What next?"},
        {"from": "gpt", "value": "Tighten it."},
    ]
    tar = tmp_path / "egoit-000000.tar"
    with wds.TarWriter(str(tar)) as w:
        w.write(
            {"__key__": key, **{k: v for k, v in sample.items() if k != "json"}, "json": json.dumps(meta)}
        )
    cfg = DataConfig(shards=str(tar), num_workers=0, **FAST)
    batch = next(iter(make_loader(cfg, "instruct", tok, batch_size=1)))
    labels = batch["labels_BL"][0]
    assert tok.decode(labels[labels != IGNORE_INDEX]) == " Tighten it.</s>"
    assert "<video>\nWhat next?" in show(tok, batch["input_ids_BL"][0])


# ---------------------------------------------------------------------------------------- splitting


def test_split_over_ranks_and_workers_is_a_partition(bundled_build, tok):
    out, stats = bundled_build
    urls = shards(out, "train")
    assert len(urls) >= 4
    cfg = DataConfig(shards=urls, num_workers=2, shuffle_buffer=16, **FAST)
    per_rank = [all_keys(cfg, "exo", tok, rank=r, world_size=2) for r in range(2)]
    union = per_rank[0] + per_rank[1]
    assert len(union) == len(set(union)) == stats["splits"]["train"]["samples"]

    # and per (rank, worker): the shard lists are disjoint and cover every shard
    seen = []
    for rank in range(2):
        src = data.ShardSource(urls, rank=rank, world_size=2, seed=0, epoch=3)
        for worker in range(2):
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(data, "_worker", lambda w=worker: (w, 2))
                seen += [s["url"] for s in src]
    assert sorted(seen) == sorted(urls)


def test_shard_urls():
    assert data.gopen_url("gs://b/x-000001.tar") == "pipe:gsutil cat gs://b/x-000001.tar"
    assert data.gopen_url("s3://b/x.tar") == "pipe:aws s3 cp s3://b/x.tar -"
    assert data.gopen_url("https://h/x.tar") == "https://h/x.tar"
    assert data.expand_urls("gs://b/x-{000000..000002}.tar") == [
        f"pipe:gsutil cat gs://b/x-{i:06d}.tar" for i in range(3)
    ]
    assert data.expand_urls(["a.tar", "b-{0..1}.tar"]) == ["a.tar", "b-0.tar", "b-1.tar"]


# ------------------------------------------------------------------------------------------ labels


def show(tok, ids) -> str:
    """Decoded text with the video placeholder id (not a vocabulary id) shown as "<video>"."""
    ids = [int(t) for t in ids]
    parts, start = [], 0
    for i, t in enumerate([*ids, VIDEO_TOKEN_INDEX]):
        if t == VIDEO_TOKEN_INDEX:
            parts.append(tok.decode(ids[start:i]))
            start = i + 1
    return "<video>".join(parts)


def test_labels_mask_everything_but_caption_and_eos(tok):
    cfg = DataConfig(max_text_tokens=128)
    collate = make_collate(tok, cfg)
    texts = ["Camera-wearer cuts the onion", "A person hands the camera-wearer the tyre lever."]
    conv = [[{"from": "human", "value": cfg.prompt}, {"from": "gpt", "value": t}] for t in texts]
    frames = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    batch = collate([{"key": str(i), "conversations": c, "exo": frames} for i, c in enumerate(conv)])
    for b, text in enumerate(texts):
        ids, labels, mask = batch["input_ids_BL"][b], batch["labels_BL"][b], batch["attention_mask_BL"][b]
        target = labels != IGNORE_INDEX
        assert tok.decode(labels[target]) == f" {text}</s>"
        assert torch.equal(labels[target], ids[target])
        n = int(mask.sum())
        assert ids[0] == tok.bos_token_id and (ids[n:] == tok.pad_token_id).all()
        assert target.nonzero().max() == n - 1  # the target is the end of the sequence: no label on padding
        # the video placeholder (one id) inside the first [INST] turn, where the model splices the visual tokens
        assert show(tok, ids[:n][~target[:n]]) == f"<s>[INST] <video>\n{cfg.prompt} [/INST]"
        assert int((ids == VIDEO_TOKEN_INDEX).sum()) == 1


def test_truncation_keeps_the_target(tok):
    conv = [{"from": "human", "value": "x" * 50}, {"from": "gpt", "value": "short answer"}]
    ids, labels = tokenize_conversation(tok, conv, 24)
    assert len(ids) == 24 and ids[0] == tok.bos_token_id
    assert tok.decode([t for t in labels if t != IGNORE_INDEX]) == " short answer</s>"
    assert show(tok, ids).endswith("[/INST] short answer</s>")
    assert ids.count(VIDEO_TOKEN_INDEX) == 1  # never dropped by truncation
    ids, labels = tokenize_conversation(tok, [conv[0], {"from": "gpt", "value": "y" * 40}], 16)
    assert len(ids) == 16 and tok.eos_token_id not in ids  # target cut: no eos forced at the cut
    assert ids[-1] == labels[-1] == tok.convert_tokens_to_ids("y")


def test_loader_labels_match_shard_text(moments_build, tok):
    out, _ = moments_build
    texts = {k: s["txt"].decode() for u in shards(out, "val") for k, s in samples_of(u).items()}
    cfg = DataConfig(shards=shards(out, "val"), num_workers=0, **FAST)
    batch = next(iter(make_loader(cfg, "instruct", tok, batch_size=4)))
    for key, labels in zip(batch["keys"], batch["labels_BL"], strict=True):
        assert tok.decode(labels[labels != IGNORE_INDEX]) == f" {texts[key]}</s>"


# ---------------------------------------------------------------------------------------- determinism


def _stream(cfg, tok, **kw):
    return [(b["keys"], b["exo_BTCHW"]) for b in make_loader(cfg, "exo", tok, batch_size=4, **kw)]


def test_shuffle_is_deterministic_and_skip_resumes_exactly(moments_build, tok):
    out, _ = moments_build
    urls = shards(out, "val")
    assert len(urls) == 2
    cfg = DataConfig(shards=urls, num_workers=2, shuffle_buffer=20, seed=7, n_frames=2, image_size=16)
    full = _stream(cfg, tok, epoch=1)
    again = _stream(cfg, tok, epoch=1)
    assert [k for k, _ in full] == [k for k, _ in again]
    assert [k for k, _ in full] != [k for k, _ in _stream(cfg, tok, epoch=2)]
    # k past the point where one worker runs out exercises the undecoded-batch path of the main process
    for k in (1, 3, len(full) - 2):
        tail = _stream(cfg, tok, epoch=1, skip_batches=k)
        assert [keys for keys, _ in tail] == [keys for keys, _ in full[k:]]
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(tail, full[k:], strict=True))


def test_resampled_epoch_has_fixed_length(moments_build, tok):
    out, _ = moments_build
    cfg = DataConfig(shards=shards(out, "val"), num_workers=2, resampled=True, epoch_samples=22, **FAST)
    for rank in range(2):
        keys = all_keys(cfg, "instruct", tok, rank=rank, world_size=2)
        assert len(keys) == 11


# ---------------------------------------------------------------------------------------------- errors


@pytest.fixture()
def corrupt_shard(bundled_build, tmp_path):
    out, _ = bundled_build
    items = list(samples_of(shards(out, "train")[0]).items())[:3]
    tar = tmp_path / "corrupt-000000.tar"
    with wds.TarWriter(str(tar)) as w:
        for i, (key, sample) in enumerate(items):
            if i == 1:
                sample = {**sample, "exo.mp4": b"\x00\x00\x00\x18ftypmp42 not really an mp4"}
            w.write({"__key__": key, **sample})
    return str(tar), [k for k, _ in items]


def test_corrupt_sample_raises_naming_shard_and_key(corrupt_shard, tok):
    tar, keys = corrupt_shard
    cfg = DataConfig(shards=tar, num_workers=0, **FAST)
    with pytest.raises(SampleError) as err:
        all_keys(cfg, "exo", tok)
    assert tar in str(err.value) and keys[1] in str(err.value)


def test_corrupt_sample_skipped_with_warning_handler(corrupt_shard, tok):
    tar, keys = corrupt_shard
    cfg = DataConfig(shards=tar, num_workers=0, **FAST)
    with pytest.warns(UserWarning, match=keys[1]):
        got = all_keys(cfg, "exo", tok, handler=wds.warn_and_continue)
    assert got == [keys[0], keys[2]]


def test_uint8_frames_option(moments_build, tok):
    out, _ = moments_build
    cfg = DataConfig(shards=shards(out, "val"), num_workers=0, shuffle_buffer=0, n_frames=2, image_size=16)
    raw = next(iter(make_loader(cfg, "pairs", tok, batch_size=2, normalize_frames=False)))
    normed = next(iter(make_loader(cfg, "pairs", tok, batch_size=2)))
    assert raw["ego_BTCHW"].dtype == torch.uint8
    assert torch.equal(normalize(raw["ego_BTCHW"]), normed["ego_BTCHW"])


# ------------------------------------------------------------------------ initialisation data (kind "ego")


def _expanded(urls: list[str], kind: str, prompt: str = "Describe.") -> list[dict]:
    """Stage samples of the shards, without decoding any clip."""
    return list(data.expand_samples(wds.tarfile_to_samples()(dict(url=u) for u in urls), kind, prompt))


@pytest.mark.parametrize("layout", ["pairs", "moments"])
def test_ego_kind_is_one_caption_per_narration(bundled_build, moments_build, tok, layout):
    out, split = (bundled_build[0], "train") if layout == "pairs" else (moments_build[0], "val")
    urls = shards(out, split)
    manifest = [r for u in urls for r in pq.read_table(Path(u).with_suffix(".parquet")).to_pylist()]
    texts = {r["key"].rsplit("-", 1)[0] if layout == "pairs" else r["key"]: r["text"] for r in manifest}
    ego = _expanded(urls, "ego")
    assert sorted(s["key"] for s in ego) == sorted(texts)  # each narration once, keyed by the narration
    assert len(ego) == count_samples(urls, "ego") == count_samples(urls, "instruct")
    for s in ego:
        assert "exo" not in s and isinstance(s["ego"], bytes | list)
        assert s["conversations"] == [{"from": "human", "value": "Describe."}, {"from": "gpt", "value": texts[s["key"]]}]
    assert sorted(s["key"] for s in ego) == sorted(s["key"] for s in _expanded(urls, "instruct"))
    cfg = DataConfig(shards=urls, num_workers=0, n_frames=2, image_size=16)
    batch = next(iter(make_loader(cfg, "ego", tok, batch_size=3)))
    assert {k for k in batch if k.endswith("_BTCHW")} == {"ego_BTCHW"} and batch["ego_BTCHW"].shape == (3, 2, 3, 16, 16)
    for key, labels in zip(batch["keys"], batch["labels_BL"], strict=True):
        assert tok.decode(labels[labels != IGNORE_INDEX]) == f" {texts[key]}</s>"


def test_ego_only_and_egoit_samples_feed_only_their_kinds(bundled_build):
    key, sample = next(iter(samples_of(shards(bundled_build[0], "train")[0]).items()))
    ego_only = {"__key__": key, **{k: v for k, v in sample.items() if not k.startswith("exo")}}
    assert [s["key"] for s in data.expand_sample(ego_only, "ego", "p")] == [json.loads(sample["json"])["key"]]
    for kind in ("exo", "pairs"):
        with pytest.raises(ValueError, match="ego-only"):
            data.expand_sample(ego_only, kind, "p")
    egoit = {"__key__": "x", "mp4": b"", "json": json.dumps({"conversations": [{"from": "gpt", "value": "a"}]})}
    with pytest.raises(ValueError, match="instruct"):
        data.expand_sample(egoit, "ego", "p")
    with pytest.raises(ValueError, match="no caption"):
        data.expand_sample({**ego_only, "txt": b" ", "json": b"{}"}, "ego", "p")


# ------------------------------------------------------------------------------- shard lists by manifest


def test_shard_lists_by_wids_index_and_list_file(bundled_build, tmp_path, monkeypatch):
    out, stats = bundled_build
    train, val = shards(out, "train"), shards(out, "val")
    assert data.expand_urls(str(out / "egoexoclip-train.wids.json")) == train  # the index the build writes
    monkeypatch.chdir(out.parent)  # a relative index: shards relative to the index, not to the working folder
    assert data.expand_urls(f"{out.name}/egoexoclip-val.wids.json") == [f"{out.name}/{Path(u).name}" for u in val]
    monkeypatch.undo()
    lists = tmp_path / "lists"
    lists.mkdir()
    rel = os.path.relpath(out, lists)  # the build folder, seen from lists/
    (lists / "all.txt").write_text(f"# train by index, val by brace pattern\n\n{rel}/egoexoclip-train.wids.json\n"
                                   f"{rel}/egoexoclip-val-{{000000..{len(val) - 1:06d}}}.tar\n")  # fmt: skip
    monkeypatch.chdir(tmp_path.parent)
    got = data.expand_urls(str(lists / "all.txt"))
    assert [str(Path(u).resolve()) for u in got] == train + val
    assert count_samples(str(lists / "all.txt"), "exo") == stats["samples"]
    nested = lists / "nested.json"  # a wids index of sub-datasets (source_url, or inline with a base)
    nested.write_text(json.dumps({"wids_version": 1, "datasets": [
        {"source_url": f"{rel}/egoexoclip-val.wids.json"},
        {"base": rel, "shardlist": [{"url": Path(train[0]).name, "nsamples": 1}]},
    ]}))  # fmt: skip
    assert [str(Path(u).resolve()) for u in data.expand_urls(str(nested))] == val + train[:1]
    assert data.resolve_url("gs://b/d/x.wids.json", "x-000000.tar") == "gs://b/d/x-000000.tar"
    assert data.resolve_url("gs://b/d/x.wids.json", "/abs/x.tar") == "/abs/x.tar"
    (lists / "empty.txt").write_text("# nothing\n")
    (lists / "other.json").write_text('{"shards": []}')
    for bad, message in (("empty.txt", "names no shard"), ("other.json", "not a wids index")):
        with pytest.raises(ValueError, match=message):
            data.expand_urls(str(lists / bad))
