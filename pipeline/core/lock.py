"""One build at a time per output directory.

A local OUT (a path or file://) is locked with `fcntl.flock` on `OUT/.lock`, held by the driver for the whole
build; the file says who holds it (pid, host, start time) and is removed when the build ends. The kernel drops
the lock when the process dies however it dies, so a killed build never leaves OUT locked (a left-over
`.lock` file of a SIGKILLed build is not a lock). flock works across processes of one machine, and across
machines on filesystems that forward it (NFSv4, Lustre, CephFS; not every FUSE mount).

A non-local OUT (gs://, s3://, any other Beam filesystem) is not locked: object stores have no lock that every
Beam filesystem offers. Run one build per remote OUT; resume still verifies every kept shard (sha256 against
its marker), so a shard written by another build is found and rebuilt by the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator

from pipeline.core.localize import is_local

LOG = logging.getLogger(__name__)
LOCK_NAME = ".lock"

_held: dict[tuple[str, int], int] = {}  # (lock file path, thread) -> nesting depth in this process
_held_lock = threading.Lock()


class OutLocked(Exception):
    """Another build holds OUT. The message is one line."""


def _holder(path: str) -> str:
    try:
        with open(path) as f:
            info = json.loads(f.read() or "{}")
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def _acquire(path: str, out: str) -> int:
    """Open, lock (non-blocking) and claim the lock file; retried when the file was replaced meanwhile."""
    for _ in range(50):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutLocked(
                f"--out {out} is in use by another build ({_holder(path)}); wait for it to finish or choose "
                f"another --out"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:  # the holder removes the file before it unlocks: a lock on a removed file is no lock
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            return fd
        os.close(fd)
    raise OutLocked(f"--out {out}: could not take {path} (replaced again and again)")


@contextlib.contextmanager
def out_lock(out: str) -> Iterator[str | None]:
    """Hold OUT's lock for the block (OutLocked at once when another build holds it); yields the lock file
    path, or None for a non-local OUT (not locked). Re-entrant within one thread."""
    if not is_local(out):
        LOG.info("%s is not a local path: no lock is taken (run one build per remote OUT)", out)
        yield None
        return
    local = os.path.abspath(out.removeprefix("file://"))
    os.makedirs(local, exist_ok=True)
    path = os.path.join(os.path.realpath(local), LOCK_NAME)
    key = (path, threading.get_ident())  # nested in the same thread: the same build (CLI -> run())
    with _held_lock:
        depth = _held.get(key, 0)
        if depth:
            _held[key] = depth + 1
    if depth:
        try:
            yield path
        finally:
            with _held_lock:
                _held[key] -= 1
        return
    fd = _acquire(path, out)  # another thread of this process conflicts like another process
    with _held_lock:
        _held[key] = 1
    try:
        yield path
    finally:
        with _held_lock:
            _held.pop(key, None)
        with contextlib.suppress(OSError):
            os.unlink(path)  # before unlocking (see _acquire)
        os.close(fd)  # releases the flock
