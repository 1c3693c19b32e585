"""A small, faithful, deterministic Ego-Exo4D release: the bundled sample and the fixture of the tests.

The layout, JSON shapes and known quirks follow docs/egoexo4d-release.md (real downloads, not only the docs).
Every video frame carries a framecode stamp (camera code + take instant), so a test can decode any output clip
and say which camera and which instant it shows. Everything is derived from names (uuid5, seeded generators)
and encoded with bit-exact ffmpeg flags, so two runs write byte-identical files.

    python -m pipeline.egoexoclip.sample_release --out data/sample [--no-full-res] [--force]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import uuid
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core import stamped_video
from pipeline.core.framecode import camera_code

FPS = 30
_NAMESPACE = uuid.UUID("6f1f2b1e-5a0c-4c57-9d38-2f4e0e5a1c00")  # fixed: uids depend on names only
_ARIA_STREAMS = {"rgb": "214-1", "slam-left": "1201-1", "slam-right": "1201-2", "et": "211-1"}


@dataclass(frozen=True)
class ViewSpec:
    cam_id: str
    device: str  # "aria" | "hero10"
    is_ego: bool
    n_frames: int
    size448: tuple[int, int]  # (width, height)
    size_full: tuple[int, int]  # small stand-in for 1408x1408 / 3840x2160
    file_state: str = "ok"  # "ok" | "missing" | "truncated"
    offset_frames: int = 0  # file frame j shows take instant j - offset_frames
    is_ego_as_string: bool = False

    @property
    def file_name(self) -> str:
        return f"{self.cam_id}_{_ARIA_STREAMS['rgb']}.mp4" if self.device == "aria" else f"{self.cam_id}.mp4"


@dataclass(frozen=True)
class TakeSpec:
    name: str
    uid: str
    split: str
    parent_task_name: str
    university_name: str
    views: tuple[ViewSpec, ...]
    best_exo: str | None
    in_takes_json: bool = True
    is_dropped: bool = False
    quirks: tuple[str, ...] = ()

    @property
    def duration_sec(self) -> float:
        return max(v.n_frames for v in self.views) / FPS


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def _aria(n: int, cam: str = "aria01", **kw) -> ViewSpec:
    return ViewSpec(cam, "aria", True, n, (448, 448), (512, 512), **kw)


def _gopro(cam: str, n: int, *, vertical: bool = False, is_ego: bool = False, **kw) -> ViewSpec:
    if vertical:  # bouldering GoPros mounted upright: 2160x3840 in the real release
        return ViewSpec(cam, "hero10", is_ego, n, (448, 796), (576, 1024), **kw)
    return ViewSpec(cam, "hero10", is_ego, n, (796, 448), (1024, 576), **kw)


def _take(name, split, task, views, best_exo="cam01", **kw) -> TakeSpec:
    return TakeSpec(name, _uid("take", name), split, task, name.split("_")[0], tuple(views), best_exo, **kw)


def _exos(n: int, cams=("cam01", "cam02", "cam03", "cam04"), **per_cam) -> list[ViewSpec]:
    return [_gopro(c, n, **per_cam.get(c, {})) for c in cams]


# 8-12 s takes; most have 3 exo GoPros (real takes have 4-5) to keep generation fast on 2 cores.
_EXO3 = ("cam01", "cam02", "cam03")
SAMPLE_TAKES: tuple[TakeSpec, ...] = (
    _take(
        "cmu_bike01_2",
        "train",
        "Bike Repair",
        [_aria(360), *_exos(360)[:3], _gopro("cam04", 358)],
        best_exo="cam02",
        quirks=("three_passes", "narration_at_edges", "bad_descriptions"),
    ),
    _take(
        "georgiatech_cooking_03_1",
        "train",
        "Cooking",
        [_aria(270), *_exos(270, _EXO3), _gopro("cam04", 270, is_ego=True)],
        best_exo=None,
        quirks=("ego_gopro", "narration_subject_key", "string_bools", "messy_text", "two_passes"),
    ),
    _take(
        "upenn_dance_02_4",
        "val",
        "Dance",
        [
            _aria(270, "aria02", is_ego_as_string=True),
            *(
                _gopro(c, 210 if c == "gp03" else 270, is_ego_as_string=True)
                for c in ("gp01", "gp02", "gp03", "gp04")
            ),
        ],
        best_exo="gp02",
        quirks=("gp_names", "is_ego_strings", "exo_shorter", "two_passes"),
    ),
    _take(
        "sfu_basketball_05_3",
        "train",
        "Basketball",
        [_aria(255), *_exos(255, cam02={"file_state": "missing"})],
        quirks=("missing_exo", "two_passes"),
    ),
    _take(
        "iiith_soccer_01_7",
        "train",
        "Soccer",
        [_aria(242), *_exos(240, _EXO3, cam03={"file_state": "truncated"})],
        quirks=("corrupt_exo", "two_passes"),
    ),
    _take(
        "minnesota_rockclimbing_01_2",
        "val",
        "Rock Climbing",
        [_aria(270), *_exos(270, _EXO3, cam01={"vertical": True})],
        best_exo="cam02",
        quirks=("vertical_gopro", "two_passes"),
    ),
    _take(
        "indiana_bike_01_2",
        "train",
        "Bike Repair",
        [_aria(270, offset_frames=5), *_exos(270, _EXO3)],
        best_exo="cam03",
        quirks=("misaligned_ego", "two_passes"),
    ),
    _take(
        "nus_music_02_1",
        "train",
        "Music",
        [_aria(300), *_exos(300)],
        in_takes_json=False,
        quirks=("not_in_takes_json",),
    ),
    _take(
        "utokyo_health_03_1",
        "train",
        "Health",
        [_aria(240), *_exos(240, _EXO3)],
        is_dropped=True,
        quirks=("dropped",),
    ),
    _take(
        "uniandes_cooking_01_1",
        "train",
        "Cooking",
        [_aria(240), *_exos(240, _EXO3)],
        quirks=("single_narration",),
    ),
    _take("cmu_bike02_1", "test", "Bike Repair", [_aria(240), *_exos(240, _EXO3)], quirks=("test_split",)),
    _take(
        "sfu_cooking_07_2",
        "train",
        "Cooking",
        [_aria(240, file_state="truncated"), *_exos(240, _EXO3)],
        quirks=("corrupt_ego", "two_passes"),
    ),
    _take(
        "broken_take_01", "train", "Cooking", [_aria(240), _gopro("cam01", 240)], quirks=("missing_take_uid",)
    ),
    # the aria rgb relative_path points outside the root: no file is written for it
    _take(
        "escape_take_01",
        "train",
        "Cooking",
        [_aria(240, file_state="missing"), *_exos(240, _EXO3[:2])],
        quirks=("path_escape",),
    ),
)
_ESCAPE_PATH = "../../../../etc/passwd"

# Records a reader must reject one by one (the rest of the file stays usable).
BAD_RECORDS: tuple[dict, ...] = (
    {
        "file": "takes.json",
        "take_name": "broken_take_01",
        "what": "take dict without take_uid",
        "expected_reason_keyword": "take_uid",
    },
    {
        "file": "takes.json",
        "take_name": "escape_take_01",
        "what": f"aria rgb relative_path {_ESCAPE_PATH}",
        "expected_reason_keyword": "outside",
    },
    {
        "file": "annotations/atomic_descriptions_train.json",
        "take_name": "cmu_bike01_2",
        "what": "description without timestamp",
        "expected_reason_keyword": "timestamp",
    },
    {
        "file": "annotations/atomic_descriptions_train.json",
        "take_name": "cmu_bike01_2",
        "what": 'timestamp "abc"',
        "expected_reason_keyword": "timestamp",
    },
    {
        "file": "annotations/atomic_descriptions_train.json",
        "take_name": "cmu_bike01_2",
        "what": "text only whitespace",
        "expected_reason_keyword": "text",
    },
    {
        "file": "annotations/atomic_descriptions_train.json",
        "take_name": "cmu_bike01_2",
        "what": "timestamp duration + 30 s",
        "expected_reason_keyword": "timestamp",
    },
)

# ---------------------------------------------------------------------------------------------------- videos


def write_stamped_video(path, cam_id: str, n_frames: int, width: int, height: int, **options) -> None:
    """H.264 yuv420p (+AAC) mp4 whose frame j is stamped with (camera_code(cam_id), j - offset_frames): the core
    writer (pipeline/core/stamped_video.py) with the camera's code. Module-level, so the bench can swap it."""
    stamped_video.write_stamped_video(path, camera_code(cam_id), n_frames, width, height, **options)


def _truncate(path: Path, keep: float = 0.4) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ------------------------------------------------------------------------------------------------ narrations

_SENTENCES = {
    "Bike Repair": [
        "C picks up the wrench with his right hand.",
        "C loosens the bolt on the rear wheel.",
        "C spins the rear wheel with his left hand.",
        "C places the tyre lever on the floor.",
        "C turns the pedal.",
        "O hands C the tyre lever.",
        "O points at the chain.",
    ],
    "Cooking": [
        "C picks up the knife with her right hand.",
        "C cuts the tomato on the chopping board.",
        "C stirs the eggs in the pan.",
        "C opens the fridge.",
        "C puts the bowl on the counter.",
        "O hands C the bowl.",
        "O turns on the stove.",
    ],
    "Dance": [
        "C raises both arms.",
        "C steps to the left.",
        "C turns around.",
        "C claps her hands.",
        "O moves towards C.",
    ],
    "Basketball": [
        "C dribbles the basketball with his right hand.",
        "C shoots the ball towards the hoop.",
        "C picks up the ball from the floor.",
        "O passes the ball to C.",
    ],
    "Soccer": [
        "C kicks the ball with his right foot.",
        "C stops the ball with his left foot.",
        "C runs towards the ball.",
        "O passes the ball to C.",
    ],
    "Rock Climbing": [
        "C grabs the hold with his left hand.",
        "C places his right foot on the wall.",
        "C chalks his hands.",
        "C climbs up the wall.",
        "O watches C.",
    ],
    "Health": [
        "C opens the test package.",
        "C reads the instruction leaflet.",
        "C inserts the swab into the tube.",
        "C places the test plate on the table.",
    ],
    "Music": [
        "C strums the guitar.",
        "C adjusts the tuning peg with his left hand.",
        "C turns the page of the score.",
    ],
}
_TASKS = {  # parent task -> (parent_task_id, task_name, task_id, keystep steps)
    "Bike Repair": (
        4000,
        "Remove a Wheel",
        4001,
        ["Loosen the wheel nut", "Remove the wheel", "Inspect the tyre"],
    ),
    "Cooking": (1000, "Cooking Tomato & Eggs", 1001, ["Cut tomatoes", "Crack eggs", "Stir fry"]),
    "Dance": (8000, "Performing the basic choreography", 8001, ["Warm up", "Perform routine"]),
    "Basketball": (6000, "Basketball Drills - Layup", 6001, ["Dribble", "Layup"]),
    "Soccer": (7000, "Soccer Drills - Penalty Kick", 7001, ["Place the ball", "Kick"]),
    "Rock Climbing": (5000, "Bouldering", 5001, ["Chalk hands", "Climb"]),
    "Health": (2000, "Covid-19 Rapid Antigen Test", 2001, ["Unbox package", "Read the instructions", "Swab"]),
    "Music": (3000, "Playing Guitar", 3001, ["Tune the guitar", "Play"]),
}


def _flag(value: bool, as_string: bool):
    return ("1" if value else "0") if as_string else value


def _description(take: TakeSpec, t, text: str, rng, *, ego_visible=None, unsure=False) -> dict:
    strings = "string_bools" in take.quirks
    subject = "O" if text.strip().startswith("O ") else "C"
    cam = take.best_exo
    best = None if cam is None else {"raw_cam_id": str(int(cam[-2:])), "cam_id": cam}
    visible = bool(rng.random() < 0.8) if ego_visible is None else ego_visible
    return {
        "text": text,
        "timestamp": t,
        ("narration_subject" if "narration_subject_key" in take.quirks else "subject"): subject,
        "ego_visible": _flag(visible, strings),
        "best_exo": best,
        "unsure": _flag(unsure, strings),
    }


def _narration_times(rng, duration: float) -> list[float]:
    """Irregular, realistic density: one description every 0.8-2.5 s, short gaps more common (mean ~1.35 s)."""
    times, t = [], float(rng.uniform(0.2, 1.0))
    while t < duration - 0.3:
        times.append(round(t, 5))
        t += 0.8 + 1.7 * float(rng.beta(1.2, 2.5))
    return times


def _pass(take: TakeSpec, index: int, *, rejected: bool = False) -> dict:
    rng = np.random.default_rng([zlib.crc32(take.name.encode()), index])
    sentences, duration = _SENTENCES[take.parent_task_name], take.duration_sec
    times = (
        [round(0.75 * duration, 5)] if "single_narration" in take.quirks else _narration_times(rng, duration)
    )
    if index == 0 and "exo_shorter" in take.quirks:  # a narration the shorter exo view cannot cover
        times[-1] = round(duration - 0.4, 5)
    descs = [_description(take, t, str(rng.choice(sentences)), rng) for t in times]
    if index == 0 and "narration_at_edges" in take.quirks:
        descs[0]["timestamp"], descs[-1]["timestamp"] = 0.0, round(duration, 5)
    if index == 0 and "string_bools" in take.quirks:
        descs[1] = _description(take, times[1], descs[1]["text"], rng, unsure=True)
        descs[2] = _description(take, times[2], descs[2]["text"], rng, ego_visible=False)
    if index == 0 and "messy_text" in take.quirks:
        descs[3] = _description(take, times[3], "  C   picks up the  knife .", rng)  # whitespace to normalise
    if index == 0 and "bad_descriptions" in take.quirks:
        bad = [_description(take, 0.0, "C holds the wheel.", rng) for _ in range(4)]
        del bad[0]["timestamp"]
        bad[1]["timestamp"] = "abc"
        bad[2].update(text="   ", timestamp=round(duration / 2, 5))
        bad[3]["timestamp"] = round(duration + 30.0, 5)
        for k, d in enumerate(bad):  # interleaved with the good ones, as real passes are not clean at the end
            descs.insert(2 + 2 * k, d)
    return {
        "annotation_uid": _uid("annotation", take.name, str(index)),
        "annotator_id": str(5284063695022975 + 7919 * index + zlib.crc32(take.name.encode()) % 1000),
        "rejected": rejected,
        "reject_reason": "Descriptions are too sparse." if rejected else None,
        "descriptions": descs,
    }


def _passes(take: TakeSpec) -> list[dict]:
    if "three_passes" in take.quirks:
        return [_pass(take, 0), _pass(take, 1), _pass(take, 2, rejected=True)]
    return [_pass(take, i) for i in range(2 if "two_passes" in take.quirks else 1)]


# ---------------------------------------------------------------------------------------------------- JSON


def _stream(
    take: str, cam: str | None, stream_id: str, readable: str, rel: str | None, clip: bool = True
) -> dict:
    return {
        "cam_id": cam,
        "stream_id": stream_id,
        "readable_stream_id": readable,
        "clip_uid": _uid("clip", take, rel or "", stream_id) if clip else None,
        "relative_path": rel,
    }


def _capture(take: TakeSpec) -> dict:
    name = take.name.rsplit("_", 1)[0]
    cams = [
        {
            "cam_id": v.cam_id,
            "device_type": v.device,
            "is_ego": ("true" if v.is_ego else "false") if v.is_ego_as_string else v.is_ego,
        }
        for v in take.views
    ]
    return {
        "capture_uid": _uid("capture", name),
        "capture_name": name,
        "university_name": take.university_name,
        "cameras": cams,
    }


def _take_record(take: TakeSpec) -> dict:
    fav: dict = {}
    for v in take.views:
        if v.device == "aria":
            fav[v.cam_id] = {
                readable: _stream(
                    take.name, v.cam_id, sid, readable, f"frame_aligned_videos/{v.cam_id}_{sid}.mp4"
                )
                for readable, sid in _ARIA_STREAMS.items()
            }
            if "path_escape" in take.quirks:
                fav[v.cam_id]["rgb"]["relative_path"] = _ESCAPE_PATH
        else:
            fav[v.cam_id] = {
                "0": _stream(take.name, v.cam_id, "0", "0", f"frame_aligned_videos/{v.file_name}")
            }
    fav["collage"] = {"0": _stream(take.name, None, "0", "0", "ego_preview.mp4")}
    fav["best_exo"] = {"0": _stream(take.name, None, "0", "0", None, clip=False)}
    parent_id, task_name, task_id, _ = _TASKS[take.parent_task_name]
    capture = _capture(take)
    record = {
        "take_uid": take.uid,
        "take_name": take.name,
        "root_dir": f"takes/{take.name}",
        "duration_sec": take.duration_sec,
        "parent_task_name": take.parent_task_name,
        "parent_task_id": parent_id,
        "task_name": task_name,
        "task_id": task_id,
        "university_name": take.university_name,
        "best_exo": take.best_exo,
        "is_dropped": take.is_dropped,
        "validated": True,
        "is_narrated": False,
        "take_idx": int(take.name.rsplit("_", 1)[1]),
        "task_start_sec": 0.1,
        "task_end_sec": round(take.duration_sec - 0.1, 5),
        "objects": [],
        "capture_uid": capture["capture_uid"],
        "capture": capture,
        "frame_aligned_videos": fav,
    }
    if "missing_take_uid" in take.quirks:
        del record["take_uid"]
    return record


def _keystep(takes: Sequence[TakeSpec], split: str) -> dict:
    annotations, taxonomy, vocabulary = {}, {}, {}
    for take in takes:
        _, scenario, task_id, steps = _TASKS[take.parent_task_name]
        uids = {step: task_id * 10 + k for k, step in enumerate(steps)}
        taxonomy[scenario] = {
            "0": {"id": 0, "is_leafnode": False, "name": scenario, "parent_id": None, "parent_name": None},
            **{
                str(k + 1): {
                    "id": k + 1,
                    "is_leafnode": True,
                    "name": s,
                    "parent_id": 0,
                    "parent_name": scenario,
                    "unique_id": uids[s],
                }
                for k, s in enumerate(steps)
            },
        }
        vocabulary.update({str(u): s for s, u in uids.items()})
        if take.split != split or not take.in_takes_json:
            continue
        edges = np.round(np.linspace(0.5, take.duration_sec - 0.2, len(steps) + 1), 5)
        segments = [
            {
                "start_time": float(edges[k]),
                "end_time": float(edges[k + 1]),
                "step_id": k + 1,
                "step_unique_id": uids[s],
                "step_name": s,
                "step_description": s,
                "is_essential": k != 0,
            }
            for k, s in enumerate(steps)
        ]
        annotations[take.uid] = {
            "take_uid": take.uid,
            "take_name": take.name,
            "scenario": scenario,
            "annotation_meta": {
                "annotation_uid": _uid("keystep", take.name),
                "annotator_id": 5792777457490871,
            },
            "segments": segments,
        }
    return {"annotations": annotations, "taxonomy": taxonomy, "vocabulary": vocabulary}


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def generate_release(out_dir, *, full_res: bool = True, takes: Sequence[TakeSpec] = SAMPLE_TAKES) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    listed = [t for t in takes if t.in_takes_json]
    _dump(out / "takes.json", [_take_record(t) for t in listed])
    _dump(out / "captures.json", list({c["capture_uid"]: c for c in map(_capture, listed)}.values()))
    _dump(
        out / "annotations/splits.json",
        {
            "take_uid_to_split": {t.uid: t.split for t in takes},
            "split_to_take_uids": {
                s: [t.uid for t in takes if t.split == s] for s in ("train", "val", "test")
            },
            "take_uid_to_benchmark": {
                t.uid: ["atomic_descriptions", "keystep"] for t in takes if t.split != "test"
            },
        },
    )
    for split in ("train", "val"):  # the test split ships no atomic descriptions or keysteps
        in_split = [t for t in takes if t.split == split]
        _dump(
            out / f"annotations/atomic_descriptions_{split}.json",
            {
                "ds": f"egoexo4d_sample_atomic_descriptions_{split}",
                "take_cam_id_map": {
                    t.uid: {str(int(v.cam_id[-2:])): v.cam_id for v in t.views if not v.is_ego}
                    for t in in_split
                },
                "annotations": {t.uid: _passes(t) for t in in_split},
            },
        )
        _dump(out / f"annotations/keystep_{split}.json", _keystep(takes, split))

    # A file's bytes depend only on (camera, frames, size, offset, state): the stamp names no take. Such twins
    # (cam01 of two 8 s takes, say) are encoded once and copied, which roughly halves the generation time.
    jobs: dict[tuple, list[Path]] = {}
    for take in listed:
        base = out / "takes" / take.name / "frame_aligned_videos"
        for v in take.views:
            if v.file_state == "missing":
                continue
            for path, size in [(base / "downscaled/448" / v.file_name, v.size448)] + (
                [(base / v.file_name, v.size_full)] if full_res else []
            ):
                key = (v.cam_id, v.n_frames, size, v.offset_frames, v.file_state)
                jobs.setdefault(key, []).append(path)

    def encode(key) -> None:
        cam_id, n_frames, (w, h), offset, state = key
        first, *twins = jobs[key]
        # no +faststart when truncating: the moov atom sits at the end, so the cut loses it and ffmpeg refuses
        write_stamped_video(
            first, cam_id, n_frames, w, h, offset_frames=offset, faststart=state != "truncated"
        )
        for path in twins:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(first, path)
        if state == "truncated":
            for path in jobs[key]:
                _truncate(path)

    biggest_first = sorted(
        jobs, key=lambda k: (-k[1] * k[2][0] * k[2][1], k)
    )  # the 2 workers finish together
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(encode, biggest_first))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write the small deterministic Ego-Exo4D sample release.")
    parser.add_argument("--out", required=True, type=Path, help="release root to write")
    parser.add_argument(
        "--no-full-res", action="store_true", help="write only frame_aligned_videos/downscaled/448"
    )
    parser.add_argument("--force", action="store_true", help="regenerate even if OUT/takes.json exists")
    args = parser.parse_args(argv)
    if (args.out / "takes.json").exists() and not args.force:
        print(f"{args.out}/takes.json exists: sample release kept (use --force to regenerate)")
        return 0
    start = time.perf_counter()
    generate_release(args.out, full_res=not args.no_full_res)
    print(f"sample release written to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
