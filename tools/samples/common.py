"""What the bundled sample generators share: the cut-off file of a "truncated" quirk, the write order of an
annotation-rows + media sample (EgoIT, EgoBench), and a generator's command line (--out, --force)."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


def truncate(path: Path, keep: float = 0.4) -> None:
    """Cut a written file to its first `keep` share: a video without its end (and, without +faststart, without its
    moov atom, so that probing it fails)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def write_rows_and_media(out: Path, *, force: bool, config_name: str, config: str, codes_name: str, top_dirs: Iterable[str],
                         rows: Path, annotations: Mapping[str, str], specs: Sequence,
                         write_media: Callable[[Path, object], None]) -> Path:  # fmt: skip
    """The annotation files (`rows`/src -> `out`/dst, byte for byte), every media spec whose state is not
    "missing" (biggest first on 2 threads, so that both finish together), OUT/`codes_name` (path -> stamp code),
    and OUT/`config_name` last: its presence marks a complete sample, kept as is unless `force`. A spec has
    .path, .code, .state, .n_frames, .width and .height."""
    if (out / config_name).exists() and not force:
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name in (config_name, codes_name):  # the config goes first and comes back last: it marks completion
        (out / name).unlink(missing_ok=True)
    for name in top_dirs:  # only what this generator writes: no stale file of an older sample survives
        shutil.rmtree(out / name, ignore_errors=True)
    for src, dst in annotations.items():
        (out / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(rows / src, out / dst)  # byte for byte: the rows stay verbatim
    specs = [s for s in specs if s.state != "missing"]
    biggest_first = sorted(specs, key=lambda s: (-s.n_frames * s.width * s.height, s.path))
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda s: write_media(out, s), biggest_first))
    codes = {s.path: s.code for s in specs}
    (out / codes_name).write_text(json.dumps(codes, indent=2, sort_keys=True) + "\n")
    (out / config_name).write_text(config)
    return out


def generator_main(argv, *, description: str, out_help: str, marker: str, name: str,
                   generate: Callable[[argparse.Namespace], object], note: Callable[[Path], str] = lambda out: "",
                   options: Sequence[tuple[str, dict]] = ()) -> int:  # fmt: skip
    """A generator's command line: --out (required), --force, and `options` (flag, add_argument kwargs). Keeps an
    existing sample (OUT/`marker` present) unless --force; else calls generate(args) and says how long it took."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", required=True, type=Path, help=out_help)
    for flag, kwargs in options:
        parser.add_argument(flag, **kwargs)
    parser.add_argument("--force", action="store_true", help=f"regenerate even if OUT/{marker} exists")
    args = parser.parse_args(argv)
    if (args.out / marker).exists() and not args.force:
        print(f"{args.out}/{marker} exists: {name} kept (use --force to regenerate)")
        return 0
    start = time.perf_counter()
    generate(args)
    print(f"{name} written to {args.out} in {time.perf_counter() - start:.1f} s{note(args.out)}")
    return 0


@dataclass(frozen=True)
class RowsSample:
    """An annotation-rows + media sample (EgoIT, EgoBench): what write_rows_and_media writes, and its command
    line (`python -m tools.samples.<dataset> --out DIR`)."""

    name: str  # "EgoIT sample"
    description: str
    config_name: str
    config: str
    codes_name: str
    top_dirs: tuple[str, ...]
    rows: Path
    annotations: Mapping[str, str]
    media_specs: Callable[[], Sequence]
    write_media: Callable[[Path, object], None]

    def generate(self, out_dir, *, force: bool = False) -> Path:
        """Write the sample into out_dir (kept as is when its config exists, unless force)."""
        return write_rows_and_media(Path(out_dir), force=force, config_name=self.config_name, config=self.config,
                                    codes_name=self.codes_name, top_dirs=self.top_dirs, rows=self.rows,
                                    annotations=self.annotations, specs=self.media_specs(),
                                    write_media=self.write_media)  # fmt: skip

    def main(self, argv=None) -> int:
        return generator_main(argv, description=self.description, marker=self.config_name, name=self.name,
                              out_help=f"folder to write (OUT/{self.config_name} is the config)",
                              generate=lambda args: self.generate(args.out, force=True),
                              note=lambda out: f" (config {self.config_name})")  # fmt: skip
