"""Shard URLs of the training loaders (exo2ego_model/data.py): DataConfig.shards -> URLs.

    expand_urls     brace patterns, wids indexes, list files, globs, URLs -> shard URLs in order
    gopen_url       gs:// and s3:// as `pipe:` commands of the vendors' CLIs

Every name here is also importable from exo2ego_model.data.
"""

from __future__ import annotations

import glob
import json
import posixpath
import shlex
from collections.abc import Sequence
from pathlib import Path

import webdataset as wds

# ----------------------------------------------------------------------------------------------- shard URLs


def gopen_url(url: str) -> str:
    """gs:// and s3:// URLs as `pipe:` commands (webdataset has no s3 opener; both go through the vendors'
    CLIs, which must be installed and authenticated). Other URLs (local paths, http(s)://, pipe:) unchanged."""
    if url.startswith("gs://"):
        return f"pipe:gsutil cat {shlex.quote(url)}"
    if url.startswith("s3://"):
        return f"pipe:aws s3 cp {shlex.quote(url)} -"
    return url


_LIST_FILES = (".txt", ".list", ".shards")


def _is_local(spec: str) -> bool:
    return "://" not in spec and not spec.startswith("pipe:")


def _read_index(spec: str) -> str:
    """The text of a list file or wids index: a local file, or any URL webdataset opens (gs://, s3:// through
    gopen_url)."""
    if _is_local(spec):
        return Path(spec).read_text()
    with wds.gopen(gopen_url(spec), "rb") as f:
        return f.read().decode()


def resolve_url(index: str, url: str) -> str:
    """`url` named by the list file / wids index at `index`: relative ones are relative to the index's folder
    (wids' rule); absolute paths, URLs and pipe: commands are kept."""
    if not _is_local(url) or url.startswith("/"):
        return url
    if _is_local(index):
        return posixpath.normpath(posixpath.join(posixpath.dirname(index), url))
    return f"{index.rsplit('/', 1)[0]}/{url}"


def wids_urls(index: str) -> list[str]:
    """Shard URLs of a wids index (`*.wids.json`, as the builders write one per split): its `shardlist`, then
    the shardlists of its `datasets` (inline, or `source_url` read in turn), resolved against their index."""
    try:
        doc = json.loads(_read_index(index))
    except (OSError, ValueError) as err:
        raise ValueError(f"data.shards={index!r}: not a readable wids index ({err})") from None
    if not isinstance(doc, dict) or doc.get("wids_version") != 1:
        raise ValueError(f'data.shards={index!r}: not a wids index (no "wids_version": 1)')
    urls = [resolve_url(index, s["url"]) for s in doc.get("shardlist", [])]
    for part in doc.get("datasets", []):
        if "source_url" in part:
            urls += wids_urls(resolve_url(index, part["source_url"]))
        else:
            base = part.get("base")
            urls += [
                resolve_url(index, f"{base}/{s['url']}" if base else s["url"]) for s in part["shardlist"]
            ]
    if not urls:
        raise ValueError(f"data.shards={index!r}: the wids index lists no shard")
    return urls


def expand_urls(spec: str | Sequence[str]) -> list[str]:
    """Shard URLs of a DataConfig.shards value, in order.

    - a brace pattern (`data/egoexoclip-train-{000000..000009}.tar`), several joined by `::`;
    - a manifest: a wids index (`*.json`, e.g. the `<prefix>-<split>.wids.json` each builder writes) or a list
      file (`*.txt` / `*.list` / `*.shards`: one URL, pattern or index a line, `#` comments); relative entries
      are relative to the manifest's folder; local, or any URL (gs://, s3://, http(s)://);
    - a local glob (`data/*.tar`, sorted);
    - a list of any of these.
    Each URL is then passed through `gopen_url` (gs:// and s3:// become `pipe:` commands).
    """
    if not isinstance(spec, str):
        return [u for s in spec for u in expand_urls(s)]
    spec = spec.strip()
    if not spec:
        raise ValueError(
            "data.shards is empty: give a brace pattern, list file, wids index or URL of .tar shards"
        )
    if spec.endswith(".json") and not spec.startswith("pipe:"):
        return expand_urls(wids_urls(spec))
    if spec.endswith(_LIST_FILES) and not spec.startswith("pipe:"):
        lines = [ln.strip() for ln in _read_index(spec).splitlines()]
        entries = [resolve_url(spec, ln) for ln in lines if ln and not ln.startswith("#")]
        if not entries:
            raise ValueError(f"data.shards={spec!r}: the list file names no shard")
        return expand_urls(entries)
    if _is_local(spec) and any(c in spec for c in "*?["):
        found = sorted(glob.glob(spec))
        if not found:
            raise ValueError(f"data.shards={spec!r}: the glob matches no file")
        return found
    return [gopen_url(u) for u in wds.shardlists.expand_urls(spec)]
