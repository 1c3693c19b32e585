"""Memory planner and activation checkpointing (exo2ego_model/memory.py, plan.py) on CPU with tiny models.

The activation estimate is checked against two measurements of the same forward pass: the tensors autograd
saves (saved-tensor hooks) and the bytes still alive when the forward returns (a dispatch mode that follows
every storage an op creates until it is freed; it also sees what activation checkpointing keeps, which the
hooks do not). fp32 on CPU: the bf16 figure of a GPU is the same formula at 2 bytes, not measured here.
"""

from __future__ import annotations

import copy
import gc
import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary
from transformers import CLIPVisionConfig, CLIPVisionModel, MistralConfig, MistralForCausalLM

from exo2ego_model import memory
from exo2ego_model.config import LoraSettings, ModelConfig, StageConfig, load_run_config
from exo2ego_model.model import Exo2EgoModel, apply_stage
from exo2ego_model.plan import checkpointing_needed, plan
from exo2ego_model.prompt import VIDEO_TOKEN_INDEX
from exo2ego_model.train import main as train_main

STAGES = {
    "exo": StageConfig(name="s1", data_kind="exo", trainable=("projector",), losses={"vtg": 1.0}),
    "pairs": StageConfig(
        name="s2",
        data_kind="pairs",
        trainable=("ego_tower", "map_f", "map_g"),
        losses={"vtg": 1.0, "kl": 1.0, "cycle": 1.0},
    ),  # fmt: skip
    "instruct": StageConfig(
        name="s3",
        data_kind="instruct",
        trainable=("ego_tower", "map_f", "lora"),
        losses={"vtg": 1.0},
        lora=LoraSettings(r=8, alpha=16, dropout=0.1),
    ),  # fmt: skip
}


def _model(vision=64, llm=128, frames=4, image=64) -> Exo2EgoModel:
    cfg = ModelConfig(vision_tower="t", llm="t", n_frames=frames, image_size=image, connector_depth=1,
                      connector_width=64, mapping_blocks=2, mapping_downsample=1)  # fmt: skip
    v = CLIPVisionConfig(image_size=image, patch_size=8, hidden_size=vision, intermediate_size=4 * vision,
                         num_hidden_layers=3, num_attention_heads=vision // 32)  # fmt: skip
    lc = MistralConfig(vocab_size=260, hidden_size=llm, intermediate_size=int(3.5 * llm), num_hidden_layers=2,
                       num_attention_heads=llm // 32, num_key_value_heads=llm // 64)  # fmt: skip
    torch.manual_seed(0)
    return Exo2EgoModel(cfg, CLIPVisionModel(v), CLIPVisionModel(copy.deepcopy(v)), MistralForCausalLM(lc))


def _batch(kind: str, b: int, cfg: ModelConfig, text: int) -> dict:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 260, (b, text), generator=g)
    ids[:, 1] = VIDEO_TOKEN_INDEX
    mask = torch.ones(b, text, dtype=torch.long)
    mask[0, -3:] = 0  # padding: the LLM gets a mask, as in training
    labels = ids.masked_fill(torch.arange(text) < text // 2, -100)
    out = {"input_ids_BL": ids, "attention_mask_BL": mask, "labels_BL": labels}
    for view in ["exo"] if kind == "exo" else ["ego", "exo"] if kind == "pairs" else ["ego"]:
        out[f"{view}_BTCHW"] = torch.randn(b, cfg.n_frames, 3, cfg.image_size, cfg.image_size, generator=g)
    return out


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages that ops create and that are still alive (storages in `pre` are not counted)."""

    def __init__(self, pre):
        super().__init__()
        self.live, self.seen = 0, WeakIdKeyDictionary()
        for t in pre:
            self.seen[t.untyped_storage()] = 0

    def _free(self, n: int) -> None:
        self.live -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage() not in self.seen:
                storage = t.untyped_storage()
                self.seen[storage] = n = storage.nbytes()
                self.live += n
                weakref.finalize(storage, self._free, n)
        return out


def _measure(kind: str, b: int, text: int, checkpointing: bool, **dims):
    model = _model(**dims)
    stage = STAGES[kind]
    apply_stage(model, stage)
    model.train()
    if checkpointing:
        assert memory.enable_checkpointing(model)[0] == "llm"
    batch = _batch(kind, b, model.cfg, text)
    params = list(model.parameters())
    hooked = None if checkpointing else memory.traced_bytes(lambda: model(batch, stage.losses), params)
    tracker = LiveBytes([*params, *(v for v in batch.values() if torch.is_tensor(v))])
    with tracker:
        out = model(batch, stage.losses)
    gc.collect()
    live = tracker.live
    del out
    shape = memory.StageShape(b, text, kind, tuple(stage.losses), model.cfg.visual_input)
    return hooked, live, memory.activations(model, shape, 4, checkpointing, gpu=False).saved


CASES = [
    ("exo", 2, 48, {}),  # connector trained, LLM frozen
    ("pairs", 1, 32, dict(vision=64, llm=128, frames=2)),  # trained ego tower, F, G, KL + cycle
    ("instruct", 1, 40, dict(vision=32, llm=64, frames=2, image=48)),  # LoRA with dropout
]


@pytest.mark.parametrize("kind,b,text,dims", CASES, ids=[c[0] for c in CASES])
def test_activation_estimate_is_within_25_percent_of_the_measured(kind, b, text, dims):
    for checkpointing in (False, True):
        hooked, live, estimate = _measure(kind, b, text, checkpointing, **dims)
        assert abs(estimate - live) <= 0.25 * live, (kind, checkpointing, estimate, live)
        if hooked is not None:
            assert abs(estimate - hooked) <= 0.25 * hooked, (kind, estimate, hooked)


def test_checkpointing_gives_the_same_loss_and_gradients():
    """Stage 3: the trained ego tower's layers and the LLM's (frozen, with LoRA adapters and their dropout,
    whose masks the recompute replays) are recomputed in the backward."""
    for kind in ("instruct",):
        runs = []
        for checkpointing in (False, True):
            model = _model(vision=32, llm=64, frames=2, image=32)
            apply_stage(model, STAGES[kind])
            model.train()
            switched = memory.enable_checkpointing(model) if checkpointing else []
            torch.manual_seed(3)
            out = model(_batch(kind, 2, model.cfg, 24), STAGES[kind].losses)
            out["loss"].backward()
            grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
            runs.append((out["loss"].detach(), grads, switched))
        (loss0, g0, _), (loss1, g1, switched) = runs
        assert switched == ["llm", "ego_tower"]
        torch.testing.assert_close(loss1, loss0)
        assert g0.keys() == g1.keys() and g0
        for name in g0:
            torch.testing.assert_close(g1[name], g0[name], msg=name)


def test_train_refuses_a_config_that_does_not_fit_before_loading_weights(tmp_path, monkeypatch, capsys):
    def no_weights(*a, **k):
        raise AssertionError("weights loaded")

    monkeypatch.setattr("exo2ego_model.train.build_model", no_weights)
    argv = ["--config", "configs/smoke/run.yaml", "--output-dir", str(tmp_path / "run"), "--gpu-mem", "1"]
    assert train_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: stage[initialization].micro_batch=4 does not fit")
    assert "GiB usable of 1 GiB" in err and "no micro-batch fits" in err
    assert not (tmp_path / "run").exists()


def test_the_paper_run_fits_8_gpus_of_80_gib_at_its_global_batches():
    """configs/run.yaml at the real size (meta device): every stage fits at its configured micro-batch under
    FSDP (train.py's mode on 8 GPUs), stage 2 only with activation checkpointing (auto turns it on)."""
    run_cfg = load_run_config("configs/run.yaml")
    rows = {r["stage"]: r for r in plan(run_cfg, 8, 80.0) if r["mode"] == "fsdp"}
    for stage in run_cfg.stages:
        row = rows[stage.name]
        assert row["fits"] and row["peak"] < 80 * 0.9 - 2, row
        assert row["micro_batch"] >= stage.micro_batch
        assert row["micro_batch"] * 8 * row["accumulation"] == stage.global_batch
    stage2 = run_cfg.stage("teacher_student_guidance")
    assert rows[stage2.name]["act_mb1_off"] > 20 > rows[stage2.name]["act_mb1_on"]
    assert checkpointing_needed(run_cfg, stage2, 8, 80.0)
