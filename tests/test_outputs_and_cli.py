"""The bundled build read by generic clients; the frames and moments formats; the command line."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from pipeline.core.clips import sample_frame_indices
from pipeline.core.framecode import camera_code, decode_frame
from pipeline.core.shards import read_tar_samples
from pipeline.egoexoclip import main, parse_args
from tests.conftest import build


def test_webdataset_reads_every_sample_with_all_members(bundled_build):
    out, stats = bundled_build
    urls = [str(p) for p in sorted(out.glob("egoexoclip-train-*.tar"))]
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert len(samples) == stats["splits"]["train"]["samples"]
    for s in samples:
        assert {"ego.mp4", "exo.mp4", "txt", "json"} <= set(s)
        assert s["ego.mp4"][4:8] == b"ftyp" and s["exo.mp4"][4:8] == b"ftyp"
        meta = json.loads(s["json"])
        assert s["txt"].decode() == meta["text"] and s["__key__"] == f"{meta['key']}-{meta['exo_cam']}"


def test_wids_reads_by_index(bundled_build):
    import wids

    out, stats = bundled_build
    ds = wids.ShardListDataset(str(out / "egoexoclip-val.wids.json"), transformations=[])
    assert len(ds) == stats["splits"]["val"]["samples"]
    last = ds[len(ds) - 1]
    assert json.loads(last[".json"].read())["split"] == "val"
    assert last[".exo.mp4"].read()[4:8] == b"ftyp"


def test_hugging_face_datasets_rows_have_ego_and_exo_clips(bundled_build, tmp_path):
    import datasets

    out, stats = bundled_build
    files = [str(p) for p in sorted(out.glob("egoexoclip-*.tar"))]
    ds = datasets.load_dataset(
        "webdataset", data_files={"train": files}, split="train", cache_dir=str(tmp_path / "hf")
    )
    # decoding video would need torchcodec: read the clips as bytes
    ds = ds.cast_column("ego.mp4", datasets.Video(decode=False)).cast_column(
        "exo.mp4", datasets.Video(decode=False)
    )
    assert len(ds) == stats["samples"]
    for row in ds:
        assert row["ego.mp4"]["bytes"][4:8] == b"ftyp" and row["exo.mp4"]["bytes"][4:8] == b"ftyp"
        assert row["json"]["exo_cam"] and row["txt"]


def test_tar_command_lists_and_extracts(bundled_build, tmp_path):
    out, _ = bundled_build
    tar = sorted(out.glob("*.tar"))[0]
    names = subprocess.run(
        ["tar", "-tf", str(tar)], check=True, capture_output=True, text=True
    ).stdout.split()
    keys = [s["__key__"] for s in read_tar_samples(tar)]
    assert names == [f"{k}.{m}" for k in keys for m in ("ego.mp4", "exo.mp4", "json", "txt")]
    subprocess.run(["tar", "-xf", str(tar), "-C", str(tmp_path)], check=True)
    assert (tmp_path / f"{keys[0]}.exo.mp4").stat().st_size > 0


def _codes(jpeg: bytes) -> tuple[tuple[int, int], tuple[int, int]]:
    img = Image.open(io.BytesIO(jpeg))
    return decode_frame(np.asarray(img.convert("RGB"))), img.size


def test_frames_format_moments_layout(sample_root, tmp_path):
    out = tmp_path / "frames"
    stats = build(sample_root, out, splits=("val",), **_frames_moments())
    samples = [s for t in sorted(out.glob("*.tar")) for s in read_tar_samples(t)]
    assert len(samples) == stats["samples"] == stats["narrations"]["in_shards"] > 0
    assert stats["pairs"] == sum(len(json.loads(s["json"])["exo_cams"]) for s in samples)
    for s in samples:
        meta = json.loads(s["json"])
        offset = meta["ego_start_frame"] - round(meta["window_start"] * meta["fps"])
        expected = [
            i - offset for i in sample_frame_indices(meta["ego_start_frame"], meta["ego_end_frame"], 4)
        ]
        views = [("ego", meta["ego_cam"])] + [(f"exo.{c}", c) for c in meta["exo_cams"]]
        for prefix, cam in views:
            decoded = [_codes(s[f"{prefix}.{i:02d}.jpg"]) for i in range(4)]
            assert [c for (c, _), _ in decoded] == [camera_code(cam)] * 4
            assert [i for (_, i), _ in decoded] == expected, (s["__key__"], prefix)
            assert all(min(size) == 112 for _, size in decoded)  # short side scaled, vertical GoPro included


def _frames_moments():
    from pipeline.core.clips import ClipFormat
    from pipeline.egoexoclip.writer import OutputFormat

    return {"output": OutputFormat("moments", ClipFormat(kind="frames", n_frames=4, size=112))}


def test_cli_help_and_config_errors_name_the_field(capsys):
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.egoexoclip", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "--layout" in proc.stdout and "--frames" in proc.stdout
    with pytest.raises(SystemExit):
        parse_args(["--root", "r", "--out", "o", "--crf", "99"])
    assert "crf" in capsys.readouterr().err
    cfg, beam_args, _ = parse_args(["--root", "r", "--out", "o", "--frames", "8", "--direct_num_workers=2"])
    assert cfg.output.clip.kind == "frames" and cfg.output.clip.n_frames == 8
    assert beam_args == ["--direct_num_workers=2"]


def test_cli_refuses_a_root_that_is_not_a_release(tmp_path, capsys):
    assert main(["--root", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: --root {tmp_path / 'nope'}: not found\n"
    (tmp_path / "empty").mkdir()
    assert main(["--root", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "takes.json not found" in err and str(tmp_path / "empty") in err
    assert not (tmp_path / "out").exists()
