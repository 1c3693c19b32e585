"""Process-level measurement of a build: the memory sampler (this process + its exec'd children) and busy loops
that keep every core busy (the "contended" condition of the memory runs).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def _status_kb(pid: str | int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children(pid: int) -> list[str]:
    kids = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                kids += Path(f"/proc/{pid}/task/{task}/children").read_text().split()
    return kids


def exec_done(pid: str | int, parent_exe: str) -> bool:
    """Whether a child has exec'd its own program. Between fork (or vfork) and exec a child shares the parent's
    pages, so its RSS is the parent's: counting it then adds a second copy of the Python worker (~250 MB) to
    the total and to the child peak. On a busy machine that window is long enough to be sampled now and then:
    the +172 MB "growth" under load and the 437-496 MB peaks of earlier runs were such double counts."""
    try:
        return os.readlink(f"/proc/{pid}/exe") != parent_exe
    except OSError:
        return False


def _describe(pid: str) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return ""
    src = argv[argv.index("-i") + 1] if "-i" in argv[:-1] else "?"
    role = "probe" if "copy" in argv else "extract"
    return f"{role} {'/'.join(Path(src).parts[-2:])}"


class MemorySampler:
    """Peak of (this process + its live children) resident memory, sampled every `interval` s, plus the exact
    peaks (VmHWM) of this process and of the largest child. ru_maxrss is no use here: Linux carries it across
    fork + exec, so a child reports at least its parent's size at fork."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak_total_kb, self.peak_child_kb = interval, 0, 0
        self.peak_child = ""  # which child reached peak_child_kb: "extract <input>" or "probe <input>"
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()

    def _run(self):
        me = os.getpid()
        exe = os.readlink(f"/proc/{me}/exe")
        while not self._stop:
            total = _status_kb(me, "VmRSS")
            for kid in _children(me):
                if not exec_done(kid, exe):
                    continue  # forked, not yet exec'd: its pages are ours (counted above)
                total += _status_kb(kid, "VmRSS")
                hwm = _status_kb(kid, "VmHWM")
                if hwm > self.peak_child_kb:
                    self.peak_child_kb, self.peak_child = hwm, _describe(kid)
            self.peak_total_kb = max(self.peak_total_kb, total)
            time.sleep(self.interval)


@contextlib.contextmanager
def busy_cores(n: int | None = None):
    """`n` (default: every core) busy-loop processes for the duration: the contention of a shared machine, made
    by the bench itself and stopped afterwards (each by its own pid)."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(n or os.cpu_count() or 1)
    ]
    try:
        time.sleep(1.0)  # let them reach the run queue
        yield len(hogs)
    finally:
        for h in hogs:
            h.kill()
        for h in hogs:
            h.wait()
