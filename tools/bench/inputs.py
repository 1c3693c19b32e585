"""The Ego-ExoClip bench's input: generated takes of realistic length and encoding, cached under OUT/.

OUT/release: 2 takes x (Aria 448x448 + 2 GoPro 796x448) x 3.5 min, textured H.264, written by the bundled
sample generator (tools/samples/egoexoclip.py) with its video writer swapped; OUT/mem_short_1x and
OUT/mem_long_Nx: one take whose views are the cached 3.5-min views repeated (stream copies), for the memory runs.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from pipeline.core.clips import probe_video
from tools.bench.codec import _ff
from tools.bench.settings import FPS, SRC_CRF, SRC_PRESET, TAKE_FRAMES
from tools.samples import egoexoclip as sample_release
from tools.samples.egoexo4d_takes import _aria, _gopro, _take


def bench_takes(n_frames: int = TAKE_FRAMES, names=("benchuni_cooking_01_1", "benchuni_bike_02_1")):
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


def _generate(root: Path, takes, writer) -> None:
    """The sample generator's release of `takes` at `root` with its video writer swapped for `writer` (the
    generator's module-level write_stamped_video), the bench's narration density, then the .complete marker."""
    orig = sample_release.write_stamped_video
    sample_release.write_stamped_video = writer
    try:
        sample_release.generate_release(root, full_res=False, takes=takes)
    finally:
        sample_release.write_stamped_video = orig
    _rewrite_narrations(root, takes)
    (root / ".complete").write_text("ok\n")


def ensure_inputs(out: Path, mem_repeat: int, log) -> dict:
    main = out / "release"
    started = time.perf_counter()
    takes = bench_takes()
    if not (main / ".complete").exists():
        shutil.rmtree(main, ignore_errors=True)
        log(f"generating the bench release in {main} (first run only; ~2-4 min on 2 cores)")
        writer = functools.partial(sample_release.write_stamped_video, textured=True, preset=SRC_PRESET, crf=SRC_CRF)
        _generate(main, takes, writer)
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
        spec = [_take("benchuni_mem_01_1", "train", "Cooking", [_aria(n), _gopro("cam01", n)])]
        _generate(root, spec, functools.partial(_concat_writer, base))
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
