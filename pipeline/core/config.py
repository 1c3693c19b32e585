"""Config-file pieces the dataset builders share (EgoIT's `sources`, EgoBench's `benchmarks`): the error they
raise, the YAML loader, the `--roots NAME=PATH,...` parser and the resolution of relative paths against the
config file's folder."""

from __future__ import annotations

import os
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A build option is invalid; the message names the option and the value."""


def resolve_path(path: str, base: Path | None) -> str:
    """A path from a config file, relative to the file's folder (`base`); URLs and absolute paths as given."""
    if base is None or "://" in path or os.path.isabs(path):
        return path
    return os.path.normpath(str(base / path))


def parse_roots(text: str, label: str = "NAME") -> dict:
    """ "egtea=/data/egtea,ssv2=/data/ssv2" -> {"egtea": {"root": "/data/egtea"}, ...}; `label` names the left
    side in the error message."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, root = part.partition("=")
        if not sep or not root.strip() or not name.strip():
            raise ConfigError(f"--roots: {part!r} is not {label}=PATH")
        out[name.strip()] = {"root": root.strip()}
    return out


def load_config_file(path: str) -> dict:
    """The YAML config as a dict; ConfigError naming the file when it is missing, invalid or not a mapping."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping")
    return raw


def add_config_arguments(ap, key: str, label: str, what: str) -> None:
    """--config FILE, --roots LABEL=PATH,... (the short form of the file's `key` mapping) and
    --max-samples-per-shard (overriding the file's)."""
    ap.add_argument("--config", help=f"YAML config: {what}, and build options")
    ap.add_argument("--roots", help=f"{label}=PATH,... instead of (or on top of) the config's {key}")
    ap.add_argument("--max-samples-per-shard", type=int, help="default: the config's, else the builder's")


def config_mapping(config: str | None, roots: str | None, key: str, label: str) -> tuple[dict, Path]:
    """The config file's mapping with --roots merged into its `key` entry, and the folder relative paths are
    taken from (the file's, else the working directory)."""
    raw = load_config_file(config) if config else {}
    base = Path(config).resolve().parent if config else Path.cwd()
    if roots:
        raw[key] = {**(raw.get(key) or {}), **parse_roots(roots, label)}
    if not raw.get(key):
        raise ConfigError("give --config or --roots")
    return raw, base


def check_values(obj, checks, error: type[Exception] = ConfigError) -> None:
    """checks: (field, ok, what it must be); the first that fails is `error` naming Class.field=value."""
    for name, ok, want in checks:
        if not ok:
            raise error(f"{type(obj).__name__}.{name}={getattr(obj, name)!r}: must be {want}")


def check_names(key: str, names: list[str], what: str) -> None:
    """A config's entries (EgoIT sources, EgoBench benchmarks): at least one, none named twice."""
    if not names:
        raise ConfigError(f"{key}: none given")
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}: {what} is given twice ({names})")


def shard_checks(cfg) -> list[tuple[str, bool, str]]:
    """The checks of the options every builder's config has: shard bounds and the probe timeout."""
    return [
        ("max_samples_per_shard", cfg.max_samples_per_shard >= 1, ">= 1"),
        ("max_shard_bytes", cfg.max_shard_bytes >= 1, ">= 1"),
        ("probe_timeout_s", cfg.probe_timeout_s > 0, "> 0"),
    ]


PATH_KEYS = ("root", "annotations", "videos")


def config_entries(raw, key: str, what: str, known: set[str], base: Path | None) -> list[tuple[str, dict, dict, dict]]:
    """The entries of a config's `key` mapping ({name: root} or {name: {root, annotations?, videos?, options?,
    ...}}): (name, its settings, its paths resolved against `base`, its options), each checked (ConfigError
    naming "<key>.<name>")."""
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{key}: expected a mapping of {what} name -> settings")
    found = []
    for name, entry in raw.items():
        entry = {"root": entry} if isinstance(entry, str) else {} if entry is None else entry
        if not isinstance(entry, dict):
            raise ConfigError(f"{key}.{name}: expected a mapping or a root path")
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ConfigError(f"{key}.{name}: unknown key(s) {unknown} (known: {sorted(known)})")
        paths = {k: resolve_path(str(entry[k]), base) for k in PATH_KEYS if entry.get(k)}
        if "root" not in paths:
            raise ConfigError(f"{key}.{name}.root: missing")
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            raise ConfigError(f"{key}.{name}.options: expected a mapping")
        found.append((str(name), entry, paths, dict(options)))
    return found


def build_config(config_cls, raw: dict, *, out: str, key: str, entries: tuple, output_cls, output_keys: set[str],
                 clip=None):  # fmt: skip
    """config_cls(out, key=entries, output=output_cls(clip, **the output keys of raw), **the rest of raw): a
    builder's config from its YAML mapping; unknown keys and invalid values are ConfigError."""
    from pipeline.core.clips import ClipFormat

    raw = {k: v for k, v in raw.items() if k != key}
    output = {k: raw.pop(k) for k in list(raw) if k in output_keys}
    known = set(config_cls.__dataclass_fields__) - {"out", key, "output"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"config: unknown key(s) {unknown} (known: {sorted(known | output_keys | {key})})")
    try:
        fmt = output_cls(clip=clip or ClipFormat(), **output)
        return config_cls(out=out, **{key: entries}, output=fmt, **raw)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None
