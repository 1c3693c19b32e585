"""Files of any filesystem Beam knows (local, gs://, s3://, http(s)://, ...): what readers ask of an input root.

Local paths (and file://) use the os module; any other scheme goes through Beam's filesystem layer, so every
source root of every builder may be remote. A remote "folder" is a path with something stored under it.
"""

from __future__ import annotations

import os

from apache_beam.io.filesystems import FileSystems

from pipeline.core.localize import is_local


def _local(path: str) -> str:
    return str(path).removeprefix("file://")


def _unscheme(path: str) -> str:
    """A path without its scheme (filesystems differ in whether the paths they list carry it)."""
    return path.split("://", 1)[-1]


def normpath(path: str) -> str:
    """os.path.normpath that keeps a URL's "scheme://"."""
    scheme, sep, rest = str(path).rpartition("://")
    return f"{scheme}{sep}{os.path.normpath(rest)}" if sep else os.path.normpath(path)


def abspath(path: str) -> str:
    """os.path.abspath of a local path; a URL as it is (normalised)."""
    return os.path.abspath(_local(path)) if is_local(str(path)) else normpath(path)


def exists(path: str) -> bool:
    path = str(path)
    return os.path.exists(_local(path)) if is_local(path) else FileSystems.exists(path) or is_dir(path)


def is_dir(path: str) -> bool:
    path = str(path)
    if is_local(path):
        return os.path.isdir(_local(path))
    return bool(FileSystems.match([path.rstrip("/") + "/**"], limits=[1])[0].metadata_list)


def is_file(path: str) -> bool:
    path = str(path)
    if is_local(path):
        return os.path.isfile(_local(path))
    return FileSystems.exists(path) and not is_dir(path)


def listdir(path: str) -> list[str]:
    """Names of the entries of a folder (a remote one: of the files directly under it); FileNotFoundError when
    there is no such folder (a remote one: nothing stored under it)."""
    path = str(path)
    if is_local(path):
        return os.listdir(_local(path))
    prefix = _unscheme(path.rstrip("/") + "/")
    names = [_unscheme(m.path)[len(prefix) :] for m in FileSystems.match([path.rstrip("/") + "/*"])[0].metadata_list]
    if not names and not is_dir(path):
        raise FileNotFoundError(path)
    return [n for n in names if n and "/" not in n]


def read_bytes(path: str) -> bytes:
    """The whole file; FileNotFoundError when it is not there."""
    path = str(path)
    if is_local(path):
        with open(_local(path), "rb") as f:
            return f.read()
    if not FileSystems.exists(path):
        raise FileNotFoundError(path)
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return f.read()
