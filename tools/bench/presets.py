"""The x264 preset x CRF table of the Ego-ExoClip bench: encode speed, bytes per 1-s clip and PSNR.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

from pipeline.core.clips import plan as clip_plan
from tools.bench.codec import _ff, encode_fed, raw_input, window_frames
from tools.bench.settings import CRF_GRID, FPS, PRESET_GRID, TABLE_WINDOWS


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
