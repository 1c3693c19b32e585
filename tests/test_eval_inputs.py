"""`python -m exo2ego_model.eval` on bad input, as a new user meets it (issue 16, part 4): every case runs the real
CLI (main(argv), once a subprocess) and checks the exit status, the one-line message naming the file or option and
the reason, and that nothing else was lost (no output written, old outputs untouched).

    misspelt options and choice values   exit 2, "error: unknown option --taks; did you mean --tasks?"
    --out a file / unwritable            exit 2, one line, nothing created
    a checkpoint cut short               exit 2, the weights file and "truncated", no safetensors traceback
    a shard cut short, a damaged manifest   exit 0: readable items scored, the lost ones counted per task
                                         (scores.json, table.md, summary line); exit 1 when none could be scored
    no --bench / no stats.json           exit 2, one line
    another model's predictions in --out exit 2 with both fingerprints' prefixes; --overwrite replaces them
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from exo2ego_model.eval.outdir import MODEL_KEY
from exo2ego_model.eval.run import PREDICTIONS, load_model, main
from exo2ego_model.export import WEIGHTS, WEIGHTS_INDEX, fingerprint, load_pretrained, save_pretrained
from tests.test_eval import one_thread, write_bench  # noqa: F401  (one_thread: autouse fixture)

REPO = Path(__file__).resolve().parents[1]
FAST = ["--device", "cpu", "--threads", "1"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("egobench")
    write_bench(root)
    return root


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> tuple[Path, Path]:
    """Two save_pretrained folders of the tiny model: seeds 0 and 1 (same configs, other weights)."""
    root = tmp_path_factory.mktemp("ckpts")
    out = []
    for seed in (0, 1):
        model, tok, _ = load_model(None, torch.device("cpu"), seed=seed)
        out.append(save_pretrained(model, tok, root / f"seed{seed}"))
    return out[0], out[1]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([*FAST, *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def one_line(err: str) -> str:
    """The only line of stderr (asserting there is just one, and no traceback)."""
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def copy_bench(bench: Path, dest: Path) -> Path:
    shutil.copytree(bench, dest)
    return dest


def cut(path: Path, keep: float | int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])


# ------------------------------------------------------------------------------------------ 1. options


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--taks", "egoschema"], "error: unknown option --taks; did you mean --tasks?"),
        (["--ckp", "runs/x"], "error: unknown option --ckp; did you mean --ckpt?"),  # no abbreviations
        (["--max-item=3"], "error: unknown option --max-item; did you mean --max-items?"),
        (["--tasks", "egoshema"], "error: unknown --tasks value egoshema; did you mean egoschema?"),
        (["--tasks", "egomcq,nope"], "error: unknown --tasks value nope (known: egoschema, "),
        (["--device", "cdua"], "error: unknown --device value cdua; did you mean cuda?"),
        (["--max-items", "0"], "error: --max-items 0: must be >= 1"),
        (["--max-items", "x"], "error: argument --max-items: invalid int value: 'x'"),
        (["stray"], "error: unexpected argument 'stray'"),
    ],
)
def test_bad_option_is_one_line_exit_2_with_a_hint(bench, tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, "--bench", str(bench), "--out", str(out), *argv)
    assert rc == 2 and stdout == ""
    assert one_line(err).startswith(message)
    assert not out.exists()  # nothing written


def test_misspelt_option_through_python_m(bench, tmp_path):
    """The entry point a user types: the same one line on stderr, exit 2, before any work."""
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "exo2ego_model.eval",
        "--bench",
        str(bench),
        "--out",
        str(out),
        "--taks",
        "egomcq",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert one_line(proc.stderr) == "error: unknown option --taks; did you mean --tasks?"
    assert not out.exists()


def test_device_this_machine_lacks(bench, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    rc = main(["--bench", str(bench), "--out", str(out), "--device", "cuda"])
    cap = capsys.readouterr()
    assert rc == 2 and "error: --device cuda: torch sees no CUDA device" in one_line(cap.err)
    assert not out.exists()


# ------------------------------------------------------------------------------------------ 2. --out


def test_out_naming_a_file(bench, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("my notes\n")
    rc, stdout, err = run(capsys, "--bench", str(bench), "--out", str(target), "--tasks", "charades_ego")
    assert rc == 2 and stdout == ""
    assert one_line(err) == (
        f"error: --out {target}: a file, not a folder (the run writes predictions.jsonl, scores.json, "
        "table.md, run.json in a folder)"
    )
    assert target.read_text() == "my notes\n"  # untouched
    # a folder under a file cannot be made either
    rc, _, err = run(capsys, "--bench", str(bench), "--out", str(target / "sub"), "--tasks", "charades_ego")
    assert (
        rc == 2
        and one_line(err) == f"error: --out {target / 'sub'}: cannot make this folder: {target} is a file"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_out_not_writable(bench, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        rc, _, err = run(
            capsys, "--bench", str(bench), "--out", str(locked / "eval"), "--tasks", "charades_ego"
        )
    finally:
        locked.chmod(0o700)
    assert (
        rc == 2
        and one_line(err)
        == f"error: --out {locked / 'eval'}: cannot write there: {locked} is not writable by this user"
    )
    assert list(locked.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="no /proc")
def test_out_where_nothing_can_be_written(bench, tmp_path, capsys):
    """/proc takes no new folder, not even from root: found before the model loads, one line."""
    out = Path("/proc/exo2ego-eval-test/out")
    rc, stdout, err = run(capsys, "--bench", str(bench), "--out", str(out), "--tasks", "charades_ego")
    assert rc == 2 and stdout == ""
    assert one_line(err).startswith(f"error: --out {out}: cannot write there (")


# ------------------------------------------------------------------------------------------ 3. checkpoint


def test_truncated_checkpoint_weights(bench, ckpts, tmp_path, capsys):
    ckpt = shutil.copytree(ckpts[0], tmp_path / "ckpt")
    weights = ckpt / WEIGHTS
    size = weights.stat().st_size
    cut(weights, 0.5)
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, "--ckpt", str(ckpt), "--bench", str(bench), "--out", str(out))
    assert rc == 2 and stdout == ""
    assert one_line(err) == (
        f"error: {weights}: truncated: {size // 2} of {size} bytes (the file was cut short; copy or export it again)"
    )
    assert "Safetensor" not in err and not out.exists()
    cut(weights, 5)  # not even a header
    rc, _, err = run(capsys, "--ckpt", str(ckpt), "--bench", str(bench), "--out", str(out))
    assert rc == 2 and one_line(err).startswith(f"error: {weights}: truncated (5 bytes")


def _shard_checkpoint(src: Path, dest: Path) -> Path:
    """The checkpoint with its weights split in two files + model.safetensors.index.json (Hugging Face's layout)."""
    from safetensors.torch import load_file, save_file

    ckpt = shutil.copytree(src, dest)
    state = load_file(ckpt / WEIGHTS)
    (ckpt / WEIGHTS).unlink()
    names = sorted(state)
    parts = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in parts.items():
        save_file({k: state[k] for k in keys}, ckpt / file)
    weight_map = {k: file for file, keys in parts.items() for k in keys}
    (ckpt / WEIGHTS_INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return ckpt


def test_sharded_checkpoint_loads_and_a_missing_shard_is_named(bench, ckpts, tmp_path, capsys):
    ckpt = _shard_checkpoint(ckpts[0], tmp_path / "sharded")
    model, _ = load_pretrained(ckpt)  # the index layout loads to the same weights
    whole, _ = load_pretrained(ckpts[0])
    mine, theirs = model.state_dict(), whole.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert fingerprint(ckpt) != fingerprint(ckpts[0])  # other files (same tensors): another fingerprint

    (ckpt / "model-00002-of-00002.safetensors").unlink()
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, "--ckpt", str(ckpt), "--bench", str(bench), "--out", str(out))
    assert rc == 2 and stdout == "" and not out.exists()
    assert one_line(err) == (
        f"error: {ckpt / WEIGHTS_INDEX} names model-00002-of-00002.safetensors, which is missing from {ckpt}"
    )


def test_not_a_checkpoint_folder(bench, tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = run(capsys, "--ckpt", str(tmp_path / "nope"), "--bench", str(bench), "--out", str(out))
    assert rc == 2 and one_line(err) == f"error: {tmp_path / 'nope'}: no such folder" and not out.exists()
    (tmp_path / "dcp").mkdir()
    (tmp_path / "dcp" / ".metadata").write_bytes(b"x")
    rc, _, err = run(capsys, "--ckpt", str(tmp_path / "dcp"), "--bench", str(bench), "--out", str(out))
    assert (
        rc == 2
        and "no exo2ego.json, so not an export.save_pretrained folder (a training checkpoint" in one_line(err)
    )


# ------------------------------------------------------------------------------------------ 4. benchmark files


def _scores(out: Path) -> dict:
    return json.loads((out / "scores.json").read_text())


def test_truncated_shard_scores_what_it_can_and_counts_the_rest(bench, tmp_path, capsys):
    root = copy_bench(bench, tmp_path / "bench")
    shard = root / "egobench-charades_ego-000000.tar"
    cut(shard, 0.5)  # 4 items: the first ones survive
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, "--bench", str(root), "--out", str(out), "--tasks", "charades_ego,egomcq")
    assert rc == 0  # policy: some items scored -> 0, with a warning and the count
    t = _scores(out)["tasks"]["charades_ego"]
    assert t["n_expected"] == 4 and 1 <= t["n_scored"] < 4 and t["n_lost"] == 4 - t["n_scored"]
    assert t["n_not_scored"] == t["n_lost"] and t["n_items"] == t["n_scored"]
    (lost,) = t["lost"]
    assert lost["shard"] == shard.name and lost["reason"].startswith(
        f"unreadable after {t['n_scored']} items ("
    )
    assert lost["ids"] == [f"ch{i}" for i in range(t["n_scored"], 4)]  # named from manifest.parquet
    assert t["not_scored"] == {f"lost: {shard.name}: {lost['reason']}": t["n_lost"]}
    # the readable items were scored and recorded; the other task is whole
    recs = [json.loads(line) for line in (out / PREDICTIONS).read_text().splitlines()]
    assert sorted(r["id"] for r in recs if r["task"] == "charades_ego") == [
        f"ch{i}" for i in range(t["n_scored"])
    ]
    mcq = _scores(out)["tasks"]["egomcq"]
    assert mcq["n_expected"] == mcq["n_scored"] == 2 and mcq["n_lost"] == 0
    items = _scores(out)["items"]
    assert items == {
        "expected": 6,
        "scored": 2 + t["n_scored"],
        "errors": 0,
        "lost": t["n_lost"],
        "expected_unknown": [],
    }
    # table.md says it, per task
    table = (out / "table.md").read_text()
    assert f"**{t['n_lost']} item(s) LOST" in table
    row = next(line for line in table.splitlines() if line.startswith("| charades_ego |"))
    assert row.startswith(
        f"| charades_ego | 4 | {t['n_scored']} | {t['n_lost']} | lost: {shard.name}: unreadable"
    )
    # the summary line says so (stdout), and a warning (stderr)
    summary = (
        f"eval: items: {2 + t['n_scored']} of 6 expected scored, 0 errors (bad input or model failures), "
    )
    assert summary + f"{t['n_lost']} LOST (unreadable benchmark files" in stdout
    assert f"eval: WARNING {t['n_lost']} item(s) lost: the scores are over the items that were read" in err
    assert f"eval: WARNING charades_ego: shard {shard.name} unreadable after" in err
    assert "Traceback" not in err and "| Charades-Ego | mAP |" in stdout


def test_shard_cut_at_a_member_boundary_is_caught(bench, tmp_path, capsys):
    """tarfile ends quietly where the data ends; the missing end-of-archive blocks give it away."""
    root = copy_bench(bench, tmp_path / "bench")
    shard = root / "egobench-charades_ego-000000.tar"
    import tarfile

    with tarfile.open(shard) as tar:
        members = tar.getmembers()
    third = members[3 * len(members) // 4]  # a header boundary inside the last items
    cut(shard, third.offset)
    out = tmp_path / "out"
    rc, _, err = run(capsys, "--bench", str(root), "--out", str(out), "--tasks", "charades_ego")
    t = _scores(out)["tasks"]["charades_ego"]
    assert rc == 0 and t["n_lost"] >= 1 and t["n_scored"] + t["n_lost"] == 4
    assert "no end-of-archive marker" in t["lost"][0]["reason"]
    assert all(r["status"] == "ok" for r in map(json.loads, (out / PREDICTIONS).read_text().splitlines()))


def test_damaged_manifest_and_missing_shard(bench, tmp_path, capsys):
    root = copy_bench(bench, tmp_path / "bench")
    cut(root / "manifest.parquet", 0.5)
    (root / "egobench-egomcq-000000.tar").unlink()
    out = tmp_path / "out"
    rc, _, err = run(capsys, "--bench", str(root), "--out", str(out), "--tasks", "charades_ego,egomcq")
    assert rc == 0
    s = _scores(out)
    ch, mcq = s["tasks"]["charades_ego"], s["tasks"]["egomcq"]
    assert ch["n_expected"] == ch["n_scored"] == 4 and ch["n_lost"] == 0  # the tars are whole: all scored
    # the missing shard's items are counted from its own stats (the manifest, with their names, is unreadable)
    assert mcq["n_expected"] == 2 and mcq["n_scored"] == 0 and mcq["n_lost"] == 2
    assert mcq["lost"] == [
        {"shard": "egobench-egomcq-000000.tar", "n": 2, "reason": "missing (the build wrote it)", "ids": []}
    ]
    (warning,) = s["bench_warnings"]
    assert warning.startswith(f"{root / 'manifest.parquet'} unreadable (") and "not named" in warning
    assert f"eval: WARNING {warning}" in err and "Warning: " in (out / "table.md").read_text()
    # a second run with the shard back scores the lost items (they were never recorded as done)
    shutil.copy(bench / "egobench-egomcq-000000.tar", root)
    rc, _, err = run(capsys, "--bench", str(root), "--out", str(out), "--tasks", "charades_ego,egomcq")
    s = _scores(out)
    assert rc == 0 and s["items"]["lost"] == 0 and s["tasks"]["egomcq"]["n_scored"] == 2
    rc, stdout, err = run(capsys, "--bench", str(root), "--out", str(out), "--tasks", "egomcq")
    assert (
        rc == 0 and "eval: items: 2 of 2 expected scored, 0 errors (bad input or model failures)\n" in stdout
    )
    assert "LOST" not in stdout + err and "item(s) lost" not in err


def test_nothing_readable_exits_1(bench, tmp_path, capsys):
    root = copy_bench(bench, tmp_path / "bench")
    cut(root / "egobench-charades_ego-000000.tar", 100)
    out = tmp_path / "out"
    rc, _, err = run(capsys, "--bench", str(root), "--out", str(out), "--tasks", "charades_ego")
    assert rc == 1
    assert (
        err.splitlines()[-1] == f"error: no item could be scored: 4 item(s) lost (see {out / 'scores.json'})"
    )
    assert _scores(out)["tasks"]["charades_ego"]["n_lost"] == 4  # still written: the accounting is the result


def test_missing_bench_or_stats(bench, tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = run(capsys, "--bench", str(tmp_path / "nowhere"), "--out", str(out))
    assert rc == 2
    assert (
        one_line(err)
        == f"error: --bench {tmp_path / 'nowhere'}: no such folder (make build-egobench, or --bench DIR)"
    )
    root = copy_bench(bench, tmp_path / "bench")
    (root / "stats.json").unlink()
    rc, _, err = run(capsys, "--bench", str(root), "--out", str(out))
    assert rc == 2 and one_line(err).startswith(
        f"error: --bench {root}: no stats.json, so not a finished EgoBench build"
    )
    (root / "stats.json").write_text("{not json")
    rc, _, err = run(capsys, "--bench", str(root), "--out", str(out))
    assert rc == 2 and one_line(err).startswith(
        f"error: {root / 'stats.json'}: unreadable (JSONDecodeError: "
    )
    shutil.copy(bench / "stats.json", root)
    rc, _, err = run(capsys, "--bench", str(root), "--out", str(out), "--tasks", "vlnqa")
    assert rc == 2 and one_line(err).startswith(
        f"error: --tasks vlnqa: not in the build at {root} (it has: egoschema"
    )
    assert not out.exists()


# ------------------------------------------------------------------------------------------ 5. fingerprint


def test_fingerprint_follows_the_weights(ckpts, tmp_path):
    a, b = ckpts
    assert fingerprint(a) != fingerprint(b)
    moved = shutil.copytree(a, tmp_path / "moved")
    assert fingerprint(moved) == fingerprint(a)  # a copy elsewhere is the same model
    shutil.copy(b / WEIGHTS, moved / WEIGHTS)
    assert fingerprint(moved) != fingerprint(a)  # other weights under the same name are not


def test_other_checkpoint_into_the_same_out_is_refused(bench, ckpts, tmp_path, capsys):
    a, b = ckpts
    ckpt = shutil.copytree(a, tmp_path / "ckpt")
    out = tmp_path / "out"
    argv = ["--bench", str(bench), "--out", str(out), "--tasks", "charades_ego", "--max-items", "2"]
    assert run(capsys, "--ckpt", str(ckpt), *argv)[0] == 0
    first = json.loads((out / "run.json").read_text())[MODEL_KEY]
    assert first == fingerprint(a)
    preds = (out / PREDICTIONS).read_bytes()
    # the same checkpoint resumes (nothing left to run); a copy elsewhere too
    rc, stdout, _ = run(capsys, "--ckpt", str(shutil.copytree(a, tmp_path / "copy")), *argv)
    assert rc == 0 and "eval: 0 items run now" in stdout
    # the checkpoint retrained in place: refused, both fingerprints named, nothing touched
    shutil.copy(b / WEIGHTS, ckpt / WEIGHTS)
    rc, stdout, err = run(capsys, "--ckpt", str(ckpt), *argv)
    second = fingerprint(ckpt)
    assert rc == 2 and stdout == ""
    assert one_line(err) == (
        f"error: --out {out} holds predictions of another model (sha256 {first[:12]}; this model: "
        f"{second[:12]}): use a new --out, or --overwrite to replace them"
    )
    assert (out / PREDICTIONS).read_bytes() == preds and json.loads((out / "run.json").read_text())[
        MODEL_KEY
    ] == first
    # --overwrite: the new model's predictions replace the old ones
    rc, stdout, _ = run(capsys, "--ckpt", str(ckpt), *argv, "--overwrite")
    assert rc == 0 and "eval: 2 items run now" in stdout
    assert json.loads((out / "run.json").read_text())[MODEL_KEY] == second
    assert len((out / PREDICTIONS).read_text().splitlines()) == 2


def test_tiny_model_has_a_fingerprint_too(bench, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--bench", str(bench), "--out", str(out), "--tasks", "charades_ego", "--max-items", "1"]
    assert run(capsys, *argv)[0] == 0
    tiny = json.loads((out / "run.json").read_text())[MODEL_KEY]
    assert len(tiny) == 64 and _scores(out)["model"][MODEL_KEY] == tiny
    rc, _, err = run(capsys, *argv, "--seed", "1")
    assert rc == 2 and f"holds predictions of another model (sha256 {tiny[:12]}; this model: " in one_line(
        err
    )
    # predictions without run.json: which model made them is unknown, so they are not reused
    (out / "run.json").unlink()
    rc, _, err = run(capsys, *argv)
    assert rc == 2 and one_line(err) == (
        f"error: --out {out} holds predictions.jsonl but no run.json, so the model that made them is unknown: "
        "use a new --out, or --overwrite to replace them"
    )
