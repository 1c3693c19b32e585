"""EgoTaskQA direct / indirect in the evaluator: open answer over the answer vocabulary, as the original.

Items come from the real reader (pipeline/egobench/sources/egotaskqa.py) on a direct / indirect file in the
original's record format (question, answer, interval, type, category, semantic, structural, reasoning_type,
video_id, question_id) with more distinct answers than a lettered choice prompt has letters (26); the tiny
random model (no --ckpt) scores them: every question is scored (none dropped for its number of candidates),
every candidate of the vocabulary is ranked, the generated answer is matched exactly, and the table reports
direct / indirect apart from the multiple-choice variant (egotaskqa_mcq)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from exo2ego_model.eval import paper
from exo2ego_model.eval.choice import OPEN_VOCABULARY, match_answer
from exo2ego_model.eval.protocol import LETTERS, REPORTED
from exo2ego_model.eval.run import PREDICTIONS, EvalConfig, evaluate
from pipeline.core.shards import ShardWriter, canonical_json
from pipeline.egobench.records import BenchItem, VideoRef
from pipeline.egobench.records_json import item_json
from pipeline.egobench.sources import egotaskqa
from tests.test_egobench_sources import INTERVAL, taskqa  # a record in the original direct/indirect format
from tests.test_eval import _frames, _jpegs, write_build_index

N_ANSWERS = 30  # distinct answers in the direct file: more than the 26 letters


def write_qas(root: Path) -> None:
    direct = [taskqa(i, f"object {i:02d}") for i in range(N_ANSWERS)] + [taskqa(100, "yes", "state")]
    indirect = [taskqa(200, "open", "state"), taskqa(201, "closed", "change"), taskqa(202, "no", "state")]
    for kind, rows in (("direct", direct), ("indirect", indirect)):
        (root / kind).mkdir(parents=True)
        (root / kind / "test_qas.json").write_text(json.dumps(rows))


def write_shards(bench: Path, items: list[BenchItem]) -> dict[str, int]:
    samples: dict[str, list[dict]] = {}
    for i, item in enumerate(items):
        members = _frames("", _jpegs(i, n=2, w=32, h=24))
        samples.setdefault(item.task, []).append(
            {"__key__": item.item_id, **members, "json": canonical_json(item_json(item))}
        )
    bench.mkdir(parents=True, exist_ok=True)
    for task, rows in samples.items():
        with open(bench / f"egobench-{task}-000000.tar", "wb") as f, ShardWriter(f) as w:
            for s in rows:
                w.write(s)
    write_build_index(bench, {t: [s["__key__"] for s in rows] for t, rows in samples.items()})
    return {t: len(rows) for t, rows in samples.items()}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("egotaskqa")
    write_qas(root / "qa")
    read = list(egotaskqa.read(root / "qa", exists=None))
    items = [r for r in read if isinstance(r, BenchItem)]
    assert len(items) == len(read) == N_ANSWERS + 1 + 3  # every question is an item
    ref = (VideoRef(f"{INTERVAL}.mp4"),)
    mcq = ("on top of plate", "on top of pan", "in the fridge", "on the table", "in the sink")
    items.append(BenchItem("egotaskqa_mcq", "00001", "egotaskqa.json", ref, "Where is the sandwich?", mcq, 0))
    counts = write_shards(root / "bench", items)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = root / "out"
        res = evaluate(EvalConfig(bench=str(root / "bench"), out=str(out), similarity=False, device="cpu"))
    finally:
        torch.set_num_threads(threads)
    return out, res, counts, items


def test_every_question_scored_open_answer_over_the_vocabulary(run):
    out, res, counts, items = run
    assert counts == {"egotaskqa_direct": N_ANSWERS + 1, "egotaskqa_indirect": 3, "egotaskqa_mcq": 1}
    vocab = len(items[0].options)
    assert vocab == N_ANSWERS + 1 > len(LETTERS)  # the 30 objects and "yes"
    direct, indirect = res["tasks"]["egotaskqa_direct"], res["tasks"]["egotaskqa_indirect"]
    assert direct["n"] == N_ANSWERS + 1 and direct["n_errors"] == 0  # none dropped for its 31 candidates
    assert indirect["n"] == 3 and indirect["n_errors"] == 0
    assert direct["n_candidates"] == (N_ANSWERS + 1) * vocab  # every candidate of every question ranked
    assert direct["reported"] == "ranking" and direct["accuracy"] == direct["ranking"]["accuracy"]
    assert 0 <= direct["generation"]["accuracy"] <= 1 and direct["n_options"] == [vocab]
    assert indirect["n_options"] == [3] and 1 <= direct["answer_median_rank"] <= vocab
    assert direct["by_answer_group"] == {
        "no_train_file": {"n": N_ANSWERS + 1, "accuracy": direct["accuracy"]}
    }
    assert "open answer" in direct["protocol"]
    mcq = res["tasks"]["egotaskqa_mcq"]  # the lettered 5-way variant keeps the choice protocol
    assert mcq["reported"] == "generation" and mcq["n"] == 1 and "protocol" not in mcq
    recs = [json.loads(line) for line in (out / PREDICTIONS).read_text().splitlines()]
    rec = next(r for r in recs if r["task"] == "egotaskqa_direct" and r["id"] == "100")
    assert (
        rec["status"] == "ok" and rec["n_options"] == vocab and "options" not in rec
    )  # digest, not the list
    assert rec["prompt_generation"] == rec["prompt_ranking"] and "Options:" not in rec["prompt_generation"]
    assert rec["answer_index"] == items[N_ANSWERS].options.index("yes") and 1 <= rec["answer_rank"] <= vocab
    assert rec["pred_generation"] == match_answer(rec["reply"], items[0].options)
    assert len(rec["top5"]) == 5 and rec["top5"][0] == items[0].options[rec["pred_ranking"]]


def test_table_reports_direct_and_indirect_apart_from_the_mcq(run):
    out, res, _, _ = run
    lines = (out / "table.md").read_text().splitlines()
    rows = {name: next(line for line in lines if line.startswith(f"| {name}")) for name in (
        "EgoTaskQA direct (open answer)", "EgoTaskQA indirect (open answer)", "EgoTaskQA MCQ")}  # fmt: skip
    direct = res["tasks"]["egotaskqa_direct"]
    assert f"| {100 * direct['accuracy']:.1f} | ranking (other: " in rows["EgoTaskQA direct (open answer)"]
    assert f"| {direct['n']} |" in rows["EgoTaskQA direct (open answer)"]
    assert "| 50.3 |" in rows["EgoTaskQA indirect (open answer)"]
    assert "| generation (other: " in rows["EgoTaskQA MCQ"] and "open answer" not in rows["EgoTaskQA MCQ"]
    assert {r.task for r in paper.ROWS if r.note == paper.OPEN_VOCAB_NOTE} == set(OPEN_VOCABULARY)
    assert all(REPORTED[t] == "ranking" for t in OPEN_VOCABULARY)


def test_match_answer_is_exact_after_normalising():
    vocab = ["fridge", "on top of plate", "yes", "no"]
    assert match_answer("The fridge.", vocab) == 0 and match_answer("  On top of plate ", vocab) == 1
    assert match_answer("Yes", vocab) == 2 and match_answer("yes, it is", vocab) is None
    assert match_answer("a plate", vocab) is None and match_answer("", vocab) is None
    assert match_answer(None, vocab) is None and match_answer("the", vocab) is None
