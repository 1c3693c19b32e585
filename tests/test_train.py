"""The training loop on CPU with tiny models and shards built by the pipeline from the bundled sample."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from exo2ego_model.config import RunConfig, load_run_config
from exo2ego_model.train import main, run


def _run_config(bundled_build, tmp_path, egoit_build=None, **stage_over) -> RunConfig:
    """The smoke run on the test session's builds: Ego-ExoClip shards, and EgoIT shards for the instruct stage
    when an EgoIT build is given (as `make train` does)."""
    out, _ = bundled_build
    cfg = load_run_config("configs/smoke/run.yaml")
    shards = "{" + ",".join(str(p) for p in sorted(out.glob("egoexoclip-train-*.tar"))) + "}"

    def shards_of(stage):
        return str(egoit_build[0] / "egoit-train-*.tar") if egoit_build and stage.data_kind == "instruct" else shards

    stages = tuple(
        dataclasses.replace(
            s, data=dataclasses.replace(s.data, shards=shards_of(s), num_workers=0), **stage_over
        )
        for s in cfg.stages
    )
    return dataclasses.replace(cfg, stages=stages, output_dir=str(tmp_path / "run"))


def _log(run_cfg: RunConfig, stage: str) -> list[dict]:
    path = f"{run_cfg.output_dir}/{stage}/log.jsonl"
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_three_stages_run_in_order_and_mark_done(bundled_build, egoit_build, tmp_path):
    cfg = _run_config(bundled_build, tmp_path, egoit_build)
    run(cfg, list(cfg.stages))
    for stage in cfg.stages:
        log = _log(cfg, stage.name)
        assert [r["step"] for r in log] == list(range(1, stage.max_steps + 1))
        assert all(r["samples_per_s"] > 0 and r["tokens_per_s"] > 0 for r in log)
        done = json.loads(Path(cfg.output_dir, stage.name, "done.json").read_text())
        assert done["steps"] == stage.max_steps
    pairs = _log(cfg, "teacher_student_guidance")[0]
    assert {"loss_kl", "loss_cycle", "loss_vtg"} <= set(pairs)
    final3 = torch.load(f"{cfg.output_dir}/student_self_practice/final.pt")
    assert final3 and all("lora" in k or k.startswith(("ego_tower", "map_f")) for k in final3)


def test_loss_falls_over_a_few_dozen_steps(bundled_build, tmp_path):
    cfg = _run_config(bundled_build, tmp_path, max_steps=30, checkpoint_every=100, warmup_ratio=0.0, lr=3e-3)
    stage = cfg.stages[0]
    run(cfg, [stage])
    losses = [r["loss"] for r in _log(cfg, stage.name)]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5  # nats


def _final(cfg: RunConfig, stage: str) -> dict:
    return torch.load(f"{cfg.output_dir}/{stage}/final.pt")


def test_resume_continues_to_the_same_parameters(bundled_build, tmp_path):
    def stage2_only(path):  # stage 2: three losses, two trainable groups, dropout-free
        cfg = _run_config(bundled_build, path, max_steps=6, checkpoint_every=2)
        return dataclasses.replace(cfg, stages=(cfg.stages[1],))

    whole, resumed = stage2_only(tmp_path / "whole"), stage2_only(tmp_path / "resumed")
    stage = whole.stages[0]
    run(whole, [stage])
    run(resumed, [stage], stop_after=3)  # a preemption after step 3
    assert not (tmp_path / "resumed/run" / stage.name / "done.json").exists()
    assert (tmp_path / "resumed/run" / stage.name / "checkpoints/step_000003.pt").exists()
    run(resumed, [stage])
    a, b = _final(whole, stage.name), _final(resumed, stage.name)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in _log(whole, stage.name)][3:] == [r["loss"] for r in _log(resumed, stage.name)][
        3:
    ]


def test_bad_config_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "run.yaml"
    bad.write_text("model: {vision_tower: tiny, llm: tiny, n_frames: 4, temporal_stride: 3}\nstages: []\n")
    assert main(["--config", str(bad)]) == 2
    assert "model.temporal_stride=3" in capsys.readouterr().err
    assert main(["--config", "configs/smoke/run.yaml", "--stage", "9", "--output-dir", str(tmp_path)]) == 2
    assert "stage='9'" in capsys.readouterr().err


def test_bench_train_reports_throughput_and_flops(capsys):
    from exo2ego_model.bench_train import main as bench

    args = "--stage 2 --vision-layers 1 --vision-hidden 64 --llm-layers 1 --llm-hidden 128 --frames 4"
    assert (
        bench([*args.split(), "--image-size", "56", "--steps", "1", "--warmup", "1", "--micro-batch", "2"])
        == 0
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["samples_per_s"] > 0 and result["tokens_per_s"] > result["samples_per_s"]
    assert result["achieved_tflops"] >= 0 and result["trainable_params"] < result["llm_params"]


@pytest.mark.parametrize(("parallel", "stage_index"), [("ddp", 1), ("fsdp", 2)])
def test_two_cpu_ranks_with_torchrun(bundled_build, tmp_path, parallel, stage_index):
    """torchrun, 2 processes, gloo: DDP (stage 2) and FSDP2 (stage 3, LoRA) wrap the model, ranks read disjoint
    shards (resampled) and step together; checkpoints and final weights are gathered from every rank."""
    import subprocess
    import sys

    import yaml

    out, _ = bundled_build
    shards = "{" + ",".join(str(p) for p in sorted(out.glob("egoexoclip-train-*.tar"))) + "}"
    raw = yaml.safe_load(Path("configs/smoke/run.yaml").read_text())
    raw.update(output_dir=str(tmp_path / "run"), parallel=parallel)
    raw["data"].update(shards=shards, num_workers=0, resampled=True, epoch_samples=32)
    raw["stages"] = [
        {**raw["stages"][1], "max_steps": 3, "checkpoint_every": 3}
    ]  # stage 2: pairs, three losses
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(raw))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "exo2ego_model.train",
        "--config",
        str(config),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stage = raw["stages"][0]["name"]
    log = [json.loads(line) for line in (tmp_path / "run" / stage / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]  # written once, by rank 0
    assert (tmp_path / "run" / stage / "done.json").exists()
    assert (tmp_path / "run" / stage / "checkpoints" / "step_000003.pt").exists()
    final = torch.load(tmp_path / "run" / stage / "final.pt")
    assert final and all(t.dim() == 0 or t.numel() > 0 for t in final.values())
