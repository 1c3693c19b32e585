"""The Ego-ExoClip bench's printed table, its memory rows and the machine it ran on.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path

from pipeline.core.clips import ffmpeg_exe


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
