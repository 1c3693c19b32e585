"""`make bench DATASET=egoit|egobench|egoclip` (tools/bench/builders.py): what a build decoded and wrote is read
back from the stamps of its output, and the codec limit is measured on exactly that."""

from __future__ import annotations

import argparse
import json
from collections import Counter

from pipeline.core.clips import ClipFormat
from tools.bench import builders


def test_sources_used_groups_clips_by_stamp_code():
    clips = [
        {"kind": "mp4", "stamps": [(7, 10), (7, 11), (7, 12)], "size": (64, 48)},
        {"kind": "mp4", "stamps": [(7, 10), (7, 11), (7, 12)], "size": (64, 48)},  # the same window again
        {"kind": "mp4", "stamps": [(9, 0), None, (9, 2)], "size": (96, 72)},
        {"kind": "jpeg", "stamps": [(7, 30)], "size": (32, 24)},
    ]
    sources, unstamped = builders.sources_used(clips)
    assert unstamped == 1
    assert sources[7]["windows"] == {(10, 13)} and sources[7]["jpegs"] == {30}
    assert sources[7]["used"] == {10, 11, 12, 30}
    assert sources[9]["windows"] == {(0, 3)} and sources[9]["mp4_size"] == Counter({(96, 72): 1})


def test_clip_format_follows_the_build_options():
    fmt = builders.clip_format({"kind": "frames", "preset": "fast", "crf": 20, "x264_threads": 1, "n_frames": 8,
                                "size": 224, "jpeg_quality": 5, "seed": 0})  # fmt: skip
    assert fmt == ClipFormat(kind="frames", preset="fast", crf=20, threads=1, n_frames=8, size=224, jpeg_quality=5)


def test_egoclip_build_against_its_codec_limit(tmp_path, capsys):
    args = argparse.Namespace(dataset="egoclip", out=str(tmp_path / "bench"), build_args="", profile=False,
                              results=str(tmp_path / "results"))  # fmt: skip
    res = builders.bench_builder(args)
    written = list((tmp_path / "results").glob("egoclip-bench-*.json"))
    assert len(written) == 1 and json.loads(written[0].read_text())["dataset"] == "egoclip"
    lim = res["codec_limit"]
    # the bundled EgoClip sample: 20 good clips over the three readable videos, every output frame stamped
    assert res["output"]["mp4_clips"] == res["build"]["samples"] == 20
    assert res["output"]["unstamped_frames"] == 0
    assert lim["sources"] == 3 and all(p["kind"] == "video" for p in lim["per_source"].values())
    assert sum(p["mp4_frames"] for p in lim["per_source"].values()) <= res["output"]["mp4_frames"]
    assert lim["decode_cpu_s"] > 0 and lim["encode_cpu_s"] > 0
    assert 0 < res["ratio_to_codec_limit"] == lim["cpu_s"] / res["build"]["cpu_s"]
    assert "ratio" in capsys.readouterr().out
