"""`make bench [DATASET=egoexoclip]`: python -m tools.bench [--dataset egoexoclip] [options]; see tools/bench/__init__.py."""

from __future__ import annotations

import argparse

import tools.bench

DATASETS = ("egoexoclip",)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench", description=tools.bench.__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=DATASETS, default="egoexoclip", help="the builder to bench (default egoexoclip)")
    ap.add_argument("--out", default="data/bench", help="cache + results directory (default data/bench)")
    ap.add_argument("--naive-takes", type=int, default=1, help="takes whose views the naive method cuts")
    ap.add_argument(
        "--mem-repeat", type=int, default=6, help="long take = the 3.5-min views repeated N times"
    )
    ap.add_argument("--skip-memory", action="store_true", help="leave out the memory runs")
    ap.add_argument("--skip-peer", action="store_true", help="leave out video2dataset (tools/bench/peer.py)")
    ap.add_argument("--only", choices=["memory"], help="run one part alone (memory: idle + contended, ~15-25 min)")
    args = ap.parse_args(argv)
    if args.only == "memory":
        from tools.bench.memory import memory_only

        memory_only(args)
        return 0
    from tools.bench.egoexoclip import bench

    bench(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
