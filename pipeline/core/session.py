"""What the driver holds while a build runs: OUT's lock (pipeline/core/lock.py), the build's work directory
(pipeline/core/workdir.py) and a SIGTERM handler.

    with build_session(out):
        ... run the pipeline ...

On SIGTERM the handler kills every descendant process (Beam and Dask worker processes, ffmpeg decoders, which
run in sessions of their own so a process-group kill would miss them), removes the work directory and the lock
file, and exits with status 143 (128 + SIGTERM). SIGKILL cannot be handled: the kernel drops the lock, and the
next build removes the work directory. Re-entrant within one thread (the CLI opens a session around its engine,
`run()` opens one for library callers), and the handler is only installed from the main thread of a process
that has no SIGTERM handler of its own.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from pipeline.core.lock import OutLocked, out_lock
from pipeline.core.workdir import build_workdir

__all__ = ["OutLocked", "build_session", "kill_descendants", "on_terminate"]

LOG = logging.getLogger(__name__)
TERMINATED = 128 + signal.SIGTERM
_active = threading.local()
_on_terminate: list[Callable[[], None]] = []


def on_terminate(fn: Callable[[], None]) -> Callable[[], None]:
    """Run fn (a quick clean-up, e.g. removing a folder the driver made outside the session) when the build is
    terminated by SIGTERM, before the process exits; returns a function that unregisters it."""
    _on_terminate.append(fn)
    return lambda: _on_terminate.remove(fn) if fn in _on_terminate else None


def kill_descendants(timeout_s: float = 5.0) -> list[int]:
    """SIGKILL every process descended from this one (listed before any is killed, so none is reparented
    out of sight); waits up to timeout_s for them; returns their pids."""
    import psutil  # a dependency of distributed (pinned in requirements.txt)

    try:
        procs = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=timeout_s)
    return [p.pid for p in procs]


@contextlib.contextmanager
def _sigterm_handler(workdir: str, lock_path: str | None) -> Iterator[None]:
    """Install the SIGTERM handler (main thread, no handler of the host's): kill descendants, remove the work
    directory, OUT's half-written `*.tmp` files and the lock file, exit 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):  # the host process handles SIGTERM itself
        yield
        return

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
        try:
            killed = kill_descendants()
            shutil.rmtree(workdir, ignore_errors=True)
            for fn in list(_on_terminate):
                with contextlib.suppress(Exception):
                    fn()
            if lock_path:  # a local OUT: nothing writes there any more (the shard writers were killed)
                out = os.path.dirname(lock_path)
                for tmp in glob.glob(os.path.join(glob.escape(out), "*.tmp")):
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                with contextlib.suppress(OSError):
                    os.unlink(lock_path)
            sys.stderr.write(
                f"terminated (SIGTERM): {len(killed)} child processes killed, work directory removed; "
                "complete shards are kept, run the same command to resume\n"
            )
            sys.stderr.flush()
        finally:
            os._exit(TERMINATED)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def build_session(out: str | None) -> Iterator[str]:
    """Lock OUT (OutLocked at once if another build holds it; no lock for a remote OUT or out=None), make the
    build's work directory and handle SIGTERM for the block; yields the work directory."""
    current = getattr(_active, "workdir", None)
    if current is not None:
        with out_lock(out) if out else contextlib.nullcontext():
            yield current
        return
    with (
        out_lock(out) if out else contextlib.nullcontext() as lock_path,
        build_workdir() as workdir,
        _sigterm_handler(workdir, lock_path),
    ):
        _active.workdir = workdir
        try:
            yield workdir
        finally:
            _active.workdir = None
