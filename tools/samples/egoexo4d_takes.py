"""The takes of the bundled Ego-Exo4D sample release: cameras, lengths, splits and designed quirks.

ViewSpec / TakeSpec describe a take as the generator (tools/samples/egoexoclip.py) writes it; SAMPLE_TAKES is the
bundled release, BAD_RECORDS the records a reader must reject one by one. The bench (tools/bench/) builds its own
long takes from _aria / _gopro / _take.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

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
    _take("cmu_bike01_2", "train", "Bike Repair", [_aria(360), *_exos(360)[:3], _gopro("cam04", 358)], best_exo="cam02", quirks=("three_passes", "narration_at_edges", "bad_descriptions")),
    _take("georgiatech_cooking_03_1", "train", "Cooking", [_aria(270), *_exos(270, _EXO3), _gopro("cam04", 270, is_ego=True)], best_exo=None, quirks=("ego_gopro", "narration_subject_key", "string_bools", "messy_text", "two_passes")),
    _take("upenn_dance_02_4", "val", "Dance", [ _aria(270, "aria02", is_ego_as_string=True), *( _gopro(c, 210 if c == "gp03" else 270, is_ego_as_string=True) for c in ("gp01", "gp02", "gp03", "gp04") ), ], best_exo="gp02", quirks=("gp_names", "is_ego_strings", "exo_shorter", "two_passes")),
    _take("sfu_basketball_05_3", "train", "Basketball", [_aria(255), *_exos(255, cam02={"file_state": "missing"})], quirks=("missing_exo", "two_passes")),
    _take("iiith_soccer_01_7", "train", "Soccer", [_aria(242), *_exos(240, _EXO3, cam03={"file_state": "truncated"})], quirks=("corrupt_exo", "two_passes")),
    _take("minnesota_rockclimbing_01_2", "val", "Rock Climbing", [_aria(270), *_exos(270, _EXO3, cam01={"vertical": True})], best_exo="cam02", quirks=("vertical_gopro", "two_passes")),
    _take("indiana_bike_01_2", "train", "Bike Repair", [_aria(270, offset_frames=5), *_exos(270, _EXO3)], best_exo="cam03", quirks=("misaligned_ego", "two_passes")),
    _take("nus_music_02_1", "train", "Music", [_aria(300), *_exos(300)], in_takes_json=False, quirks=("not_in_takes_json",)),
    _take("utokyo_health_03_1", "train", "Health", [_aria(240), *_exos(240, _EXO3)], is_dropped=True, quirks=("dropped",)),
    _take("uniandes_cooking_01_1", "train", "Cooking", [_aria(240), *_exos(240, _EXO3)], quirks=("single_narration",)),
    _take("cmu_bike02_1", "test", "Bike Repair", [_aria(240), *_exos(240, _EXO3)], quirks=("test_split",)),
    _take("sfu_cooking_07_2", "train", "Cooking", [_aria(240, file_state="truncated"), *_exos(240, _EXO3)], quirks=("corrupt_ego", "two_passes")),
    _take("broken_take_01", "train", "Cooking", [_aria(240), _gopro("cam01", 240)], quirks=("missing_take_uid",)),
    # the aria rgb relative_path points outside the root: no file is written for it
    _take("escape_take_01", "train", "Cooking", [_aria(240, file_state="missing"), *_exos(240, _EXO3[:2])], quirks=("path_escape",)),
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
