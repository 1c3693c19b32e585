"""exo2ego_model.eval.run (`make eval`): the tiny model end to end on EgoBench-format shards written here (every
metric kind, mp4 and JPEG-frame clips, bad items), predictions with prompts and option order, resume after an
interruption, refused resume with other settings, the chunked candidate scorer against inference.score, the table
with the paper's numbers, and the CLI.

The shards follow the EgoBench build's format (pipeline/egobench): `egobench-<task>-NNNNNN.tar`, key = item id,
members `mp4` / `00.jpg`.. (one clip) or `v0.mp4`.. / `v0.00.jpg`.. (EgoMCQ), `json` = item_json(item);
`epic_mir_sentences.json` beside them, and what the build says it wrote (write_build_index: stats.json,
manifest.parquet, each shard's stats). Bad command lines and damaged inputs: tests/test_eval_inputs.py.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from exo2ego_model.eval import paper
from exo2ego_model.eval.run import (
    PREDICTIONS,
    PROMPTS,
    EvalConfig,
    evaluate,
    load_model,
    main,
    read_predictions,
    score_many,
)
from pipeline.core.shards import ShardWriter, canonical_json
from pipeline.egobench.records import BenchItem, VideoRef
from pipeline.egobench.records_json import item_json
from tools.samples.stamped_video import write_stamped_video

CLASSES = (
    "Holding a cup",
    "Opening a door",
    "Walking",
    "Sitting in a chair",
    "Eating food",
    "Washing dishes",
)
SENTENCES = [  # EPIC-100 sentence set: id, text, verb class, noun classes
    {"sentence_id": "P01_01_0", "text": "open fridge", "verb_class": 3, "noun_classes": [12]},
    {"sentence_id": "P01_01_1", "text": "close drawer", "verb_class": 4, "noun_classes": [8]},
    {"sentence_id": "P01_01_2", "text": "wash plate and knife", "verb_class": 2, "noun_classes": [5, 9]},
    {"sentence_id": "P01_01_3", "text": "take cup", "verb_class": 0, "noun_classes": [7]},
]
# expected bad items: (task, id) -> start of the recorded error
BAD = {
    ("egoschema", "es_noclip"): "missing clip",
    ("egoplan", "ep_corrupt"): "undecodable clip",
    ("egoplan", "ep_badanswer"): "unknown answer",
    ("egoplan", "ep_nooptions"): "broken option list",
    ("egoplan", "ep_badjson"): "unreadable json",
    ("epic_mir", "epic_noclass"): "no relevancy classes",
}


def _jpegs(seed: int, n: int = 4, w: int = 40, h: int = 30) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG")
        out.append(buf.getvalue())
    return out


def _frames(prefix: str, jpegs: list[bytes]) -> dict[str, bytes]:
    return {f"{prefix}{i:02d}.jpg": j for i, j in enumerate(jpegs)}


def write_bench(root: Path) -> dict[str, int]:
    """EgoBench-format shards of every metric kind under root; returns task -> number of items."""
    root.mkdir(parents=True, exist_ok=True)
    mp4s = []
    for code in range(3):
        path = root / "src" / f"v{code}.mp4"
        write_stamped_video(path, code + 1, 8, 64, 48, audio=False)
        mp4s.append(path.read_bytes())
    shutil.rmtree(root / "src")
    ref = (VideoRef("videos/a.mp4", 1.0, 3.0),)
    samples: dict[str, list[dict]] = {}

    def add(
        item: BenchItem, members: dict[str, bytes], doc: dict | None = None, raw_json: bytes | None = None
    ):
        doc = item_json(item) if doc is None else doc
        data = canonical_json(doc) if raw_json is None else raw_json
        samples.setdefault(item.task, []).append({"__key__": item.item_id, **members, "json": data})

    q = "What did I do with the cup?"
    opts = ("I washed it", "I drank from it", "I threw it", "I broke it", "I hid it")
    add(BenchItem("egoschema", "es_ok", "q.json", ref, q, opts, 1), {"mp4": mp4s[0]})
    add(BenchItem("egoschema", "es_hidden", "q.json", ref, q, opts, None), {"mp4": mp4s[1]})
    add(BenchItem("egoschema", "es_noclip", "q.json", ref, q, opts, 0), {})

    goal = "Considering the progress shown in the video and my current observation, what should I do next?"
    plan = ("pick up knife", "open fridge", "wash hands", "turn on stove")
    add(BenchItem("egoplan", "ep_ok", "egoplan.json", ref, goal, plan, 2), {"mp4": mp4s[2]})
    add(BenchItem("egoplan", "ep_corrupt", "egoplan.json", ref, goal, plan, 0), {"mp4": b"\x00not an mp4"})
    bad = item_json(BenchItem("egoplan", "ep_badanswer", "egoplan.json", ref, goal, plan, 0))
    bad["answer_index"] = 6  # "G" of 4 options
    add(BenchItem("egoplan", "ep_badanswer", "egoplan.json", ref, goal, plan, 0), {"mp4": mp4s[0]}, bad)
    broken = item_json(BenchItem("egoplan", "ep_nooptions", "egoplan.json", ref, goal, plan, 0))
    broken["options"] = []
    add(BenchItem("egoplan", "ep_nooptions", "egoplan.json", ref, goal, plan, 0), {"mp4": mp4s[0]}, broken)
    item = BenchItem("egoplan", "ep_badjson", "egoplan.json", ref, goal, plan, 0)
    add(item, {"mp4": mp4s[0]}, raw_json=canonical_json(item_json(item))[:40])

    for i, (qq, a) in enumerate((("Where is the knife?", "on the table"), ("What did I cut?", "an onion"))):
        add(
            BenchItem("qaego4d_open", f"qo{i}", "annotations.test.json", ref, qq, (), a),
            _frames("", _jpegs(i)),
        )

    for i, positives in enumerate(((0, 2), (1,), (2, 4), ())):
        add(
            BenchItem("charades_ego", f"ch{i}", "test.csv", ref, "", CLASSES, positives), {"mp4": mp4s[i % 3]}
        )

    for i, (own, verb, nouns) in enumerate(
        (("P01_01_0", 3, [12]), ("P01_01_2", 2, [5, 9]), ("P01_01_3", 0, [7]))
    ):
        meta = {"verb_class": verb, "noun_classes": nouns, "narration": "x", "video_id": "P01_01"}
        add(BenchItem("epic_mir", f"epic{i}", "test.csv", ref, "", (), own, meta), {"mp4": mp4s[i]})
    meta = {"verb_class": -1, "noun_classes": [], "video_id": "P01_01"}
    add(BenchItem("epic_mir", "epic_noclass", "test.csv", ref, "", (), "P01_01_1", meta), {"mp4": mp4s[0]})

    five = tuple(VideoRef(f"videos/c{k}.mp4", 0.0, 1.0) for k in range(5))
    texts = ("C opens the door", "C cuts an onion", "C walks", "C sits", "C eats")
    for i, (types, fmt) in enumerate(((1, "mp4"), (2, "jpg"))):
        meta = {
            "types": types,
            "type_name": ("inter", "intra")[types - 1],
            "query_text": "#C C cuts an onion",
        }
        item = BenchItem("egomcq", f"mcq{i}", "egomcq.json", five, "C cuts an onion", texts, 1, meta)
        if fmt == "mp4":
            members = {f"v{k}.mp4": mp4s[k % 3] for k in range(5)}
        else:
            members = {}
            for k in range(5):
                members.update(_frames(f"v{k}.", _jpegs(10 + k)))
        add(item, members)

    for task, rows in samples.items():
        with open(root / f"egobench-{task}-000000.tar", "wb") as f, ShardWriter(f) as w:
            for s in rows:
                w.write(s)
    (root / "epic_mir_sentences.json").write_text(json.dumps(SENTENCES))
    write_build_index(root, {t: [s["__key__"] for s in rows] for t, rows in samples.items()})
    return {t: len(rows) for t, rows in samples.items()}


def write_build_index(root: Path, ids: dict[str, list[str]]) -> None:
    """What the EgoBench build writes beside its shards and the evaluator reads (bench_io.read_build): each
    shard's `<name>_stats.json`, manifest.parquet (its task / id / shard / key columns) and stats.json (last)."""
    rows = {"key": [], "shard": [], "task": [], "id": []}
    for task, names in ids.items():
        shard = f"egobench-{task}-000000"
        (root / f"{shard}_stats.json").write_text(
            json.dumps({"shard": f"{shard}.tar", "split": task, "n_samples": len(names)})
        )
        for name in names:
            for col, value in (("key", name), ("shard", f"{shard}.tar"), ("task", task), ("id", name)):
                rows[col].append(value)
    pq.write_table(pa.table(rows), root / "manifest.parquet")
    tasks = {
        t: {"shards": 1, "samples": len(n), "bytes": (root / f"egobench-{t}-000000.tar").stat().st_size}
        for t, n in ids.items()
    }
    (root / "stats.json").write_text(json.dumps({"samples": sum(len(n) for n in ids.values()), "tasks": tasks}))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("egobench")
    return root, write_bench(root)


@pytest.fixture(scope="module")
def full_run(bench, tmp_path_factory):
    """One uninterrupted run of every task: (out dir, evaluate()'s result)."""
    root, _ = bench
    out = tmp_path_factory.mktemp("eval_full")
    return out, evaluate(EvalConfig(bench=str(root), out=str(out), similarity=False, device="cpu"))


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / PREDICTIONS).read_text().splitlines()]


def _metrics(scores: dict) -> dict:
    """The task scores without timings (equal across an interrupted and an uninterrupted run)."""
    drop = {"candidates_per_s", "item_s"}
    return {t: {k: v for k, v in s.items() if k not in drop} for t, s in scores["tasks"].items()}


def test_every_kind_scored_and_recorded(bench, full_run):
    _, counts = bench
    out, res = full_run
    records = _records(out)
    assert len(records) == sum(counts.values()) == res["n_run"]
    assert {r["task"] for r in records} == set(counts)
    tasks = res["tasks"]
    assert tasks["egoschema"]["metric"] == "choice" and tasks["egomcq"]["metric"] == "video_choice"
    # choice: both protocols, the reported one per REPORTED
    for name in ("egoschema", "egoplan"):
        t = tasks[name]
        assert t["n"] == 1 and {"generation", "ranking"} <= set(t)
        assert 0 <= t["generation"]["accuracy"] <= 1 and 0 <= t["ranking"]["accuracy"] <= 1
        assert t["generation"]["n_unparsed"] == t["n_unparsed"]
    assert tasks["egoplan"]["reported"] == "ranking"
    assert tasks["egoplan"]["accuracy"] == tasks["egoplan"]["ranking"]["accuracy"]
    assert tasks["egoschema"]["reported"] == "generation"
    assert tasks["egoschema"]["accuracy"] == tasks["egoschema"]["generation"]["accuracy"]
    assert tasks["egoschema"]["n_no_answer"] == 1  # not public: predicted, not scored
    qo = tasks["qaego4d_open"]
    assert qo["n"] == 2 and 0 <= qo["rouge_l"] <= 1 and 0 <= qo["meteor"] <= 1 and qo["similarity"] is None
    ch = tasks["charades_ego"]
    assert ch["n"] == 4 and ch["n_classes"] == len(CLASSES) and ch["n_unlabelled"] == 1 and 0 < ch["mAP"] <= 1
    ep = tasks["epic_mir"]
    # sentence P01_01_1 has no relevancy-1 video among the three: dropped, and the score says it is partial
    assert ep["n"] == 3 and ep["n_sentences"] == 4 and ep["n_sentences_used"] == 3 and ep["partial"] is True
    assert 0 < ep["mAP"]["avg"] <= 1 and 0 < ep["nDCG"]["avg"] <= 1
    # calibrated beside raw (eval/mir.py): a constant per sentence column leaves t2v as it is
    assert ep["calibrated"]["mAP"]["t2v"] == pytest.approx(ep["mAP"]["t2v"])
    assert 0 < ep["calibrated"]["mAP"]["v2t"] <= 1 and ep["calibrated"]["nDCG"]["avg"] is not None
    assert ep["shortlist"]["k"] == 0 and ep["shortlist"]["n_with_gold"] == 3
    mcq = tasks["egomcq"]
    assert mcq["n_inter"] == 1 and mcq["n_intra"] == 1 and mcq["inter"] in (0.0, 1.0)
    # candidates scored: ranking options, classes, sentences, clips
    assert tasks["charades_ego"]["n_candidates"] == 4 * len(CLASSES)
    assert tasks["epic_mir"]["n_candidates"] == 3 * len(SENTENCES)
    assert tasks["egomcq"]["n_candidates"] == 2 * 5
    assert tasks["egoplan"]["n_candidates"] == 4 and tasks["egoschema"]["n_candidates"] == 2 * 5
    assert (
        res["candidates_per_s"] > 0 and tasks["qaego4d_open"]["candidates_per_s"] is None
    )  # generation only
    assert all(t["candidates_per_s"] > 0 for name, t in tasks.items() if name != "qaego4d_open")
    # scores.json on disk is what evaluate returned
    on_disk = json.loads((out / "scores.json").read_text())
    assert _metrics(on_disk) == _metrics(res)
    assert "meaningless" in on_disk["model"]["note"]


def test_predictions_carry_prompts_and_option_order(full_run):
    out, _ = full_run
    by_id = {(r["task"], r["id"]): r for r in _records(out)}
    es = by_id[("egoschema", "es_ok")]
    assert es["status"] == "ok"
    assert es["options"][1] == "I drank from it" and es["option_letters"] == list("ABCDE")
    assert es["option_order"] == [0, 1, 2, 3, 4]
    assert "(B) I drank from it" in es["prompt_generation"] and es["prompt_generation"].startswith(
        "What did I do with the cup?\nOptions:\n(A) I washed it"
    )
    assert es["prompt_ranking"] == "What did I do with the cup?"
    assert isinstance(es["reply"], str) and len(es["option_scores"]) == 5
    assert es["pred_ranking"] == int(np.argmax(es["option_scores"])) and es["answer_index"] == 1
    assert by_id[("egoschema", "es_hidden")]["answer_index"] is None
    assert by_id[("qaego4d_open", "qo1")]["prompt"] == PROMPTS["open"].format(question="What did I cut?")
    ch = by_id[("charades_ego", "ch0")]
    assert ch["prompt"] == PROMPTS["multilabel"] and len(ch["scores"]) == len(CLASSES)
    assert ch["answer_indices"] == [0, 2]
    ep = by_id[("epic_mir", "epic1")]
    assert ep["prompt"] == PROMPTS["retrieval"] and ep["n_sentences"] == 4 and 1 <= ep["own_rank"] <= 4
    assert len(ep["top5"]) == 4 and ep["sentence_id"] == "P01_01_2"
    mcq = by_id[("egomcq", "mcq1")]  # the JPEG-frame EgoMCQ item
    assert mcq["status"] == "ok" and len(mcq["clip_scores"]) == 5 and mcq["candidate"] == "C cuts an onion"
    assert mcq["types"] == 2 and mcq["pred"] == int(np.argmax(mcq["clip_scores"]))


def test_bad_items_are_recorded_not_fatal(full_run):
    out, res = full_run
    by_id = {(r["task"], r["id"]): r for r in _records(out)}
    for key, reason in BAD.items():
        rec = by_id[key]
        assert rec["status"] == "error" and rec["error"].startswith(reason), (key, rec.get("error"))
    assert res["tasks"]["egoplan"]["n_errors"] == 4 and res["tasks"]["egoplan"]["n_items"] == 5
    assert res["tasks"]["egoplan"]["errors"] == {
        "broken option list": 1,
        "undecodable clip 0": 1,
        "unknown answer": 1,
        "unreadable json": 1,
    }
    assert res["tasks"]["egoschema"]["n_errors"] == 1 and res["tasks"]["epic_mir"]["n_errors"] == 1
    # the items after the bad ones ran: every other record is ok
    assert all(r["status"] == "ok" for k, r in by_id.items() if k not in BAD)


def test_table_lists_the_paper_numbers(full_run):
    out, res = full_run
    table = (out / "table.md").read_text()
    for row in paper.ROWS:
        if row.exo2ego is not None:
            assert f"| {row.exo2ego:.1f} |" in table, row
    # ours beside them, percent with one decimal
    egoplan = next(line for line in table.splitlines() if line.startswith("| EgoPlan"))
    assert f"| {100 * res['tasks']['egoplan']['accuracy']:.1f} | ranking" in egoplan
    assert "| 42.7 | 32.5 |" in egoplan
    inter = next(line for line in table.splitlines() if "inter-video" in line)
    assert f"| {100 * res['tasks']['egomcq']['inter']:.1f} |" in inter and "| 88.4 |" in inter
    assert "not run" in next(line for line in table.splitlines() if line.startswith("| VLN-QA"))
    assert "meaningless" in table and "candidates/s" in table


def test_resume_after_interruption(bench, full_run, tmp_path):
    root, counts = bench
    _, full = full_run
    cfg = EvalConfig(bench=str(root), out=str(tmp_path), similarity=False, device="cpu", max_items=2)
    first = evaluate(cfg)
    assert first["n_run"] == sum(min(2, n) for n in counts.values())
    done_before = {(r["task"], r["id"]): r for r in _records(tmp_path)}
    # the process died while writing the next line
    with open(tmp_path / PREDICTIONS, "a") as f:
        f.write('{"task": "egoplan", "id": "ep_badan')
    cfg.max_items = None
    second = evaluate(cfg)
    assert second["n_run"] == sum(counts.values()) - first["n_run"]  # finished items were not run again
    records = _records(tmp_path)  # every line parses: the truncated one was cut
    keys = [(r["task"], r["id"]) for r in records]
    assert len(keys) == len(set(keys)) == sum(counts.values())
    for key, rec in done_before.items():  # the first run's records are kept as they were
        assert next(r for r in records if (r["task"], r["id"]) == key) == rec
    assert _metrics(second) == _metrics(full)  # same scores as the uninterrupted run
    # a third run has nothing left to do and gives the same scores again
    third = evaluate(cfg)
    assert third["n_run"] == 0 and _metrics(third) == _metrics(full)


def test_resume_with_other_settings_is_refused(bench, tmp_path):
    root, _ = bench
    cfg = EvalConfig(bench=str(root), out=str(tmp_path), tasks=("egomcq",), similarity=False, device="cpu")
    evaluate(cfg)
    cfg.frames = 2
    with pytest.raises(ValueError, match="other settings"):
        evaluate(cfg)


def test_read_predictions_truncation_and_corruption(tmp_path):
    path = tmp_path / PREDICTIONS
    path.write_text('{"task": "a", "id": "1"}\n{"task": "a", "id": "2"}\n{"task": "a", "i')
    assert [r["id"] for r in read_predictions(path)] == ["1", "2"]
    assert path.read_text() == '{"task": "a", "id": "1"}\n{"task": "a", "id": "2"}\n'
    path.write_text('{"task": "a", "id": "1"}')  # complete but without its newline: kept, newline added
    assert [r["id"] for r in read_predictions(path)] == ["1"] and path.read_text().endswith("}\n")
    path.write_text('{"task": "a", "id": "1"}\n{broken\n{"task": "a", "id": "3"}\n')
    with pytest.raises(ValueError, match="line 2 is corrupt"):
        read_predictions(path)


def test_score_many_equals_score_per_candidate():
    from exo2ego_model.inference import score

    model, tok, note = load_model(None, torch.device("cpu"), seed=0)
    assert "meaningless" in note
    video = torch.randint(
        0, 256, (model.cfg.n_frames, 3, model.cfg.image_size, model.cfg.image_size), dtype=torch.uint8
    )
    cands = [s["text"] for s in SENTENCES] + ["a", "take the cup from the table and put it in the sink"]
    chunked = score_many(model, tok, video, PROMPTS["retrieval"], cands, batch=2)
    whole = score(model, tok, video, PROMPTS["retrieval"], cands)
    assert len(chunked) == len(cands)
    assert np.allclose(chunked, whole, atol=1e-5)


def test_cli(bench, tmp_path, capsys):
    root, _ = bench
    argv = [
        "--bench",
        str(root),
        "--out",
        str(tmp_path),
        "--tasks",
        "egomcq,charades_ego",
        "--max-items",
        "1",
    ]
    assert main([*argv, "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "meaningless" in printed and "candidates/s" in printed and "| Charades-Ego | mAP |" in printed
    assert len(_records(tmp_path)) == 2
    assert main(["--bench", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert main(["--bench", str(root), "--tasks", "nope", "--out", str(tmp_path / "o")]) == 2


def test_reads_the_egobench_build(request, tmp_path):
    """The evaluation on the bundled mini-benchmark as pipeline/egobench builds it (conftest's egobench_build):
    every task's shards read unchanged, 2 items each."""
    try:
        out, stats = request.getfixturevalue("egobench_build")
    except pytest.FixtureLookupError:
        pytest.skip("no egobench_build fixture (the EgoBench build is not in this checkout)")
    from exo2ego_model.eval.run import find_shards, sentences_path

    tasks = sorted(find_shards(Path(out)))
    assert tasks, "the build wrote no egobench-<task>-NNNNNN.tar"
    res = evaluate(EvalConfig(bench=str(out), out=str(tmp_path), max_items=2, similarity=False, device="cpu"))
    assert sorted(res["tasks"]) == tasks
    assert res["sentence_set_error"] == "" and res["shard_errors"] == []
    # what the build says it wrote is read whole: no warning, nothing lost, every task's count known
    assert res["bench_warnings"] == [] and res["items"]["lost"] == 0 and res["items"]["expected_unknown"] == []
    for task, t in res["tasks"].items():
        assert t["n_expected"] == min(2, stats["tasks"][task]["samples"]) == t["n_items"], task
    for task, t in res["tasks"].items():
        assert 1 <= t["n_items"] <= 2, task
        assert t["n_errors"] < t["n_items"], (task, t["errors"])  # the build's items are well-formed
    if "epic_mir" in res["tasks"]:
        assert sentences_path(Path(out)).exists() and res["tasks"]["epic_mir"]["n_sentences"] > 0
    if "charades_ego" in res["tasks"]:
        assert res["tasks"]["charades_ego"]["n_classes"] == 157  # Charades' full class list as candidates


def test_model_failures_are_recorded_retried_and_bounded(bench, tmp_path, monkeypatch):
    import exo2ego_model.eval.run as run_mod
    import exo2ego_model.inference as inference

    root, _ = bench
    cfg = EvalConfig(bench=str(root), out=str(tmp_path), tasks=("egoschema",), similarity=False, device="cpu")
    real = inference.generate

    def boom(*a, **k):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(inference, "generate", boom)
    first = evaluate(cfg)  # es_ok, es_hidden fail inside the model; es_noclip is bad input
    by_id = {r["id"]: r for r in _records(tmp_path)}
    assert by_id["es_ok"]["error"].startswith("internal error: RuntimeError: CUDA out of memory")
    assert by_id["es_noclip"]["error"].startswith("missing clip")
    assert first["tasks"]["egoschema"]["n_errors"] == 3
    monkeypatch.setattr(inference, "generate", real)
    second = evaluate(cfg)  # a rerun retries the model failures only
    assert second["n_run"] == 2 and second["tasks"]["egoschema"]["n_errors"] == 1
    # a broken setup (every item failing in the model) stops the run instead of recording failures forever
    monkeypatch.setattr(inference, "generate", boom)
    monkeypatch.setattr(run_mod, "MAX_INTERNAL_IN_A_ROW", 2)
    with pytest.raises(RuntimeError, match="2 items in a row failed inside the model"):
        evaluate(EvalConfig(bench=str(root), out=str(tmp_path / "again"), tasks=("egoplan", "egoschema")))
