"""Minimal ISO-BMFF reading: the video sample count of an mp4, to verify cut clips without another process."""

from __future__ import annotations

import struct

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(data: bytes, start: int, end: int):
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:  # 64-bit largesize
            if pos + 16 > end:
                return
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:  # box runs to the end of the file
            size = end - pos
        if size < header or pos + size > end:
            return  # truncated / garbage: caller sees "no count"
        yield kind, pos + header, pos + size
        pos += size


def video_sample_count(data: bytes) -> int | None:
    """Number of samples (frames) in the first video track ('vide' handler), or None if not found."""

    def walk(start: int, end: int, in_trak: dict | None):
        for kind, body, stop in _boxes(data, start, end):
            if kind == b"trak":
                trak: dict = {}
                walk(body, stop, trak)
                if trak.get("handler") == b"vide" and "samples" in trak:
                    return trak["samples"]
            elif kind in _CONTAINERS:
                found = walk(body, stop, in_trak)
                if found is not None:
                    return found
            elif in_trak is not None and kind == b"hdlr" and stop - body >= 12:
                in_trak["handler"] = data[body + 8 : body + 12]
            elif in_trak is not None and kind == b"stsz" and stop - body >= 12:
                in_trak["samples"] = struct.unpack_from(">I", data, body + 8)[0]
        return None

    return walk(0, len(data), None)


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's SOF marker, or None if it is not a well-formed JPEG header."""
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        seg_len = struct.unpack_from(">H", data, pos + 2)[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and pos + 9 <= len(data):
            h, w = struct.unpack_from(">HH", data, pos + 5)
            return w, h
        pos += 2 + seg_len
    return None
