"""Running ffmpeg as an isolated child process: timeout, process-group kill, failure classification.

Decoders are native code fed with data we do not control; a corrupt file can make them spin, hang on a pipe
or crash. Keeping them in a child process (never in-process bindings) means the worst case is a killed child
and an ExtractionError the caller can count and group by `reason`, instead of a wedged or dead worker.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

# Stable, machine-groupable reasons (pipelines count failures by these strings: do not reword them).
MISSING_FILE = "missing file"
UNREADABLE_VIDEO = "unreadable video"  # ffmpeg could not open / demux the input at all
CORRUPT_VIDEO = "corrupt video"  # opened, but demuxer/decoder reported errors (truncated, damaged packets)
NO_VIDEO_STREAM = "no video stream"
DECODE_TIMEOUT = "decode timeout"
DECODER_CRASHED = "decoder crashed"  # killed by a signal (segfault, abort, OOM killer)
FFMPEG_FAILED = "ffmpeg failed"  # any other non-zero exit (e.g. encoder/muxer failure)
FRAME_COUNT_MISMATCH = "frame count mismatch"

_TAIL_CHARS = 2000
# ffmpeg messages that mean "the input itself could not be opened/parsed" rather than a crash mid-way.
_UNREADABLE_PATTERNS = re.compile(
    r"Invalid data found when processing input|moov atom not found|Error opening input|"
    r"could not find codec parameters|End of file|Permission denied",
    re.IGNORECASE,
)


class ExtractionError(Exception):
    """A source video could not be probed or cut. `reason` is short and stable; `detail` is the stderr tail."""

    def __init__(self, path: str, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {path}" + (f"\n{detail}" if detail else ""))
        self.path = path
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # picklable across Beam/multiprocessing workers (default would pass only args[0])
        return (type(self), (self.path, self.reason, self.detail))


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the static ffmpeg shipped in the imageio-ffmpeg wheel (same build everywhere: no system ffmpeg)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class FfmpegResult:
    stdout: bytes
    stderr: str


def tail(text: str, n: int = _TAIL_CHARS) -> str:
    """ffmpeg's log cut to at most `n` characters, keeping the cause: its first lines (where the cause
    usually is, e.g. the encoder refusing a setting), its last lines (the final error) and, as room allows,
    the error-level lines between, each run of dropped lines replaced by "[... k lines elided ...]". Per-run
    pointer values ("[mov,mp4 @ 0x55d1...]") are removed so that error reports are the same bytes run to run.
    The first and the last line are always kept (cut to a share of `n` when longer)."""
    text = re.sub(r" @ 0x[0-9a-fA-F]+", "", text).strip()
    if len(text) <= n:
        return text
    lines = text.splitlines()
    if len(lines) == 1:
        return f"{text[: n // 4]}\n[... {len(text) - n // 4 - n // 3} characters elided ...]\n{text[-(n // 3) :]}"
    marker = 32  # room for one "[... k lines elided ...]"
    keep: dict[int, str] = {0: lines[0][: n // 4]}
    used = len(keep[0]) + 1
    last = len(lines) - 1
    if last > 0:
        keep[last] = lines[last][-(n // 3) :]
        used += len(keep[last]) + 1
    budget = n - 2 * marker  # head, tail and middle lines; at most two gaps are counted up front

    def take(i: int, limit: int) -> bool:
        nonlocal used
        cost = len(lines[i]) + 1 + (marker if i - 1 not in keep else 0)
        if i in keep or used + cost > limit:
            return False
        keep[i] = lines[i]
        used += cost
        return True

    i = 1  # first lines, up to a quarter of the room
    while i < last and take(i, n // 4):
        i += 1
    j = last - 1  # last lines, up to the half
    while j > i and used + len(lines[j]) + 1 <= budget // 2 + n // 4 and j not in keep:
        keep[j] = lines[j]
        used += len(lines[j]) + 1
        j -= 1
    for k in range(i, j + 1):  # error-level lines between, as room allows
        if "[error]" in lines[k] or "[fatal]" in lines[k] or "[panic]" in lines[k]:
            take(k, budget)
    out, prev = [], -1
    for k in sorted(keep):
        if k - prev > 1:
            out.append(f"[... {k - prev - 1} lines elided ...]")
        out.append(keep[k])
        prev = k
    return "\n".join(out)


def error_lines(stderr: str) -> list[str]:
    """Lines logged at error level or worse (ffmpeg run with `-loglevel level+...` prefixes them `[error]`)."""
    return [ln for ln in stderr.splitlines() if "[error]" in ln or "[fatal]" in ln or "[panic]" in ln]


def run_ffmpeg(
    args: Sequence[str], *, path: str, timeout_s: float, stdin_data: bytes | None = None
) -> FfmpegResult:
    """Run `ffmpeg <args>`; return its output, or raise ExtractionError naming `path`.

    The child gets its own session (process group) so that on timeout we kill it *and* anything it spawned,
    and so a terminal Ctrl-C aimed at the parent does not half-kill it. stdin is /dev/null unless data is
    given: ffmpeg otherwise reads keyboard commands from it and can block.
    """
    cmd = (
        [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
        if stdin_data is None
        else [ffmpeg_exe(), "-hide_banner", *args]
    )
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input=stdin_data, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        _, err = proc.communicate()
        raise ExtractionError(
            path, DECODE_TIMEOUT, f"no result after {timeout_s:g}s\n" + tail(err.decode("utf-8", "replace"))
        ) from None
    except BaseException:  # KeyboardInterrupt, MemoryError...: never leave an orphan decoder behind
        _kill_group(proc)
        proc.wait()
        raise
    stderr = err.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise ExtractionError(path, classify_failure(path, proc.returncode, stderr), tail(stderr))
    return FfmpegResult(out, stderr)


def classify_failure(path: str, returncode: int, stderr: str) -> str:
    if returncode < 0:
        return DECODER_CRASHED  # died of a signal: segfault/abort/kill
    if path and not path.startswith("pipe:") and not os.path.exists(path):
        return MISSING_FILE
    if _UNREADABLE_PATTERNS.search(stderr):
        return UNREADABLE_VIDEO
    return FFMPEG_FAILED


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
