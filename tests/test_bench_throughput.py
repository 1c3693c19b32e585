"""make bench-train's throughput report (issue 18 item 7): tokens/s split into video and text tokens, MFU by the
per-parameter formula and by counted FLOPs, "MFU: n/a (CPU)" without a GPU."""

from __future__ import annotations

import json

import pytest

from tools.bench.train import main as bench
from tools.bench.train import summary


def test_bench_train_splits_tokens_and_says_no_mfu_on_cpu(capsys):
    args = "--stage 2 --vision-layers 1 --vision-hidden 64 --llm-layers 1 --llm-hidden 128 --frames 4"
    extra = [
        "--image-size",
        "56",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--micro-batch",
        "2",
        "--text-tokens",
        "16",
    ]
    assert bench([*args.split(), *extra]) == 0
    out, err = capsys.readouterr()
    r = json.loads(out.strip().splitlines()[-1])
    assert r["video_tokens_per_s"] + r["text_tokens_per_s"] == pytest.approx(r["tokens_per_s"], rel=1e-3)
    # per sample: the spliced visual tokens ("x+Fx": two sets) and 15 text ids (the placeholder is not text)
    assert r["video_tokens_per_s"] / r["samples_per_s"] == pytest.approx(r["visual_tokens"], rel=1e-2)
    assert r["text_tokens_per_s"] / r["samples_per_s"] == pytest.approx(15, rel=1e-2)
    assert r["model_tflops"] > 0 and r["mfu"] is None and r["mfu_counted"] is None
    assert "MFU: n/a (CPU)" in err and "tokens/s: video" in err


def test_summary_on_a_gpu():
    record = {"stage": "s", "device": "NVIDIA H100 80GB HBM3", "video_tokens_per_s": 3000.0,
              "text_tokens_per_s": 1000.0, "tokens_per_s": 4000.0, "mfu": 0.412, "mfu_counted": 0.351,
              "peak_tflops": 989.0}  # fmt: skip
    assert summary(record) == (
        "[s] tokens/s: video 3000 + text 1000 = 4000; MFU: 41.2% (formula), 35.1% (counted), "
        "peak 989 TFLOP/s bf16 (NVIDIA H100 80GB HBM3)"
    )
    unknown = {**record, "device": "Some GPU", "mfu": None, "mfu_counted": None, "peak_tflops": None}
    assert "MFU: n/a (no peak known for Some GPU" in summary(unknown)
