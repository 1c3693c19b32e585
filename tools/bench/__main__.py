"""`make bench [DATASET=egoexoclip|egoit|egobench|egoclip]`: python -m tools.bench [--dataset X] [options].

egoexoclip (the default): the full Ego-ExoClip bench (tools/bench/__init__.py). egoit, egobench, egoclip: the
builder's real build on its bundled sample against its codec limit (tools/bench/builders.py).
"""

from __future__ import annotations

import argparse

DATASETS = ("egoexoclip", "egoit", "egobench", "egoclip")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=DATASETS, default="egoexoclip", help="the builder (default egoexoclip)")
    ap.add_argument("--out", default="data/bench", help="cache + results directory (default data/bench)")
    eg = ap.add_argument_group("egoexoclip")
    eg.add_argument("--naive-takes", type=int, default=1, help="takes whose views the naive method cuts")
    eg.add_argument("--mem-repeat", type=int, default=6, help="long take = the 3.5-min views repeated N times")
    eg.add_argument("--skip-memory", action="store_true", help="leave out the memory runs")
    eg.add_argument("--skip-peer", action="store_true", help="leave out video2dataset (tools/bench/peer.py)")
    eg.add_argument("--only", choices=["memory"], help="run one part alone (memory: idle + contended, ~15-25 min)")
    other = ap.add_argument_group("egoit, egobench, egoclip")
    other.add_argument("--build-args", default="", help='extra build options, e.g. "--frames 16 --size 336"')
    other.add_argument("--profile", action="store_true", help="profile the build once more (cProfile, not timed)")
    other.add_argument("--results", default="bench_results", help="where <dataset>-bench-<date>.json goes")
    args = ap.parse_args(argv)
    if args.dataset != "egoexoclip":
        from tools.bench.builders import bench_builder

        bench_builder(args)
        return 0
    if args.only == "memory":
        from tools.bench.memory import memory_only

        memory_only(args)
        return 0
    from tools.bench.egoexoclip import bench

    bench(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
