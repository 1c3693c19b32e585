"""A small, faithful, deterministic Ego-Exo4D release: the bundled sample and the fixture of the tests.

The layout, JSON shapes and known quirks follow ../shared/docs/egoexo4d-release.md (real downloads, not only the docs).
Every video frame carries a framecode stamp (camera code + take instant), so a test can decode any output clip
and say which camera and which instant it shows. Everything is derived from names (uuid5, seeded generators)
and encoded with bit-exact ffmpeg flags, so two runs write byte-identical files.

    python -m tools.samples.egoexoclip --out data/sample [--no-full-res] [--force]
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline.core.framecode import camera_code
from tools.samples import stamped_video
from tools.samples.common import generator_main, truncate
from tools.samples.egoexo4d_json import _capture, _dump, _keystep, _passes, _take_record
from tools.samples.egoexo4d_takes import (  # noqa: F401 (the generator's public names)
    BAD_RECORDS,
    FPS,
    SAMPLE_TAKES,
    TakeSpec,
    ViewSpec,
    _aria,
    _gopro,
    _take,
)

# ---------------------------------------------------------------------------------------------------- videos


def write_stamped_video(path, cam_id: str, n_frames: int, width: int, height: int, **options) -> None:
    """H.264 yuv420p (+AAC) mp4 whose frame j is stamped with (camera_code(cam_id), j - offset_frames): the core
    writer (tools/samples/stamped_video.py) with the camera's code. Module-level, so the bench can swap it."""
    stamped_video.write_stamped_video(path, camera_code(cam_id), n_frames, width, height, **options)


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
                truncate(path)

    biggest_first = sorted(
        jobs, key=lambda k: (-k[1] * k[2][0] * k[2][1], k)
    )  # the 2 workers finish together
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(encode, biggest_first))
    return out


def main(argv=None) -> int:
    return generator_main(
        argv, description="Write the small deterministic Ego-Exo4D sample release.", out_help="release root to write",
        marker="takes.json", name="sample release",
        generate=lambda args: generate_release(args.out, full_res=not args.no_full_res),
        options=[("--no-full-res", dict(action="store_true", help="write only frame_aligned_videos/downscaled/448"))],
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
