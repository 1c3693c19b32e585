"""One Ego-ExoClip build in a fresh child process, reporting its own CPU time and peak memory.

    python -m tools.bench.worker --root R --build-out O --clip '{"kind": "mp4", ...}' --report REPORT.json

run_pipeline starts it and returns the report; windows_from_manifest reads the windows the build cut.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from pipeline.core.clips import ClipFormat
from tools.bench.sampler import MemorySampler, _status_kb
from tools.bench.settings import WINDOW_SEC


def worker_main(args) -> int:
    """Child process: one pipeline build, reporting its own CPU time around run() and its peak memory."""
    from pipeline.egoexoclip import BuildConfig, run
    from pipeline.egoexoclip.windows import WindowRule
    from pipeline.egoexoclip.writer import OutputFormat

    clip = ClipFormat(**json.loads(args.clip))
    cfg = BuildConfig(
        root=args.root,
        out=args.build_out,
        splits=("train",),
        rule=WindowRule("fixed", WINDOW_SEC),
        output=OutputFormat(clip=clip),
        overwrite=True,
    )
    with MemorySampler() as mem:
        t0, w0 = os.times(), time.perf_counter()
        stats = run(cfg, [])
        t1, w1 = os.times(), time.perf_counter()
    own = (t1.user - t0.user) + (t1.system - t0.system)
    kids = (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)
    report = {
        "cpu_s": own + kids,
        "python_cpu_s": own,
        "ffmpeg_cpu_s": kids,
        "wall_s": w1 - w0,
        "python_peak_mb": _status_kb("self", "VmHWM") / 1024,
        "ffmpeg_peak_mb": mem.peak_child_kb / 1024,
        "ffmpeg_peak_process": mem.peak_child,
        "worker_peak_mb": mem.peak_total_kb / 1024,
        "pairs": stats["pairs"],
        "samples": stats["samples"],
        "bytes": sum(d["bytes"] for d in stats["splits"].values()),
        "failures": stats["failures_by_scope_and_reason"],
    }
    Path(args.report).write_text(json.dumps(report))
    return 0


def run_pipeline(root: Path, build_out: Path, clip: ClipFormat, report: Path) -> dict:
    shutil.rmtree(build_out, ignore_errors=True)
    cmd = [sys.executable, "-m", "tools.bench.worker", "--root", str(root), "--build-out", str(build_out),
           "--clip", json.dumps(dataclasses.asdict(clip)), "--report", str(report)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline worker failed: {proc.stderr[-3000:]}")
    return json.loads(report.read_text())


def windows_from_manifest(build_out: Path, views: list[dict]) -> dict[tuple[str, str], list[tuple[int, int]]]:
    import pyarrow.parquet as pq

    t = pq.read_table(build_out / "manifest.parquet").to_pylist()
    win: dict[tuple[str, str], set] = defaultdict(set)
    for r in t:
        win[(r["take_name"], r["ego_cam"])].add((r["ego_start_frame"], r["ego_end_frame"]))
        win[(r["take_name"], r["exo_cam"])].add((r["exo_start_frame"], r["exo_end_frame"]))
    return {(v["take"], v["cam"]): sorted(win[(v["take"], v["cam"])]) for v in views}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench.worker", description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--build-out", required=True)
    ap.add_argument("--clip", required=True, help="the ClipFormat as JSON")
    ap.add_argument("--report", required=True)
    return worker_main(ap.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
