"""The training loop on CPU with tiny models and shards built by the pipeline from the bundled sample."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from exo2ego_model.checkpoint import CheckpointError, read_weights
from exo2ego_model.config import ConfigError, RunConfig, load_run_config
from exo2ego_model.train import main, run


def _run_config(bundled_build, tmp_path, egoit_build=None, egoclip_build=None, **stage_over) -> RunConfig:
    """The smoke run on the test session's builds: Ego-ExoClip shards, and EgoIT shards for the instruct stage
    when an EgoIT build is given (as `make train` does)."""
    out, _ = bundled_build
    cfg = load_run_config("configs/smoke/run.yaml")
    shards = "{" + ",".join(str(p) for p in sorted(out.glob("egoexoclip-train-*.tar"))) + "}"

    def shards_of(stage):
        return (
            str(egoit_build[0] / "egoit-train-*.tar")
            if egoit_build and stage.data_kind == "instruct"
            else shards
        )

    def shards_of_stage(stage):  # the initialisation reads EgoClip shards; without them it is left out
        return str(egoclip_build[0] / "egoclip-train-*.tar") if stage.data_kind == "ego" else shards_of(stage)

    stages = tuple(
        dataclasses.replace(
            s, data=dataclasses.replace(s.data, shards=shards_of_stage(s), num_workers=0), **stage_over
        )
        for s in cfg.stages
        if s.data_kind != "ego" or egoclip_build
    )
    return dataclasses.replace(cfg, stages=stages, output_dir=str(tmp_path / "run"))


def _log(run_cfg: RunConfig, stage: str) -> list[dict]:
    path = f"{run_cfg.output_dir}/{stage}/log.jsonl"
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


class FakeExport:
    """Stands in for exo2ego_model.export (the test checks what the run hands it, not the export format)."""

    def __init__(self):
        self.calls = []

    def save_pretrained(self, model, tokenizer, out):
        self.calls.append(
            ({k: v.detach().clone() for k, v in model.state_dict().items()}, tokenizer, Path(out))
        )
        Path(out).mkdir(parents=True)
        (Path(out) / "weights.txt").write_text("exported\n")


def test_all_stages_run_in_order_and_mark_done(
    bundled_build, egoit_build, egoclip_build, tmp_path, monkeypatch, capsys
):
    export = FakeExport()
    monkeypatch.setitem(sys.modules, "exo2ego_model.export", export)
    cfg = _run_config(bundled_build, tmp_path, egoit_build, egoclip_build)
    assert [s.name for s in cfg.stages] == [
        "initialization", "teacher_self_preparation", "teacher_student_guidance", "student_self_practice"
    ]  # fmt: skip
    assert run(cfg, list(cfg.stages))
    for stage in cfg.stages:
        log = _log(cfg, stage.name)
        assert [r["step"] for r in log] == list(range(1, stage.max_steps + 1))
        assert all(r["samples_per_s"] > 0 and r["tokens_per_s"] > 0 for r in log)
        done = json.loads(Path(cfg.output_dir, stage.name, "done.json").read_text())
        assert done["steps"] == stage.max_steps and done["parallel"] == "none"
    # each stage starts by printing its parameter groups: one line each, counts, lr, weight decay or frozen
    out = capsys.readouterr().out
    for stage in cfg.stages:
        lines = [line for line in out.splitlines() if line.startswith(f"[{stage.name}] group ")]
        assert [line.split()[2] for line in lines][:6] == ["exo_tower", "ego_tower", "projector", "map_f", "map_g", "llm"]
        trained = [line.split()[2] for line in lines if " lr " in line]
        assert trained == [g for g in ("exo_tower", "ego_tower", "projector", "map_f", "map_g", "llm", "lora")
                           if g in stage.trained], stage.name  # fmt: skip
        assert all(line.endswith("frozen") for line in lines if " lr " not in line)
    assert "[initialization] group ego_tower " in out and "[teacher_student_guidance] group ego_tower " in out
    pairs = _log(cfg, "teacher_student_guidance")[0]
    assert {"loss_kl", "loss_cycle", "loss_vtg"} <= set(pairs)
    # each stage's final weights hold what it and the earlier stages trained, nothing frozen: the vision towers
    # stay frozen in the initialisation and stage 1 (train_vision_tower's default), stage 2 trains the ego tower
    init, s1, s2, s3 = (_final(cfg, s.name) for s in cfg.stages)
    assert {k.split(".", 1)[0] for k in init} == {"projector"}
    assert {k.split(".", 1)[0] for k in s1} == {"projector"}
    assert {k.split(".", 1)[0] for k in s2} == {"ego_tower", "projector", "map_f", "map_g"}
    assert set(s3) - set(s2) and all("lora_" in k for k in set(s3) - set(s2))
    ego = [k for k in s2 if k.startswith("ego_tower")]
    assert not all(torch.equal(init[k], s1[k]) for k in init if k.startswith("projector"))  # stage 1 trains it
    assert all(torch.equal(s2[k], s3[k]) for k in s2 if k.startswith("projector"))
    assert not all(torch.equal(s2[k], s3[k]) for k in ego)  # stage 3 trains the ego tower again
    # the whole run ends with one export of the model that holds every stage's weights
    assert len(export.calls) == 1
    state, tokenizer, out = export.calls[0]
    assert out.name == "final.partial" and Path(cfg.output_dir, "final", "weights.txt").exists()
    assert tokenizer is not None and all(torch.equal(state[k], v) for k, v in s3.items())
    assert run(cfg, list(cfg.stages)) and len(export.calls) == 1  # all done: nothing trains, no new export


def test_loss_falls_over_a_few_dozen_steps(bundled_build, tmp_path):
    cfg = _run_config(bundled_build, tmp_path, max_steps=30, checkpoint_every=100, warmup_ratio=0.0, lr=3e-3)
    stage = cfg.stages[0]
    run(cfg, [stage])
    losses = [r["loss"] for r in _log(cfg, stage.name)]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5  # nats


def _final(cfg: RunConfig, stage: str) -> dict:
    return read_weights(f"{cfg.output_dir}/{stage}/final")


def test_resume_continues_to_the_same_parameters(egoit_build, bundled_build, tmp_path):
    """Stage 3 (LoRA with dropout 0.1: the RNG state must be restored too), stopped after step 3 of 6."""

    def stage3_only(path):
        cfg = _run_config(bundled_build, path, egoit_build, max_steps=6, checkpoint_every=1)
        return dataclasses.replace(cfg, stages=(cfg.stages[2],))

    whole, resumed = stage3_only(tmp_path / "whole"), stage3_only(tmp_path / "resumed")
    stage = whole.stages[0]
    assert stage.lora.dropout > 0
    assert run(whole, [stage])
    assert not run(resumed, [stage], stop_after=3)  # a preemption after step 3
    stage_dir = tmp_path / "resumed/run" / stage.name
    assert not (stage_dir / "done.json").exists()
    ckpts = stage_dir / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step_000002", "step_000003"]  # keep 2
    # a checkpoint killed while being written (no .metadata, not named by `latest`) is ignored and removed
    partial = ckpts / "step_000004"
    shutil.copytree(ckpts / "step_000003", partial)
    (partial / ".metadata").unlink()
    assert run(resumed, [stage])
    a, b = _final(whole, stage.name), _final(resumed, stage.name)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in _log(whole, stage.name)] == [r["loss"] for r in _log(resumed, stage.name)]
    assert (ckpts / "latest").read_text().strip() == "step_000006"
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step_000005", "step_000006"]


def test_loading_is_strict_about_trained_weights(bundled_build, tmp_path, capsys):
    """A checkpoint that lacks trainable weights, or holds weights the stage does not train, is an error that
    names them; so is a previous stage's final that does not hold what that stage trained."""
    cfg = _run_config(bundled_build, tmp_path, max_steps=2, checkpoint_every=1)
    stage1 = cfg.stages[0]

    def with_stage1(**over):
        changed = dataclasses.replace(stage1, **over)
        return dataclasses.replace(cfg, stages=(changed, *cfg.stages[1:])), changed

    assert not run(cfg, [stage1], stop_after=1)
    more, more1 = with_stage1(trainable=("exo_tower", "projector", "map_g"))
    with pytest.raises(CheckpointError, match=r"missing \d+ trained weight\(s\): map_g\."):
        run(more, [more1])
    fewer, fewer1 = with_stage1(trainable=("exo_tower",), train_vision_tower=True)
    with pytest.raises(CheckpointError, match=r"unexpected \d+ weight\(s\): projector\."):
        run(fewer, [fewer1])
    assert run(cfg, [stage1])  # finished as configured
    # stage 2 loads stage 1's final weights strictly: a config saying stage 1 trained map_g too does not fit
    with pytest.raises(CheckpointError, match=r"teacher_self_preparation/final.*missing.*map_g\."):
        run(more, [more.stages[1]])
    # the command line names it too, as an error (exit status 2)
    config = tmp_path / "strict.yaml"
    raw = yaml.safe_load(Path("configs/smoke/run.yaml").read_text())
    raw["data"].update(shards=stage1.data.shards, num_workers=0)
    raw["stages"] = [s for s in raw["stages"] if s["data_kind"] != "ego"]  # as _run_config: no EgoClip here
    raw["stages"][0]["trainable"] = ["exo_tower", "projector", "map_g"]
    config.write_text(yaml.safe_dump(raw))
    assert main(["--config", str(config), "--stage", "2", "--output-dir", cfg.output_dir]) == 2
    assert "checkpoint error:" in capsys.readouterr().err


def test_too_few_shards_for_the_readers_is_a_config_error_at_start(bundled_build, tmp_path):
    cfg = _run_config(bundled_build, tmp_path)
    one = str(sorted(bundled_build[0].glob("egoexoclip-train-*.tar"))[0])
    stage = dataclasses.replace(
        cfg.stages[0], data=dataclasses.replace(cfg.stages[0].data, shards=one, num_workers=2)
    )
    with pytest.raises(ConfigError, match=r"1 shard\(s\) for 1 rank\(s\) x 2 loader worker\(s\) = 2 readers"):
        run(dataclasses.replace(cfg, stages=(stage,)), [stage])
    assert not Path(cfg.output_dir, stage.name, "checkpoints").exists()  # before any training
    resampled = dataclasses.replace(
        stage, data=dataclasses.replace(stage.data, resampled=True, epoch_samples=16), max_steps=1
    )
    assert run(dataclasses.replace(cfg, stages=(resampled,)), [resampled])  # the fix it names works


def test_bad_config_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "run.yaml"
    bad.write_text("model: {vision_tower: tiny, llm: tiny, n_frames: 4, temporal_stride: 3}\nstages: []\n")
    assert main(["--config", str(bad)]) == 2
    assert "model.temporal_stride=3" in capsys.readouterr().err
    assert main(["--config", "configs/smoke/run.yaml", "--stage", "9", "--output-dir", str(tmp_path)]) == 2
    assert "stage='9'" in capsys.readouterr().err


def test_bench_train_reports_throughput_and_flops(capsys):
    from tools.bench.train import main as bench

    args = "--stage 2 --vision-layers 1 --vision-hidden 64 --llm-layers 1 --llm-hidden 128 --frames 4"
    assert (
        bench([*args.split(), "--image-size", "56", "--steps", "1", "--warmup", "1", "--micro-batch", "2"])
        == 0
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["samples_per_s"] > 0 and result["tokens_per_s"] > result["samples_per_s"]
    assert result["achieved_tflops"] >= 0 and result["trainable_params"] < result["llm_params"]
