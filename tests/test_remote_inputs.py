"""Inputs behind a non-local filesystem scheme (as gs:// or s3:// on a cluster) go through Beam's filesystem
layer: metadata is read through it and videos are copied to the worker's disk before ffmpeg sees them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from apache_beam.io.localfilesystem import LocalFileSystem

from pipeline.core.localize import is_local, local_copy
from tests.conftest import build

SCHEME = "fakeremote"


class FakeRemoteFileSystem(LocalFileSystem):
    """A filesystem only reachable through Beam (ffmpeg cannot open `fakeremote://` paths)."""

    @classmethod
    def scheme(cls):
        return SCHEME

    @staticmethod
    def _local(path: str) -> str:
        return path.removeprefix(f"{SCHEME}://")

    def open(self, path, *args, **kwargs):
        return super().open(self._local(path), *args, **kwargs)

    def exists(self, path):
        return super().exists(self._local(path))

    def match(self, patterns, limits=None):
        return super().match([self._local(p) for p in patterns], limits)


def test_local_copy_of_a_remote_file(tmp_path):
    src = tmp_path / "v.mp4"
    src.write_bytes(b"\x00" * 1000 + b"end")
    remote = f"{SCHEME}://{src}"
    assert not is_local(remote) and is_local(str(src)) and is_local(f"file://{src}")
    with local_copy(remote, str(tmp_path)) as local:
        assert local != str(src) and Path(local).read_bytes() == src.read_bytes()
    assert not Path(local).exists()  # the worker's copy is removed after use


def test_build_from_a_remote_root_equals_the_local_build(sample_root, bundled_build, tmp_path):
    out, _ = bundled_build
    remote_out = tmp_path / "out"
    stats = build(f"{SCHEME}://{sample_root}", remote_out)
    assert stats["narrations"]["unaccounted"] == 0
    for tar in sorted(out.glob("*.tar")):
        assert (
            hashlib.sha256((remote_out / tar.name).read_bytes()).digest()
            == hashlib.sha256(tar.read_bytes()).digest()
        )
