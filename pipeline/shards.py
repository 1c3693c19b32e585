"""Packing samples and writing WebDataset shards deterministically (pure functions, no Beam).

A sample is a dict ``{"__key__": key, member: bytes, ...}``; in the tar every member becomes the file
``<key>.<member>``. Readers (webdataset, wids, Hugging Face ``datasets``) split a file name at the FIRST dot
of its basename, so keys never contain a dot and members always do (or are a bare extension like "txt").

Layouts (member names are identical in every sample of a build, which HF's builder requires):

* pairs:          ``ego.mp4 exo.mp4 json txt``
* moments:        ``ego.mp4 exo.<cam_id>.mp4 ... json txt``
* frames (pairs): ``ego.00.jpg .. ego.NN.jpg exo.00.jpg .. exo.NN.jpg json txt``
* frames (moments): ``ego.00.jpg .. exo.<cam_id>.00.jpg .. json txt``

Frames mode stores each frame as its own JPEG member rather than one container member per view (a nested tar,
an .npy of JPEG blobs): every client decodes ``.jpg`` natively (webdataset ``decode("pil")``, wids' default
decoder, HF's ``Image`` feature), N is fixed per build so the names match across samples, and the zero-padded
index keeps the tar's sorted member order equal to frame order.

The ``json`` member must have the same keys and non-null value types in every sample: HF infers the Arrow
schema from the first few samples, so a null (or a missing key) there breaks later rows. ``pair_meta`` fills
absent values with "" / -1 / -1.0 and ``pack_*`` rejects ``None`` anywhere in the metadata.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import tarfile
from collections.abc import Mapping, Sequence
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

PAIR_MEMBERS = ("ego.mp4", "exo.mp4", "txt", "json")

# Keys: ASCII, no '.', '/', whitespace. '.' would move the key/member split; '/' would create directories.
_KEY_RE = re.compile(r"^[A-Za-z0-9_\-+:@=,]+$")
_MEMBER_RE = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
# wids' mmap reader only looks at the 100-byte USTAR name field (it ignores the prefix field and GNU long-name
# records), so every "<key>.<member>" must fit in it.
MAX_TAR_NAME = 100


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(f"invalid sample key {key!r}: must be non-empty ASCII without '.', '/' or spaces")
    return key


def sample_key(take_name: str, narration_index: int, cam_id: str | None = None) -> str:
    """``<take_name>-n<idx:05d>`` (pairs add ``-<cam_id>``); 5 digits keep lexical order == numeric order."""
    if (
        isinstance(narration_index, bool)
        or not isinstance(narration_index, int)
        or not 0 <= narration_index < 100_000
    ):
        raise ValueError(f"narration_index {narration_index!r} outside 0..99999")
    if not isinstance(take_name, str) or not _KEY_RE.match(take_name):
        raise ValueError(f"invalid take name {take_name!r}")
    key = f"{take_name}-n{narration_index:05d}"
    if cam_id is not None:
        key = f"{key}-{_check_cam(cam_id)}"
    return _check_key(key)


# --------------------------------------------------------------------------------------------- packing


def canonical_json(obj) -> bytes:
    """Stable bytes for the json member: sorted keys, no spaces, UTF-8, NaN rejected (not valid JSON)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _check_no_null(value, path: str = "meta") -> None:
    if value is None:
        raise ValueError(f"{path} is None: use '' / -1 / -1.0 so every sample has the same json types")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_no_null(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_no_null(v, f"{path}[{i}]")


# The json member of every sample: field -> (type, value used when absent). exo_cams must be non-empty
# (an all-empty list in HF's inference window infers list<null>).
META_FIELDS: dict[str, tuple[type, object]] = {
    "key": (str, ""),  # the narration's key (pair keys add "-<exo_cam>")
    "split": (str, ""),
    "take_uid": (str, ""),
    "take_name": (str, ""),
    "scenario": (str, ""),
    "narration_index": (int, -1),
    "annotation_uid": (str, ""),
    "annotator_id": (str, ""),
    "subject": (str, ""),
    "ego_visible": (bool, True),
    "unsure": (bool, False),
    "best_exo": (str, ""),
    "text": (str, ""),
    "raw_text": (str, ""),
    "timestamp": (float, -1.0),
    "window_start": (float, -1.0),
    "window_end": (float, -1.0),
    "ego_cam": (str, ""),
    "exo_cam": (str, ""),  # "" for moments
    "exo_cams": (list, []),
    "ego_start_frame": (int, -1),
    "ego_end_frame": (int, -1),
    "exo_start_frame": (int, -1),  # -1 for moments: see exo_frames
    "exo_end_frame": (int, -1),
    "exo_frames": (list, []),  # "<cam_id>:<start>:<end>" of every exo view of the narration
    "fps": (float, -1.0),
    "n_ego_frames": (int, -1),
}


def pair_meta(**fields) -> dict:
    """The json member with every META_FIELDS key, absent/None values replaced by the default, ints given for
    float fields turned into floats (HF would otherwise infer int64 from one sample and double from another)."""
    unknown = sorted(set(fields) - set(META_FIELDS))
    if unknown:
        raise ValueError(f"unknown meta fields {unknown}: add them to META_FIELDS so every sample has them")
    meta = {}
    for name, (typ, default) in META_FIELDS.items():
        value = fields.get(name)
        if value is None:
            value = list(default) if isinstance(default, list) else default
        elif typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif typ is list:
            value = [str(v) for v in value]
        if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
            raise ValueError(f"meta field {name}={value!r} is not {typ.__name__}")
        meta[name] = value
    return meta


def _pack(key: str, members: dict[str, bytes], text: str, meta: dict) -> dict[str, bytes]:
    _check_key(key)
    if not isinstance(text, str):
        raise ValueError(f"{key}: text must be str")
    _check_no_null(meta)
    for name, data in members.items():
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValueError(f"{key}: member {name} is {type(data).__name__}, not bytes")
    return {
        "__key__": key,
        **{n: bytes(d) for n, d in members.items()},
        "txt": text.encode(),
        "json": canonical_json(meta),
    }


def pack_pair(
    key: str, ego: bytes, exo: bytes, text: str, meta: dict, ego_ext: str = "mp4"
) -> dict[str, bytes]:
    return _pack(key, {f"ego.{ego_ext}": ego, "exo.mp4": exo}, text, meta)


def _check_cam(cam_id: str) -> str:
    if not isinstance(cam_id, str) or not re.match(r"^[A-Za-z0-9_\-]+$", cam_id):
        raise ValueError(f"invalid camera id {cam_id!r}")
    return cam_id


def pack_moment(key: str, ego: bytes, exos: Mapping[str, bytes], text: str, meta: dict) -> dict[str, bytes]:
    if not exos:
        raise ValueError(f"{key}: a moment needs at least one exo view")
    members = {"ego.mp4": ego, **{f"exo.{_check_cam(cam)}.mp4": data for cam, data in sorted(exos.items())}}
    return _pack(key, members, text, meta)


def _frame_members(prefix: str, jpegs: Sequence[bytes], n: int) -> dict[str, bytes]:
    if len(jpegs) != n:
        raise ValueError(f"{prefix}: {len(jpegs)} frames, expected {n} (the count is fixed per build)")
    width = max(2, len(str(n - 1)))  # "00".."15": sorted member order == frame order
    out = {}
    for i, data in enumerate(jpegs):
        if not bytes(data[:2]) == b"\xff\xd8":
            raise ValueError(f"{prefix} frame {i} is not a JPEG (no SOI marker)")
        out[f"{prefix}.{i:0{width}d}.jpg"] = data
    return out


def pack_pair_frames(
    key: str, ego_jpegs: Sequence[bytes], exo_jpegs: Sequence[bytes], text: str, meta: dict
) -> dict[str, bytes]:
    """Frames mode: ``ego.00.jpg``.. and ``exo.00.jpg``.. (same N for both views)."""
    n = len(ego_jpegs)
    if n == 0:
        raise ValueError(f"{key}: no frames")
    members = {**_frame_members("ego", ego_jpegs, n), **_frame_members("exo", exo_jpegs, n)}
    return _pack(key, members, text, meta)


def pack_moment_frames(
    key: str, ego_jpegs: Sequence[bytes], exos: Mapping[str, Sequence[bytes]], text: str, meta: dict
) -> dict[str, bytes]:
    """Frames mode for moments: ``ego.NN.jpg`` and ``exo.<cam_id>.NN.jpg``."""
    n = len(ego_jpegs)
    if n == 0 or not exos:
        raise ValueError(f"{key}: a moment needs frames and at least one exo view")
    members = _frame_members("ego", ego_jpegs, n)
    for cam, jpegs in sorted(exos.items()):
        members.update(_frame_members(f"exo.{_check_cam(cam)}", jpegs, n))
    return _pack(key, members, text, meta)


# --------------------------------------------------------------------------------------------- tar writing


class _Counting:
    """Forwards writes and counts them; tell() comes from the count, so non-seekable sinks work too."""

    def __init__(self, fileobj: BinaryIO):
        self.fileobj = fileobj
        self.n = 0

    def write(self, data) -> int:
        self.fileobj.write(data)
        self.n += len(data)
        return len(data)

    def tell(self) -> int:
        return self.n


class ShardWriter:
    """Deterministic tar writer: same samples in the same order -> byte-identical archive.

    Every header is fixed (mtime 0, uid/gid 0, empty user/group names, mode 0644, regular file, USTAR), so
    nothing from the machine, the clock or the umask leaks into the bytes. The file object is not closed.
    """

    def __init__(self, fileobj: BinaryIO):
        self._out = _Counting(fileobj)
        # Lives across write() calls and is closed by close(), so no context manager here.
        self._tar = tarfile.open(  # noqa: SIM115
            fileobj=self._out, mode="w", format=tarfile.USTAR_FORMAT, encoding="utf-8"
        )
        self._keys: set[str] = set()
        self.n_samples = 0

    @property
    def n_bytes(self) -> int:
        return self._out.n

    def write(self, sample: Mapping[str, bytes]) -> None:
        key = sample.get("__key__")
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ValueError(f"sample key {key!r} is invalid (no '.', '/' or spaces allowed)")
        if key in self._keys:  # readers group consecutive members by key: a repeat would merge or collide
            raise ValueError(f"duplicate sample key {key!r} in shard")
        members = sorted(m for m in sample if m != "__key__")
        if not members:
            raise ValueError(f"sample {key!r} has no members")
        for m in members:  # validate everything before writing anything: no half-written sample
            name = f"{key}.{m}"
            if m.startswith("__") or not _MEMBER_RE.match(m):
                raise ValueError(f"sample {key!r}: invalid member name {m!r}")
            if len(name.encode()) > MAX_TAR_NAME:
                raise ValueError(f"sample {key!r}: tar name {name!r} longer than {MAX_TAR_NAME} bytes")
            if not isinstance(sample[m], bytes | bytearray | memoryview):
                raise ValueError(f"sample {key!r}: member {m!r} is not bytes")
        for m in members:
            data = bytes(sample[m])
            info = tarfile.TarInfo(f"{key}.{m}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            self._tar.addfile(info, io.BytesIO(data))
        self._keys.add(key)
        self.n_samples += 1

    def close(self) -> None:
        """Writes the end-of-archive blocks (padded to tar's 10 KiB record); idempotent."""
        self._tar.close()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_tar_samples(path) -> list[dict]:
    """Small reader for tests: members grouped by key (split at the first dot), in archive order."""
    samples: list[dict] = []
    with tarfile.open(path, "r") as tar:
        for info in tar:
            if not info.isfile():
                continue
            key, _, member = posixpath.basename(info.name).partition(".")
            if not samples or samples[-1]["__key__"] != key:
                samples.append({"__key__": key})
            samples[-1][member] = tar.extractfile(info).read()
    return samples


# --------------------------------------------------------------------------------------------- planning


def _greedy(units: Sequence[tuple[str, int, int]], max_samples: int, max_bytes: int) -> list[list[str]]:
    """units: (key, n_samples, bytes). Opens a new shard when adding a unit would exceed either bound; a unit
    that alone exceeds a bound still gets a shard of its own (it is never split or dropped)."""
    if max_samples < 1 or max_bytes < 1:
        raise ValueError("max_samples and max_bytes must be >= 1")
    shards: list[list[str]] = []
    seen: set[str] = set()
    n = size = 0
    for key, count, nbytes in units:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        if nbytes < 0:
            raise ValueError(f"{key!r}: negative size {nbytes}")
        seen.add(key)
        if not shards or n + count > max_samples or size + nbytes > max_bytes:
            shards.append([])
            n = size = 0
        shards[-1].append(key)
        n += count
        size += nbytes
    return shards


def plan_shards(items: Sequence[tuple[str, int]], *, max_samples: int, max_bytes: int) -> list[list[str]]:
    """Sample keys per shard, in the given (final) order."""
    return _greedy([(key, 1, nbytes) for key, nbytes in items], max_samples, max_bytes)


def plan_shards_grouped(
    groups: Sequence[tuple[str, Sequence[tuple[str, int]]]], max_samples: int, max_bytes: int
) -> list[list[str]]:
    """Group keys per shard; all samples of a group (e.g. one narration's pairs) land in the same shard."""
    units = []
    sample_keys: set[str] = set()
    for group_key, items in groups:
        for key, _ in items:
            if key in sample_keys:
                raise ValueError(f"sample key {key!r} appears in two groups")
            sample_keys.add(key)
        units.append((group_key, len(items), sum(nbytes for _, nbytes in items)))
    return _greedy(units, max_samples, max_bytes)


def shard_name(prefix: str, split: str, index: int, ext: str = "tar") -> str:
    """``egoexoclip-train-000000.tar``; 6 digits so lexical order == shard order (brace-expandable)."""
    if not 0 <= index < 1_000_000:
        raise ValueError(f"shard index {index} outside 0..999999")
    for part in (prefix, split, ext):
        if not part or "/" in part:
            raise ValueError(f"invalid shard name part {part!r}")
    return f"{prefix}-{split}-{index:06d}.{ext}"


# --------------------------------------------------------------------------------------------- manifest


MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("take_uid", pa.string(), nullable=False),
        pa.field("take_name", pa.string(), nullable=False),
        pa.field("scenario", pa.string(), nullable=False),
        pa.field("narration_index", pa.int32(), nullable=False),
        pa.field("annotation_uid", pa.string(), nullable=False),
        pa.field("annotator_id", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("ego_visible", pa.bool_(), nullable=False),
        pa.field("unsure", pa.bool_(), nullable=False),
        pa.field("best_exo", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("raw_text", pa.string(), nullable=False),
        pa.field("timestamp", pa.float64(), nullable=False),
        pa.field("window_start", pa.float64(), nullable=False),
        pa.field("window_end", pa.float64(), nullable=False),
        pa.field("ego_cam", pa.string(), nullable=False),
        pa.field("exo_cam", pa.string(), nullable=True),  # null for moments (all exo views in one sample)
        pa.field("ego_start_frame", pa.int64(), nullable=False),
        pa.field("ego_end_frame", pa.int64(), nullable=False),
        pa.field("exo_start_frame", pa.int64(), nullable=False),
        pa.field("exo_end_frame", pa.int64(), nullable=False),
        pa.field("exo_frames", pa.list_(pa.string()), nullable=False),
        pa.field("fps", pa.float64(), nullable=False),
        pa.field("n_ego_frames", pa.int32(), nullable=False),
        pa.field("exo_cams", pa.list_(pa.string()), nullable=False),
        pa.field("ego_bytes", pa.int64(), nullable=False),
        pa.field("exo_bytes", pa.int64(), nullable=False),
    ]
)


def manifest_table(rows: list[dict]) -> pa.Table:
    """Rows -> table with exactly MANIFEST_SCHEMA; missing/extra columns or nulls in non-nullable ones raise."""
    names = set(MANIFEST_SCHEMA.names)
    for i, row in enumerate(rows):
        if set(row) != names:
            raise ValueError(
                f"manifest row {i}: missing {sorted(names - set(row))}, extra {sorted(set(row) - names)}"
            )
        for field in MANIFEST_SCHEMA:
            if row[field.name] is None and not field.nullable:
                raise ValueError(f"manifest row {i}: {field.name} is null")
    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    table.validate(full=True)
    return table


def write_parquet(table: pa.Table, fileobj: BinaryIO) -> None:
    """Same table -> same bytes: parquet carries no timestamps; every writer option is pinned so a change of
    pyarrow defaults does not silently change the output, and one row group keeps the layout size-independent."""
    pq.write_table(
        table,
        fileobj,
        row_group_size=max(1, table.num_rows),
        version="2.6",
        compression="zstd",
        compression_level=3,
        use_dictionary=True,
        write_statistics=True,
        data_page_version="1.0",
        store_schema=True,
        write_page_index=False,
    )


def wids_index(shards: list[tuple[str, int]], name: str) -> dict:
    """wids shard index; urls are relative to the index file (wids resolves them against its directory)."""
    if not shards:
        raise ValueError("a wids index needs at least one shard")
    shardlist = []
    for url, nsamples in shards:
        if "://" in url or url.startswith("/"):
            raise ValueError(f"shard url {url!r} must be relative to the index file")
        if nsamples < 0:
            raise ValueError(f"{url}: negative nsamples")
        shardlist.append({"url": url, "nsamples": int(nsamples)})
    return {"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": name, "shardlist": shardlist}
