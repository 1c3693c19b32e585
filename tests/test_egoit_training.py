"""Stage 3 (student self-practice) streams EgoIT shards: the loader reads them, labels only the answers, and a
training step runs on them with the tiny CPU model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from exo2ego_model.checkpoint import read_weights
from exo2ego_model.config import DataConfig, load_run_config
from exo2ego_model.data import IGNORE_INDEX, VIDEO_TOKEN_INDEX, make_loader
from exo2ego_model.samples import count_samples
from exo2ego_model.tiny import tiny_tokenizer
from exo2ego_model.train import run
from pipeline.core.shards import read_tar_samples


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _shards(out: Path) -> str:
    return str(out / "egoit-train-*.tar")


def test_loader_reads_every_egoit_sample_once(egoit_build, tok):
    out, stats = egoit_build
    cfg = DataConfig(shards=_shards(out), n_frames=2, image_size=16, num_workers=0, shuffle_buffer=0,
                     max_text_tokens=512)  # fmt: skip
    keys = [k for batch in make_loader(cfg, "instruct", tok, batch_size=8) for k in batch["keys"]]
    assert sorted(keys) == sorted({json.loads(s["json"])["id"] for t in out.glob("egoit-*.tar")
                                   for s in read_tar_samples(t)})  # fmt: skip
    assert len(keys) == stats["samples"] == count_samples(cfg.shards, "instruct")
    with pytest.raises(Exception, match="instruct"):
        count_samples(cfg.shards, "pairs")


def test_only_the_answer_is_a_target_and_the_placeholder_is_not_text(egoit_build, tok):
    out, _ = egoit_build
    cfg = DataConfig(shards=_shards(out), n_frames=2, image_size=16, num_workers=0, shuffle_buffer=0,
                     max_text_tokens=1024)  # fmt: skip
    docs = {json.loads(s["json"])["id"]: json.loads(s["json"]) for t in out.glob("egoit-*.tar")
            for s in read_tar_samples(t)}  # fmt: skip
    batch = next(iter(make_loader(cfg, "instruct", tok, batch_size=4)))
    assert batch["ego_BTCHW"].shape == (4, 2, 3, 16, 16) and "exo_BTCHW" not in batch
    for b, key in enumerate(batch["keys"]):
        ids, labels = batch["input_ids_BL"][b], batch["labels_BL"][b]
        target = [int(t) for t, lab in zip(ids, labels, strict=True) if lab != IGNORE_INDEX]
        answer = docs[key]["conversations"][-1]["value"]
        assert tok.decode(target[:-1]) == " " + answer and target[-1] == tok.eos_token_id
        assert int((ids == VIDEO_TOKEN_INDEX).sum()) == 1  # one placeholder where the model splices the video
        kept = [int(t) for t, m in zip(ids, batch["attention_mask_BL"][b], strict=True) if m]
        text = tok.decode([t for t in kept if t != VIDEO_TOKEN_INDEX])
        assert "<video>" not in text and docs[key]["conversations"][0]["value"].split("\n", 1)[1] in text


def test_stage3_trains_on_egoit_shards(egoit_build, tmp_path):
    out, _ = egoit_build
    cfg = load_run_config("configs/smoke/run.yaml")
    stage3 = cfg.stage("student_self_practice")
    assert stage3.data.shards == "data/egoit/egoit-train-*.tar"  # the smoke run's stage 3 reads EgoIT
    stage3 = dataclasses.replace(stage3, data=dataclasses.replace(stage3.data, shards=_shards(out), num_workers=0),
                                 max_steps=3, checkpoint_every=3)  # fmt: skip
    cfg = dataclasses.replace(cfg, stages=(stage3,), output_dir=str(tmp_path / "run"))
    run(cfg, [stage3])
    log = [json.loads(line) for line in (tmp_path / "run" / stage3.name / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(r["loss"])) and r["loss"] > 0 for r in log)
    final = read_weights(tmp_path / "run" / stage3.name / "final")
    assert final and all("lora" in k or k.startswith(("ego_tower", "map_f")) for k in final)
