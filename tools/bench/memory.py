"""The memory runs of the Ego-ExoClip bench: worker peak RSS on a 3.5-minute and a long take, per format, idle and
with every core busy; `--only memory` runs them alone and merges them into OUT/bench.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from pipeline.core.clips import ClipFormat
from tools.bench.inputs import ensure_inputs
from tools.bench.sampler import busy_cores
from tools.bench.settings import FRAMES_FMT, TARGETS
from tools.bench.table import machine, memory_rows
from tools.bench.worker import run_pipeline

MEM_CONDITIONS = ("idle", "contended")


def memory_section(inputs: dict, work: Path, formats, log) -> dict:
    """Worker peak RSS (process + live ffmpeg children) on the short and the long take, per format, one build at
    a time: "idle" (nothing else started by the bench; the machine may still be shared) and "contended" (every
    core kept busy by busy loops). Each run records the load average just before it."""
    mem: dict = {}
    short, long_ = inputs["mem"]["short"], inputs["mem"]["long"]
    log(f"memory: {short['minutes']:.1f}-min vs {long_['minutes']:.1f}-min take, idle and with every core busy")
    for cond in MEM_CONDITIONS:
        for label in ("long", "short"):
            for kind, fmt in formats:
                load = os.getloadavg()
                with busy_cores() if cond == "contended" else contextlib.nullcontext(0) as hogs:
                    r = run_pipeline(inputs["mem"][label]["root"], work / f"mem_{label}_{kind}", fmt,
                                     work / f"rep_mem_{cond}_{label}_{kind}.json")  # fmt: skip
                entry = {
                    "minutes": inputs["mem"][label]["minutes"],
                    "worker_peak_mb": r["worker_peak_mb"],
                    "python_peak_mb": r["python_peak_mb"],
                    "ffmpeg_peak_mb": r["ffmpeg_peak_mb"],
                    "ffmpeg_peak_process": r.get("ffmpeg_peak_process", ""),
                    "pairs": r["pairs"],
                    "wall_s": r["wall_s"],
                    "busy_loops": hogs,
                    "load_avg_before": [round(x, 2) for x in load],
                }
                log(f"  {cond} {label} {kind}: peak {r['worker_peak_mb']:.0f} MB (python {r['python_peak_mb']:.0f}, "
                    f"ffmpeg {r['ffmpeg_peak_mb']:.0f}), wall {r['wall_s']:.0f} s, load before {entry['load_avg_before']}")  # fmt: skip
                node = mem.setdefault(kind, {})
                (node if cond == "idle" else node.setdefault("contended", {}))[label] = entry
    for node in mem.values():
        for m in (node, node["contended"]):
            m["worker_peak_mb"] = max(m["short"]["worker_peak_mb"], m["long"]["worker_peak_mb"])
            m["growth_mb"] = m["long"]["worker_peak_mb"] - m["short"]["worker_peak_mb"]
    return mem


def memory_targets(mem: dict) -> dict:
    if not mem:
        return {}
    runs = [m for node in mem.values() for m in (node, node.get("contended", {})) if m]
    return {
        "worker_peak_under_1GB": max(m["worker_peak_mb"] for m in runs) < TARGETS["worker_peak_mb"],
        "memory_growth_under_100MB": max(m["growth_mb"] for m in runs) < TARGETS["growth_mb"],
    }


def memory_only(args) -> dict:
    """`--only memory`: the memory runs alone, merged into OUT/bench.json (other sections kept as they were)."""
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    inputs = ensure_inputs(out, args.mem_repeat, log)
    work = out / "work"
    work.mkdir(exist_ok=True)
    mem = memory_section(inputs, work, (("mp4", ClipFormat()), ("frames", ClipFormat(**FRAMES_FMT))), log)
    path = out / "bench.json"
    res = json.loads(path.read_text()) if path.exists() else {}
    res["memory"] = mem
    res["memory_machine"] = machine()
    res["memory_wall_s"] = time.perf_counter() - t_start
    res.setdefault("targets", {}).update(memory_targets(mem))
    path.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    print("\n".join(memory_rows(mem)))
    print("  targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in memory_targets(mem).items()))
    log(f"written {path}")
    return res
