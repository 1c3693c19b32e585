"""The bundled EgoIT mini-release: real annotation rows of the five sources, generated videos at their paths.

`make build-egoit` with no dataset roots builds EgoIT from it. The annotation files are verbatim selections of
the real files (tools/samples/rows/egoit/, README.md there; EgoTimeQA's rows are synthetic, no real file is
public), laid out as each dataset ships them, i.e. as each reader's LAYOUT expects by default:

    OUT/egoit.yaml                                    the build config (paths relative to it); written last
    OUT/stamp_codes.json                              path of every video / frame folder -> its stamp code
    OUT/egtea/action_annotation/{train,test}_split1.txt, {action,verb,noun}_idx.txt
    OUT/egtea/cropped_clips/<session>/<clip>.mp4      24 fps, the clip's duration from its name
    OUT/egtea/videos/<session>.mp4                    a session video, only for a clip without a cropped file
    OUT/ssv2/labels/something-something-v2-{labels,validation}.json
    OUT/ssv2/20bn-something-something-v2/<id>.webm    VP9, 12 fps (some 427x240: the real, odd width)
    OUT/egotimeqa/unified/annotations.EgoTimeQA.json  (GroundVQA data.zip layout)
    OUT/egotimeqa/ego4d/v2/clips/<clip_uid>.mp4       an Ego4D download root, 30 fps
    OUT/openeqa/open-eqa-v0.json, OUT/openeqa/frames/<episode_history>/<N>-rgb.png
    OUT/egoexolearn/exo_train.csv, OUT/egoexolearn/<video_uid>.mp4   30 fps

Every video (and every OpenEQA frame folder) carries its own framecode stamp code (CODE_BASE per source + its
rank by path), frame j of a file is stamped with frame index j (a PNG frame <N>-rgb.png with N), so a test can
say which file and which frame any output clip shows. Designed quirks, each affecting only its own rows: an
EGTEA clip with only a session video (the reader cuts it by time), an SSv2 video missing, a truncated Ego4D
clip, a missing OpenEQA episode folder. Real-format quirks: every EgoTimeQA sample_id is its clip uid (as in the
real file) with 5 QAs on one clip, and one EgoExoLearn caption cell is the real "Video 1: ... Video 2: ..." kind
(the reader rejects it as a "multi-video caption"). Encodes are single-threaded and bit-exact: two runs give identical
bytes.

    python -m tools.samples.egoit --out data/egoit_sample [--force]
"""

from __future__ import annotations

import csv
import io
import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.egoit.sources.egtea import CLIP_NAME
from tools.samples.common import RowsSample, truncate
from tools.samples.stamped_video import write_stamped_images, write_stamped_video

ROWS = Path(__file__).with_name("rows") / "egoit"
CONFIG_NAME = "egoit.yaml"
CODES_NAME = "stamp_codes.json"
SOURCE_DIRS = ("egtea", "ssv2", "egotimeqa", "openeqa", "egoexolearn")

# rows/egoit file -> where the dataset ships it (relative to OUT)
ANNOTATIONS = {
    "egtea/action_idx.txt": "egtea/action_annotation/action_idx.txt",
    "egtea/verb_idx.txt": "egtea/action_annotation/verb_idx.txt",
    "egtea/noun_idx.txt": "egtea/action_annotation/noun_idx.txt",
    "egtea/train_split1.txt": "egtea/action_annotation/train_split1.txt",
    "egtea/test_split1.txt": "egtea/action_annotation/test_split1.txt",
    "ssv2/something-something-v2-labels.json": "ssv2/labels/something-something-v2-labels.json",
    "ssv2/something-something-v2-validation.json": "ssv2/labels/something-something-v2-validation.json",
    "egotimeqa/annotations.EgoTimeQA.json": "egotimeqa/unified/annotations.EgoTimeQA.json",
    "openeqa/open-eqa-v0.json": "openeqa/open-eqa-v0.json",
    "egoexolearn/exo_train.csv": "egoexolearn/exo_train.csv",
}

CONFIG = """\
# The bundled EgoIT mini-release (python -m tools.samples.egoit): real annotation rows, generated
# stamped videos. Paths are relative to this file.
sources:
  egtea: {root: egtea, options: {split: 1}}
  ssv2: {root: ssv2, options: {splits: [validation]}}
  egotimeqa: {root: egotimeqa, videos: egotimeqa/ego4d}
  openeqa: {root: openeqa}
  egoexolearn: {root: egoexolearn, options: {files: [exo_train.csv]}}
max_samples_per_shard: 40
"""

EGTEA_FPS, SSV2_FPS, EGO4D_FPS, EGOEXOLEARN_FPS = 24, 12, 30, 30
# Stamp codes: disjoint ranges per source, none below 64 (Ego-ExoClip's camera codes are 1..29).
CODE_BASE = {"egtea": 64, "ssv2": 128, "egotimeqa": 160, "egoexolearn": 176, "openeqa": 192}
CODE_END = {"egtea": 128, "ssv2": 160, "egotimeqa": 176, "egoexolearn": 192, "openeqa": 256}

# Designed quirks (each one only affects the rows that name it)
EGTEA_SESSION_ONLY = ("OP06-R06-GreekSalad-27140-28860-F000647-F000697",)  # no cropped clip: a session video
SSV2_MISSING = ("137878",)  # no webm: the reader reports "video not found"
SSV2_REAL_SIZE = ("74225", "141732")  # 427x240 like the real files (odd width); the others 214x120
EGOTIMEQA_TRUNCATED = ("76e6cc56-a425-564f-8ed2-1fc3bbc8477c",)  # a cut-off mp4 (moov lost): probing fails
OPENEQA_MISSING = ("hm3d-v0/002-hm3d-wcojb4TFT35",)  # no frames folder: "episode not found"


@dataclass(frozen=True)
class MediaSpec:
    """One generated video file or OpenEQA frame folder (kind "frames"), path relative to OUT."""

    source: str
    path: str
    n_frames: int  # video frames, or RGB frames in the folder
    width: int
    height: int
    fps: int = 0  # 0 for frame folders
    kind: str = "mp4"  # "mp4" | "webm" | "frames"
    state: str = "ok"  # "ok" | "truncated" | "missing" (not written, no code)
    code: int = -1  # stamp code; -1 for missing
    frame_digits: int = 0  # frames: zero padding of N in <N>-rgb.png

    def frame_name(self, j: int) -> str:
        return f"{j:0{self.frame_digits}d}-rgb.png"


def _text(rel: str) -> str:
    return (ROWS / rel).read_text(encoding="utf-8")


def _egtea_media() -> list[MediaSpec]:
    specs, sessions = [], {}
    for split in ("train_split1.txt", "test_split1.txt"):
        for line in _text(f"egtea/{split}").splitlines():
            clip = line.split()[0]
            m = CLIP_NAME.fullmatch(clip)
            start_ms, end_ms = int(m["start_ms"]), int(m["end_ms"])
            if clip in EGTEA_SESSION_ONLY:  # the whole session up to the clip's end, plus a second
                n = math.ceil(end_ms * EGTEA_FPS / 1000) + EGTEA_FPS
                sessions[m["session"]] = max(n, sessions.get(m["session"], 0))
            else:
                n = max(1, round((end_ms - start_ms) * EGTEA_FPS / 1000))
                specs.append(MediaSpec("egtea", f"egtea/cropped_clips/{m['session']}/{clip}.mp4", n, 160, 120,
                                       EGTEA_FPS))  # fmt: skip
    specs += [MediaSpec("egtea", f"egtea/videos/{s}.mp4", n, 160, 120, EGTEA_FPS) for s, n in sessions.items()]
    return specs


def _ssv2_media() -> list[MediaSpec]:
    specs = []
    for item in json.loads(_text("ssv2/something-something-v2-validation.json")):
        ident = item["id"]
        n = 24 + zlib.crc32(ident.encode()) % 37  # 2-5 s at 12 fps, as the real clips
        size = (427, 240) if ident in SSV2_REAL_SIZE else (214, 120)
        state = "missing" if ident in SSV2_MISSING else "ok"
        specs.append(MediaSpec("ssv2", f"ssv2/20bn-something-something-v2/{ident}.webm", n, *size, SSV2_FPS,
                               "webm", state))  # fmt: skip
    return specs


def _egotimeqa_media() -> list[MediaSpec]:
    ends: dict[str, float] = {}
    for item in json.loads(_text("egotimeqa/annotations.EgoTimeQA.json")):
        ends[item["video_id"]] = max(ends.get(item["video_id"], 0.0), float(item["moment_end_frame"]))
    return [
        MediaSpec("egotimeqa", f"egotimeqa/ego4d/v2/clips/{uid}.mp4", math.ceil(end) + 3 * EGO4D_FPS, 192, 108,
                  EGO4D_FPS, state="truncated" if uid in EGOTIMEQA_TRUNCATED else "ok")  # fmt: skip
        for uid, end in ends.items()
    ]


def _egoexolearn_media() -> list[MediaSpec]:
    ends: dict[str, float] = {}
    for row in csv.DictReader(io.StringIO(_text("egoexolearn/exo_train.csv"), newline="")):
        ends[row["video_uid"]] = max(ends.get(row["video_uid"], 0.0), float(row["end_sec"]))
    return [
        MediaSpec("egoexolearn", f"egoexolearn/{uid}.mp4", math.ceil(end * EGOEXOLEARN_FPS) + EGOEXOLEARN_FPS,
                  192, 108, EGOEXOLEARN_FPS)  # fmt: skip
        for uid, end in ends.items()
    ]


def _openeqa_media() -> list[MediaSpec]:
    episodes = dict.fromkeys(item["episode_history"] for item in json.loads(_text("openeqa/open-eqa-v0.json")))
    return [
        MediaSpec("openeqa", f"openeqa/frames/{episode}", 24 + 8 * (k % 3), 160, 120, kind="frames",
                  state="missing" if episode in OPENEQA_MISSING else "ok",
                  frame_digits=5 if episode.startswith("hm3d") else 6)  # fmt: skip
        for k, episode in enumerate(episodes)
    ]


def media_specs() -> tuple[MediaSpec, ...]:
    """Every video / frame folder the sample rows name, with its stamp code (by source, then path order)."""
    out = []
    for source, specs in (("egtea", _egtea_media()), ("ssv2", _ssv2_media()), ("egotimeqa", _egotimeqa_media()),
                          ("egoexolearn", _egoexolearn_media()), ("openeqa", _openeqa_media())):  # fmt: skip
        written = sorted(s.path for s in specs if s.state != "missing")
        codes = {path: CODE_BASE[source] + k for k, path in enumerate(written)}
        if CODE_BASE[source] + len(written) > CODE_END[source]:
            raise ValueError(f"{source}: {len(written)} files do not fit its stamp code range")
        out += sorted((_with_code(s, codes.get(s.path, -1)) for s in specs), key=lambda s: s.path)
    return tuple(out)


def _with_code(spec: MediaSpec, code: int) -> MediaSpec:
    return MediaSpec(**{**spec.__dict__, "code": code})


def _write_media(out: Path, spec: MediaSpec) -> None:
    path = out / spec.path
    if spec.kind == "frames":
        write_stamped_images(path, spec.code, spec.n_frames, spec.width, spec.height, name=spec.frame_name)
        # a depth frame beside the RGB ones, as the real episodes have: the reader must ignore it
        depth = np.full((spec.height, spec.width), 1000, np.uint16)
        Image.fromarray(depth).save(path / f"{0:0{spec.frame_digits}d}-depth.png", format="PNG")
        return
    # no +faststart when truncating: the moov atom then sits at the end, so the cut loses it
    write_stamped_video(path, spec.code, spec.n_frames, spec.width, spec.height, fps=spec.fps,
                        container=spec.kind, faststart=spec.state != "truncated")  # fmt: skip
    if spec.state == "truncated":
        truncate(path)


SAMPLE = RowsSample("EgoIT sample", "Write the bundled EgoIT mini-release (real rows, stamped videos).", CONFIG_NAME, CONFIG, CODES_NAME, tuple(SOURCE_DIRS), ROWS, ANNOTATIONS, media_specs, _write_media)  # fmt: skip
main, generate_sample = SAMPLE.main, SAMPLE.generate

if __name__ == "__main__":
    raise SystemExit(main())
