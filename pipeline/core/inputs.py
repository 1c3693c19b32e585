"""Checks of a build's inputs and OUT before any work starts, for every builder.

A build that cannot work must fail at once with one line (`InputError`), not after Beam has started workers:
OUT must be a writable directory (or creatable), every input root must exist (local or remote), and a
builder's required files must parse (`read_input`, `parse_required`, `json_shape` name the file and the line
of a JSON error). Remote paths (gs://, s3://, http(s)://, memory://) are checked through Beam's filesystems.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from pipeline.core.localize import is_local


class InputError(Exception):
    """A required input cannot be read or parsed, or OUT is unusable: the build does not start. The message
    is one line."""


def one_line(err: BaseException) -> str:
    return " ".join(str(getattr(err, "strerror", None) or err).split())[:300]


def read_input(path: str) -> bytes:
    """The whole file (local or remote); InputError naming it when it is missing, a directory, a FIFO or
    unreadable."""
    try:
        if is_local(path):
            local = path.removeprefix("file://")
            mode = os.stat(local).st_mode
            if stat.S_ISDIR(mode):
                raise InputError(f"{path}: is a directory")
            if not stat.S_ISREG(mode):
                raise InputError(f"{path}: not a regular file (a FIFO, socket or device)")
            with open(local, "rb") as f:
                return f.read()
        with FileSystems.open(path, compression_type="uncompressed") as f:
            return f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: not found") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except (OSError, BeamIOError) as err:
        raise InputError(f"{path}: cannot be read ({one_line(err)})") from None


def parse_required(path: str, parse, errors: str = "strict"):
    """parse(text) of a required file, its errors as InputError naming the line and column. errors:
    "surrogateescape" for a file of records that each cost only themselves (a bad byte fails its record
    later, not the file)."""
    try:
        return parse(read_input(path).decode("utf-8-sig", errors=errors))
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise InputError(f"{path}: invalid JSON at {where} ({err.msg})") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except RecursionError:
        raise InputError(f"{path}: invalid JSON (nested too deeply)") from None
    except ValueError as err:
        raise InputError(f"{path}: invalid JSON ({one_line(err)})") from None


OBJECT = object()  # what every JSON object parses to in a shape check


def json_shape(path: str, errors: str = "strict"):
    """Parse a required JSON file completely (so that a cut or damaged file fails here) without keeping its
    content: every object becomes the placeholder OBJECT, except the top level, returned as {key: value}."""
    last: list = []

    def keep_last(pairs):
        last[:] = [pairs]
        return OBJECT

    doc = parse_required(path, lambda text: json.loads(text, object_pairs_hook=keep_last), errors)
    return dict(last[0]) if doc is OBJECT else doc


def kind_of(value) -> str:
    """'an object', 'a list', ... of a json_shape value, for messages."""
    return "an object" if value is OBJECT or isinstance(value, dict) else f"a {type(value).__name__}"


def check_root(what: str, path: str) -> None:
    """An input root (a folder or a file) must exist: InputError naming `what` (the option or config key)
    otherwise. A remote folder exists when something is stored under it."""
    if not path:
        raise InputError(f"{what}: empty")
    try:
        if is_local(path):
            local = path.removeprefix("file://")
            if not os.path.exists(local):
                raise InputError(f"{what} {path}: not found")
            if not os.access(local, os.R_OK):
                raise InputError(f"{what} {path}: permission denied")
            return
        if FileSystems.exists(path):
            return
        under = FileSystems.match([path.rstrip("/") + "/*"], limits=[1])[0].metadata_list
        if not under:
            raise InputError(f"{what} {path}: not found")
    except InputError:
        raise
    except (OSError, BeamIOError, ValueError) as err:
        raise InputError(f"{what} {path}: cannot be read ({one_line(err)})") from None


def check_out(out: str, create: bool = True) -> None:
    """OUT must be a writable directory, or creatable as one (local paths; remote ones are checked by their
    filesystem when written). With create, it is created and a file is written into it and removed."""
    if not out:
        raise InputError("--out is empty")
    if not is_local(out):
        if create and not FileSystems.exists(out):
            FileSystems.mkdirs(out)
        return
    local = out.removeprefix("file://")
    try:
        if os.path.lexists(local):
            if not os.path.isdir(local):
                raise InputError(f"--out {out}: exists and is not a directory")
            if not os.access(local, os.W_OK | os.X_OK):
                raise PermissionError(out)
        else:
            parent = os.path.dirname(os.path.abspath(local))
            while not os.path.lexists(parent):
                parent = os.path.dirname(parent)
            if not os.path.isdir(parent):
                raise InputError(f"--out {out}: cannot be created ({parent} is not a directory)")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InputError(f"--out {out}: cannot be created in {parent}: permission denied")
        if create:
            os.makedirs(local, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=local)
            os.close(fd)
            os.unlink(probe)
    except PermissionError:
        raise InputError(f"--out {out}: not writable: permission denied") from None
    except OSError as err:
        raise InputError(f"--out {out}: {one_line(err)}") from None
    except ValueError as err:  # e.g. an embedded NUL byte
        raise InputError(f"--out {out!r}: invalid path ({one_line(err)})") from None


def check_inputs_and_out(out: str, roots, check) -> None:
    """Everything a run cannot go without, before any work: OUT usable (not a file, writable or creatable),
    every (what, path) of `roots` present, then `check()` (the builder's own, InputError); OUT is created
    last. A build checks its inputs and videos, a validation its annotation inputs only."""
    check_out(out, create=False)
    for what, path in roots:
        check_root(what, path)
    check()
    check_out(out, create=True)
