"""What each stage trains and how fast: the optimiser's parameter groups (exo2ego_model/optim.py) on the tiny
model, per stage of the smoke run and of the real run's stage files."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from exo2ego_model.config import (
    OPTIM_MODULE,
    VISION_TOWERS,
    ConfigError,
    GroupOptim,
    ParamGroups,
    load_run_config,
)
from exo2ego_model.model import apply_stage, build_model, group_of
from exo2ego_model.optim import NO_DECAY, build_optimizer, describe, param_groups, scheduled_lr

ROOT = Path(__file__).resolve().parents[1]
SMOKE = load_run_config(ROOT / "configs" / "smoke" / "run.yaml")
REAL = load_run_config(ROOT / "configs" / "run.yaml")  # the paper's stage files (only their settings are used)


@pytest.fixture(scope="module")
def _built():
    return build_model(SMOKE.model)[0]


@pytest.fixture
def tiny(_built):
    """A fresh copy of the tiny model (stages add LoRA adapters of their own rank)."""
    return copy.deepcopy(_built)


def staged(model, stages, index, **over):
    """`model` with stages[:index] applied and then stages[index] (changed by `over`), which is returned."""
    for stage in stages[:index]:
        apply_stage(model, stage)
    stage = dataclasses.replace(stages[index], **over)
    apply_stage(model, stage)
    return stage


def groups_by_name(model, stage) -> dict[str, dict]:
    return {g["name"]: g for g in param_groups(model, stage)}


# what the real run's stage files train and at which lr (docs/training.md "What each stage trains")
EXPECTED = {
    "initialization": {"projector": 1e-3},
    "teacher_self_preparation": {"projector": 1e-4},
    "teacher_student_guidance": {"ego_tower": 1e-5, "map_f": 1e-4, "map_g": 1e-4},
    "student_self_practice": {"ego_tower": 2e-6, "map_f": 2e-5, "lora": 2e-5},
}


@pytest.mark.parametrize("index", range(4))
def test_each_stage_trains_its_modules_at_their_lr(tiny, index):
    stage = staged(tiny, REAL.stages, index)
    groups = groups_by_name(tiny, stage)
    want = EXPECTED[stage.name]
    assert {name.removesuffix(NO_DECAY) for name in groups} == set(want)
    for name, group in groups.items():
        assert group["lr"] == pytest.approx(want[name.removesuffix(NO_DECAY)]), name
    # frozen = requires_grad False and in no group; every trainable parameter in exactly one group
    in_groups = [id(p) for g in groups.values() for p in g["params"]]
    assert len(in_groups) == len(set(in_groups))
    for name, p in tiny.named_parameters():
        assert p.requires_grad == (group_of(name) in want), name
        assert (id(p) in in_groups) == p.requires_grad, name


@pytest.mark.parametrize("index", [0, 1])
def test_vision_tower_frozen_by_default_in_init_and_stage1_and_trained_at_a_lower_lr_when_switched_on(
    tiny, index
):
    tower = "ego_tower" if SMOKE.stages[index].data_kind == "ego" else "exo_tower"
    stage = staged(tiny, SMOKE.stages, index)
    assert stage.train_vision_tower is None and not stage.trains_vision_tower  # the default
    assert tower in stage.trainable and tower not in stage.trained
    assert not any(p.requires_grad for p in getattr(tiny, tower).parameters())
    assert set(groups_by_name(tiny, stage)) == {"projector", "projector" + NO_DECAY}

    on = staged(tiny, SMOKE.stages, index, train_vision_tower=True)
    groups = groups_by_name(tiny, on)
    assert {tower, tower + NO_DECAY} <= set(groups)
    assert groups[tower]["lr"] == pytest.approx(1e-5)  # min(stage lr / 10, 1e-5)
    assert groups[tower]["lr"] < on.lr == groups["projector"]["lr"]
    set_lr = staged(
        tiny, SMOKE.stages, index, train_vision_tower=True, param_groups=ParamGroups(vision_tower=GroupOptim(2e-6))
    )
    assert groups_by_name(tiny, set_lr)[tower]["lr"] == pytest.approx(2e-6)
    # the real stage files say so explicitly, with the lr the switch would use
    real = REAL.stages[index]
    assert real.train_vision_tower is False and real.group_lr(tower) == pytest.approx(1e-5)


def test_no_weight_decay_on_norms_biases_and_embeddings(tiny):
    wd = ParamGroups(**{m: GroupOptim(weight_decay=0.05) for m in set(OPTIM_MODULE.values())})
    stage = staged(tiny, SMOKE.stages, 3, weight_decay=0.1, param_groups=wd)
    stage2 = staged(tiny, SMOKE.stages, 2, weight_decay=0.1)
    owners = {id(p): m for m in tiny.modules() for p in m.parameters(recurse=False)}
    seen = {"norm": 0, "bias": 0, "embedding": 0}
    for st, decay in ((stage, 0.05), (stage2, 0.1)):
        apply_stage(tiny, st)
        for group in param_groups(tiny, st):
            no_decay = group["name"].endswith(NO_DECAY)
            assert group["weight_decay"] == (0.0 if no_decay else decay), group["name"]
            for p in group["params"]:
                module = owners[id(p)]
                is_norm = isinstance(module, nn.LayerNorm) or "Norm" in type(module).__name__
                is_embedding = isinstance(module, nn.Embedding)
                seen["norm"] += is_norm
                seen["embedding"] += is_embedding
                seen["bias"] += p.ndim == 1 and not is_norm
                assert no_decay == (p.ndim < 2 or is_norm or is_embedding), (group["name"], p.shape)
    assert all(seen.values()), seen  # the tiny model has each kind among its trained parameters


def test_optimizer_steps_every_group_at_its_lr(tiny):
    stage = staged(tiny, SMOKE.stages, 2)
    optimizer = build_optimizer(tiny, stage)
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["ego_tower"] == pytest.approx(1e-5) and lrs["map_f"] == lrs["map_g"] == stage.lr
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    assert scheduled_lr(optimizer, stage.lr) == pytest.approx(0.5 * stage.lr)
    assert {g["name"]: g["lr"] for g in optimizer.param_groups} == pytest.approx({k: v / 2 for k, v in lrs.items()})
    assert scheduler.get_last_lr()[0] == pytest.approx(0.5e-5)  # group 0 is the ego tower's: not the stage's lr


def test_start_of_stage_lines_name_counts_lr_and_decay(tiny):
    stage = staged(tiny, SMOKE.stages, 3)
    lines = describe(tiny, stage)
    by_group = {line.split()[2]: line for line in lines}
    assert list(by_group) == ["exo_tower", "ego_tower", "projector", "map_f", "map_g", "llm", "lora"]
    assert all(line.startswith(f"[{stage.name}] group ") for line in lines)
    for group, line in by_group.items():
        total = sum(p.numel() for n, p in tiny.named_parameters() if group_of(n) == group)
        trained = sum(p.numel() for n, p in tiny.named_parameters() if group_of(n) == group and p.requires_grad)
        assert f"params {total:,}" in " ".join(line.split()) and f"trainable {trained:,}" in " ".join(line.split())
        assert OPTIM_MODULE[group] in line
        if group in stage.trained:
            assert f"lr {stage.group_lr(group):.2e}  weight_decay 0 (" in line, line
        else:
            assert line.endswith("frozen") and trained == 0, line
    assert "lr 1.00e-05" in by_group["ego_tower"] and "lr 1.00e-03" in by_group["lora"]


def _stage_yaml(tmp_path, **fields) -> Path:
    raw = yaml.safe_load((ROOT / "configs" / "smoke" / "run.yaml").read_text())
    raw["stages"] = [{**raw["stages"][1], **fields}]
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"param_groups": {"vision_tower": {"lr": -1.0}}}, "stage[teacher_self_preparation].param_groups.vision_tower.lr=-1.0: must be a number > 0"),  # noqa: E501
        ({"param_groups": {"lora": {"lr": "1e-4"}}}, "param_groups.lora.lr='1e-4': must be a number > 0 (YAML reads 1e-5 as text"),  # noqa: E501
        ({"lr": 0}, "stage[teacher_self_preparation].lr=0: must be a number > 0"),
        ({"param_groups": {"mapping": {"weight_decay": -0.1}}}, "param_groups.mapping.weight_decay=-0.1: must be"),
        ({"param_groups": {"tower": {"lr": 1.0}}}, "param_groups: unknown field(s) ['tower']"),
        ({"train_vision_tower": "yes"}, "train_vision_tower='yes': expected true, false or null"),
        ({"trainable": ["exo_tower"]}, "trainable=('exo_tower',): nothing trains: its vision towers are frozen"),
    ],
)
def test_bad_optimiser_settings_are_errors_naming_field_and_value(tmp_path, fields, message):
    with pytest.raises(ConfigError) as err:
        load_run_config(_stage_yaml(tmp_path, **fields))
    assert message in str(err.value)


def test_towers_are_the_vision_tower_module():
    assert {OPTIM_MODULE[t] for t in VISION_TOWERS} == {"vision_tower"}
    assert set(OPTIM_MODULE.values()) == {f.name for f in dataclasses.fields(ParamGroups)}
