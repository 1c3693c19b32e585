"""Worker-local copies of remote inputs: ffmpeg reads local files, Beam's filesystems read gs:// and s3://.

A view on gs:// or s3:// is streamed through Beam's filesystem layer into the worker's own temporary
directory (the build's work directory on this worker's disk, pipeline/core/workdir.py, unless the caller names
one), used, and deleted; local paths (and file://) are used in place. Nothing is shared between workers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from apache_beam.io.filesystems import FileSystems

from pipeline.core.workdir import worker_dir

CHUNK_BYTES = 16 << 20


def is_local(path: str) -> bool:
    return FileSystems.get_scheme(path) in (None, "file")


@contextmanager
def local_copy(path: str, tmp_root: str | None = None) -> Iterator[str]:
    if is_local(path):
        yield path.removeprefix("file://")
        return
    fd, local = tempfile.mkstemp(prefix="src-", suffix=os.path.splitext(path)[1], dir=tmp_root or worker_dir())
    try:
        with os.fdopen(fd, "wb") as out, FileSystems.open(path, compression_type="uncompressed") as src:
            shutil.copyfileobj(src, out, CHUNK_BYTES)
        yield local
    finally:
        os.unlink(local)
