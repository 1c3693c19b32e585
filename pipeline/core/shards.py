"""WebDataset shards, the same way for every builder: sample keys, packing, deterministic tars, shard
planning, parquet manifests and wids indexes (pure functions, no Beam).

A sample is a dict ``{"__key__": key, member: bytes, ...}``; in the tar every member becomes the file
``<key>.<member>``. Readers (webdataset, wids, Hugging Face ``datasets``) split a file name at the FIRST dot
of its basename, so keys never contain a dot and members always do (or are a bare extension like "txt").
Member names must be identical in every sample of a build (HF's builder infers one schema from the first
samples), and the ``json`` member must have the same keys and non-null value types in every sample: builders
fill absent values with "" / -1 / -1.0, and ``pack_sample`` rejects ``None`` anywhere in the metadata.

Frames (as opposed to one mp4 member per view) are stored as one JPEG member per frame,
``<prefix>.00.jpg`` ..: every client decodes ``.jpg`` natively (webdataset ``decode("pil")``, wids' default
decoder, HF's ``Image`` feature), N is fixed per build so names match across samples, and the zero-padded index
keeps the tar's sorted member order equal to frame order.
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

# Keys: ASCII, no '.', '/', whitespace. '.' would move the key/member split; '/' would create directories.
KEY_RE = re.compile(r"^[A-Za-z0-9_\-+:@=,]+$")
_MEMBER_RE = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
# wids' mmap reader only looks at the 100-byte USTAR name field (it ignores the prefix field and GNU long-name
# records), so every "<key>.<member>" must fit in it.
MAX_TAR_NAME = 100


def check_key(key: str) -> str:
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise ValueError(f"invalid sample key {key!r}: must be non-empty ASCII without '.', '/' or spaces")
    return key


# --------------------------------------------------------------------------------------------- packing


def canonical_json(obj) -> bytes:
    """Stable bytes for the json member: sorted keys, no spaces, UTF-8, NaN rejected (not valid JSON)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def check_no_null(value, path: str = "meta") -> None:
    if value is None:
        raise ValueError(f"{path} is None: use '' / -1 / -1.0 so every sample has the same json types")
    if isinstance(value, Mapping):
        for k, v in value.items():
            check_no_null(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_no_null(v, f"{path}[{i}]")


def typed_meta(spec: Mapping[str, tuple[type, object]], **fields) -> dict:
    """A json member with every key of `spec` (field -> (type, value used when absent)): absent/None values
    replaced by the default, ints given for float fields turned into floats (HF would otherwise infer int64
    from one sample and double from another), list items as str. Unknown fields and wrong types raise."""
    unknown = sorted(set(fields) - set(spec))
    if unknown:
        raise ValueError(f"unknown meta fields {unknown}: add them to the field spec so every sample has them")
    meta = {}
    for name, (typ, default) in spec.items():
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


def pack_sample(key: str, members: Mapping[str, bytes], meta: dict, text: str | None = None) -> dict[str, bytes]:
    """``{"__key__", <members>, "json": canonical meta[, "txt": text]}`` after validating every part."""
    check_key(key)
    if text is not None and not isinstance(text, str):
        raise ValueError(f"{key}: text must be str")
    check_no_null(meta)
    for name, data in members.items():
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValueError(f"{key}: member {name} is {type(data).__name__}, not bytes")
    sample = {"__key__": key, **{n: bytes(d) for n, d in members.items()}}
    if text is not None:
        sample["txt"] = text.encode()
    sample["json"] = canonical_json(meta)
    return sample


def frame_members(prefix: str, jpegs: Sequence[bytes], n: int) -> dict[str, bytes]:
    """``<prefix>.00.jpg`` .. ``<prefix>.NN.jpg`` (``00.jpg``.. with an empty prefix); exactly n frames."""
    if len(jpegs) != n:
        raise ValueError(f"{prefix or 'frames'}: {len(jpegs)} frames, expected {n} (the count is fixed per build)")
    width = max(2, len(str(n - 1)))  # "00".."15": sorted member order == frame order
    out = {}
    for i, data in enumerate(jpegs):
        if not bytes(data[:2]) == b"\xff\xd8":
            raise ValueError(f"{prefix or 'frames'} frame {i} is not a JPEG (no SOI marker)")
        out[f"{prefix}.{i:0{width}d}.jpg" if prefix else f"{i:0{width}d}.jpg"] = data
    return out


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
        if not isinstance(key, str) or not KEY_RE.match(key):
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


def table_from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows -> table with exactly `schema`; missing/extra columns or nulls in non-nullable ones raise."""
    names = set(schema.names)
    for i, row in enumerate(rows):
        if set(row) != names:
            raise ValueError(
                f"manifest row {i}: missing {sorted(names - set(row))}, extra {sorted(set(row) - names)}"
            )
        for field in schema:
            if row[field.name] is None and not field.nullable:
                raise ValueError(f"manifest row {i}: {field.name} is null")
    table = pa.Table.from_pylist(rows, schema=schema)
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


COLUMN_TYPES = {"str": pa.string(), "i32": pa.int32(), "i64": pa.int64(), "f64": pa.float64(), "bool": pa.bool_(),
                "strs": pa.list_(pa.string())}  # fmt: skip


def manifest_schema(*columns: str, group: str = "split", nullable: frozenset[str] = frozenset(), **types) -> pa.Schema:
    """A builder's manifest.parquet schema: key, shard and `group` (split, or EgoBench's task) first, then
    `columns` in order, each of type COLUMN_TYPES[types.get(name, "str")], non-null except those in `nullable`."""
    names = ("key", "shard", group, *columns)
    return pa.schema([pa.field(n, COLUMN_TYPES[types.get(n, "str")], nullable=n in nullable) for n in names])
