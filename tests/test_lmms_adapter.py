"""exo2ego_model.eval.lmms: lmms-eval 0.7.3's own CLI runs our checkpoint (`--model exo2ego`, registered through
the "lmms_eval.models" entry-point group) on two local tasks (tests/data/lmms_task/) over EgoBench-format shards:
one generate_until task, one multiple_choice task (loglikelihood requests); plus the adapter's visual forms and
request handling in-process.

lmms-eval is installed without its dependency list (it would replace torch): see requirements-dev.txt. The entry
point is declared here by a throw-away .dist-info folder on PYTHONPATH, exactly as pyproject.toml's
[project.entry-points."lmms_eval.models"] declares it for an installed checkout.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("lmms_eval", reason="lmms-eval not installed (pip install --no-deps lmms-eval==0.7.3)")

from exo2ego_model.eval.run import load_model  # noqa: E402
from exo2ego_model.export import save_pretrained  # noqa: E402
from pipeline.core.shards import ShardWriter, canonical_json  # noqa: E402
from pipeline.egobench.records import BenchItem, VideoRef  # noqa: E402
from pipeline.egobench.records_json import item_json  # noqa: E402
from tools.samples.stamped_video import write_stamped_video  # noqa: E402

TASK_SRC = Path(__file__).parent / "data" / "lmms_task"
OPTIONS = ("I washed the cup", "I drank from it", "I threw it away", "I broke it", "I hid it")
N_ITEMS = 3


def write_items(root: Path) -> list[bytes]:
    """N_ITEMS EgoSchema items (one mp4 clip each) in one EgoBench shard; returns the clips."""
    root.mkdir(parents=True, exist_ok=True)
    clips = []
    with open(root / "egobench-egoschema-000000.tar", "wb") as f, ShardWriter(f) as w:
        for i in range(N_ITEMS):
            write_stamped_video(root / "clip.mp4", i + 1, 8, 64, 48, audio=False)
            clips.append((root / "clip.mp4").read_bytes())
            item = BenchItem(
                "egoschema", f"q{i}", "questions.json", (VideoRef("v.mp4"),), "What did I do?", OPTIONS, i
            )
            w.write({"__key__": item.item_id, "mp4": clips[-1], "json": canonical_json(item_json(item))})
    (root / "clip.mp4").unlink()
    return clips


def render_tasks(dest: Path, shards: str) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(TASK_SRC / "utils.py", dest / "utils.py")
    for name in ("egobench_gen.yaml", "egobench_mc.yaml"):
        (dest / name).write_text((TASK_SRC / name).read_text().replace("@SHARDS@", shards))
    return dest


def entry_point_dir(dest: Path) -> Path:
    """A .dist-info declaring exo2ego in the lmms_eval.models group (what pyproject.toml declares)."""
    info = dest / "exo2ego_lmms_entrypoint-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: exo2ego-lmms-entrypoint\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        "[lmms_eval.models]\nexo2ego = exo2ego_model.eval.lmms:manifests\n"
    )
    return dest


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    model, tok, _ = load_model(None, torch.device("cpu"), seed=0)
    return save_pretrained(model, tok, tmp_path_factory.mktemp("ckpt") / "exo2ego-tiny")


def test_lmms_eval_cli_runs_our_checkpoint(tmp_path, tiny_ckpt):
    clips = write_items(tmp_path / "bench")
    tasks = render_tasks(tmp_path / "tasks", str(tmp_path / "bench" / "egobench-egoschema-*.tar"))
    eps = entry_point_dir(tmp_path / "ep")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(eps), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets"),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "disabled",
        "OMP_NUM_THREADS": "1",  # a tiny model: threads only add contention
    }
    script = Path(sys.executable).with_name("lmms-eval")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "lmms_eval"]
    cmd += ["--model", "exo2ego", "--model_args", f"pretrained={tiny_ckpt},device=cpu"]
    cmd += ["--tasks", "egobench_gen,egobench_mc", "--include_path", str(tasks), "--batch_size", "1"]
    cmd += ["--output_path", str(tmp_path / "out"), "--log_samples"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "egobench_mc" in proc.stdout and "egobench_gen" in proc.stdout  # lmms-eval's results table

    (results_file,) = (tmp_path / "out").rglob("*_results.json")
    results = json.loads(results_file.read_text())["results"]
    assert 0 <= results["egobench_gen"]["accuracy,none"] <= 1
    assert 0 <= results["egobench_gen"]["unparsed,none"] <= 1
    assert 0 <= results["egobench_mc"]["acc,none"] <= 1

    def samples(task):
        (f,) = (tmp_path / "out").rglob(f"*_samples_{task}.jsonl")
        return sorted((json.loads(line) for line in f.read_text().splitlines()), key=lambda s: s["doc_id"])

    gen, mc = samples("egobench_gen"), samples("egobench_mc")
    assert [s["doc_id"] for s in gen] == [s["doc_id"] for s in mc] == list(range(N_ITEMS))
    for s in gen:  # generate_until: one greedy reply per item, cut at the task's "\n"
        reply = s["filtered_resps"]
        reply = reply[0] if isinstance(reply, list) else reply
        assert isinstance(reply, str) and "\n" not in reply
        assert "Options:\n(A) I washed the cup" in s["input"]
    # multiple_choice: one loglikelihood request per option, (log-likelihood, is_greedy) each
    from exo2ego_model.eval.lmms import load_visual
    from exo2ego_model.export import load_pretrained
    from exo2ego_model.inference import score

    model, tok = load_pretrained(tiny_ckpt)
    n_correct = 0
    for s, clip in zip(mc, clips, strict=True):
        pairs = [(float(ll), str(g) == "True") for ll, g in s["filtered_resps"]]
        assert len(pairs) == len(OPTIONS)
        video = load_visual(clip, model.cfg.n_frames, model.cfg.image_size)
        direct = score(model, tok, video, "What did I do?", OPTIONS)  # mean log-likelihood, eos included
        # the adapter returns the LM loss (lmms-eval 0.7.3's multiple_choice takes the argmin)
        assert np.allclose([p[0] for p in pairs], [-v for v in direct], atol=1e-4)
        n_correct += int(np.argmax(direct)) == int(s["doc_id"])  # item i's answer is option i
    # lmms-eval's acc is the likeliest option's accuracy (EgoPlan's ranking protocol, as run.py's)
    assert results["egobench_mc"]["acc,none"] == pytest.approx(n_correct / N_ITEMS)


class _Req:
    def __init__(self, *args):
        self.args = args


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    arr = np.random.default_rng(seed).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


def test_adapter_visuals_and_requests(tmp_path, tiny_ckpt, monkeypatch):
    from exo2ego_model.eval import lmms as adapter
    from exo2ego_model.inference import candidate_ids, generate, score

    clips = write_items(tmp_path / "bench")
    lm = adapter.Exo2EgoLMMS(pretrained=str(tiny_ckpt), device="cpu")
    T, S = lm.n_frames, lm.size
    # every visual form gives the model's clip shape
    (tmp_path / "c.mp4").write_bytes(clips[0])
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for i in range(3):
        (frames_dir / f"{i:02d}.jpg").write_bytes(_jpeg(i))
    pil = [Image.open(io.BytesIO(_jpeg(i))) for i in range(3)]
    forms = [
        clips[0],
        {"bytes": clips[0], "path": None},
        {"bytes": None, "path": str(tmp_path / "c.mp4")},
        str(tmp_path / "c.mp4"),
        frames_dir,
        [_jpeg(i) for i in range(3)],
        pil,
        torch.zeros(5, 24, 24, 3, dtype=torch.uint8),
    ]
    for form in forms:
        assert tuple(adapter.load_visual(form, T, S).shape) == (T, 3, S, S)
    assert torch.equal(
        adapter.load_visual(clips[0], T, S), adapter.load_visual(str(tmp_path / "c.mp4"), T, S)
    )
    with pytest.raises(ValueError):
        adapter.load_visual(3.0, T, S)

    docs = [{"clip": c} for c in clips]
    lm.task_dict = {"t": {"test": docs}}

    def visual(doc):
        return [doc["clip"]]

    # generate_until: greedy, cut at `until`
    replies = lm.generate_until([_Req("What did I do?", {"max_new_tokens": 6}, visual, 0, "t", "test")])
    video0 = adapter.load_visual(clips[0], T, S)
    assert replies == [generate(lm.model, lm.tokenizer, video0, "What did I do?", max_new_tokens=6)]
    stop = replies[0][2:3] or "x"
    cut = lm.generate_until(
        [_Req("What did I do?", {"max_new_tokens": 6, "until": [stop]}, visual, 0, "t", "test")]
    )
    assert cut == [replies[0].split(stop, 1)[0]]

    # loglikelihood: " option" (lmms-eval's target delimiter) scored as the answer; per doc one prefix
    reqs = [_Req("Q?", f" {o}", visual, d, "t", "test") for d in (0, 1) for o in OPTIONS[:3]]
    loss = [
        r.text for r in lm.loglikelihood(reqs)
    ]  # pairs inside GenerationResult (0.7.3 stringifies tuples)
    lm.ll_mode = "logprob"
    logprob = [r.text for r in lm.loglikelihood(reqs)]
    lm.ll_mode = "loss"
    for d in (0, 1):
        video = adapter.load_visual(clips[d], T, S)
        mean = score(lm.model, lm.tokenizer, video, "Q?", OPTIONS[:3])
        total = score(lm.model, lm.tokenizer, video, "Q?", OPTIONS[:3], reduction="sum", with_eos=False)
        assert np.allclose([p[0] for p in loss[3 * d : 3 * d + 3]], [-v for v in mean], atol=1e-5)
        assert np.allclose([p[0] for p in logprob[3 * d : 3 * d + 3]], total, atol=1e-5)
    with pytest.raises(ValueError, match="loglikelihood"):
        adapter.Exo2EgoLMMS(pretrained=str(tiny_ckpt), device="cpu", loglikelihood="nll")
    # is_greedy: True exactly when greedy decoding reproduces the continuation's tokens
    target = candidate_ids(lm.tokenizer, OPTIONS[1], with_eos=False)
    monkeypatch.setattr(
        "exo2ego_model.inference.generate_ids", lambda *a, max_new_tokens, **k: target[:max_new_tokens]
    )
    flags = [
        r.text[1] for r in lm.loglikelihood([_Req("Q?", f" {o}", visual, 0, "t", "test") for o in OPTIONS])
    ]
    assert flags == [False, True, False, False, False]
