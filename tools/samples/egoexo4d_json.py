"""The annotation JSON of the bundled Ego-Exo4D sample release: narration passes (atomic descriptions), the
takes.json / captures.json records and keysteps, derived from the takes (tools/samples/egoexo4d_takes.py) with
seeded generators, so that two runs write identical files. Layout and shapes: ../shared/docs/egoexo4d-release.md.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tools.samples.egoexo4d_takes import _ARIA_STREAMS, _ESCAPE_PATH, TakeSpec, _uid

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
