"""Progress of an Ego-ExoClip build (issue 11, part 8): the driver's bar (takes done/total, clips/s, ETA),
one worker log line per take, nothing of either with --quiet, and no trace of progress in the outputs.

The command runs as a subprocess on the bundled sample release (real Beam, real ffmpeg), val split only (two
takes) to stay quick; the aggregation of progress events is tested as a pure function."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.core import progress as P

REPO = Path(__file__).resolve().parents[1]
BAR = re.compile(r"takes: +\d+%\|[^|]*\| (\d+)/(\d+) \[[^\]]*?([\d.]+) clips/s\]")
TAKE_LINE = re.compile(r"INFO pipeline\.core\.transforms: take (\S+) \((\d+) pairs\): (\d+) clips in [\d.]+s")


def _cli(root: str, out: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(tmp)}  # the progress folder (and workers' temp dirs) land here
    env.pop(P.ENV, None)
    tmp.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.egoexoclip", "--root", root, "--out", str(out), "--splits", "val",
         "--max-samples-per-shard", "40", *extra],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(tmp.glob("exo2ego_progress-*")), "progress folder left behind"
    return proc


def _final_bar(stderr: str) -> re.Match:
    states = list(BAR.finditer(stderr))  # every redraw of the bar; the last is its final state
    assert states, f"no progress bar in stderr:\n{stderr[-2000:]}"
    return states[-1]


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_bar_worker_lines_quiet_and_resume(sample_root, tmp_path):
    out = tmp_path / "out"
    proc = _cli(sample_root, out, tmp_path / "tmp")
    stats = json.loads((out / "stats.json").read_text())
    planned = stats["splits"]["val"]["takes"]
    assert planned >= 2

    bar = _final_bar(proc.stderr)
    assert int(bar[1]) == int(bar[2]) == planned  # takes done == total planned
    assert float(bar[3]) > 0  # clips/s
    assert "<00:00" in bar[0]  # the ETA is shown (0 left at the end)

    lines = TAKE_LINE.findall(proc.stderr)
    names = [name for name, _, _ in lines]
    assert len(names) == len(set(names)) == planned  # one line per take
    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    assert set(names) == {r["take_name"] for r in manifest}
    assert sum(int(k) for _, k, _ in lines) == stats["samples"] == len(manifest)

    # nothing of the progress machinery in OUT: the files of a build, no hidden folder
    assert all(not p.name.startswith(".") for p in out.iterdir()), sorted(p.name for p in out.iterdir())

    quiet_out = tmp_path / "quiet"
    quiet = _cli(sample_root, quiet_out, tmp_path / "tmp", "--quiet")
    assert "clips/s" not in quiet.stderr and "takes:" not in quiet.stderr
    assert not TAKE_LINE.search(quiet.stderr) and " INFO " not in quiet.stderr
    assert "Ego-ExoClip build finished" in quiet.stdout  # the summary stays
    assert _outputs(quiet_out) == _outputs(out)  # same bytes, file for file

    # resume under the multi-process DirectRunner: the plan events come from worker processes; the takes of
    # complete shards count as done without a clip cut
    resumed = _cli(sample_root, out, tmp_path / "tmp", "--runner", "direct-mp", "--workers", "1")
    bar = _final_bar(resumed.stderr)
    assert int(bar[1]) == int(bar[2]) == planned and float(bar[3]) == 0
    assert not TAKE_LINE.search(resumed.stderr)
    assert _outputs(out) == _outputs(quiet_out)


# ------------------------------------------------------------------------------------- pure aggregation


def _ev(**kw) -> str:
    return json.dumps(kw)


def test_aggregate_counts_each_take_once_and_skips_complete_shards():
    lines = [
        _ev(event="plan", shard="s0", groups=3, clips=30, complete=False),
        _ev(event="plan", shard="s1", groups=2, clips=20, complete=True),
        _ev(event="group", shard="s0", group="a", clips=10, samples=8, seconds=1.0),
        _ev(event="group", shard="s0", group="a", clips=10, samples=8, seconds=1.0),  # a retried bundle
        _ev(event="group", shard="s0", group="b", clips=0, samples=0, seconds=0.1),  # a take that failed
        _ev(event="group", shard="s1", group="c", clips=9, samples=7, seconds=1.0),  # complete shard rebuilt
        '{"event": "group", "shard": "s0", "gro',  # a line still being written
        "[1, 2]",
        _ev(event="other", shard="s0"),
    ]
    p = P.aggregate(lines)
    assert p == P.Progress(total=5, done=2, skipped=2, clips=10, samples=8)
    assert P.aggregate([]).total is None  # unknown until a plan line arrives
    assert P.aggregate(lines[2:4]) == P.Progress(total=None, done=1, skipped=0, clips=10, samples=8)
    # a shard's plan counts once, the last line winning
    again = [*lines, _ev(event="plan", shard="s0", groups=4, clips=40, complete=False)]
    assert P.aggregate(again).total == 6


def test_rate():
    assert P.rate(30, 2.0) == 15.0
    assert P.rate(5, 0.0) == 0.0


def test_reader_reads_complete_lines_only(tmp_path):
    reader = P.ProgressReader(str(tmp_path))
    assert reader.poll() == []
    f = tmp_path / "host-1.jsonl"
    f.write_text('{"a": 1}\n{"b"')
    (tmp_path / "ignored.txt").write_text("x\n")
    assert reader.poll() == ['{"a": 1}']
    with f.open("a") as h:
        h.write(": 2}\n")
    (tmp_path / "host-2.jsonl").write_text('{"c": 3}\n')
    assert reader.poll() == ['{"a": 1}', '{"b": 2}', '{"c": 3}']


def test_record_writes_only_when_the_driver_asked(tmp_path, monkeypatch):
    monkeypatch.delenv(P.ENV, raising=False)
    P.record("group", shard="s", group="g")  # no folder named: nothing, no error
    assert not P.requested()
    monkeypatch.setenv(P.ENV, str(tmp_path / "gone"))
    P.record("group", shard="s", group="g")  # the folder was removed: nothing, no error
    monkeypatch.setenv(P.ENV, str(tmp_path))
    P.record("group", shard="s", group="g", clips=3)
    (line,) = P.ProgressReader(str(tmp_path)).poll()
    assert json.loads(line) == {"event": "group", "shard": "s", "group": "g", "clips": 3}


def test_bar_disabled_creates_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv(P.ENV, raising=False)
    with P.ProgressBar(enabled=False):
        assert not P.requested()


def test_bar_shows_final_state(tmp_path, monkeypatch):
    import io
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the progress folder is made
    buf = io.StringIO()
    with P.ProgressBar(file=buf):
        assert P.requested()
        P.record("plan", shard="s0", groups=2, clips=4, complete=False)
        P.record("group", shard="s0", group="a", clips=2, samples=1, seconds=0.5)
        P.record("group", shard="s0", group="b", clips=2, samples=1, seconds=0.5)
    assert not P.requested() and os.listdir(tmp_path) == []
    m = _final_bar(buf.getvalue())
    assert (m[1], m[2]) == ("2", "2") and float(m[3]) > 0
