"""The bundled EgoClip sample: SYNTHETIC egoclip.csv rows in EgoVLP's documented format over generated Ego4D-style
full-scale videos.

The real egoclip.csv is not public as a repository file (EgoVLP distributes it by Google Drive), so no row here is
a real one: every row is written by this module in the format EgoVLP's loader reads (TAB-separated, header video_uid,
video_dur, narration_source, narration_ind, narration_time, clip_start, clip_end, clip_text, tag_verb, tag_noun;
times in seconds in the full video; clip_text like "#C C picks a bag of clothes from the floor"; tags stringified
int lists). Layout, as the ego4d CLI's `--datasets full_scale` download:

    OUT/egoclip.csv                              33 rows; written last: it marks a complete sample
    OUT/ego4d/v2/full_scale/<video_uid>.mp4      H.264, each frame stamped (pipeline/core/framecode.py)
    OUT/stamp_codes.json                         path (relative to OUT) of every video -> its stamp code

Frame j of a video is stamped with (its code, j), so a test can decode any output clip and say which video and
which frames it shows. Designed rows (ROWS): 20 good clips (8 + 7 + 5 over three videos at 30, 30 and 24 fps,
one clip starting before 0 s and one running past the end of its video, both clamped), and 13 bad rows, each
failing alone (EXPECTED_FAILURES): 2 bad times, 1 clip outside its video, 2 empty texts, 1 path escape, 2 rows of
a video that is not there, 2 rows of a truncated video, 1 malformed row, 1 duplicate row, 1 bad tag field.

    python -m tools.samples.egoclip --out data/egoclip_sample [--force]
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from tools.samples.common import generator_main, truncate
from tools.samples.stamped_video import write_stamped_video

CSV_NAME = "egoclip.csv"
CODES_NAME = "stamp_codes.json"
VIDEO_ROOT = "ego4d"  # --ego4d-root
HEADER = ("video_uid", "video_dur", "narration_source", "narration_ind", "narration_time", "clip_start", "clip_end",
          "clip_text", "tag_verb", "tag_noun")  # fmt: skip


def _uid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"exo2ego/egoclip-sample/{name}"))


@dataclass(frozen=True)
class VideoSpec:
    uid: str
    n_frames: int
    fps: int
    width: int
    height: int
    code: int  # stamp code: 32..63 (Ego-ExoClip's cameras are 1..29, EgoIT's sources 64..255)
    state: str = "ok"  # "ok" | "truncated" | "missing" (not written)

    @property
    def path(self) -> str:
        return f"{VIDEO_ROOT}/v2/full_scale/{self.uid}.mp4"


LAUNDRY, KITCHEN, GARAGE = _uid("laundry"), _uid("kitchen"), _uid("garage")
TRUNCATED, MISSING = _uid("truncated"), _uid("missing")
VIDEOS = (
    VideoSpec(LAUNDRY, 600, 30, 192, 108, 32),
    VideoSpec(KITCHEN, 480, 30, 192, 108, 33),
    VideoSpec(GARAGE, 360, 24, 160, 120, 34),
    VideoSpec(TRUNCATED, 300, 30, 192, 108, 35, "truncated"),
    VideoSpec(MISSING, 300, 30, 192, 108, -1, "missing"),
)
P1, P2 = "narration_pass_1", "narration_pass_2"


def _dur(uid: str) -> str:
    v = next(v for v in VIDEOS if v.uid == uid)
    return f"{v.n_frames / v.fps:.1f}"


def _row(uid, source, ind, at, start, end, text, verb="[93]", noun="[192, 115]", dur=None) -> list[str]:
    return [uid, dur or _dur(uid), source, str(ind), f"{at}", f"{start}", f"{end}", text, verb, noun]


_LAUNDRY_TEXT = ("#C C picks a bag of clothes from the floor", "#C C drops the bag on the bed",
                 "#C C opens the wardrobe", "#C C folds a shirt", "#C C places the shirt in the wardrobe",
                 "#O man X walks into the room", "#C C looks around", "#C C picks #unsure from the bed")  # fmt: skip
_KITCHEN_TEXT = ("#C C cuts the onion with a knife", "#C C stirs the pot", "#C C opens the fridge",
                 "#C C takes a tomato from the fridge", "#O woman Y hands C a plate", "#C C washes the knife",
                 "#C C  wipes the counter  .")  # fmt: skip
# The real release's tag variants (../shared/real/ego4d_narrations): "#c c", "# C C", a bare "C C", "#CC", a
# capitalised verb and a doubled word; each must give a caption without "#" or a bare tag letter.
_GARAGE_TEXT = ("#c c lifts the tyre", "# C C loosens a bolt with the wrench", "C C drops the bolt in a tray",
                "#CC picks the the tyre lever", "#C C Pushes the bicycle")  # fmt: skip


def _good_rows() -> list[list[str]]:
    """EgoClip-like windows: narration time t, clip [t - h, t + h] with h growing a little, 4-decimal seconds."""
    rows = []
    for uid, texts, t0, gap, h0 in ((LAUNDRY, _LAUNDRY_TEXT, 1.2131, 2.3017, 0.6314),
                                    (KITCHEN, _KITCHEN_TEXT, 0.2113, 2.5011, 0.6342),
                                    (GARAGE, _GARAGE_TEXT, 1.7413, 2.6221, 0.8127)):  # fmt: skip
        for i, text in enumerate(texts):
            at = round(t0 + gap * i, 4)
            h = round(h0 + 0.0713 * i, 4)
            source, ind = (P1, i) if i < len(texts) - 2 else (P2, i - (len(texts) - 2))
            rows.append(_row(uid, source, ind, at, round(at - h, 4), round(at + h, 4), text,
                             f"[{10 + i}]", f"[{100 + i}, {200 + i}]"))  # fmt: skip
    return rows  # KITCHEN's first clip starts at 0.2113 - 0.6342 < 0; KITCHEN's last ends past 16 s


# The bad rows: (data row number in the csv, 1 = the first after the header; the reason the build gives;
# the row's fields, or a raw line)
BAD_ROWS: tuple[tuple[int, str, list[str] | str], ...] = (
    (3, "bad times", _row(LAUNDRY, P1, 6, 9.3, 9.5, 9.1, "#C C shuts the wardrobe")),
    (6, "empty text", _row(LAUNDRY, P1, 7, 11.1, 10.8, 11.4, "")),
    (8, "bad field", _row(LAUNDRY, P1, 8, 12.2, 11.9, 12.5, "#C C hangs the towel", noun="[12, x]")),
    (11, "path escape", _row("../../etc/passwd", P1, 0, 1.0, 0.5, 1.5, "#C C reads the file", dur="20.0")),
    (13, "bad times", _row(KITCHEN, P1, 7, 3.3, "nan", 3.9, "#C C peels the garlic")),
    (15, "empty text", _row(KITCHEN, P2, 3, 5.2, 4.9, 5.6, "#C")),
    (
        19,
        "duplicate row",
        _row(KITCHEN, P1, 2, 4.6, 4.2, 5.0, "#C C closes the fridge"),
    ),  # KITCHEN p1 #2 again
    (20, "clip outside the video", _row(GARAGE, P1, 5, 30.6, 30.2, 31.0, "#C C parks the bicycle")),
    (22, "video: missing video", _row(MISSING, P1, 0, 2.0, 1.6, 2.4, "#C C sweeps the floor")),
    (23, "video: missing video", _row(MISSING, P1, 1, 4.0, 3.6, 4.4, "#C C empties the dustpan")),
    (25, "video: unreadable video", _row(TRUNCATED, P1, 0, 1.0, 0.6, 1.4, "#C C waters the plant")),
    (26, "video: unreadable video", _row(TRUNCATED, P1, 1, 3.0, 2.6, 3.4, "#C C opens the window")),
    (29, "malformed row", "\t".join(_row(GARAGE, P2, 9, 5.0, 4.6, 5.4, "#C C turns the wheel") + ["extra"])),
)
EXPECTED_FAILURES = {reason: sum(1 for _, r, _ in BAD_ROWS if r == reason) for _, reason, _ in BAD_ROWS}
N_GOOD = len(_LAUNDRY_TEXT) + len(_KITCHEN_TEXT) + len(_GARAGE_TEXT)


def csv_lines() -> list[str]:
    """The csv's lines: header, then the good rows with the bad ones at their designed places."""
    lines = ["\t".join(r) for r in _good_rows()]
    for number, _, row in BAD_ROWS:  # ascending numbers: each row lands at its final place
        lines.insert(number - 1, row if isinstance(row, str) else "\t".join(row))
    return ["\t".join(HEADER), *lines]


def generate_sample(out_dir, *, force: bool = False) -> Path:
    """Write the sample into out_dir (kept as is when its egoclip.csv exists, unless force)."""
    out = Path(out_dir)
    if (out / CSV_NAME).exists() and not force:
        return out
    out.mkdir(parents=True, exist_ok=True)
    (out / CSV_NAME).unlink(missing_ok=True)  # written last: marks completion
    for v in VIDEOS:
        (out / v.path).unlink(missing_ok=True)
        if v.state == "missing":
            continue
        # no +faststart for the truncated one: its moov atom then sits at the end, and the cut loses it
        write_stamped_video(out / v.path, v.code, v.n_frames, v.width, v.height, fps=v.fps, audio=False,
                            faststart=v.state == "ok")  # fmt: skip
        if v.state == "truncated":
            truncate(out / v.path)
    codes = {v.path: v.code for v in VIDEOS if v.state != "missing"}
    (out / CODES_NAME).write_text(json.dumps(codes, indent=2, sort_keys=True) + "\n")
    (out / CSV_NAME).write_text("\n".join(csv_lines()) + "\n", encoding="utf-8")
    return out


def main(argv=None) -> int:
    return generator_main(
        argv, description="Write the bundled EgoClip sample (synthetic rows, stamped videos).",
        out_help=f"folder to write (OUT/{CSV_NAME}, OUT/{VIDEO_ROOT})", marker=CSV_NAME, name="EgoClip sample",
        generate=lambda args: generate_sample(args.out, force=True),
        note=lambda out: f" (--csv {out / CSV_NAME} --ego4d-root {out / VIDEO_ROOT})",
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
