"""The Ego-ExoClip bench's fixed settings: input takes, window rule, output formats, targets, preset grid."""

from __future__ import annotations

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
