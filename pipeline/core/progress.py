"""Build progress: workers report each finished group (a take, a source video), the driver shows a bar.

The driver knows how much there is to do only once the plan exists, and that happens inside the pipeline, on
workers that may be other processes. So progress travels through files, never through the outputs:

* the driver (`ProgressBar`) makes an empty folder outside OUT (`<tmp>/exo2ego_progress-*`, removed at the end,
  also on SIGTERM) and names it in the environment variable
  `EXO2EGO_PROGRESS_DIR`, which the local engines' worker processes inherit (DirectRunner in process and
  multi-processing, a local Dask cluster);
* workers append one JSON line per event to their own file there (`record`): a `plan` line per shard (groups,
  clips, already complete or not) and a `group` line per finished group (clips, samples, seconds);
* a driver thread reads the new complete lines every half second (`ProgressReader`), folds them (`aggregate`,
  pure) and updates a tqdm bar on stderr: groups done/total, clips/s, ETA. The folder is removed at the end.

Where the variable is unset (tests calling the build directly, workers on other machines, `--quiet`),
`record` does nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

ENV = "EXO2EGO_PROGRESS_DIR"
PREFIX = "exo2ego_progress-"  # not a build work directory's name (exo2ego-<id>-<pid>): never swept as one
POLL_S = 0.5
LOG = logging.getLogger(__name__)


def _on_terminate(fn):
    """Register fn with the build session's SIGTERM clean-up (pipeline/core/session.py, which exits without
    unwinding); returns the function that unregisters it."""
    try:
        from pipeline.core.session import on_terminate
    except ImportError:  # no session module: nothing to register with
        return lambda: None
    return on_terminate(fn)


def requested() -> bool:
    """Whether the driver of this build asked workers for progress events."""
    folder = os.environ.get(ENV)
    return bool(folder) and os.path.isdir(folder)


def record(event: str, **fields) -> None:
    """Append one event line to this process's progress file, when the driver asked for progress. Never
    raises: progress must not fail a build."""
    if not requested():
        return
    folder = os.environ[ENV]
    line = json.dumps({"event": event, **fields}, sort_keys=True) + "\n"
    path = os.path.join(folder, f"{socket.gethostname()}-{os.getpid()}.jsonl")
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
    except OSError as err:  # e.g. the driver removed the folder at the end of an interrupted build
        LOG.debug("progress not recorded: %s", err)


@dataclass(frozen=True)
class Progress:
    total: int | None  # groups planned (None until a plan line arrives)
    done: int  # groups written by this build
    skipped: int  # groups of shards that were already complete (resume)
    clips: int  # clips cut by this build
    samples: int  # samples written by this build


def aggregate(lines: Iterable[str]) -> Progress:
    """Fold event lines (any order, any number of files) into the build's progress. A shard's plan line
    counts once (the last one); a group counts once per (shard, group) however often it is reported; lines
    that are not JSON objects of a known event are ignored."""
    plans: dict[str, dict] = {}
    groups: dict[tuple[str, str], dict] = {}
    for line in lines:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if not isinstance(ev, dict):
            continue
        if ev.get("event") == "plan" and isinstance(ev.get("shard"), str):
            plans[ev["shard"]] = ev
        elif ev.get("event") == "group" and isinstance(ev.get("shard"), str):
            groups[(ev["shard"], str(ev.get("group")))] = ev
    complete = {s for s, ev in plans.items() if ev.get("complete")}
    built = [ev for (shard, _), ev in groups.items() if shard not in complete]
    return Progress(
        total=sum(int(ev.get("groups", 0)) for ev in plans.values()) if plans else None,
        done=len(built),
        skipped=sum(int(ev.get("groups", 0)) for s, ev in plans.items() if s in complete),
        clips=sum(int(ev.get("clips", 0)) for ev in built),
        samples=sum(int(ev.get("samples", 0)) for ev in built),
    )


def echo_line(line: str) -> None:
    """Log a worker's group event as the worker would have."""
    try:
        ev = json.loads(line)
    except ValueError:
        return
    if isinstance(ev, dict) and ev.get("event") == "group":
        LOG.info("%s %s (%s samples): %s clips in %.1fs", ev.get("unit", "group"), ev.get("group"),
                 ev.get("samples"), ev.get("clips"), float(ev.get("seconds", 0)))  # fmt: skip


def rate(count: int, seconds: float) -> float:
    """Items per second over `seconds` (0 before any time has passed)."""
    return count / seconds if seconds > 0 else 0.0


class ProgressReader:
    """Reads the complete lines added to a progress folder's files since the last call."""

    def __init__(self, folder: str):
        self.folder = folder
        self.offsets: dict[str, int] = {}
        self.lines: list[str] = []

    def poll(self) -> list[str]:
        """Every complete line read so far (a line still being written is left for the next call)."""
        try:
            names = sorted(n for n in os.listdir(self.folder) if n.endswith(".jsonl"))
        except OSError:
            return self.lines
        for name in names:
            path = os.path.join(self.folder, name)
            try:
                with open(path, "rb") as f:
                    f.seek(self.offsets.get(name, 0))
                    data = f.read()
            except OSError:
                continue
            end = data.rfind(b"\n") + 1
            if end:
                self.offsets[name] = self.offsets.get(name, 0) + end
                self.lines.extend(data[:end].decode("utf-8", "replace").splitlines())
        return self.lines


class ProgressBar:
    """Context manager around a build on the driver: a tqdm bar of groups done/total with clips/s and ETA,
    fed by the workers' progress files (see the module doc). Disabled: nothing is shown or created."""

    def __init__(self, enabled: bool = True, unit: str = "take", file=None, echo: bool = False):
        """echo: also log one line per finished group here, for engines whose workers' logs are not shown
        (a local Dask cluster's worker processes log nowhere)."""
        self.enabled, self.unit, self.file, self.echo = enabled, unit, file or sys.stderr, echo
        self._echoed = 0
        self.folder: str | None = None
        self._saved_env: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bar = None
        self.progress = Progress(None, 0, 0, 0, 0)

    def __enter__(self) -> ProgressBar:
        if not self.enabled:
            return self
        from tqdm import tqdm

        self.folder = tempfile.mkdtemp(prefix=PREFIX)
        folder = self.folder
        self._unregister = _on_terminate(lambda: shutil.rmtree(folder, ignore_errors=True))
        self._saved_env = os.environ.get(ENV)
        os.environ[ENV] = self.folder
        self.reader = ProgressReader(self.folder)
        self.started = time.monotonic()
        self.tty = bool(getattr(self.file, "isatty", lambda: False)())
        self.bar = tqdm(total=None, desc=f"{self.unit}s", unit=self.unit, file=self.file, mininterval=POLL_S,
                        dynamic_ncols=True, leave=True)  # fmt: skip
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            self.update()

    def update(self) -> None:
        """Read new lines and move the bar (the driver's thread, and once more at the end)."""
        lines = self.reader.poll()
        if self.echo:
            for line in lines[self._echoed :]:
                echo_line(line)
            self._echoed = len(lines)
        p = aggregate(lines)
        bar, old = self.bar, self.progress
        if p.total is not None and p.total != bar.total:
            bar.total = p.total
        if p.skipped != old.skipped:  # takes of complete shards: counted, but not in the rate or the ETA
            d = p.skipped - old.skipped
            bar.n += d
            bar.last_print_n += d
            bar.initial += d
        bar.set_postfix_str(f"{rate(p.clips, time.monotonic() - self.started):.1f} clips/s", refresh=False)
        self.progress = p
        if p.done != old.done:
            bar.update(p.done - old.done)
        elif self.tty or p != old:  # a log file gets a line when something happened, a terminal every poll
            bar.refresh()

    def __exit__(self, *exc) -> None:
        if not self.enabled:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.update()
            self.bar.close()
        finally:
            if self._saved_env is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = self._saved_env
            shutil.rmtree(self.folder, ignore_errors=True)
            self._unregister()
