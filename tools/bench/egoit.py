"""`make bench-egoit`: throughput of the EgoIT build on the bundled mini-release, mp4 and frames, one run each.

    python -m tools.bench.egoit [--out data/bench_egoit] [--runs 1]

Each build runs in a fresh child process (`python -m pipeline.egoit`, DirectRunner, new output folder); the
figures are wall time and CPU time (user + sys of the build and its ffmpeg children, from getrusage), samples
per second and per core-second. Python/Beam start-up, reading, conversion and loading the embedding model are
fixed costs that dominate a build this small (58 samples), so the bench also runs the same build with every
source's mixing ratio at 0 (everything up to mixing, no video touched) and reports the marginal cost of the
samples: (build CPU - fixed CPU) / samples, which is what grows with a real build.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tools.samples.egoit import generate_sample

MODES = {"mp4": [], "frames": ["--frames", "16", "--size", "336"]}


def fixed_cost_config(sample: Path) -> Path:
    """The mini-release's config with every source's ratio at 0: the build reads, converts, deduplicates and
    mixes everything away (no video is probed or cut)."""
    import yaml

    raw = yaml.safe_load((sample / "egoit.yaml").read_text())
    for spec in raw["sources"].values():
        spec["ratio"] = 0.0
    path = sample / "egoit-fixed-cost.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(config: Path, out: Path, extra: list[str]) -> dict:
    """One build in a child process."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "pipeline.egoit", "--config", str(config), "--out", str(out), *extra]
    cpu0, t0 = _children_cpu(), time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall, cpu = time.monotonic() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"build failed: {proc.stderr[-2000:]}")
    stats = json.loads((out / "stats.json").read_text())
    n = stats["samples"]
    return {
        "samples": n,
        "bytes": sum(d["bytes"] for d in stats["splits"].values()),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "samples_per_s": round(n / wall, 2),
        "samples_per_cpu_s": round(n / cpu, 2) if cpu else 0.0,
        "near_duplicates_removed": stats["near_duplicates_removed"]["total"],
    }


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench.egoit", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="data/bench_egoit")
    args = ap.parse_args(argv)
    root = Path(args.out)
    t0 = time.monotonic()
    sample = generate_sample(root / "sample", force=True)
    generation_s = round(time.monotonic() - t0, 2)
    results = {"machine": machine(), "sample_generation_s": generation_s, "builds": {}}
    fixed = measure(fixed_cost_config(sample), root / "build-fixed", [])
    results["fixed_cost"] = {k: fixed[k] for k in ("wall_s", "cpu_s")}
    for mode, extra in MODES.items():
        r = measure(sample / "egoit.yaml", root / f"build-{mode}", extra)
        marginal_cpu = r["cpu_s"] - fixed["cpu_s"]
        r["marginal_cpu_s_per_sample"] = round(marginal_cpu / r["samples"], 4)
        r["marginal_samples_per_cpu_s"] = round(r["samples"] / marginal_cpu, 2) if marginal_cpu > 0 else None
        results["builds"][mode] = r
    (root / "bench.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    print(f"EgoIT bench on the bundled mini-release ({results['machine']['cpus']} CPUs); sample generated in "
          f"{generation_s}s")  # fmt: skip
    f = results["fixed_cost"]
    print(f"fixed cost (read, convert, dedup, mix; no video): {f['wall_s']} s wall, {f['cpu_s']} s CPU")
    print(f"{'mode':8} {'samples':>8} {'wall s':>8} {'cpu s':>8} {'samples/s':>10} {'marginal cpu s/sample':>22} {'MB':>6}")
    for mode, r in results["builds"].items():
        print(f"{mode:8} {r['samples']:>8} {r['wall_s']:>8} {r['cpu_s']:>8} {r['samples_per_s']:>10} "
              f"{r['marginal_cpu_s_per_sample']:>22} {r['bytes'] / 1e6:>6.1f}")  # fmt: skip
    print(f"written to {root / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
