"""Builds that share an OUT, or stop midway, cannot corrupt it (issue 11, parts 1 and 3).

One lock per OUT (a second build stops at once, exit status 2); resume checks every kept shard's sha256 and
options fingerprint against its marker; the top-level files are removed when a build starts and written last;
temporary files live in one work directory per build, gone after the build, after SIGTERM, and (for a build
killed outright) at the next start. Real builds of the bundled release's val split (real ffmpeg, real Beam).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from pipeline.core.clips import ClipFormat
from pipeline.core.shards import read_tar_samples
from pipeline.core.workdir import sweep_stale
from pipeline.core.writer import shard_is_complete
from pipeline.egoexoclip.writer import OutputFormat
from tests.conftest import SHARD_SAMPLES, build

REPO = Path(__file__).resolve().parent.parent
TOP_LEVEL = ("stats.json", "manifest.parquet", "errors.jsonl", "egoexoclip-val.wids.json")


def _files(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir()) if p.is_file()}


def _cli(sample_root: str, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "pipeline.egoexoclip", "--root", sample_root, "--out", str(out), "--splits", "val",
        "--max-samples-per-shard", str(SHARD_SAMPLES), *extra,
    ]  # fmt: skip


def _env(tmp_root: Path) -> dict:
    return {**os.environ, "EXO2EGO_TMP": str(tmp_root), "TMPDIR": str(tmp_root)}


def _wait(cond, proc: subprocess.Popen, what: str, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        assert proc.poll() is None, f"the build ended (status {proc.returncode}) before {what}"
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def _started(cmd: list[str], env: dict):
    """The CLI in its own session; killed with its children if still running at the end. `finish(proc)` waits
    for it and returns its stderr (kept in a file: a pipe nobody reads could fill up and stall the build)."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=log, text=True)  # fmt: skip
        proc.log = log
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _finish(proc: subprocess.Popen, timeout: float) -> str:
    proc.wait(timeout=timeout)
    proc.log.seek(0)
    return proc.log.read()


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def reference(sample_root, tmp_path_factory) -> Path:
    """An undisturbed build of the val split (2 shards)."""
    out = tmp_path_factory.mktemp("safety-ref")
    build(sample_root, out, splits=("val",))
    assert sum(p.suffix == ".tar" for p in out.iterdir()) >= 2
    return out


def test_a_second_build_on_the_same_out_stops_at_once_and_the_first_completes(
    sample_root, reference, tmp_path
):
    """Two builds into one OUT with different options (mp4, then --frames 4 while it runs): the second exits 2
    with one error line naming the holder, touching nothing; the first completes, identical to the reference.
    The first build's start also removes the work directory a dead build left behind."""
    tmp_root, out = tmp_path / "tmp", tmp_path / "out"
    tmp_root.mkdir()
    stale = tmp_root / f"exo2ego-0123456789ab-{_dead_pid()}"
    (stale / "egoexoclip-val-000000-x").mkdir(parents=True)
    (stale / ".owner").write_text(f"{socket.gethostname()} 1\n")
    env = _env(tmp_root)
    with _started(_cli(sample_root, out), env) as first:
        holder = _wait(lambda: (out / ".lock").exists() and (out / ".lock").read_text(), first, "the lock")
        assert json.loads(holder)["pid"] == first.pid
        assert _wait(lambda: list(tmp_root.glob(f"exo2ego-*-{first.pid}")), first, "its work directory")
        assert not stale.exists()  # removed at the start of the next build
        started = time.monotonic()
        second = subprocess.run(_cli(sample_root, out, "--frames", "4"), cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        second_s = time.monotonic() - started
        assert first.poll() is None, "the first build ended before the second one was started"
        assert second.returncode == 2, second.stderr[-2000:]
        # one error line (a progress bar may have drawn on the same terminal line before it, after a \r)
        errors = [line for line in second.stderr.splitlines() if "error: " in line]
        assert len(errors) == 1, second.stderr[-2000:]
        error = errors[0]  # a line of its own: the lock is taken before any progress bar is drawn
        assert "\r" not in second.stderr and "takes" not in second.stderr, second.stderr[-2000:]
        assert error.startswith(f"error: --out {out} is in use by another build (pid {first.pid} on ")
        assert "Traceback" not in second.stderr
        workdirs = [p.name for p in tmp_root.iterdir() if re.fullmatch(r"exo2ego-[0-9a-f]{12}-\d+", p.name)]
        assert len(workdirs) == 1 and workdirs[0].endswith(f"-{first.pid}")  # the second made none
        stderr = _finish(first, 300)
    assert first.returncode == 0, stderr[-2000:]
    print(f"second build refused after {second_s:.1f}s (interpreter start included)")
    assert _files(out) == _files(reference)  # every file, markers included; .lock removed
    assert list(tmp_root.iterdir()) == []  # the work directory (Beam's temp dirs inside) is gone


def _same_size_other_tar(path: Path) -> None:
    """Rewrite one text member so the tar is another valid tar of exactly the same size."""
    data = bytearray(path.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".txt"))
    start = member.offset_data
    text = bytes(data[start : start + member.size])
    data[start : start + member.size] = text.swapcase() if text.swapcase() != text else b"x" * member.size
    path.write_bytes(bytes(data))
    with tarfile.open(path) as tar:  # still a well-formed tar
        assert len(tar.getmembers()) > 0


def test_resume_rebuilds_a_shard_whose_tar_was_replaced_by_one_of_the_same_size(
    sample_root, reference, tmp_path
):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    tar = out / "egoexoclip-val-000000.tar"
    size, before = tar.stat().st_size, hashlib.sha256(tar.read_bytes()).hexdigest()
    _same_size_other_tar(tar)
    assert tar.stat().st_size == size and hashlib.sha256(tar.read_bytes()).hexdigest() != before
    marker = json.loads((out / "egoexoclip-val-000000_stats.json").read_text())
    assert not shard_is_complete(str(out), "egoexoclip-val-000000", marker["fingerprint"])
    kept = (out / "egoexoclip-val-000001.tar").stat().st_mtime_ns
    build(sample_root, out, splits=("val",))
    assert (out / "egoexoclip-val-000001.tar").stat().st_mtime_ns == kept  # a verified shard is kept
    assert _files(out) == _files(reference)


def test_a_frames_build_into_an_mp4_out_rebuilds_every_shard_consistently(sample_root, reference, tmp_path):
    """The issue's mix: mp4 shards, then `--frames 4` into the same OUT without --overwrite. Every shard is
    rebuilt as frames; each marker matches its files (sha256) and the new fingerprint; manifests, stats and
    tars agree."""
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    frames = OutputFormat("pairs", ClipFormat(kind="frames", n_frames=4, size=64))
    stats = build(sample_root, out, splits=("val",), output=frames)
    assert stats["options"]["kind"] == "frames"
    markers = sorted(out.glob("*_stats.json"))
    assert len(markers) == stats["splits"]["val"]["shards"] >= 1
    for m in markers:  # the options are part of every shard's fingerprint
        old = reference / m.name
        assert (
            not old.exists()
            or json.loads(old.read_text())["fingerprint"] != json.loads(m.read_text())["fingerprint"]
        )
    manifest_keys = set(pq.read_table(out / "manifest.parquet").column("key").to_pylist())
    tar_keys = set()
    for m in markers:
        s = json.loads(m.read_text())
        name = m.name.removesuffix("_stats.json")
        assert shard_is_complete(str(out), name, s["fingerprint"])
        samples = read_tar_samples(out / f"{name}.tar")
        assert samples and len(samples) == s["n_samples"]
        for sample in samples:
            members = set(sample) - {"__key__"}
            assert members == {"json", "txt", *(f"{v}.{i:02d}.jpg" for v in ("ego", "exo") for i in range(4))}
        keys = {sample["__key__"] for sample in samples}
        assert keys == set(pq.read_table(out / f"{name}.parquet").column("key").to_pylist())
        tar_keys |= keys
    assert tar_keys == manifest_keys and len(manifest_keys) == stats["samples"]
    assert {p.name for p in out.glob("*.tar")} == {m.name.replace("_stats.json", ".tar") for m in markers}


def test_sigterm_during_a_rebuild_leaves_no_claim_no_work_dir_and_no_decoder(
    sample_root, reference, tmp_path
):
    """SIGTERM to the CLI while it rebuilds (--overwrite) an OUT holding a complete build: exit status 143, no
    top-level file still claims the old dataset, no half-written file, no lock, no work directory, no ffmpeg
    left running; every marker left vouches for its files, and the next run completes the same bytes."""
    tmp_root, out = tmp_path / "tmp", tmp_path / "out"
    tmp_root.mkdir()
    shutil.copytree(reference, out)
    with _started(_cli(sample_root, out, "--overwrite"), _env(tmp_root)) as proc:

        def decoders():
            try:
                kids = psutil.Process(proc.pid).children(recursive=True)
                return [p for p in kids if "ffmpeg" in p.name()]
            except psutil.Error:
                return []

        running = _wait(decoders, proc, "an ffmpeg decoder")
        assert not (out / "stats.json").exists()  # removed before any shard was touched
        workdir = next(tmp_root.glob(f"exo2ego-*-{proc.pid}"))
        proc.send_signal(signal.SIGTERM)
        stderr = _finish(proc, 60)
    assert proc.returncode == 143, stderr[-2000:]
    assert "terminated (SIGTERM)" in stderr
    for p in running:
        assert not p.is_running() or p.status() == psutil.STATUS_ZOMBIE, f"ffmpeg {p.pid} left running"
    assert not [n for n in TOP_LEVEL if (out / n).exists()]
    assert not list(out.glob("*.tmp")) and not (out / ".lock").exists()
    assert not workdir.exists()
    assert [p.name for p in tmp_root.iterdir() if not p.name.startswith("exo2ego-progress-")] == []
    for m in out.glob("*_stats.json"):  # a marker left behind still vouches for its (untouched) files
        assert shard_is_complete(
            str(out), m.name.removesuffix("_stats.json"), json.loads(m.read_text())["fingerprint"]
        )
    build(sample_root, out, splits=("val",))
    assert _files(out) == _files(reference)


def test_stale_work_dirs_are_removed_only_for_gone_processes_of_this_host(tmp_path):
    host = socket.gethostname()
    gone, alive = tmp_path / f"exo2ego-aaaa-{_dead_pid()}", tmp_path / f"exo2ego-bbbb-{os.getpid()}"
    other_host, other = tmp_path / f"exo2ego-cccc-{_dead_pid()}", tmp_path / "exo2ego-progress-x1"
    for d, owner in ((gone, host), (alive, host), (other_host, "elsewhere"), (other, host)):
        d.mkdir()
        (d / ".owner").write_text(f"{owner} 1\n")
    assert sweep_stale(str(tmp_path)) == [str(gone)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (alive, other_host, other))
