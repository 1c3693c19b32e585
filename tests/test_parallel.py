"""Multi-rank training under real torchrun: 2 CPU ranks, gloo, the smoke run's three stages on shards the
pipeline built, DDP and FSDP2 through every stage, sharded checkpoints, stop/kill and exact resume."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.distributed.checkpoint import FileSystemReader

from exo2ego_model.checkpoint import read_weights
from exo2ego_model.parallel import Dist, gradient_sync, wrap_model

MODES = ("ddp", "fsdp")
STAGES = ("initialization", "teacher_self_preparation", "teacher_student_guidance", "student_self_practice")
STEPS = 3  # per stage


@pytest.fixture(scope="module")
def two_rank_config(bundled_build, egoit_build, egoclip_build, tmp_path_factory) -> Path:
    """The smoke run for 2 ranks: resampled shards (16 samples an epoch: 2 steps, so 3 steps cross an epoch),
    micro-batches of 2 (2 per step and rank: gradient accumulation with no_sync), checkpoints every step."""
    out, _ = bundled_build
    shards = "{" + ",".join(str(p) for p in sorted(out.glob("egoexoclip-train-*.tar"))) + "}"
    raw = yaml.safe_load(Path("configs/smoke/run.yaml").read_text())
    raw["data"].update(shards=shards, num_workers=0, resampled=True, epoch_samples=16)
    for stage in raw["stages"]:
        stage.update(max_steps=STEPS, checkpoint_every=1, micro_batch=2, global_batch=8)
        if stage["data_kind"] == "instruct":
            stage["data"]["shards"] = str(egoit_build[0] / "egoit-train-*.tar")
        if stage["data_kind"] == "ego":
            stage["data"]["shards"] = str(egoclip_build[0] / "egoclip-train-*.tar")
    assert [s["name"] for s in raw["stages"]] == list(STAGES)
    path = tmp_path_factory.mktemp("two_ranks") / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def torchrun_cmd(config: Path, out: Path, mode: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "exo2ego_model.train",
        "--config",
        str(config),
        "--output-dir",
        str(out),
        "--parallel",
        mode,
        *extra,
    ]


def torchrun(config: Path, out: Path, mode: str, *extra: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        torchrun_cmd(config, out, mode, *extra), capture_output=True, text=True, timeout=600
    )
    if ok:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def log(out: Path, stage: str) -> list[dict]:
    return [json.loads(line) for line in (out / stage / "log.jsonl").read_text().splitlines()]


def done(out: Path) -> list[str]:
    return [s for s in STAGES if (out / s / "done.json").exists()]


def assert_same_finals(a: Path, b: Path) -> None:
    for stage in STAGES:
        x, y = read_weights(a / stage / "final"), read_weights(b / stage / "final")
        assert x.keys() == y.keys()
        differ = sorted(k for k in x if not torch.equal(x[k], y[k]))
        assert not differ, f"{stage}: {len(differ)} tensors differ, e.g. {differ[:3]}"
        assert [r["loss"] for r in log(a, stage)] == [r["loss"] for r in log(b, stage)]


@pytest.fixture(scope="module")
def uninterrupted(two_rank_config, tmp_path_factory):
    """mode -> output dir of one whole torchrun run of all stages (run once per mode, on first use)."""
    runs: dict[str, Path] = {}

    def get(mode: str) -> Path:
        if mode not in runs:
            out = tmp_path_factory.mktemp(f"whole_{mode}") / "run"
            torchrun(two_rank_config, out, mode)
            runs[mode] = out
        return runs[mode]

    return get


@pytest.mark.parametrize("mode", MODES)
def test_every_stage_trains_on_two_ranks(uninterrupted, mode):
    out = uninterrupted(mode)
    assert done(out) == list(STAGES)
    for stage in STAGES:
        assert [r["step"] for r in log(out, stage)] == list(range(1, STEPS + 1))  # written once, by rank 0
        assert json.loads((out / stage / "done.json").read_text())["parallel"] == mode
        ckpts = out / stage / "checkpoints"
        # keep_checkpoints (2): the newest two whole checkpoints, `latest` names the newest
        assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step_000002", "step_000003"]
        assert (ckpts / "latest").read_text().strip() == "step_000003"
        step = ckpts / "step_000003"
        assert {p.name for p in step.iterdir()} >= {".metadata", "__0_0.distcp", "__1_0.distcp", "trainer.pt"}
        rng = [torch.load(step / f"rank_{r:05d}.pt", weights_only=False) for r in (0, 1)]
        assert not torch.equal(rng[0]["rng"]["torch"], rng[1]["rng"]["torch"])  # per-rank RNG streams
        assert rng[0]["consumed"] == rng[1]["consumed"]
    # each stage's final weights: what it trained plus what the earlier stages trained
    final = read_weights(out / STAGES[-1] / "final")
    tops = {k.split(".", 1)[0] for k in final}
    assert tops == {"projector", "ego_tower", "map_f", "map_g", "llm"}  # the towers frozen in init and stage 1
    assert all("lora_" in k for k in final if k.startswith("llm."))
    stage1 = read_weights(out / STAGES[1] / "final")
    # stage 1's connector carried, frozen, to the end (the ego tower trains in stages 2 and 3)
    teacher = [k for k in stage1 if k.startswith("projector")]
    assert teacher and all(torch.equal(stage1[k], final[k]) for k in teacher)
    # sharded, never gathered: under FSDP2 each weight is saved as one chunk per rank, under DDP as one
    meta = FileSystemReader(str(out / STAGES[2] / "checkpoints" / "step_000003")).read_metadata()
    chunks = {len(m.chunks) for k, m in meta.state_dict_metadata.items() if k.startswith("model.ego_tower.")}
    assert chunks == ({2} if mode == "fsdp" else {1})


@pytest.mark.parametrize("mode", MODES)
def test_stop_in_every_stage_and_resume_is_bit_identical(two_rank_config, uninterrupted, tmp_path, mode):
    """--stop-after-steps 2: each invocation stops in the next stage after checkpointing step 2 (mid-stage),
    the next one resumes there; after four invocations the weights and losses equal an uninterrupted run's."""
    out = tmp_path / "run"
    for i in range(len(STAGES)):
        proc = torchrun(two_rank_config, out, mode, "--stop-after-steps", "2")
        assert done(out) == list(STAGES[:i])
        assert (out / STAGES[i] / "checkpoints" / "latest").read_text().strip() == "step_000002"
        assert "stopped after step 2" in proc.stdout and (i == 0 or "resumed at step 2" in proc.stdout)
    torchrun(two_rank_config, out, mode, "--stop-after-steps", "2")
    assert done(out) == list(STAGES)
    assert_same_finals(uninterrupted(mode), out)


def _process_tree(pid: int) -> list[int]:
    import psutil

    parent = psutil.Process(pid)
    return [parent.pid, *(c.pid for c in parent.children(recursive=True))]


@pytest.mark.parametrize("mode", ["fsdp"])
def test_sigkill_mid_stage_then_resume_is_bit_identical(two_rank_config, uninterrupted, tmp_path, mode):
    """A real preemption: SIGKILL of torchrun and both ranks once stage 2 has a checkpoint (possibly in the
    middle of writing the next one, which is then partial and ignored); a new torchrun finishes the run with
    the same weights as an uninterrupted one. (FSDP2 only: DDP goes through the same checkpoint code.)"""
    out = tmp_path / "run"
    marker = out / STAGES[2] / "checkpoints" / "latest"
    proc = subprocess.Popen(
        torchrun_cmd(two_rank_config, out, mode),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), "stage 2 wrote no checkpoint"
        for pid in _process_tree(proc.pid):  # torchrun's workers run in sessions of their own
            os.kill(pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert STAGES[3] not in done(out)  # killed before the end
    torchrun(two_rank_config, out, mode)
    assert done(out) == list(STAGES)
    assert_same_finals(uninterrupted(mode), out)


def test_too_few_shards_fail_at_start_on_two_ranks(bundled_build, tmp_path):
    """data.resampled false with 1 shard for 2 ranks x 1 worker: a ConfigError before any model is built,
    naming the numbers and the fix, printed once (rank 0)."""
    out, _ = bundled_build
    raw = yaml.safe_load(Path("configs/smoke/run.yaml").read_text())
    raw["data"].update(shards=str(sorted(out.glob("egoexoclip-train-*.tar"))[0]), num_workers=1)
    raw["stages"] = [s for s in raw["stages"] if s["data_kind"] != "ego"]  # stage 1 first: its shards above
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(raw))
    proc = torchrun(config, tmp_path / "run", "ddp", ok=False)
    assert proc.returncode != 0
    assert proc.stderr.count("config error:") == 1, proc.stderr[-3000:]
    assert "1 shard(s) for 2 rank(s) x 1 loader worker(s) = 2 readers" in proc.stderr
    assert "data.resampled: true with data.epoch_samples" in proc.stderr
    assert not (tmp_path / "run" / STAGES[1] / "checkpoints").exists()


# ---------------------------------------------------------------------------------- in-process pieces


@pytest.fixture
def one_rank_group(tmp_path):
    """A real gloo process group of one rank in this process; destroyed afterwards if the test did not."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    yield Dist(world_size=1, owns_group=True)
    if dist.is_initialized():
        dist.destroy_process_group()


def test_a_wrapped_model_is_never_wrapped_again(one_rank_group):
    from torch.distributed.fsdp import fully_shard

    ddp = nn.parallel.DistributedDataParallel(nn.Linear(4, 4))
    sharded = fully_shard(nn.Sequential(nn.Linear(4, 4)))
    for model in (ddp, sharded):
        with pytest.raises(RuntimeError, match="already wrapped"):
            wrap_model(model, "auto", one_rank_group)


def test_gradient_sync_off_keeps_ddp_gradients_local(one_rank_group):
    ddp = nn.parallel.DistributedDataParallel(nn.Linear(4, 1))
    with gradient_sync(ddp, False):
        assert ddp.require_backward_grad_sync is False
    assert ddp.require_backward_grad_sync is True


def test_the_process_group_is_destroyed_also_after_an_error(one_rank_group, monkeypatch, tmp_path):
    import exo2ego_model.train as train
    from exo2ego_model.config import ConfigError, load_run_config

    monkeypatch.setattr(train, "init_distributed", lambda: one_rank_group)
    cfg = load_run_config("configs/smoke/run.yaml")
    cfg = dataclasses.replace(cfg, output_dir=str(tmp_path / "run"))
    cfg = train.override_data(cfg, [f"shards={tmp_path}/none-*.tar"])
    with pytest.raises(ConfigError, match="matches no file"):
        train.run(cfg, list(cfg.stages))
    assert not dist.is_initialized()
