"""pipeline.core.shards and pipeline.egoexoclip.samples: deterministic bytes, and the shards read back by tar, webdataset, wids and HF datasets."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess

import pytest
from PIL import Image

from pipeline.core import shards as S
from pipeline.egoexoclip import samples as ES

N_FRAMES = 4


def _jpeg(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (shade, 255 - shade, 40)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _meta(i: int, exo_cam: str = "cam01", exo_cams=("cam01",)) -> dict:
    return ES.pair_meta(
        take_uid="uid-1",
        take_name="iiith_cooking_01_1",
        scenario="Cooking",
        narration_index=i,
        annotator_id="a1",
        text=f"C cuts the onion {i}",
        raw_text=f"#C C cuts the onion {i}",
        timestamp=10 + i,  # int on purpose: pair_meta must make it a float
        window_start=9.0 + i,
        window_end=11.0 + i,
        ego_cam="aria01",
        exo_cam=exo_cam,
        exo_cams=list(exo_cams),
        ego_start_frame=270 + 30 * i,
        ego_end_frame=330 + 30 * i,
        fps=30,
        n_ego_frames=60,
    )


def _pairs(n: int, start: int = 0) -> list[dict]:
    out = []
    for i in range(start, start + n):
        key = ES.sample_key("iiith_cooking_01_1", i, "cam01")
        # "ünïcode" text exercises the utf-8 path; distinct bytes per sample catch member mix-ups
        out.append(ES.pack_pair(key, b"EGO" * (i + 1), b"EXO" * (i + 2), f"C cuts ünïon {i}", _meta(i)))
    return out


def _frame_pairs(n: int) -> list[dict]:
    out = []
    for i in range(n):
        key = ES.sample_key("iiith_cooking_01_1", i, "cam01")
        ego = [_jpeg(10 * i + f) for f in range(N_FRAMES)]
        exo = [_jpeg(200 - 10 * i - f) for f in range(N_FRAMES)]
        out.append(ES.pack_pair_frames(key, ego, exo, f"text {i}", _meta(i)))
    return out


def _write(path, samples) -> str:
    with open(path, "wb") as f:
        w = S.ShardWriter(f)
        for s in samples:
            w.write(s)
        w.close()
        assert w.n_samples == len(samples)
        assert w.n_bytes == f.tell()
    return str(path)


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _strip(sample: dict) -> dict:
    return {k: v for k, v in sample.items() if not k.startswith("__")}


@pytest.fixture
def pair_shards(tmp_path):
    """Two pair shards (3 + 2 samples) and their wids index next to them."""
    samples = [_pairs(3), _pairs(2, start=3)]
    names = [S.shard_name("egoexoclip", "train", i) for i in range(2)]
    paths = [_write(tmp_path / n, s) for n, s in zip(names, samples, strict=True)]
    index = tmp_path / "egoexoclip-train.json"
    index.write_text(
        json.dumps(S.wids_index([(n, len(s)) for n, s in zip(names, samples, strict=True)], "egoexoclip"))
    )
    return paths, samples[0] + samples[1], str(index)


# --------------------------------------------------------------------------------------------- keys & packing


def test_sample_key_format_and_rejections():
    assert ES.sample_key("take_1", 7) == "take_1-n00007"
    assert ES.sample_key("take_1", 7, "gp02") == "take_1-n00007-gp02"
    for bad in [("take.1", 0, None), ("take", 0, "cam.01"), ("", 0, None), ("a/b", 0, None), ("t", -1, None)]:
        with pytest.raises(ValueError):
            ES.sample_key(*bad)


def test_pack_pair_members_and_canonical_json():
    s = ES.pack_pair("k-n00000-cam01", b"e", b"x", "héllo", {"b": 1, "a": "é"})
    assert set(s) == {"__key__", *ES.PAIR_MEMBERS}
    assert s["txt"] == "héllo".encode()
    assert s["json"] == '{"a":"é","b":1}'.encode()
    assert ES.pack_pair("k", b"e", b"x", "t", {}, ego_ext="mkv").keys() >= {"ego.mkv", "exo.mp4"}
    with pytest.raises(ValueError, match="None"):
        ES.pack_pair("k", b"e", b"x", "t", {"exo_cam": None})


def test_pair_meta_fills_defaults_and_fixes_types():
    m = ES.pair_meta(take_name="t", timestamp=3, exo_cam=None)
    assert list(m) == list(ES.META_FIELDS)
    assert m["timestamp"] == 3.0 and isinstance(m["timestamp"], float)
    assert m["exo_cam"] == "" and m["narration_index"] == -1 and m["fps"] == -1.0
    with pytest.raises(ValueError, match="unknown"):
        ES.pair_meta(bogus=1)
    with pytest.raises(ValueError):
        ES.pair_meta(narration_index="3")


def test_pack_moment_and_frames_member_names():
    m = ES.pack_moment("k", b"e", {"gp02": b"2", "gp01": b"1"}, "t", {})
    assert sorted(_strip(m)) == ["ego.mp4", "exo.gp01.mp4", "exo.gp02.mp4", "json", "txt"]
    f = ES.pack_pair_frames("k", [_jpeg(1)] * 3, [_jpeg(2)] * 3, "t", {})
    assert sorted(_strip(f)) == [f"ego.{i:02d}.jpg" for i in range(3)] + [
        f"exo.{i:02d}.jpg" for i in range(3)
    ] + [
        "json",
        "txt",
    ]
    mf = ES.pack_moment_frames("k", [_jpeg(1)] * 2, {"cam02": [_jpeg(2)] * 2}, "t", {})
    assert {"exo.cam02.00.jpg", "exo.cam02.01.jpg", "ego.01.jpg"} <= set(mf)
    with pytest.raises(ValueError, match="frames"):
        ES.pack_pair_frames("k", [_jpeg(1)] * 3, [_jpeg(2)] * 2, "t", {})
    with pytest.raises(ValueError, match="JPEG"):
        ES.pack_pair_frames("k", [b"not a jpeg"], [_jpeg(2)], "t", {})


def test_shard_writer_rejects_bad_keys_and_members():
    w = S.ShardWriter(io.BytesIO())
    with pytest.raises(ValueError, match="a.b"):
        w.write({"__key__": "a.b", "txt": b"x"})
    with pytest.raises(ValueError, match="member"):
        w.write({"__key__": "ab", "bad/name": b"x"})
    with pytest.raises(ValueError, match="longer"):
        w.write({"__key__": "k" * 96, "json": b"x"})
    w.write({"__key__": "ab", "txt": b"x"})
    with pytest.raises(ValueError, match="duplicate"):
        w.write({"__key__": "ab", "txt": b"y"})
    assert w.n_samples == 1


# --------------------------------------------------------------------------------------------- determinism & tar


def test_tar_and_parquet_are_deterministic(tmp_path):
    a = _write(tmp_path / "a.tar", _pairs(3))
    b = _write(tmp_path / "b.tar", _pairs(3))
    assert _sha(a) == _sha(b)
    rows = [_manifest_row(i) for i in range(3)] + [_manifest_row(3, exo_cam=None)]
    for name in ("a.parquet", "b.parquet"):
        with open(tmp_path / name, "wb") as f:
            S.write_parquet(ES.manifest_table(rows), f)
    assert _sha(tmp_path / "a.parquet") == _sha(tmp_path / "b.parquet")
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "a.parquet")
    assert table.schema.equals(ES.MANIFEST_SCHEMA)
    assert table.column("exo_cam").to_pylist() == ["cam01", "cam01", "cam01", None]


def _manifest_row(i: int, exo_cam: str | None = "cam01") -> dict:
    meta = _meta(i)
    return {
        **{k: v for k, v in meta.items()},
        "exo_cam": exo_cam,
        "key": ES.sample_key(meta["take_name"], i, exo_cam),
        "shard": S.shard_name("egoexoclip", "train", 0),
        "split": "train",
        "ego_bytes": 100 + i,
        "exo_bytes": 200 + i,
    }


def test_manifest_table_rejects_missing_and_null():
    row = _manifest_row(0)
    with pytest.raises(ValueError, match="missing"):
        ES.manifest_table([{k: v for k, v in row.items() if k != "fps"}])
    with pytest.raises(ValueError, match="null"):
        ES.manifest_table([{**row, "take_uid": None}])


def test_tar_command_lists_and_extracts(tmp_path):
    samples = _pairs(2)
    path = _write(tmp_path / "s.tar", samples)
    listed = subprocess.run(["tar", "-tf", path], check=True, capture_output=True, text=True).stdout.split()
    expected = [f"{s['__key__']}.{m}" for s in samples for m in ["ego.mp4", "exo.mp4", "json", "txt"]]
    assert listed == expected
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["tar", "-xf", path, "-C", str(out)], check=True)
    for s in samples:
        for m in ES.PAIR_MEMBERS:
            assert (out / f"{s['__key__']}.{m}").read_bytes() == s[m]
    assert S.read_tar_samples(path) == samples


# --------------------------------------------------------------------------------------------- generic clients


def test_webdataset_reads_every_sample(pair_shards, tmp_path):
    import webdataset as wds

    paths, samples, _ = pair_shards
    got = list(wds.WebDataset(paths, shardshuffle=False))
    assert [g["__key__"] for g in got] == [s["__key__"] for s in samples]
    for g, s in zip(got, samples, strict=True):
        assert _strip(g) == _strip(s)

    frames = _frame_pairs(3)
    decoded = list(wds.WebDataset(_write(tmp_path / "f.tar", frames), shardshuffle=False).decode("pil"))
    assert len(decoded) == 3
    for d in decoded:
        for view in ("ego", "exo"):
            imgs = [d[f"{view}.{i:02d}.jpg"] for i in range(N_FRAMES)]
            assert all(isinstance(im, Image.Image) and im.size == (16, 12) for im in imgs)
        assert isinstance(d["json"], dict) and isinstance(d["txt"], str)


def test_wids_reads_every_sample_by_index(pair_shards, tmp_path):
    import wids

    _, samples, index = pair_shards
    ds = wids.ShardListDataset(index, cache_dir=str(tmp_path / "wids-cache"), transformations=[])
    assert len(ds) == len(samples)
    for i in reversed(range(len(samples))):  # random access, not a stream
        got, want = ds[i], samples[i]
        assert got["__key__"] == want["__key__"]
        for m in ES.PAIR_MEMBERS:
            value = got["." + m]
            assert bytes(value.read() if hasattr(value, "read") else value) == want[m]


def _load_hf(paths, tmp_path):
    import datasets

    return datasets.load_dataset(
        "webdataset", data_files={"train": list(paths)}, split="train", cache_dir=str(tmp_path / "hf")
    )


def test_hf_datasets_pairs_layout(pair_shards, tmp_path):
    import datasets

    paths, samples, _ = pair_shards
    ds = _load_hf(paths, tmp_path)
    assert ds.num_rows == len(samples)
    # ".mp4" members become Video features; decoding needs torchcodec, so read them undecoded
    assert isinstance(ds.features["ego.mp4"], datasets.Video) and isinstance(
        ds.features["exo.mp4"], datasets.Video
    )
    raw = ds.cast_column("ego.mp4", datasets.Video(decode=False)).cast_column(
        "exo.mp4", datasets.Video(decode=False)
    )
    for row, s in zip(raw, samples, strict=True):
        assert row["__key__"] == s["__key__"]
        assert row["ego.mp4"]["bytes"] == s["ego.mp4"] and row["exo.mp4"]["bytes"] == s["exo.mp4"]
        assert row["txt"] == s["txt"].decode()
        assert row["json"] == json.loads(s["json"])


def test_hf_datasets_frames_layout(tmp_path):
    import datasets

    samples = _frame_pairs(7)  # more than HF's 5-sample schema inference window
    paths = [_write(tmp_path / "a.tar", samples[:4]), _write(tmp_path / "b.tar", samples[4:])]
    ds = _load_hf(paths, tmp_path)
    assert ds.num_rows == 7
    cols = [f"{v}.{i:02d}.jpg" for v in ("ego", "exo") for i in range(N_FRAMES)]
    assert all(isinstance(ds.features[c], datasets.Image) for c in cols)
    for row in ds:
        for c in cols:
            assert row[c] is not None and row[c].size == (16, 12)
        assert row["json"]["exo_cams"] == ["cam01"]


# --------------------------------------------------------------------------------------------- planning & naming


def test_plan_shards_bounds():
    items = [("a", 10), ("b", 10), ("c", 10), ("d", 10), ("e", 10)]
    assert S.plan_shards(items, max_samples=2, max_bytes=1000) == [["a", "b"], ["c", "d"], ["e"]]
    assert S.plan_shards(items, max_samples=10, max_bytes=25) == [["a", "b"], ["c", "d"], ["e"]]
    assert S.plan_shards(items, max_samples=10, max_bytes=30) == [["a", "b", "c"], ["d", "e"]]
    # an oversize item gets a shard of its own, and the next item starts a new one
    mixed = [("a", 10), ("big", 500), ("b", 10), ("c", 10)]
    assert S.plan_shards(mixed, max_samples=10, max_bytes=100) == [["a"], ["big"], ["b", "c"]]
    assert S.plan_shards([], max_samples=1, max_bytes=1) == []
    with pytest.raises(ValueError):
        S.plan_shards([("a", 1), ("a", 1)], max_samples=5, max_bytes=5)


def test_plan_shards_grouped_never_splits_a_group():
    groups = [
        ("n0", [("n0-cam01", 10), ("n0-cam02", 10)]),
        ("n1", [("n1-cam01", 10), ("n1-cam02", 10), ("n1-cam03", 10)]),
        ("n2", [("n2-cam01", 10)]),
        ("n3", [("n3-cam01", 10), ("n3-cam02", 10)]),
    ]
    # 4 samples per shard: n0 (2) + n1 (3) = 5 > 4 -> n1 opens a new shard; n1 + n2 = 4 fits
    assert S.plan_shards_grouped(groups, 4, 10_000) == [["n0"], ["n1", "n2"], ["n3"]]
    # by bytes (35 per shard): n0 20 | n1 30 (+n2 = 40 > 35) | n2 10 + n3 20 = 30
    assert S.plan_shards_grouped(groups, 100, 35) == [["n0"], ["n1"], ["n2", "n3"]]
    # a group larger than max_samples still stays whole, alone in its shard
    assert S.plan_shards_grouped(groups, 2, 10_000) == [["n0"], ["n1"], ["n2"], ["n3"]]


def test_shard_name_and_wids_index():
    assert S.shard_name("egoexoclip", "train", 0) == "egoexoclip-train-000000.tar"
    assert S.shard_name("egoexoclip", "val", 12, ext="parquet") == "egoexoclip-val-000012.parquet"
    with pytest.raises(ValueError):
        S.shard_name("egoexoclip", "train", 1_000_000)
    idx = S.wids_index([("a.tar", 3), ("b.tar", 2)], "egoexoclip")
    assert idx == {
        "__kind__": "wids-shard-index-v1",
        "wids_version": 1,
        "name": "egoexoclip",
        "shardlist": [{"url": "a.tar", "nsamples": 3}, {"url": "b.tar", "nsamples": 2}],
    }
    with pytest.raises(ValueError):
        S.wids_index([("/abs/a.tar", 1)], "x")
