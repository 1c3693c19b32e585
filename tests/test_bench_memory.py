"""The bench's memory sampler counts a child only once it has exec'd (a forked child shares our pages)."""

from __future__ import annotations

import os
import subprocess
import time

from tools.bench import sampler as bench
from tools.bench.sampler import MemorySampler, exec_done


def test_forked_child_is_not_counted_until_exec():
    me = os.readlink("/proc/self/exe")
    pid = os.fork()
    if pid == 0:  # child: never execs, shares the parent's pages copy-on-write
        time.sleep(2)
        os._exit(0)
    try:
        assert not exec_done(pid, me)
    finally:
        os.waitpid(pid, 0)
    proc = subprocess.Popen(["sleep", "2"])
    try:
        deadline = time.monotonic() + 2
        while not exec_done(proc.pid, me) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert exec_done(proc.pid, me)
    finally:
        proc.kill()
        proc.wait()


def test_sampler_total_is_not_doubled_by_forks():
    """A 200 MB parent forking children that sit before exec: the sampled total stays near one copy."""
    ballast = bytearray(200 << 20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1  # resident
    base = bench._status_kb("self", "VmRSS") / 1024
    with MemorySampler(interval=0.02) as mem:
        kids = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                time.sleep(0.3)
                os._exit(0)
            kids.append(pid)
        for pid in kids:
            os.waitpid(pid, 0)
    total = mem.peak_total_kb / 1024
    assert total < base + 100, (base, total)  # one copy of this process, not two
    assert mem.peak_child_kb == 0
    del ballast
