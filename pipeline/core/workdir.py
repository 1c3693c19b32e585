"""One temporary work directory per build: every temporary file of the build lives under it.

The driver makes `<tmp root>/exo2ego-<build id>-<driver pid>` when a build starts (`build_workdir`), where the
tmp root is `$EXO2EGO_TMP` or the system temp dir, and removes it when the build ends, normally, with an
exception or on SIGTERM (pipeline/core/session.py). A directory of that form whose pid no longer runs on this
host (a build killed with SIGKILL, a power cut) is removed when the next build starts (`sweep_stale`).

Workers find the directory by its *name*, not its path: each machine has its own disk and tmp root. The name
travels in the environment (`EXO2EGO_WORKDIR`, inherited by the local runners' worker processes: direct,
direct-mp, a local Dask cluster) and inside the pipeline (pipeline.core.transforms.WriteShards captures it when
the pipeline is built, so remote workers - Dataflow, Spark, Flink, a remote Dask cluster - use the same name on
their own disks). During a build the driver also points `TMPDIR` (and Python's `tempfile`) at the directory,
so the temporary directories Beam and Dask make for themselves go there too and leave with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator

LOG = logging.getLogger(__name__)

ENV_NAME = "EXO2EGO_WORKDIR"  # name (not path) of the current build's work directory
ENV_ROOT = "EXO2EGO_TMP"  # where work directories are made (default: the system temp dir)
PREFIX = "exo2ego-"
OWNER = ".owner"  # "<host> <pid>" of the process that made the directory
_NAME_RE = re.compile(r"^exo2ego-[A-Za-z0-9]+-(\d+)$")


def tmp_root() -> str:
    """Where work directories are made on this machine."""
    return os.environ.get(ENV_ROOT) or tempfile.gettempdir()


def current_name() -> str | None:
    """Name of the current build's work directory, when this process runs inside one (else None)."""
    name = os.environ.get(ENV_NAME)
    return name if name and _NAME_RE.match(name) else None


def worker_dir(name: str | None = None) -> str:
    """This machine's copy of the build's work directory `name` (default: the current build's), created when
    missing. Outside any build (a library call that opened no session) the tmp root itself: callers make their
    own temporary directories in it and remove them."""
    name = name or current_name()
    if name is None:
        return tmp_root()
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid work directory name {name!r}")
    path = os.path.join(tmp_root(), name)
    os.makedirs(path, exist_ok=True)
    return path


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_stale(root: str | None = None) -> list[str]:
    """Remove the work directories under `root` whose process is gone (this host's pids only); returns them."""
    root = root or tmp_root()
    host = socket.gethostname()
    removed = []
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return removed
    for entry in entries:
        m = _NAME_RE.match(entry)
        path = os.path.join(root, entry)
        if not m or not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            with open(os.path.join(path, OWNER)) as f:
                owner_host = f.read().split()[0]
        except (OSError, IndexError):
            owner_host = host  # a worker's directory: made on this machine
        if owner_host != host or _pid_running(int(m.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            removed.append(path)
            LOG.info("removed the work directory of a build that is gone: %s", path)
    return removed


@contextlib.contextmanager
def build_workdir() -> Iterator[str]:
    """Make this build's work directory (after removing stale ones), export its name, point the temp dir of
    this process and its children at it; restore everything and remove it on exit."""
    root = os.path.abspath(tmp_root())
    os.makedirs(root, exist_ok=True)
    sweep_stale(root)
    name = f"{PREFIX}{uuid.uuid4().hex[:12]}-{os.getpid()}"
    path = os.path.join(root, name)
    os.makedirs(path)
    with open(os.path.join(path, OWNER), "w") as f:
        f.write(f"{socket.gethostname()} {os.getpid()}\n")
    saved_env = {k: os.environ.get(k) for k in (ENV_NAME, ENV_ROOT, "TMPDIR")}
    saved_tempdir = tempfile.tempdir
    os.environ.update({ENV_NAME: name, ENV_ROOT: root, "TMPDIR": path})
    tempfile.tempdir = path
    try:
        yield path
    finally:
        tempfile.tempdir = saved_tempdir
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(path, ignore_errors=True)
