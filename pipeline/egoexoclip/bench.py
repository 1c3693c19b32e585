"""`make bench`: Ego-ExoClip extraction against the codec limit, on generated takes of realistic length and encoding.

    python -m pipeline.egoexoclip.bench [--out data/bench] [--naive-takes 1] [--mem-repeat 6] [--skip-memory]
                                        [--only memory]

One run, one input (cached under OUT/, regenerated only if missing), every figure in SOURCE frames per second
per core, computed from CPU time (user + sys of the measured process and its children: the machine is shared
and CPU time is steadier than wall time; wall is printed beside it):

- codec limit: decode-only of every source view (`ffmpeg -threads 1 -i v -f null -`) + encode-only of exactly
  the frames the output holds (x264 with the pipeline's settings fed raw frames, keyframes at window starts /
  scale + mjpeg of every output JPEG), encoder CPU only (the feeding decoder and this process are not counted);
- the pipeline end to end (`pipeline.egoexoclip.run`, DirectRunner, in a fresh child process), mp4 and frames;
- the naive method (one ffmpeg per clip, `-ss` before `-i`, re-encode with the same settings);
- peak resident memory of a worker and its growth from a 3.5-minute to a 21-minute take, each build alone
  ("idle") and with every core kept busy by busy-loop processes the bench starts and stops around the build
  ("contended"); `--only memory` runs just this part and merges it into an existing OUT/bench.json;
- bytes per pair and a projection to the full 448 release (1.1M pairs);
- an x264 preset x CRF table (encode speed, bytes per 1-s clip, PSNR) on clips of the bench views;
- the peer: video2dataset's exact clipping of the same views at the same windows (bench_peer.py, --skip-peer).

Results: printed table + OUT/bench.json. Input: 2 takes x (Aria 448x448 + 2 GoPro 796x448) x 3.5 min, 30 fps,
textured H.264 (x264 superfast CRF 19, default keyint 250: ~2.5-3 Mbit/s at 796x448), one narration every
1-3 s (mean 2 s), fixed 0.7 s windows (`--window fixed --window-length 0.7`; the EgoClip rule gives 1 s on
uniformly dense takes). The two takes share their video files (the generator encodes identical views once).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pipeline.core.clips import ClipFormat, ffmpeg_exe, probe_video
from pipeline.core.clips import plan as clip_plan

FPS = 30
TAKE_FRAMES = 6300  # 3.5 min
SRC_PRESET, SRC_CRF = (
    "superfast",
    19,
)  # source encoding: CABAC + B-frames, ~2.5-3 Mbit/s on the textured views
WINDOW_SEC = 0.7
FRAMES_FMT = dict(kind="frames", n_frames=16, size=336)
FULL_RELEASE_PAIRS = 1_100_000
TARGETS = {"ratio_to_codec_limit": 0.87, "speedup_vs_naive": 1.4, "worker_peak_mb": 1024, "growth_mb": 100}
PRESET_GRID = ("ultrafast", "superfast", "veryfast", "faster", "medium")
CRF_GRID = (23, 28)
TABLE_WINDOWS = 20  # 1-s clips of one GoPro view for the preset table


# ------------------------------------------------------------------------------------------- measuring


@dataclasses.dataclass
class Run:
    cpu: float  # user + sys of the process (and the children it waited for), s
    wall: float
    maxrss_mb: float
    stderr: str = ""


def _ff(*args: str) -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args]


def _reap(proc: subprocess.Popen, started: float, err) -> Run:
    """wait4 on exactly this child: its own rusage, whatever else runs concurrently in this process."""
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    text = err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{proc.args[:8]}... exited {proc.returncode}: {text[-1500:]}")
    return Run(ru.ru_utime + ru.ru_stime, time.perf_counter() - started, ru.ru_maxrss / 1024, text)


def run_measured(cmd: Sequence[str]) -> Run:
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        return _reap(proc, started, err)


def encode_fed(encoder: Sequence[str], feed) -> Run:
    """Run `encoder` (reading raw frames on stdin) fed by the generator `feed`; measure the encoder alone."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(encoder, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        try:
            for chunk in feed:
                proc.stdin.write(chunk)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        return _reap(proc, started, err)


def decoded_frames(src: str, indices: Sequence[int], w: int, h: int):
    """Yield the raw yuv420p frames of sorted unique source `indices`, from a -threads 1 decoder (not measured)."""
    sel = clip_plan.membership_expr((i, i + 1) for i in indices)
    graph = f"[0:v:0]trim=end_frame={indices[-1] + 1},select='{sel}',setpts=N/TB[o]"
    with tempfile.TemporaryDirectory() as d:
        gpath = os.path.join(d, "g.txt")
        Path(gpath).write_text(graph)
        cmd = _ff("-threads", "1", "-i", src, "-/filter_complex", gpath, "-map", "[o]", "-fps_mode", "passthrough",
                  "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1")  # fmt: skip
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        size = w * h * 3 // 2
        try:
            for i in indices:
                buf = proc.stdout.read(size)
                if len(buf) != size:
                    raise RuntimeError(f"decoder of {src} ended before frame {i}")
                yield i, buf
        finally:
            proc.stdout.close()
            proc.kill()
            proc.wait()


def x264_args(fmt: ClipFormat) -> list[str]:
    return ["-c:v", "libx264", "-preset", fmt.preset, "-crf", str(fmt.crf), "-threads", str(fmt.threads),
            "-pix_fmt", "yuv420p"]  # fmt: skip


def raw_input(w: int, h: int) -> list[str]:
    return ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}", "-r", str(FPS), "-i", "pipe:0"]


def window_frames(src: str, windows: Sequence[tuple[int, int]], w: int, h: int, *, extra: Iterable[int] = (),
                  on_decoded=None):
    """Raw frames of every window back to back (overlapping windows repeat frames), each source frame decoded once.
    `extra` frames are decoded too; `on_decoded(index, data)` sees every decoded frame exactly once."""
    needed = sorted({i for a, b in windows for i in range(a, b)} | set(extra))
    frames = decoded_frames(src, needed, w, h)
    buf: dict[int, bytes] = {}

    def pull() -> None:
        j, data = next(frames)
        if on_decoded:
            on_decoded(j, data)
        buf[j] = data

    for k, (a, b) in enumerate(windows):
        for i in range(a, b):
            while i not in buf:
                pull()
            yield buf[i]
        nxt = windows[k + 1][0] if k + 1 < len(windows) else b
        for j in [j for j in buf if j < nxt]:
            del buf[j]
    for j, data in frames:  # extra frames past the last window
        if on_decoded:
            on_decoded(j, data)


def _mp4_encoder(view: dict, windows: list[tuple[int, int]], fmt: ClipFormat, d: str) -> list[str]:
    starts = clip_plan.lane_segment_starts(windows)
    kpath = os.path.join(d, "k.txt")
    Path(kpath).write_text("expr:" + clip_plan.membership_expr((s, s + 1) for s in starts))
    return _ff(*raw_input(view["width"], view["height"]), *x264_args(fmt), "-/force_key_frames:v", kpath,
               "-fps_mode", "passthrough", "-f", "null", "-")  # fmt: skip


def _jpeg_encoder(view: dict, fmt: ClipFormat) -> list[str]:
    ow, oh = clip_plan.scaled_size(view["width"], view["height"], fmt.size)
    return _ff(*raw_input(view["width"], view["height"]), "-vf", f"scale={ow}:{oh}:flags=bicubic,setsar=1",
               "-c:v", "mjpeg", "-q:v", str(fmt.jpeg_quality), "-pix_fmt", "yuvj420p", "-f", "null", "-")  # fmt: skip


def encode_only(view: dict, windows: list[tuple[int, int]], jpeg_idx: list[int], mp4_fmt, frames_fmt):
    """Encoder CPU of exactly the output frames: x264 over every window back to back (keyframe at each start),
    and scale + mjpeg of every output JPEG. One unmeasured decoder feeds both (each source frame decoded once)."""
    want = set(jpeg_idx)
    with tempfile.TemporaryDirectory() as d, tempfile.TemporaryFile() as ea, tempfile.TemporaryFile() as eb:
        t0 = time.perf_counter()
        procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
                 for cmd, err in ((_mp4_encoder(view, windows, mp4_fmt, d), ea), (_jpeg_encoder(view, frames_fmt), eb))]  # fmt: skip
        mp4_in, jpg_in = procs[0].stdin, procs[1].stdin

        def to_jpeg(j: int, data: bytes) -> None:
            if j in want:
                jpg_in.write(data)

        for data in window_frames(view["path"], windows, view["width"], view["height"], extra=want,
                                  on_decoded=to_jpeg):  # fmt: skip
            mp4_in.write(data)
        mp4_in.close()
        jpg_in.close()
        return _reap(procs[0], t0, ea), _reap(procs[1], t0, eb)


def naive_clip(view: dict, k: int, window: tuple[int, int], fmt: ClipFormat, tmp: str) -> tuple[Run, int]:
    """What public scripts do: one ffmpeg per clip, input seek (`-ss` before `-i`: jump to the keyframe before,
    decode and drop up to the start), re-encode with the same x264 settings."""
    a, b = window
    out = os.path.join(tmp, f"{view['take']}_{view['cam']}_{k}.mp4")
    r = run_measured(_ff("-threads", "1", "-ss", f"{a / FPS:.6f}", "-i", view["path"], "-map", "0:v:0", "-an",
                         "-frames:v", str(b - a), *x264_args(fmt), "-movflags", "+faststart", "-y", out))  # fmt: skip
    size = os.path.getsize(out)
    os.unlink(out)
    return r, size


# ------------------------------------------------------------------------------------------- inputs


def bench_takes(n_frames: int = TAKE_FRAMES, names=("benchuni_cooking_01_1", "benchuni_bike_02_1")):
    from pipeline.egoexoclip.sample_release import _aria, _gopro, _take

    tasks = ("Cooking", "Bike Repair")
    return [
        _take(name, "train", task, [_aria(n_frames), _gopro("cam01", n_frames), _gopro("cam02", n_frames)])
        for name, task in zip(names, tasks, strict=True)
    ]


def _rewrite_narrations(root: Path, takes, seed: int = 7) -> None:
    """One narration every 1-3 s (irregular, mean 2 s) instead of the sample generator's denser ~1.35 s."""
    path = root / "annotations" / "atomic_descriptions_train.json"
    doc = json.loads(path.read_text())
    for k, take in enumerate(takes):
        rng = np.random.default_rng([seed, k])
        passes = doc["annotations"][take.uid]
        template = passes[0]["descriptions"]
        duration = take.duration_sec
        times, t = [], float(rng.uniform(0.5, 1.5))
        while t < duration - 0.5:
            times.append(round(t, 5))
            t += 1.0 + 2.0 * float(rng.beta(2.0, 2.0))
        passes[0]["descriptions"] = [
            {**template[i % len(template)], "timestamp": ts} for i, ts in enumerate(times)
        ]
        del passes[1:]
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _concat_writer(base: dict, path, cam_id, n_frames, width, height, **_):
    """Stand-in for write_stamped_video: a long view = the cached 3.5-min view repeated (stream copy, no encode)."""
    src = base[cam_id]
    reps = n_frames // TAKE_FRAMES
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lst = path.with_suffix(".txt")
    lst.write_text("".join(f"file '{os.path.abspath(src)}'\n" for _ in range(reps)))
    subprocess.run(_ff("-f", "concat", "-safe", "0", "-i", str(lst), "-map", "0:v", "-c", "copy",
                       "-movflags", "+faststart", "-y", str(path)), check=True)  # fmt: skip
    lst.unlink()


def ensure_inputs(out: Path, mem_repeat: int, log) -> dict:
    from pipeline.egoexoclip import sample_release

    main = out / "release"
    started = time.perf_counter()
    takes = bench_takes()
    if not (main / ".complete").exists():
        shutil.rmtree(main, ignore_errors=True)
        log(f"generating the bench release in {main} (first run only; ~2-4 min on 2 cores)")
        orig = sample_release.write_stamped_video
        sample_release.write_stamped_video = functools.partial(
            orig, textured=True, preset=SRC_PRESET, crf=SRC_CRF
        )
        try:
            sample_release.generate_release(main, full_res=False, takes=takes)
        finally:
            sample_release.write_stamped_video = orig
        _rewrite_narrations(main, takes)
        (main / ".complete").write_text("ok\n")
    base_dir = main / "takes" / takes[0].name / "frame_aligned_videos" / "downscaled" / "448"
    base = {v.cam_id: base_dir / v.file_name for v in takes[0].views}
    mem = {}
    for label, reps in (("short", 1), ("long", mem_repeat)):
        root = out / f"mem_{label}_{reps}x"
        mem[label] = {"root": root, "minutes": reps * TAKE_FRAMES / FPS / 60}
        if (root / ".complete").exists():
            continue
        shutil.rmtree(root, ignore_errors=True)
        log(f"assembling {root} (stream copies of the bench views)")
        n = reps * TAKE_FRAMES
        from pipeline.egoexoclip.sample_release import _aria, _gopro, _take

        spec = [_take("benchuni_mem_01_1", "train", "Cooking", [_aria(n), _gopro("cam01", n)])]
        orig = sample_release.write_stamped_video
        sample_release.write_stamped_video = functools.partial(_concat_writer, base)
        try:
            sample_release.generate_release(root, full_res=False, takes=spec)
        finally:
            sample_release.write_stamped_video = orig
        _rewrite_narrations(root, spec)
        (root / ".complete").write_text("ok\n")
    return {"release": main, "takes": takes, "mem": mem, "input_s": time.perf_counter() - started}


def view_table(root: Path, takes) -> list[dict]:
    views = []
    for take in takes:
        d = root / "takes" / take.name / "frame_aligned_videos" / "downscaled" / "448"
        for v in take.views:
            path = str(d / v.file_name)
            info = probe_video(path)
            views.append({"take": take.name, "cam": v.cam_id, "path": path, "n_frames": info.n_frames,
                          "width": info.width, "height": info.height, "bytes": os.path.getsize(path)})  # fmt: skip
    return views


# ------------------------------------------------------------------------------------------- pipeline worker


def _status_kb(pid: str | int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children(pid: int) -> list[str]:
    kids = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                kids += Path(f"/proc/{pid}/task/{task}/children").read_text().split()
    return kids


def exec_done(pid: str | int, parent_exe: str) -> bool:
    """Whether a child has exec'd its own program. Between fork (or vfork) and exec a child shares the parent's
    pages, so its RSS is the parent's: counting it then adds a second copy of the Python worker (~250 MB) to
    the total and to the child peak. On a busy machine that window is long enough to be sampled now and then:
    the +172 MB "growth" under load and the 437-496 MB peaks of earlier runs were such double counts."""
    try:
        return os.readlink(f"/proc/{pid}/exe") != parent_exe
    except OSError:
        return False


def _describe(pid: str) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return ""
    src = argv[argv.index("-i") + 1] if "-i" in argv[:-1] else "?"
    role = "probe" if "copy" in argv else "extract"
    return f"{role} {'/'.join(Path(src).parts[-2:])}"


class MemorySampler:
    """Peak of (this process + its live children) resident memory, sampled every `interval` s, plus the exact
    peaks (VmHWM) of this process and of the largest child. ru_maxrss is no use here: Linux carries it across
    fork + exec, so a child reports at least its parent's size at fork."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak_total_kb, self.peak_child_kb = interval, 0, 0
        self.peak_child = ""  # which child reached peak_child_kb: "extract <input>" or "probe <input>"
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()

    def _run(self):
        me = os.getpid()
        exe = os.readlink(f"/proc/{me}/exe")
        while not self._stop:
            total = _status_kb(me, "VmRSS")
            for kid in _children(me):
                if not exec_done(kid, exe):
                    continue  # forked, not yet exec'd: its pages are ours (counted above)
                total += _status_kb(kid, "VmRSS")
                hwm = _status_kb(kid, "VmHWM")
                if hwm > self.peak_child_kb:
                    self.peak_child_kb, self.peak_child = hwm, _describe(kid)
            self.peak_total_kb = max(self.peak_total_kb, total)
            time.sleep(self.interval)


def worker_main(args) -> int:
    """Child process: one pipeline build, reporting its own CPU time around run() and its peak memory."""
    from pipeline.egoexoclip import BuildConfig, run
    from pipeline.egoexoclip.windows import WindowRule
    from pipeline.egoexoclip.writer import OutputFormat

    clip = ClipFormat(**json.loads(args.clip))
    cfg = BuildConfig(
        root=args.root,
        out=args.build_out,
        splits=("train",),
        rule=WindowRule("fixed", WINDOW_SEC),
        output=OutputFormat(clip=clip),
        overwrite=True,
    )
    with MemorySampler() as mem:
        t0, w0 = os.times(), time.perf_counter()
        stats = run(cfg, [])
        t1, w1 = os.times(), time.perf_counter()
    own = (t1.user - t0.user) + (t1.system - t0.system)
    kids = (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)
    report = {
        "cpu_s": own + kids,
        "python_cpu_s": own,
        "ffmpeg_cpu_s": kids,
        "wall_s": w1 - w0,
        "python_peak_mb": _status_kb("self", "VmHWM") / 1024,
        "ffmpeg_peak_mb": mem.peak_child_kb / 1024,
        "ffmpeg_peak_process": mem.peak_child,
        "worker_peak_mb": mem.peak_total_kb / 1024,
        "pairs": stats["pairs"],
        "samples": stats["samples"],
        "bytes": sum(d["bytes"] for d in stats["splits"].values()),
        "failures": stats["failures_by_scope_and_reason"],
    }
    Path(args.report).write_text(json.dumps(report))
    return 0


def run_pipeline(root: Path, build_out: Path, clip: ClipFormat, report: Path) -> dict:
    shutil.rmtree(build_out, ignore_errors=True)
    cmd = [sys.executable, "-m", "pipeline.egoexoclip.bench", "--worker", "--root", str(root), "--build-out", str(build_out),
           "--clip", json.dumps(dataclasses.asdict(clip)), "--report", str(report)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline worker failed: {proc.stderr[-3000:]}")
    return json.loads(report.read_text())


def windows_from_manifest(build_out: Path, views: list[dict]) -> dict[tuple[str, str], list[tuple[int, int]]]:
    import pyarrow.parquet as pq

    t = pq.read_table(build_out / "manifest.parquet").to_pylist()
    win: dict[tuple[str, str], set] = defaultdict(set)
    for r in t:
        win[(r["take_name"], r["ego_cam"])].add((r["ego_start_frame"], r["ego_end_frame"]))
        win[(r["take_name"], r["exo_cam"])].add((r["exo_start_frame"], r["exo_end_frame"]))
    return {(v["take"], v["cam"]): sorted(win[(v["take"], v["cam"])]) for v in views}


# ------------------------------------------------------------------------------------------- preset table


def preset_table(view: dict, windows: list[tuple[int, int]], log) -> list[dict]:
    """x264 preset x CRF on 1-s clips (keyframe at each clip start) of one GoPro view, raw frames in memory."""
    picked = windows[:: max(1, len(windows) // TABLE_WINDOWS)][:TABLE_WINDOWS]
    one_s = [(a, a + FPS) for a, _ in picked if a + FPS <= view["n_frames"]]
    frames = list(window_frames(view["path"], one_s, view["width"], view["height"]))
    keys = clip_plan.membership_expr((k * FPS, k * FPS + 1) for k in range(len(one_s)))
    rows = []

    def one(cfg):
        preset, crf = cfg
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "o.mp4")
            enc = _ff(*raw_input(view["width"], view["height"]), "-c:v", "libx264", "-preset", preset,
                      "-crf", str(crf), "-threads", "1", "-pix_fmt", "yuv420p", "-force_key_frames:v", f"expr:{keys}",
                      "-x264-params", "psnr=1", "-loglevel", "info", "-f", "mp4", out)  # fmt: skip
            r = encode_fed(enc, iter(frames))
            size = os.path.getsize(out)
        psnr = None
        for line in r.stderr.splitlines():
            if "PSNR Mean" in line and "Global:" in line:
                psnr = float(line.split("Global:")[1].split()[0])
        return {
            "preset": preset,
            "crf": crf,
            "fps_per_core": len(frames) / r.cpu,
            "bytes_per_1s_clip": size / len(one_s),
            "psnr_db": psnr,
        }

    with ThreadPoolExecutor(2) as pool:
        rows = list(pool.map(one, [(p, c) for c in CRF_GRID for p in PRESET_GRID]))
    return rows


# ------------------------------------------------------------------------------------------- main


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

    # 5b. the peer, side by side (pipeline/egoexoclip/bench_peer.py): video2dataset's exact clipping.
    peers = {}
    if not args.skip_peer:
        from pipeline.egoexoclip import bench_peer

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


@contextlib.contextmanager
def busy_cores(n: int | None = None):
    """`n` (default: every core) busy-loop processes for the duration: the contention of a shared machine, made
    by the bench itself and stopped afterwards (each by its own pid)."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(n or os.cpu_count() or 1)
    ]
    try:
        time.sleep(1.0)  # let them reach the run queue
        yield len(hogs)
    finally:
        for h in hogs:
            h.kill()
        for h in hogs:
            h.wait()


MEM_CONDITIONS = ("idle", "contended")


def memory_section(inputs: dict, work: Path, formats, log) -> dict:
    """Worker peak RSS (process + live ffmpeg children) on the short and the long take, per format, one build at
    a time: "idle" (nothing else started by the bench; the machine may still be shared) and "contended" (every
    core kept busy by busy loops). Each run records the load average just before it."""
    mem: dict = {}
    short, long_ = inputs["mem"]["short"], inputs["mem"]["long"]
    log(f"memory: {short['minutes']:.1f}-min vs {long_['minutes']:.1f}-min take, idle and with every core busy")
    for cond in MEM_CONDITIONS:
        for label in ("long", "short"):
            for kind, fmt in formats:
                load = os.getloadavg()
                with busy_cores() if cond == "contended" else contextlib.nullcontext(0) as hogs:
                    r = run_pipeline(inputs["mem"][label]["root"], work / f"mem_{label}_{kind}", fmt,
                                     work / f"rep_mem_{cond}_{label}_{kind}.json")  # fmt: skip
                entry = {
                    "minutes": inputs["mem"][label]["minutes"],
                    "worker_peak_mb": r["worker_peak_mb"],
                    "python_peak_mb": r["python_peak_mb"],
                    "ffmpeg_peak_mb": r["ffmpeg_peak_mb"],
                    "ffmpeg_peak_process": r.get("ffmpeg_peak_process", ""),
                    "pairs": r["pairs"],
                    "wall_s": r["wall_s"],
                    "busy_loops": hogs,
                    "load_avg_before": [round(x, 2) for x in load],
                }
                log(f"  {cond} {label} {kind}: peak {r['worker_peak_mb']:.0f} MB (python {r['python_peak_mb']:.0f}, "
                    f"ffmpeg {r['ffmpeg_peak_mb']:.0f}), wall {r['wall_s']:.0f} s, load before {entry['load_avg_before']}")  # fmt: skip
                node = mem.setdefault(kind, {})
                (node if cond == "idle" else node.setdefault("contended", {}))[label] = entry
    for node in mem.values():
        for m in (node, node["contended"]):
            m["worker_peak_mb"] = max(m["short"]["worker_peak_mb"], m["long"]["worker_peak_mb"])
            m["growth_mb"] = m["long"]["worker_peak_mb"] - m["short"]["worker_peak_mb"]
    return mem


def memory_targets(mem: dict) -> dict:
    if not mem:
        return {}
    runs = [m for node in mem.values() for m in (node, node.get("contended", {})) if m]
    return {
        "worker_peak_under_1GB": max(m["worker_peak_mb"] for m in runs) < TARGETS["worker_peak_mb"],
        "memory_growth_under_100MB": max(m["growth_mb"] for m in runs) < TARGETS["growth_mb"],
    }


def memory_only(args) -> dict:
    """`--only memory`: the memory runs alone, merged into OUT/bench.json (other sections kept as they were)."""
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    inputs = ensure_inputs(out, args.mem_repeat, log)
    work = out / "work"
    work.mkdir(exist_ok=True)
    mem = memory_section(inputs, work, (("mp4", ClipFormat()), ("frames", ClipFormat(**FRAMES_FMT))), log)
    path = out / "bench.json"
    res = json.loads(path.read_text()) if path.exists() else {}
    res["memory"] = mem
    res["memory_machine"] = machine()
    res["memory_wall_s"] = time.perf_counter() - t_start
    res.setdefault("targets", {}).update(memory_targets(mem))
    path.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    print("\n".join(memory_rows(mem)))
    print("  targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in memory_targets(mem).items()))
    log(f"written {path}")
    return res


def memory_rows(mem: dict) -> list[str]:
    rows = []
    for kind, node in mem.items():
        for cond, m in (("idle", node), ("contended", node.get("contended"))):
            if not m:
                continue
            rows.append(f"  worker peak RSS {kind} {cond}: {m['short']['worker_peak_mb']:.0f} MB ({m['short']['minutes']:.1f} min) -> "
                        f"{m['long']['worker_peak_mb']:.0f} MB ({m['long']['minutes']:.0f} min): {m['growth_mb']:+.0f} MB "
                        f"(python {m['long']['python_peak_mb']:.0f} + ffmpeg {m['long']['ffmpeg_peak_mb']:.0f})")  # fmt: skip
    return rows


def machine() -> dict:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(mem_gb, 1),
        "load_avg_at_end": os.getloadavg(),
        "python": platform.python_version(),
        "ffmpeg": Path(ffmpeg_exe()).name,
        "date": time.strftime("%Y-%m-%d"),
    }


def table(res: dict) -> str:
    lim, p, nv = res["codec_limit"], res["pipeline"], res["naive"]
    i = res["input"]
    rows = [
        (
            "input",
            f"{len(i['views'])} views, {i['source_frames']} frames ({i['source_minutes_total']:.1f} view-min), "
            f"{i['clips_per_view_total']} clips, mean window {i['mean_window_s']:.2f} s",
        ),  # fmt: skip
        ("decode-only", f"{lim['decode_fps_per_core']:.0f} fps/core"),
        ("encode-only x264 (output frames)", f"{lim['encode_mp4_fps_per_core']:.0f} output fps/core"),
        (
            "encode-only scale+JPEG (output JPEGs)",
            f"{lim['encode_frames_jpegs_per_s_per_core']:.0f} JPEG/s/core",
        ),
        (
            "codec limit mp4 / frames",
            f"{lim['mp4_fps_per_core']:.0f} / {lim['frames_fps_per_core']:.0f} fps/core",
        ),
    ]
    for kind in ("mp4", "frames"):
        q = p[kind]
        rows.append((f"pipeline {kind}",
                     f"{q['fps_per_core']:.0f} fps/core = {q['ratio_to_codec_limit']:.3f} x limit, "
                     f"{q['ratio_to_decode_only']:.3f} x decode-only (python {q['python_cpu_s']:.1f} s, "
                     f"ffmpeg {q['ffmpeg_cpu_s']:.1f} s CPU; wall {q['wall_s']:.1f} s)"))  # fmt: skip
    rows.append(("naive per-clip ffmpeg (mp4)",
                 f"{nv['fps_per_core']:.0f} fps/core over {nv['clips']} clips; pipeline "
                 f"{nv['speedup_pipeline_vs_naive']:.2f}x faster"))  # fmt: skip
    for line in memory_rows(res["memory"]):
        name, text = line.strip().split(": ", 1)
        rows.append((name, text))
    for kind in ("mp4", "frames"):
        q = p[kind]
        rows.append((f"bytes/pair {kind}; full 448 release",
                     f"{q['bytes_per_pair'] / 1e3:.0f} KB; {q['full_release_core_hours']:.0f} core-h, "
                     f"{q['full_release_tb']:.2f} TB for 1.1M pairs"))  # fmt: skip
    for name, peer in res.get("peers", {}).items():
        if "speedup_pipeline_vs_peer" in peer:
            text = (f"pipeline {peer['speedup_pipeline_vs_peer']:.2f}x faster (CPU), "
                    f"{peer['speedup_pipeline_vs_peer_wall']:.2f}x (wall)")  # fmt: skip
            if "speedup_pipeline_vs_peer_matched_encoder" in peer:
                text += f"; {peer['speedup_pipeline_vs_peer_matched_encoder']:.2f}x with our x264 settings forced"
        else:
            text = f"skipped: {peer.get('skipped', 'failed')}"[:160]
        rows.append((f"peer {name} {peer.get('version', '')} exact", text))
    w = max(len(a) for a, _ in rows)
    lines = ["", "Ego-ExoClip bench (" + res["unit"] + ")"]
    lines += [f"  {a:<{w}}  {b}" for a, b in rows]
    lines += ["", "  x264 preset x CRF (threads 1, 796x448, 1-s clips):",
              f"  {'preset':<10} {'crf':>3} {'fps/core':>9} {'KB/clip':>8} {'PSNR dB':>8}"]  # fmt: skip
    for r in res["presets"]:
        lines.append(f"  {r['preset']:<10} {r['crf']:>3} {r['fps_per_core']:>9.0f} {r['bytes_per_1s_clip'] / 1e3:>8.1f} "
                     f"{r['psnr_db'] if r['psnr_db'] is not None else float('nan'):>8.2f}")  # fmt: skip
    lines += [
        "",
        "  targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in res["targets"].items()),
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="data/bench", help="cache + results directory (default data/bench)")
    ap.add_argument("--naive-takes", type=int, default=1, help="takes whose views the naive method cuts")
    ap.add_argument(
        "--mem-repeat", type=int, default=6, help="long take = the 3.5-min views repeated N times"
    )
    ap.add_argument("--skip-memory", action="store_true", help="leave out the memory runs")
    ap.add_argument("--skip-peer", action="store_true", help="leave out video2dataset (bench_peer.py)")
    ap.add_argument("--only", choices=["memory"], help="run one part alone (memory: idle + contended, ~15-25 min)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--build-out", help=argparse.SUPPRESS)
    ap.add_argument("--clip", help=argparse.SUPPRESS)
    ap.add_argument("--report", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.only == "memory":
        memory_only(args)
        return 0
    bench(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
