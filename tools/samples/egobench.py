"""The bundled EgoBench mini-benchmark: annotation rows of every benchmark, generated stamped videos at the
paths they name, and the build config.

`make build-egobench` with no EGOBENCH_CONFIG builds EgoBench from it. The annotation files are verbatim
selections of the real files where one is public (EgoSchema, EgoTaskQA MCQ, Charades-Ego v0, EPIC-100 MIR,
EgoPlan-Bench2, VLN-QA) and SYNTHETIC rows in the documented format where none is (QAEgo4D open + closed
around the record quoted in GroundVQA's issue tracker, EgoTaskQA direct / indirect, EgoPlan v1 around the
README's record, EgoMCQ): tools/samples/rows/egobench/, README.md there. All 11 tasks of records.TASKS are
present.

    OUT/egobench.yaml                             the build config (paths relative to it); written last
    OUT/stamp_codes.json                          path of every video / frame folder -> its stamp code
    OUT/egoschema/{EgoSchema.csv, questions.json, subset_answers.json, uid_to_ego4d.json}
    OUT/egoschema/videos/<q_uid>.mp4              EgoSchema 3-minute clips, 2 fps
    OUT/egoschema/v2/full_scale/<video_uid>.mp4   Ego4D videos the 180 s windows are cut from, 2 fps
    OUT/qaego4d/unified/annotations.QaEgo4D_test{,_close}.json
    OUT/qaego4d/ego4d/v2/{clips,full_scale}/<uid>.mp4          NLQ clips (whole), an Ego4D video (fallback)
    OUT/qaego4d/ego4d/v2/annotations/nlq_val.json  Ego4D NLQ clip windows (the fallback's clip, cut whole)
    OUT/egotaskqa/{direct,indirect}/test_qas.json, OUT/egotaskqa_mcq/egotaskqa.json
    OUT/egotaskqa/videos/<interval>.mp4           a pre-cut interval clip ('|' in the name, as shipped)
    OUT/egotaskqa/videos/<video>/fpv<N>/img_<k+1:05d>.jpg   LEMMA RGB frames (JPEG), frame k stamped k
    OUT/charades_ego/CharadesEgo/{CharadesEgo_v0_egocentric_test.csv, Charades_v1_classes.txt}
    OUT/charades_ego/CharadesEgo_v1_480/<id>.mp4  4 fps, the row's length
    OUT/epic_kitchens/annotations/retrieval_annotations/EPIC_100_retrieval_test{,_sentence}.csv
    OUT/epic_kitchens/videos/<Pxx>/videos/<video_id>.MP4   12 fps
    OUT/egoplan/{egoplan2.json, EgoPlan_validation.json}, Ego4D/v1_288p/<uid>.mp4, EPIC-KITCHENS/<Pxx>/videos/
    OUT/vln_qa/vlnqa.json, OUT/vln_qa/<action>/<n>_frame<k>.mp4   k frames at 8 fps
    OUT/egomcq/egomcq.json, OUT/egomcq/ego4d/v2/full_scale/<video_uid>.mp4   10 fps

Every video (and frame folder) carries its own framecode stamp code (1.. by path) and frame j of a file is
stamped j (a LEMMA frame img_<k+1>.jpg: k), so a test can say which file and which frame any output clip
shows. Long windows are real (EgoSchema's 180 s, an EgoPlan window at 1628-1715 s): those videos are long,
tiny and at 1-2 fps, which keeps the whole generation to seconds. Designed failures, each costing only its own
items: a missing video in EgoSchema, EgoTaskQA (direct, MCQ), Charades-Ego, EPIC, EgoPlan,
VLN-QA and EgoMCQ (one of an item's 5 clips); a truncated video in VLN-QA and EgoMCQ; an EgoPlan v1 row whose
answer text is not its golden choice. Encodes are single-threaded and bit-exact: two runs give identical
bytes.

    python -m tools.samples.egobench --out data/egobench_sample [--force]
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from pipeline.core.framecode import encode_frame
from pipeline.egobench.sources.egotaskqa import INTERVAL
from tools.samples.common import RowsSample, truncate
from tools.samples.stamped_video import write_stamped_video

ROWS = Path(__file__).with_name("rows") / "egobench"
CONFIG_NAME = "egobench.yaml"
CODES_NAME = "stamp_codes.json"
TOP_DIRS = (
    "egoschema",
    "qaego4d",
    "egotaskqa",
    "egotaskqa_mcq",
    "charades_ego",
    "epic_kitchens",
    "egoplan",
    "vln_qa",
    "egomcq",
)

# rows/egobench file -> where the benchmark ships it (relative to OUT)
ANNOTATIONS = {
    "egoschema/EgoSchema.csv": "egoschema/EgoSchema.csv",
    "egoschema/questions.json": "egoschema/questions.json",
    "egoschema/subset_answers.json": "egoschema/subset_answers.json",
    "egoschema/uid_to_ego4d.json": "egoschema/uid_to_ego4d.json",
    "qaego4d/annotations.QaEgo4D_test.json": "qaego4d/unified/annotations.QaEgo4D_test.json",
    "qaego4d/annotations.QaEgo4D_test_close.json": "qaego4d/unified/annotations.QaEgo4D_test_close.json",
    "qaego4d/nlq_val.json": "qaego4d/ego4d/v2/annotations/nlq_val.json",
    "egotaskqa/direct/test_qas.json": "egotaskqa/direct/test_qas.json",
    "egotaskqa/indirect/test_qas.json": "egotaskqa/indirect/test_qas.json",
    "egotaskqa_mcq/egotaskqa.json": "egotaskqa_mcq/egotaskqa.json",
    **{
        f"charades_ego/{name}": f"charades_ego/CharadesEgo/{name}"
        for name in ("CharadesEgo_v0_egocentric_test.csv", "Charades_v1_classes.txt")
    },
    **{
        f"epic_kitchens/{name}": f"epic_kitchens/annotations/retrieval_annotations/{name}"
        for name in ("EPIC_100_retrieval_test.csv", "EPIC_100_retrieval_test_sentence.csv")
    },
    "egoplan/egoplan2.json": "egoplan/egoplan2.json",
    "egoplan/EgoPlan_validation.json": "egoplan/EgoPlan_validation.json",
    "vln_qa/vlnqa.json": "vln_qa/vlnqa.json",
    "egomcq/egomcq.json": "egomcq/egomcq.json",
}

CONFIG = """\
# The bundled EgoBench mini-benchmark (python -m tools.samples.egobench): real annotation rows
# where a real file is public, synthetic rows in the documented format elsewhere, generated stamped videos.
# Paths are relative to this file.
benchmarks:
  egoschema: {root: egoschema, options: {questions: EgoSchema.csv}}        # the public answers (IG-VLM's CSV)
  egoschema_unanswered: {reader: egoschema, root: egoschema}               # questions.json: no public answer
  qaego4d: {root: qaego4d, videos: qaego4d/ego4d}
  egotaskqa: {root: egotaskqa, videos: egotaskqa/videos}
  egotaskqa_mcq: {root: egotaskqa_mcq, videos: egotaskqa/videos}
  charades_ego:
    root: charades_ego
    annotations: charades_ego/CharadesEgo/CharadesEgo_v0_egocentric_test.csv
  epic_mir: {root: epic_kitchens/annotations, videos: epic_kitchens/videos}
  egoplan: {root: egoplan, annotations: egoplan/egoplan2.json}                 # EgoPlan-Bench2
  egoplan_v1: {reader: egoplan, root: egoplan, annotations: egoplan/EgoPlan_validation.json}
  vlnqa: {root: vln_qa}
  egomcq: {root: egomcq, videos: egomcq/ego4d}
max_samples_per_shard: 6
"""

# Designed quirks (each one only affects the items that name it)
EGOSCHEMA_CLIPS = (
    "0074f737-11cb-497d-8d07-77c3a8127391",
    "00b9a0de-c59e-49cb-a127-6081e2fb8c8e",
    "005651d6-f710-4909-b76d-acf7306fb72a",
    "00ea715e-2816-460e-b503-97b8ec760bf2",
)
EGOSCHEMA_NO_VIDEO = ("00f93e1e-cf4e-4835-88b4-4ad68216e86f",)  # neither a clip nor its Ego4D video
QAEGO4D_NO_CLIP = ("5809554b-f5cd-52f9-8d81-4d51cd5623a8",)  # no clip file: cut from the video (nlq_val.json)
EGOTASKQA_MP4 = (
    "27k-22-11-2|P1|4546|4986",
)  # a pre-cut clip; every other interval is LEMMA frames or missing
EGOTASKQA_NO_VIDEO = ("30k-12-1-2", "27k-12-10-2")  # LEMMA videos with neither frames nor clips
CHARADES_MISSING = ("778W4EGO",)
EPIC_MISSING = ("P01_14",)
EGOPLAN_MISSING = ("62bbaf4d-6443-4641-86f9-c2942d935e80",)
VLNQA_MISSING = ("left/2763_frame73.mp4",)
VLNQA_TRUNCATED = ("right/1690_frame80.mp4",)
EGOMCQ_TRUNCATED_CHOICE = ("6", 1)  # item "6": its choice 1's video is cut off
EGOMCQ_MISSING_CHOICE = ("7", 3)  # item "7": its choice 3's video is absent


@dataclass(frozen=True)
class MediaSpec:
    """One generated video file or LEMMA frame folder (kind "frames"), path relative to OUT."""

    path: str
    n_frames: int  # video frames; for a frame folder, frames [first, first + n) are written
    width: int
    height: int
    fps: float = 0.0
    kind: str = "mp4"  # "mp4" | "frames"
    state: str = "ok"  # "ok" | "truncated" | "missing" (not written, no code)
    code: int = -1
    first: int = 0  # frames: LEMMA index of the first frame written

    def frame_name(self, k: int) -> str:
        return f"img_{k + 1:05d}.jpg"


def _text(rel: str) -> str:
    return (ROWS / rel).read_text(encoding="utf-8")


def _seconds_to_frames(seconds: float, fps: float, margin_s: float = 2.0) -> int:
    return math.ceil((seconds + margin_s) * fps)


def _egoschema() -> list[MediaSpec]:
    windows = json.loads(_text("egoschema/uid_to_ego4d.json"))
    specs, videos = [], {}
    for q_uid, w in windows.items():
        if q_uid in EGOSCHEMA_CLIPS:
            specs.append(MediaSpec(f"egoschema/videos/{q_uid}.mp4", 180 * 2, 128, 72, 2))
        elif q_uid in EGOSCHEMA_NO_VIDEO:
            specs.append(MediaSpec(f"egoschema/videos/{q_uid}.mp4", 0, 0, 0, state="missing"))
        else:
            videos[w["video_uid"]] = max(videos.get(w["video_uid"], 0), w["ending_sec"])
    specs += [
        MediaSpec(f"egoschema/v2/full_scale/{uid}.mp4", _seconds_to_frames(end, 2), 128, 72, 2)
        for uid, end in videos.items()
    ]
    return specs


def _qaego4d() -> list[MediaSpec]:
    open_rows = json.loads(_text("qaego4d/annotations.QaEgo4D_test.json"))
    closed = json.loads(_text("qaego4d/annotations.QaEgo4D_test_close.json"))
    ends: dict[str, float] = {}
    for row in open_rows + closed:
        ends[row["video_id"]] = max(ends.get(row["video_id"], 0.0), row["moment_end_frame"] / 30)
    specs = []
    for clip, end in ends.items():
        state = "missing" if clip in QAEGO4D_NO_CLIP else "ok"
        specs.append(
            MediaSpec(
                f"qaego4d/ego4d/v2/clips/{clip}.mp4", _seconds_to_frames(end, 5), 128, 72, 5, state=state
            )
        )
    nlq = json.loads(_text("qaego4d/nlq_val.json"))["videos"]
    fallback = {v["video_uid"]: max(c["video_end_sec"] for c in v["clips"]) for v in nlq}
    specs += [
        MediaSpec(f"qaego4d/ego4d/v2/full_scale/{uid}.mp4", _seconds_to_frames(end, 5), 128, 72, 5)
        for uid, end in fallback.items()
    ]
    return specs


def _egotaskqa() -> list[MediaSpec]:
    intervals = [
        r["interval"]
        for name in ("direct", "indirect")
        for r in json.loads(_text(f"egotaskqa/{name}/test_qas.json"))
    ]
    intervals += [r["video_path"][: -len(".mp4")] for r in json.loads(_text("egotaskqa_mcq/egotaskqa.json"))]
    specs, folders = [], {}
    for interval in dict.fromkeys(intervals):
        m = INTERVAL.fullmatch(interval)
        if m["video"] in EGOTASKQA_NO_VIDEO:
            specs.append(MediaSpec(f"egotaskqa/videos/{interval}.mp4", 0, 0, 0, state="missing"))
        elif interval in EGOTASKQA_MP4:  # the clip as EgoThinker ships it: LEMMA runs at 24 fps, this at 6
            n = math.ceil((int(m["end"]) - int(m["start"])) / 4)
            specs.append(MediaSpec(f"egotaskqa/videos/{interval}.mp4", n, 128, 96, 6))
        else:
            folder = f"egotaskqa/videos/{m['video']}/fpv{m['view']}"
            lo, hi = folders.get(folder, (int(m["start"]), int(m["end"])))
            folders[folder] = (min(lo, int(m["start"])), max(hi, int(m["end"])))
    specs += [
        MediaSpec(folder, hi - lo, 96, 72, kind="frames", first=lo) for folder, (lo, hi) in folders.items()
    ]
    return specs


def _charades() -> list[MediaSpec]:
    rows = csv.DictReader(io.StringIO(_text("charades_ego/CharadesEgo_v0_egocentric_test.csv"), newline=""))
    return [
        MediaSpec(
            f"charades_ego/CharadesEgo_v1_480/{r['id']}.mp4",
            round(float(r["length"]) * 4),
            128,
            96,
            4,
            state="missing" if r["id"] in CHARADES_MISSING else "ok",
        )
        for r in rows
    ]


def _epic() -> list[MediaSpec]:
    from pipeline.egobench.sources.epic_mir import seconds

    ends: dict[tuple[str, str], float] = {}
    for r in csv.DictReader(io.StringIO(_text("epic_kitchens/EPIC_100_retrieval_test.csv"), newline="")):
        key = (r["participant_id"], r["video_id"])
        ends[key] = max(ends.get(key, 0.0), seconds(r["stop_timestamp"]))
    return [
        MediaSpec(
            f"epic_kitchens/videos/{p}/videos/{v}.MP4",
            _seconds_to_frames(end, 12),
            128,
            72,
            12,
            state="missing" if v in EPIC_MISSING else "ok",
        )
        for (p, v), end in ends.items()
    ]


def _egoplan() -> list[MediaSpec]:
    from pipeline.egobench.sources.egoplan import EGO4D_FPS, epic_frame_rate

    ends: dict[str, float] = {}
    for name in ("egoplan2.json", "EgoPlan_validation.json"):
        for r in json.loads(_text(f"egoplan/{name}")):
            source = r.get("video_source", "Ego4D")
            if source == "Ego4D":
                uid = r.get("video_id") or r["sample_id"].rpartition("_")[0]
                path, fps = f"egoplan/Ego4D/v1_288p/{uid}.mp4", EGO4D_FPS
            else:
                path, fps = (
                    f"egoplan/EPIC-KITCHENS/{r['video_id'][:3]}/videos/{r['video_id']}.MP4",
                    epic_frame_rate(r["video_id"]),
                )
            ends[path] = max(ends.get(path, 0.0), (r["current_observation_frame"] + 1) / fps)
    specs = []
    for path, end in ends.items():
        fps = 1 if end > 300 else 10  # the window at 1628-1715 s: a long video at 1 fps
        state = "missing" if any(m in path for m in EGOPLAN_MISSING) else "ok"
        specs.append(MediaSpec(path, _seconds_to_frames(end, fps), 128, 72, fps, state=state))
    return specs


def _vlnqa() -> list[MediaSpec]:
    specs = []
    for r in json.loads(_text("vln_qa/vlnqa.json")):
        k = int(r["video_path"].rsplit("_frame", 1)[1].removesuffix(".mp4"))
        state = (
            "missing"
            if r["video_path"] in VLNQA_MISSING
            else "truncated"
            if r["video_path"] in VLNQA_TRUNCATED
            else "ok"
        )
        specs.append(MediaSpec(f"vln_qa/{r['video_path']}", k, 128, 96, 8, state=state))
    return specs


def _egomcq() -> list[MediaSpec]:
    data = json.loads(_text("egomcq/egomcq.json"))
    ends: dict[str, float] = {}
    for entry in data.values():
        for c in entry["choices"].values():
            ends[c["video_uid"]] = max(ends.get(c["video_uid"], 0.0), c["clip_end"])
    bad = {
        data[k]["choices"][str(i)]["video_uid"]: state
        for (k, i), state in ((EGOMCQ_TRUNCATED_CHOICE, "truncated"), (EGOMCQ_MISSING_CHOICE, "missing"))
    }
    return [
        MediaSpec(
            f"egomcq/ego4d/v2/full_scale/{uid}.mp4",
            _seconds_to_frames(max(end, 38.0), 10),
            128,
            72,
            10,
            state=bad.get(uid, "ok"),
        )
        for uid, end in ends.items()
    ]


def media_specs() -> tuple[MediaSpec, ...]:
    """Every video / frame folder the sample rows name, with its stamp code (1.. in path order; missing:
    -1)."""
    specs = [
        *_egoschema(),
        *_qaego4d(),
        *_egotaskqa(),
        *_charades(),
        *_epic(),
        *_egoplan(),
        *_vlnqa(),
        *_egomcq(),
    ]
    paths = [s.path for s in specs]
    if len(set(paths)) != len(paths):
        raise ValueError("a media path is generated twice")
    written = sorted(s.path for s in specs if s.state != "missing")
    if len(written) > 255:
        raise ValueError(f"{len(written)} files do not fit the 8-bit stamp codes")
    codes = {path: k + 1 for k, path in enumerate(written)}
    return tuple(sorted((replace(s, code=codes.get(s.path, -1)) for s in specs), key=lambda s: s.path))


def _write_media(out: Path, spec: MediaSpec) -> None:
    path = out / spec.path
    if spec.kind == "frames":
        path.mkdir(parents=True, exist_ok=True)
        for k in range(spec.first, spec.first + spec.n_frames):
            frame = encode_frame(spec.code, k, spec.width, spec.height)
            Image.fromarray(frame, "RGB").save(path / spec.frame_name(k), format="JPEG", quality=95)
        return
    # no +faststart when truncating: the moov atom then sits at the end, so the cut loses it
    write_stamped_video(
        path,
        spec.code,
        spec.n_frames,
        spec.width,
        spec.height,
        fps=int(spec.fps),
        audio=False,
        faststart=spec.state != "truncated",
    )
    if spec.state == "truncated":
        truncate(path)


SAMPLE = RowsSample("EgoBench sample", "Write the bundled EgoBench mini-benchmark (rows + stamped videos).", CONFIG_NAME, CONFIG, CODES_NAME, tuple(TOP_DIRS), ROWS, ANNOTATIONS, media_specs, _write_media)  # fmt: skip
main, generate_sample = SAMPLE.main, SAMPLE.generate

if __name__ == "__main__":
    raise SystemExit(main())
