"""Run a module as `python -m MODULE ARGS...` does, then write how this process's CPU time splits to REPORT (JSON):
its own (the build's Python) and its children's (the ffmpeg processes it ran and waited for).

    python -m tools.bench.run_module [--profile PROF] REPORT MODULE [ARGS...]

--profile: under cProfile with a CPU-time clock (time.process_time: waiting for a child or a lock costs
nothing), stats dumped to PROF.
"""

from __future__ import annotations

import cProfile
import json
import os
import runpy
import sys
import time
from pathlib import Path


def main() -> int:
    argv = sys.argv[1:]
    prof_path = None
    if argv[0] == "--profile":
        prof_path, argv = argv[1], argv[2:]
    report, module, *args = argv
    sys.argv = [module, *args]
    code: int | str | None = 0
    started = time.perf_counter()
    prof = cProfile.Profile(time.process_time) if prof_path else None
    try:
        if prof:
            prof.enable()
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as err:
        code = err.code
    finally:
        if prof:
            prof.disable()
            prof.dump_stats(prof_path)
        t = os.times()
        Path(report).write_text(json.dumps({
            "python_cpu_s": t.user + t.system,
            "children_cpu_s": t.children_user + t.children_system,
            "wall_s": time.perf_counter() - started,
            "exit": code,
        }))  # fmt: skip
    return code if isinstance(code, int) else (0 if code is None else 1)


if __name__ == "__main__":
    raise SystemExit(main())
