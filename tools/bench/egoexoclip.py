"""The Ego-ExoClip bench end to end (`make bench`, `python -m tools.bench`): the pipeline, the codec limit, the
naive method, the preset table, memory and the peer on one input; OUT/bench.json + a printed table. What each
figure means: tools/bench/__init__.py.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline.core.clips import ClipFormat
from pipeline.core.clips import plan as clip_plan
from tools.bench import peer as bench_peer
from tools.bench.codec import _ff, encode_only, naive_clip, run_measured
from tools.bench.inputs import ensure_inputs, view_table
from tools.bench.memory import memory_section, memory_targets
from tools.bench.presets import preset_table
from tools.bench.settings import FPS, FRAMES_FMT, FULL_RELEASE_PAIRS, SRC_CRF, SRC_PRESET, TARGETS, WINDOW_SEC
from tools.bench.table import machine, table
from tools.bench.worker import run_pipeline, windows_from_manifest


def _par(fn, items, workers=2):
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def bench(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    inputs = ensure_inputs(out, args.mem_repeat, log)
    views = view_table(inputs["release"], inputs["takes"])
    src_frames = sum(v["n_frames"] for v in views)
    duration = sum(v["n_frames"] for v in views) / FPS
    src_mbit = {v["cam"]: v["bytes"] * 8 / (v["n_frames"] / FPS) / 1e6 for v in views}
    log(
        f"input ready: {len(views)} views, {src_frames} source frames; bitrates (Mbit/s incl. audio) {src_mbit}"
    )

    mp4_fmt, frames_fmt = ClipFormat(), ClipFormat(**FRAMES_FMT)
    work = out / "work"
    work.mkdir(exist_ok=True)

    # 1. the pipeline end to end, both formats (two child processes side by side: per-process CPU time).
    log("pipeline end to end: mp4 and frames")
    pipe = dict(
        zip(
            ("mp4", "frames"),
            _par(
                lambda kf: run_pipeline(
                    inputs["release"], work / f"build_{kf[0]}", kf[1], work / f"rep_{kf[0]}.json"
                ),
                [("mp4", mp4_fmt), ("frames", frames_fmt)],
            ),
            strict=True,
        )
    )
    windows = windows_from_manifest(work / "build_mp4", views)
    n_windows = sum(len(w) for w in windows.values())
    mean_window = sum(b - a for w in windows.values() for a, b in w) / n_windows / FPS
    out_frames = sum(b - a for w in windows.values() for a, b in w)
    jpeg_idx = {
        k: sorted({i for a, b in w for i in clip_plan.sample_frame_indices(a, b, frames_fmt.n_frames)})
        for k, w in windows.items()
    }
    n_jpegs = sum(len(v) for v in jpeg_idx.values())
    log(f"windows: {n_windows} clips, mean {mean_window:.3f} s, {out_frames} mp4 frames, {n_jpegs} JPEGs")

    # 2. the codec limit.
    log("codec limit: decode-only, encode-only (mp4, frames)")
    dec = _par(
        lambda v: run_measured(_ff("-threads", "1", "-i", v["path"], "-map", "0:v:0", "-f", "null", "-")),
        views,
    )
    enc = _par(
        lambda v: encode_only(
            v, windows[(v["take"], v["cam"])], jpeg_idx[(v["take"], v["cam"])], mp4_fmt, frames_fmt
        ),
        views,
    )
    enc_mp4, enc_jpg = [m for m, _ in enc], [j for _, j in enc]
    dec_cpu = sum(r.cpu for r in dec)
    limit = {
        "decode_cpu_s": dec_cpu,
        "decode_fps_per_core": src_frames / dec_cpu,
        "encode_mp4_cpu_s": sum(r.cpu for r in enc_mp4),
        "encode_mp4_fps_per_core": out_frames / sum(r.cpu for r in enc_mp4),
        "encode_frames_cpu_s": sum(r.cpu for r in enc_jpg),
        "encode_frames_jpegs_per_s_per_core": n_jpegs / sum(r.cpu for r in enc_jpg),
    }
    limit["mp4_fps_per_core"] = src_frames / (dec_cpu + limit["encode_mp4_cpu_s"])
    limit["frames_fps_per_core"] = src_frames / (dec_cpu + limit["encode_frames_cpu_s"])

    # 3. naive: one ffmpeg per clip over the same windows.
    naive_views = [v for v in views if v["take"] in {t.name for t in inputs["takes"][: args.naive_takes]}]
    log(f"naive per-clip ffmpeg over {len(naive_views)} views")
    nt = work / "naive"
    nt.mkdir(exist_ok=True)
    clip_jobs = [(v, k, w) for v in naive_views for k, w in enumerate(windows[(v["take"], v["cam"])])]
    naive = _par(lambda j: naive_clip(*j, mp4_fmt, str(nt)), clip_jobs)
    naive_frames = sum(v["n_frames"] for v in naive_views)
    naive_cpu = sum(r.cpu for r, _ in naive)
    naive_clips_n = sum(len(windows[(v["take"], v["cam"])]) for v in naive_views)
    # The pipeline's per-frame cost on exactly these views, pro rata from its per-view codec work.
    share = sum(dec[i].cpu + enc_mp4[i].cpu for i, v in enumerate(views) if v in naive_views) / (
        dec_cpu + limit["encode_mp4_cpu_s"]
    )
    naive_res = {
        "views": [f"{v['take']}/{v['cam']}" for v in naive_views],
        "clips": naive_clips_n,
        "cpu_s": naive_cpu,
        "wall_s_summed": sum(r.wall for r, _ in naive),
        "bytes_per_clip": sum(n for _, n in naive) / len(naive),
        "fps_per_core": naive_frames / naive_cpu,
        "pipeline_cpu_s_same_views": pipe["mp4"]["cpu_s"] * share,
    }
    naive_res["speedup_pipeline_vs_naive"] = naive_cpu / naive_res["pipeline_cpu_s_same_views"]

    # 4. encoder settings.
    log("x264 preset x CRF table")
    gopro = next(v for v in views if v["width"] == 796)
    presets = preset_table(gopro, windows[(gopro["take"], gopro["cam"])], log)

    # 5. memory: a 3.5-min and a long take, both formats, idle and contended.
    mem = {} if args.skip_memory else memory_section(inputs, work, (("mp4", mp4_fmt), ("frames", frames_fmt)), log)

    # 5b. the peer, side by side (tools/bench/peer.py): video2dataset's exact clipping.
    peers = {}
    if not args.skip_peer:
        log("peer: video2dataset exact clipping vs the pipeline, same views and windows")
        try:
            peers["video2dataset"] = bench_peer.peer_bench(out, views, inputs["release"], log)
        except Exception as err:  # the peer must not cost the rest of the results
            log(f"peer failed: {err!r}")
            peers["video2dataset"] = {"skipped": f"error: {err!r}"[:2000]}

    # 6. results.
    res = {
        "machine": machine(),
        "input": {
            "views": [
                {k: v[k] for k in ("take", "cam", "n_frames", "width", "height", "bytes")} for v in views
            ],
            "source_frames": src_frames,
            "source_minutes_total": duration / 60,
            "source_mbit_per_s": src_mbit,
            "source_encoding": f"x264 {SRC_PRESET} crf {SRC_CRF}, keyint 250 (default), textured",
            "clips_per_view_total": n_windows,
            "mean_window_s": mean_window,
            "window_rule": f"fixed {WINDOW_SEC} s",
            "mp4_output_frames": out_frames,
            "jpegs": n_jpegs,
        },
        "unit": "source frames per second per core, from CPU time (user+sys incl. children)",
        "codec_limit": limit,
        "pipeline": {},
        "naive": naive_res,
        "presets": presets,
        "memory": mem,
        "peers": peers,
    }
    for kind in ("mp4", "frames"):
        p = pipe[kind]
        lim = limit[f"{kind}_fps_per_core"]
        fps = src_frames / p["cpu_s"]
        res["pipeline"][kind] = {
            **p,
            "fps_per_core": fps,
            "wall_fps": src_frames / p["wall_s"],
            "ratio_to_codec_limit": fps / lim,
            "ratio_to_decode_only": fps / limit["decode_fps_per_core"],
            "bytes_per_pair": p["bytes"] / p["pairs"],
            "cpu_s_per_pair": p["cpu_s"] / p["pairs"],
            "full_release_core_hours": FULL_RELEASE_PAIRS * p["cpu_s"] / p["pairs"] / 3600,
            "full_release_tb": FULL_RELEASE_PAIRS * p["bytes"] / p["pairs"] / 1e12,
        }
    res["targets"] = {
        "mp4_ratio_ge_0.87": res["pipeline"]["mp4"]["ratio_to_codec_limit"]
        >= TARGETS["ratio_to_codec_limit"],
        "frames_ratio_ge_0.87": res["pipeline"]["frames"]["ratio_to_codec_limit"]
        >= TARGETS["ratio_to_codec_limit"],
        "speedup_vs_naive_ge_1.4": naive_res["speedup_pipeline_vs_naive"] >= TARGETS["speedup_vs_naive"],
    }
    v2d = peers.get("video2dataset", {})
    if "speedup_pipeline_vs_peer" in v2d:
        res["targets"]["speedup_vs_video2dataset_ge_2"] = v2d["speedup_pipeline_vs_peer"] >= 2.0
    res["targets"].update(memory_targets(mem))
    res["bench_wall_s"] = time.perf_counter() - t_start
    (out / "bench.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    print(table(res))
    log(f"written {out / 'bench.json'}")
    return res
