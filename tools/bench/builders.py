"""`make bench DATASET=egoit|egobench|egoclip`: a builder's real build on its bundled sample against its codec limit.

    python -m tools.bench --dataset egoit [--out data/bench] [--build-args "--frames 16 --size 336"] [--profile]

1. the bundled sample (tools/samples/<dataset>.py) in OUT/<dataset>/sample (generated once, then kept);
2. the real build, as `make build-<dataset>` runs it: `python -m pipeline.<dataset>` on the sample's inputs into
   OUT/<dataset>/build (plus --build-args), in a child process. Its CPU time is user + sys of the child and of
   everything it waited for (getrusage RUSAGE_CHILDREN around it), split into the build's own Python and its
   ffmpeg children (tools/bench/run_module.py); wall time beside it;
3. the codec limit of that very build. What it decoded and what it wrote is read back from its shards: every
   frame of a bundled sample carries its file's stamp code and its frame index (pipeline/core/framecode.py),
   and the sample's stamp_codes.json names the file of each code. Then, for every distinct source the build
   read: one ffmpeg decode of the frame range it used (tools.bench.codec.decode_range: input seek to the first
   frame, stop after the last; an image folder: its used images), and one encode of exactly that source's
   output with the build's settings (stats.json's options): x264 preset / CRF / threads over its clip windows
   back to back with a keyframe at each window start (codec.encode_windows), or scale + mjpeg of each output
   JPEG (codec.encode_jpegs); encoder CPU only, the feeding decoder not counted;
4. ratio = codec-limit CPU / build CPU: 1.0 = the build costs no more than its decode + encode.

Results: a printed summary, OUT/<dataset>/bench.json and RESULTS/<dataset>-bench-<date>.json (RESULTS:
--results, default bench_results). --profile: the build once more under cProfile (not timed), with its top
functions by cumulative and by own time in the results.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pstats
import resource
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.core.clips import ClipFormat, probe_video, read_frames
from pipeline.core.framecode import FrameCodeError, decode_frame
from tools.bench.codec import decode_range, encode_jpegs, encode_windows
from tools.bench.table import machine

TARGET_RATIO = 0.8


def _config(sample: Path, name: str) -> list[str]:
    return ["--config", str(sample / name)]


def _egoit_fixed(sample: Path) -> list[str]:
    from tools.bench.egoit import fixed_cost_config

    return ["--config", str(fixed_cost_config(sample))]


# dataset -> (its sample generator, the build's input arguments for a sample folder, as the Makefile's
# build-<X>; the inputs of the same build with no video to cut, where the builder has a way: its fixed cost)
BUILDERS = {
    "egoit": ("tools.samples.egoit", lambda g, s: _config(s, g.CONFIG_NAME), _egoit_fixed),
    "egobench": ("tools.samples.egobench", lambda g, s: _config(s, g.CONFIG_NAME), None),
    "egoclip": ("tools.samples.egoclip",
                lambda g, s: ["--csv", str(s / g.CSV_NAME), "--ego4d-root", str(s / g.VIDEO_ROOT)], None),
}


# ------------------------------------------------------------------------------------------- the build


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def build_command(dataset: str, sample: Path, out: Path, extra: list[str], *, fixed: bool = False) -> list[str]:
    module, inputs, fixed_inputs = BUILDERS[dataset]
    args = fixed_inputs(sample) if fixed else inputs(importlib.import_module(module), sample)
    return [f"pipeline.{dataset}", *args, "--out", str(out), *extra]


def timed_build(dataset: str, sample: Path, out: Path, extra: list[str], report: Path, *, fixed: bool = False) -> dict:
    """The build in a child process; CPU = RUSAGE_CHILDREN after - before (the child and all it reaped)."""
    shutil.rmtree(out, ignore_errors=True)
    argv = build_command(dataset, sample, out, extra, fixed=fixed)
    cmd = [sys.executable, "-m", "tools.bench.run_module", str(report), *argv]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"build failed ({proc.returncode}): {proc.stderr[-3000:]}")
    split = json.loads(report.read_text())
    return {"command": "python -m " + shlex.join(argv), "cpu_s": cpu, "wall_s": wall,
            "python_cpu_s": split["python_cpu_s"], "ffmpeg_cpu_s": split["children_cpu_s"]}  # fmt: skip


# Where a build's Python time goes, by the functions that start each part (cumulative CPU under the profiler;
# the parts overlap: the text encoder's load is mostly importing sentence-transformers and torch).
PHASES = {
    "imports (all modules, anywhere)": ("_find_and_load",),
    "Beam pipeline run (DirectRunner)": ("run_pipeline",),
    "text encoder load (MiniLM: import + weights)": ("load_encoder", "load_text_encoder"),
    "text embedding (near-duplicate removal)": ("embed", "embed_texts"),
    "probing source videos": ("probe_video",),
    "clip extraction (Python side, ffmpeg waited for)": ("extract_clips", "extract_image_clip"),
}


def startup_cpu(dataset: str) -> float:
    """CPU of `python -m pipeline.<dataset> --help`: the interpreter and the imports of the command, no work."""
    cpu0 = _children_cpu()
    subprocess.run([sys.executable, "-m", f"pipeline.{dataset}", "--help"], check=True, capture_output=True)
    return _children_cpu() - cpu0


def profile_build(dataset: str, sample: Path, out: Path, extra: list[str], prof: Path, top: int = 25) -> dict:
    """The same build under cProfile with a CPU clock (slower, not timed): the parts and functions that take its
    Python time (ffmpeg runs in child processes: not in the profile)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "tools.bench.run_module", "--profile", str(prof), str(prof.with_suffix(".json")),
           *build_command(dataset, sample, out, extra)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"profiled build failed: {proc.stderr[-3000:]}")
    stats = pstats.Stats(str(prof), stream=io.StringIO())
    total = stats.total_tt
    phases = {}
    for label, names in PHASES.items():
        # the outermost call of each name: cumulative times of nested calls are already in it (pstats)
        cum = max((ct for (f, _, n), (_, _, _, ct, _) in stats.stats.items() if n in names), default=0.0)
        phases[label] = {"cpu_s": round(cum, 3), "share": round(cum / total, 3) if total else 0.0}

    def rows(col: int) -> list[dict]:
        ordered = sorted(stats.stats.items(), key=lambda kv: -kv[1][col])[:top]
        return [{"function": f"{Path(f).name}:{line}({name})", "calls": nc, "own_s": round(tt, 3),
                 "cumulative_s": round(ct, 3)} for (f, line, name), (_, nc, tt, ct, _) in ordered]  # fmt: skip

    return {"python_cpu_s_profiled": round(total, 3), "clock": "time.process_time (CPU)", "phases": phases,
            "by_cumulative": rows(3), "by_own": rows(2)}  # fmt: skip


# ------------------------------------------------------------------------------------------- what it did


def _stamp(frame: np.ndarray) -> tuple[int, int] | None:
    try:
        return decode_frame(frame)
    except FrameCodeError:
        return None


def output_clips(build: Path) -> list[dict]:
    """Every clip in the build's shards: {"kind": "mp4" | "jpeg", "stamps": [(code, index) | None, ...],
    "size": (w, h)}; a frames-mode sample's JPEGs are one entry each."""
    clips = []
    for shard in sorted(build.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for info in tar:
                if not info.isfile() or not info.name.endswith((".mp4", ".jpg")):
                    continue
                data = tar.extractfile(info).read()
                if info.name.endswith(".mp4"):
                    frames = read_frames(data)
                    kind = "mp4"
                else:
                    with Image.open(io.BytesIO(data)) as im:
                        frames = np.asarray(im.convert("RGB"))[None]
                    kind = "jpeg"
                size = (frames.shape[2], frames.shape[1])
                clips.append({"kind": kind, "stamps": [_stamp(f) for f in frames], "size": size})
    return clips


def sources_used(clips: list[dict]) -> tuple[dict[int, dict], int]:
    """code -> {"windows": {(start, end)}, "jpegs": {index}, "used": {index}, "mp4_size", "jpeg_size"} and the
    number of output frames without a readable stamp. A clip's window: [its first, its last source frame + 1)."""
    sources: dict[int, dict] = {}
    unstamped = 0
    for clip in clips:
        stamps = [s for s in clip["stamps"] if s is not None]
        unstamped += len(clip["stamps"]) - len(stamps)
        for code in sorted({c for c, _ in stamps}):
            idx = sorted({i for c, i in stamps if c == code})
            src = sources.setdefault(code, {"windows": set(), "jpegs": set(), "used": set(),
                                            "mp4_size": Counter(), "jpeg_size": Counter()})  # fmt: skip
            src["used"].update(idx)
            if clip["kind"] == "mp4":
                src["windows"].add((idx[0], idx[-1] + 1))
                src["mp4_size"][clip["size"]] += 1
            else:
                src["jpegs"].update(idx)
                src["jpeg_size"][clip["size"]] += 1
    return sources, unstamped


def clip_format(options: dict) -> ClipFormat:
    """The build's ClipFormat from stats.json's options."""
    keys = {"kind": "kind", "preset": "preset", "crf": "crf", "threads": "x264_threads", "n_frames": "n_frames",
            "size": "size", "jpeg_quality": "jpeg_quality"}  # fmt: skip
    return ClipFormat(**{k: options[v] for k, v in keys.items() if v in options})


def image_index(folder: Path) -> dict[int, Path]:
    """Stamp index -> image file of a frame folder (files without a readable stamp, e.g. depth maps, left out)."""
    index = {}
    for path in sorted(folder.iterdir()):
        try:
            with Image.open(path) as im:
                if im.mode not in ("RGB", "L", "P"):
                    continue
                stamp = _stamp(np.asarray(im.convert("RGB")))
        except OSError:
            continue
        if stamp is not None:
            index.setdefault(stamp[1], path)
    return index


# ------------------------------------------------------------------------------------------- the codec limit


def codec_limit(path: Path, src: dict, fmt: ClipFormat, image_fps: float) -> dict:
    """One decode of the range of `path` the build used, one encode of its output (mp4 windows and/or JPEGs)."""
    used = sorted(src["used"])
    with tempfile.TemporaryDirectory(prefix="bench-src-") as tmp:
        if path.is_dir():  # an image sequence: the used images, in stamp order, as numbered symlinks
            files = image_index(path)
            missing = [i for i in used if i not in files]
            if missing:
                raise RuntimeError(f"{path}: no image stamped {missing[:5]}")
            ext = files[used[0]].suffix
            for k, i in enumerate(used):
                os.symlink(files[i].resolve(), os.path.join(tmp, f"{k:06d}{ext}"))
            with Image.open(files[used[0]]) as im:
                w, h = im.size
            rate = Fraction(image_fps).limit_denominator(1000)
            input_args = ["-framerate", f"{rate.numerator}/{rate.denominator}", "-start_number", "0"]
            source, fps, pos = os.path.join(tmp, f"%06d{ext}"), image_fps, {i: k for k, i in enumerate(used)}
            decode = decode_range(source, 0, len(used) - 1, fps, input_args=input_args)
            frames_decoded, kind = len(used), "images"
        else:
            info = probe_video(str(path))
            w, h, fps, input_args, source = info.width, info.height, info.fps, [], str(path)
            pos = {i: i for i in used}
            decode = decode_range(source, used[0], used[-1], fps)
            frames_decoded, kind = used[-1] - used[0] + 1, "video"
        windows = sorted({(pos[a], pos[b - 1] + 1) for a, b in src["windows"]})
        jpegs = sorted(pos[i] for i in src["jpegs"])
        enc_mp4 = enc_jpg = None
        if windows:
            out_size = src["mp4_size"].most_common(1)[0][0]
            enc_mp4 = encode_windows(source, w, h, windows, fmt, fps=fps, out_size=out_size, input_args=input_args)
        if jpegs:
            out_size = src["jpeg_size"].most_common(1)[0][0]
            enc_jpg = encode_jpegs(source, w, h, jpegs, fmt, out_size=out_size, input_args=input_args)
    encode = sum(r.cpu for r in (enc_mp4, enc_jpg) if r is not None)
    return {"kind": kind, "size": f"{w}x{h}", "fps": round(fps, 3), "frames_used": len(used),
            "frames_decoded": frames_decoded, "mp4_windows": len(windows),
            "mp4_frames": sum(b - a for a, b in windows), "jpegs": len(jpegs),
            "decode_cpu_s": decode.cpu, "encode_cpu_s": encode}  # fmt: skip


# ------------------------------------------------------------------------------------------- the run


def bench_builder(args) -> dict:
    dataset = args.dataset
    root = Path(args.out) / dataset
    root.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    generator = importlib.import_module(BUILDERS[dataset][0])
    sample = generator.generate_sample(root / "sample")
    log(f"bundled sample ready: {sample}")
    extra = shlex.split(args.build_args or "")
    build_out = root / "build"
    log(f"build: python -m pipeline.{dataset} (child process)")
    build = timed_build(dataset, sample, build_out, extra, root / "build-cpu.json")
    build["exit_cpu_s"] = build["cpu_s"] - build["python_cpu_s"] - build["ffmpeg_cpu_s"]
    build["startup_cpu_s"] = startup_cpu(dataset)
    fixed = None
    if BUILDERS[dataset][2]:
        log("fixed cost: the same build with nothing to cut (every clip mixed away)")
        fixed = timed_build(dataset, sample, root / "build-fixed", extra, root / "build-fixed-cpu.json", fixed=True)
    stats = json.loads((build_out / "stats.json").read_text())
    options = stats.get("options", {})
    fmt = clip_format(options)
    log(f"build: {build['cpu_s']:.2f} s CPU (python {build['python_cpu_s']:.2f}, ffmpeg {build['ffmpeg_cpu_s']:.2f}), "
        f"{build['wall_s']:.1f} s wall; reading its output back")  # fmt: skip
    clips = output_clips(build_out)
    sources, unstamped = sources_used(clips)
    codes = json.loads((sample / "stamp_codes.json").read_text())
    paths = {code: rel for rel, code in codes.items()}
    unknown = sorted(set(sources) - set(paths))
    if unknown:
        raise RuntimeError(f"stamp codes {unknown} name no file of {sample / 'stamp_codes.json'}")
    image_fps = float(options.get("image_fps", 2.0))
    log(f"codec limit: {len(sources)} sources, {len(clips)} output clips / JPEGs")
    with ThreadPoolExecutor(2) as pool:
        per = dict(zip(sorted(sources), pool.map(lambda c: codec_limit(sample / paths[c], sources[c], fmt, image_fps),
                                                 sorted(sources)), strict=True))  # fmt: skip
    decode = sum(p["decode_cpu_s"] for p in per.values())
    encode = sum(p["encode_cpu_s"] for p in per.values())
    res = {
        "dataset": dataset,
        "machine": machine(),
        "unit": "CPU seconds: user + sys of the process and the children it waited for",
        "sample": str(sample),
        "build": {**build, "samples": stats.get("samples"), "format": options.get("kind", fmt.kind),
                  "options": {k: v for k, v in options.items() if not isinstance(v, dict)}},  # fmt: skip
        "output": {"mp4_clips": sum(c["kind"] == "mp4" for c in clips),
                   "mp4_frames": sum(len(c["stamps"]) for c in clips if c["kind"] == "mp4"),
                   "jpegs": sum(c["kind"] == "jpeg" for c in clips), "unstamped_frames": unstamped},  # fmt: skip
        "codec_limit": {"sources": len(per), "frames_decoded": sum(p["frames_decoded"] for p in per.values()),
                        "decode_cpu_s": decode, "encode_cpu_s": encode, "cpu_s": decode + encode,
                        "per_source": {paths[c]: p for c, p in per.items()}},  # fmt: skip
        "ratio_to_codec_limit": (decode + encode) / build["cpu_s"],
        "ratio_without_startup": (decode + encode) / (build["cpu_s"] - build["startup_cpu_s"]),
        "ratio_of_ffmpeg_work": (decode + encode) / build["ffmpeg_cpu_s"] if build["ffmpeg_cpu_s"] else None,
        "target_ratio": TARGET_RATIO,
    }
    res["target_met"] = res["ratio_to_codec_limit"] >= TARGET_RATIO
    if fixed:
        res["fixed_cost"] = fixed
        marginal = build["cpu_s"] - fixed["cpu_s"]
        res["ratio_marginal"] = (decode + encode) / marginal if marginal > 0 else None
    if args.profile:
        log("profile: the build once more under cProfile (not timed)")
        res["profile"] = profile_build(dataset, sample, root / "build-profile", extra, root / "build.prof")
    res["bench_wall_s"] = time.perf_counter() - t_start
    text = json.dumps(res, indent=1, sort_keys=True) + "\n"
    (root / "bench.json").write_text(text)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    dest = results / f"{dataset}-bench-{res['machine']['date']}.json"
    dest.write_text(text)
    print(summary(res))
    log(f"written {root / 'bench.json'} and {dest}")
    return res


def summary(res: dict) -> str:
    b, lim, out = res["build"], res["codec_limit"], res["output"]
    rows = [
        ("build", f"{b['command']}"),
        ("build CPU", f"{b['cpu_s']:.2f} s (python {b['python_cpu_s']:.2f} s, ffmpeg {b['ffmpeg_cpu_s']:.2f} s, "
                      f"exit {b['exit_cpu_s']:.2f} s); wall {b['wall_s']:.1f} s; {b['samples']} samples, {b['format']}"),
        ("start-up", f"{b['startup_cpu_s']:.2f} s CPU: python -m pipeline.{res['dataset']} --help (in the build)"),
        ("output", f"{out['mp4_clips']} mp4 clips ({out['mp4_frames']} frames), {out['jpegs']} JPEGs"
                   + (f", {out['unstamped_frames']} frames without a stamp" if out["unstamped_frames"] else "")),
        ("codec limit", f"{lim['cpu_s']:.2f} s = decode {lim['decode_cpu_s']:.2f} s ({lim['sources']} sources, "
                        f"{lim['frames_decoded']} frames) + encode {lim['encode_cpu_s']:.2f} s"),
        ("ratio", f"{res['ratio_to_codec_limit']:.3f} x codec limit (target >= {res['target_ratio']}: "
                  f"{'met' if res['target_met'] else 'MISSED'}); {res['ratio_without_startup']:.3f} without start-up"),
    ]  # fmt: skip
    if res["ratio_of_ffmpeg_work"] is not None:
        rows.append(("ffmpeg side", f"codec limit / the build's ffmpeg CPU = {res['ratio_of_ffmpeg_work']:.3f}"))
    if "fixed_cost" in res:
        f = res["fixed_cost"]
        marginal = "n/a" if res["ratio_marginal"] is None else f"{res['ratio_marginal']:.3f}"
        rows.append(("fixed cost", f"{f['cpu_s']:.2f} s CPU with nothing to cut; marginal ratio (limit / (build - "
                                   f"fixed)) {marginal}"))
    w = max(len(a) for a, _ in rows)
    lines = ["", f"{res['dataset']} bench ({res['unit']})", *(f"  {a:<{w}}  {t}" for a, t in rows)]
    prof = res.get("profile")
    if prof:
        lines.append(f"  profile (CPU under cProfile: {prof['python_cpu_s_profiled']:.1f} s of Python; parts overlap)")
        lines += [f"    {p['cpu_s']:7.2f} s {100 * p['share']:5.1f}%  {name}" for name, p in prof["phases"].items()]
    return "\n".join(lines)
