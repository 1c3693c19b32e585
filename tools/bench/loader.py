"""Loader throughput: decoded stage-2 PAIRS (ego + exo clip, n_frames x size x size each) per second.

    python -m tools.bench.loader --shards 'data/egoexoclip/egoexoclip-train-{000000..000000}.tar' \
        --frames 16 --size 336 --workers 2 --seconds 60

Without --shards it reads data/egoexoclip/ (make build-egoexoclip) when it exists, else generates the bundled
sample release and builds it into a temporary directory first (~1 min). The loader runs the real pipeline
(make_loader, kind "pairs", tiny tokenizer), drawing shards with replacement (resampled) until --seconds have passed, and reports
pairs/s and pairs/s per CPU core used (workers, or 1 when --workers 0). By default it measures the path training
uses: uint8 frames out of the workers, normalised on the device (train.py); --float32 measures the loader's
normalising collate instead. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from exo2ego_model.config import DataConfig
from exo2ego_model.data import make_loader
from exo2ego_model.tiny import tiny_tokenizer

DEFAULT_BUILD = Path("data/egoexoclip")


def bundled_shards(tmp: str) -> str:
    """Train shards of data/egoexoclip, or of a fresh build of the bundled sample release under tmp."""
    out = DEFAULT_BUILD
    if not sorted(out.glob("egoexoclip-train-*.tar")):
        from pipeline.egoexoclip import BuildConfig, run
        from tools.samples.egoexoclip import generate_release

        root = generate_release(Path(tmp) / "release")
        out = Path(tmp) / "egoexoclip"
        print(f"# building the bundled sample into {out}", file=sys.stderr)
        run(BuildConfig(root=str(root), out=str(out)), [])
    return [str(p) for p in sorted(out.glob("egoexoclip-train-*.tar"))]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", default="", help="brace pattern / list file / URL (default: bundled build)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=336)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument(
        "--float32", action="store_true", help="normalise to float32 in the workers (not what train.py does)"
    )
    ap.add_argument("--warmup-batches", type=int, default=2, help="batches not timed (worker start-up)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        shards = args.shards or bundled_shards(tmp)
        cfg = DataConfig(
            shards=shards,
            n_frames=args.frames,
            image_size=args.size,
            num_workers=args.workers,
            shuffle_buffer=0,  # measure decoding, not the shuffle buffer's fill
            # resampled: every worker stays busy however few and uneven the shards are (the bundled build
            # has one train shard); the stream is cut by the clock
            resampled=True,
            epoch_samples=10**12,
        )
        tok = tiny_tokenizer()
        pairs = batches = 0
        started = None
        for batch in make_loader(cfg, "pairs", tok, batch_size=args.batch, normalize_frames=args.float32):
            batches += 1
            if started is None:
                if batches >= args.warmup_batches:
                    started = time.monotonic()
                continue
            pairs += len(batch["keys"])
            if time.monotonic() - started >= args.seconds:
                break
        elapsed = time.monotonic() - started
    cores = max(1, args.workers)
    result = {
        "pairs_per_s": round(pairs / elapsed, 2),
        "pairs_per_s_per_core": round(pairs / elapsed / cores, 2),
        "pairs": pairs,
        "seconds": round(elapsed, 1),
        "frames": args.frames,
        "size": args.size,
        "workers": args.workers,
        "batch": args.batch,
        "frames_dtype": "float32" if args.float32 else "uint8",
        "cpu_count": os.cpu_count(),
        "shards": shards if isinstance(shards, str) else f"{len(shards)} shards",
    }
    print(
        f"{result['pairs_per_s']:.2f} decoded pairs/s ({args.frames}x{args.size}x{args.size} ego + exo), "
        f"{result['pairs_per_s_per_core']:.2f} pairs/s per core ({cores} cores), {pairs} pairs in {elapsed:.1f} s"
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
