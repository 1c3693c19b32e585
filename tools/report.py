"""`make report OUT=...`: a visual audit of a finished Ego-ExoClip build, as one HTML page with PNG figures.

    python -m tools.report --out data/egoexoclip [--samples 12] [--seed 0]

Reads OUT/manifest.parquet, OUT/stats.json, OUT/errors.jsonl and the shards that hold the drawn samples, and
writes OUT/report/:

    index.html          summary tables (numbers straight from stats.json) + the figures, relative links only
    contact_sheet.png   N random samples (seeded): the ego and exo frame nearest the narration time, side by
                        side, with the caption (the sample's `txt` member, as the shard holds it)
    clip_lengths.png    histogram of window lengths (stats.json's bins)
    counts.png          samples by split and scenario
    failures.png        failures by scope and reason (errors.jsonl)

Same build + same seed = same files (byte for byte). Pairs and moments layouts, mp4 and frames formats: mp4
clips are decoded with pipeline.core.clips.read_frames, frames-mode JPEG members with Pillow. Figures are drawn
with Pillow alone (its bundled font), so nothing beyond the pipeline's own requirements is needed. Local OUT
only (the shards are opened with tarfile).
"""

from __future__ import annotations

import argparse
import html
import io
import json
import os
import random
import sys
import tarfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.core.clips import ExtractionError, read_frames, sample_frame_indices
from tools.report_figures import (  # noqa: F401 (_nice_max, sheet_size: the figures' helpers, tested from here)
    PALETTE,
    _bin_label,
    _nice_max,
    contact_sheet,
    hbar_chart,
    histogram,
    save_png,
    sheet_size,
)

REPORT_DIR = "report"
FIGURES = ("contact_sheet.png", "clip_lengths.png", "counts.png", "failures.png")


# ------------------------------------------------------------------------------------------- inputs


@dataclass
class Pick:
    """One drawn sample: its manifest row, its shard members (those read), and the frames chosen."""

    row: dict
    members: dict[str, bytes] = field(default_factory=dict)
    caption: str = ""
    ego: np.ndarray | None = None
    exo: np.ndarray | None = None
    ego_label: str = ""
    exo_label: str = ""
    ego_stamp: str = ""  # the frame's machine-readable stamp, where it has one (bundled sample, bench takes)
    exo_stamp: str = ""
    exo_cam: str = ""
    problems: list[str] = field(default_factory=list)


def load_build(out: Path) -> tuple[dict, list[dict], list[dict]]:
    """(stats.json, manifest rows, errors.jsonl records) of a finished build."""
    import pyarrow.parquet as pq

    for name in ("stats.json", "manifest.parquet"):
        if not (out / name).exists():
            raise FileNotFoundError(f"{out / name} not found: --out must be a finished Ego-ExoClip build")
    stats = json.loads((out / "stats.json").read_text())
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    errors = []
    if (out / "errors.jsonl").exists():
        with open(out / "errors.jsonl", encoding="utf-8") as f:
            errors = [json.loads(line) for line in f if line.strip()]
    return stats, rows, errors


def draw_samples(rows: list[dict], n: int, seed: int) -> list[dict]:
    """n manifest rows drawn without replacement, in a seed-determined order (independent of row order)."""
    ordered = sorted(rows, key=lambda r: r["key"])
    return random.Random(seed).sample(ordered, min(n, len(ordered)))


def read_members(out: Path, picks: list[Pick]) -> None:
    """Fill each pick's members from its shard, reading only the members of the drawn keys."""
    by_shard: dict[str, dict[str, Pick]] = defaultdict(dict)
    for p in picks:
        by_shard[p.row["shard"]][p.row["key"]] = p
    for shard, wanted in sorted(by_shard.items()):
        path = out / shard
        if not path.exists():
            for p in wanted.values():
                p.problems.append(f"shard {shard} not found")
            continue
        with tarfile.open(path, "r") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, _, member = os.path.basename(info.name).partition(".")
                if key in wanted:
                    wanted[key].members[member] = tar.extractfile(info).read()
        for key, p in wanted.items():
            if not p.members:
                p.problems.append(f"sample {key} not found in {shard}")


def _view_ranges(row: dict) -> dict[str, tuple[int, int]]:
    ranges = {row["ego_cam"]: (row["ego_start_frame"], row["ego_end_frame"])}
    for spec in row["exo_frames"]:  # "cam:start:end" of every exo view of the narration
        cam, a, b = spec.rsplit(":", 2)
        ranges[cam] = (int(a), int(b))
    return ranges


def _jpeg_members(members: dict[str, bytes], prefix: str) -> list[str]:
    names = [m for m in members if m.startswith(prefix + ".") and m.endswith(".jpg")]
    names = [m for m in names if m[len(prefix) + 1 : -4].isdigit()]  # ego.07.jpg, not exo.cam01.07.jpg for "exo"
    return sorted(names)


def frame_near(members: dict[str, bytes], prefix: str, start: int, end: int, target: int,
               kind: str) -> tuple[np.ndarray, int, str]:  # fmt: skip
    """The clip frame nearest source frame `target` of the view: (RGB array, its source frame, where)."""
    if kind == "mp4":
        data = members.get(prefix + ".mp4")
        if data is None:
            raise KeyError(f"member {prefix}.mp4 missing")
        frames = read_frames(data)
        k = min(max(target - start, 0), len(frames) - 1)
        return frames[k, :, :, :3], start + k, f"frame {start + k} · {k + 1}/{len(frames)}"
    names = _jpeg_members(members, prefix)
    if not names:
        raise KeyError(f"no {prefix}.NN.jpg members")
    src = sample_frame_indices(start, end, len(names))
    k = min(range(len(names)), key=lambda i: (abs(src[i] - target), i))
    with Image.open(io.BytesIO(members[names[k]])) as im:
        return np.asarray(im.convert("RGB")), src[k], f"frame {src[k]} ({names[k]})"


def stamp_note(arr: np.ndarray, cam: str, instant: int) -> str:
    """'stamp ok' / 'stamp MISMATCH ...' for frames painted by pipeline.core.framecode (the generated
    releases: every frame carries its camera and the canonical instant it shows, so that misaligned views can
    be checked); '' for real footage (no valid stamp). `instant`: the canonical frame the clip should show."""
    from pipeline.core.framecode import CAMERA_NAMES, FrameCodeError, decode_frame

    try:
        code, index = decode_frame(arr)
    except FrameCodeError:
        return ""
    if code not in CAMERA_NAMES:  # a chance pass on real footage (the checksum is 8 bits): no stamp
        return ""
    name = CAMERA_NAMES[code]
    if name == cam and index == instant:
        return f"stamp ok: {name}, instant {index}"
    return f"stamp MISMATCH: {name}, instant {index} (expected {cam}, {instant})"


def fill_frames(pick: Pick, kind: str) -> None:
    row, members = pick.row, pick.members
    txt = members.get("txt")
    pick.caption = txt.decode("utf-8", "replace") if txt is not None else row["text"]
    if txt is None:
        pick.problems.append("no txt member (caption from the manifest)")
    elif pick.caption != row["text"]:
        pick.problems.append("txt member differs from the manifest text")
    if not members:
        return
    ranges = _view_ranges(row)
    fps = row["fps"] or 30.0
    # frame of the narration inside each view: the same offset from the window start in every view
    w0 = round(row["window_start"] * fps)  # canonical frame of the window start (view frame = canonical + offset)
    rel = round(row["timestamp"] * fps) - w0
    if row["exo_cam"]:  # pairs: the sample's exo view
        pick.exo_cam = row["exo_cam"]
    else:  # moments: the annotators' best exo view when the sample has it, else the first
        cams = list(row["exo_cams"])
        pick.exo_cam = row["best_exo"] if row["best_exo"] in cams else (cams[0] if cams else "")
    exo_prefix = "exo" if row["exo_cam"] else f"exo.{pick.exo_cam}"
    for side, cam, prefix in (("ego", row["ego_cam"], "ego"), ("exo", pick.exo_cam, exo_prefix)):
        a, b = ranges.get(cam, (0, 1))
        try:
            arr, src, where = frame_near(members, prefix, a, b, a + rel, kind)
        except (KeyError, ExtractionError, OSError, ValueError) as err:
            pick.problems.append(f"{side} {cam}: {err}")
            continue
        setattr(pick, side, arr)
        setattr(pick, f"{side}_label", f"{side} {cam} · {where}")
        setattr(pick, f"{side}_stamp", stamp_note(arr, cam, w0 + src - a))


# ------------------------------------------------------------------------------------------- drawing


# ------------------------------------------------------------------------------------------- html

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1160px;
       color: #212529; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } .muted { color: #6c757d; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em; }
th, td { border: 1px solid #dee2e6; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }
td.count, th.count { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #dee2e6; }
ol.samples li { margin-bottom: 0.4em; } code { font-size: 0.92em; }
td.reason { white-space: nowrap; }
.problem { color: #c81e1e; } .ok { color: #198754; }
"""


def _rule_text(rule: dict) -> str:
    if rule.get("kind") == "fixed":
        return f"fixed {rule.get('fixed_length_sec', '?')} s"
    return "EgoClip rule (t ± beta / 2 alpha)" if rule.get("kind") == "egoclip" else json.dumps(rule, sort_keys=True)


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _shorten(text: str, n: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _count_cell(stat: str, value) -> str:
    return f'<td class="count" data-stat="{_e(stat)}">{_e(value)}</td>'


def sample_item(i: int, p: Pick) -> str:
    r = p.row
    probs = "".join(f'<div class="problem">{_e(x)}</div>' for x in p.problems)
    raw = r.get("raw_text", "")
    raw_html = f' <span class="muted">(raw: {_e(raw)})</span>' if raw and raw != p.caption else ""
    stamps = ""
    for note in (p.ego_stamp, p.exo_stamp):
        if note:
            cls = "ok" if note.startswith("stamp ok") else "problem"
            stamps += f' <span class="{cls}">[{_e(note)}]</span>'
    return (
        f'<li class="sample" data-key="{_e(r["key"])}"><code>{_e(r["key"])}</code> '
        f'<span class="muted">{_e(r["split"])} · {_e(r["scenario"])} · t = {r["timestamp"]:.2f} s · '
        f"{_e(p.ego_label)} | {_e(p.exo_label)}</span>{stamps}<br>"
        f'<span class="caption">{_e(p.caption)}</span>{raw_html}{probs}</li>'
    )


def render_html(out: Path, stats: dict, picks: list[Pick], errors: list[dict], seed: int,
                n_requested: int) -> str:  # fmt: skip
    opts = stats.get("options", {})
    n = stats["narrations"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Ego-ExoClip build report: {_e(out.name)}</title><style>{CSS}</style></head><body>",
        "<h1>Ego-ExoClip build report</h1>",
        f'<p class="muted">Build <code>{_e(out)}</code> · layout {_e(opts.get("layout", "?"))}, '
        f"{_e(opts.get('kind', '?'))}"
        + (f" ({_e(opts.get('n_frames'))} frames at {_e(opts.get('size'))}p)" if opts.get("kind") == "frames"
           else f" (x264 {_e(opts.get('preset', '?'))} CRF {_e(opts.get('crf', '?'))})")
        + f" · windows: {_e(_rule_text(opts.get('window_rule', {})))}"
        f" · resolution {_e(opts.get('resolution', '?'))} · report seed {seed}</p>",
        "<h2>Summary</h2><table><tbody>",
        f"<tr><th>samples</th>{_count_cell('samples', stats['samples'])}</tr>",
        f"<tr><th>pairs</th>{_count_cell('pairs', stats['pairs'])}</tr>",
        f"<tr><th>narrations in the input</th>{_count_cell('narrations/input', n['input'])}</tr>",
        f"<tr><th>narrations in shards</th>{_count_cell('narrations/in_shards', n['in_shards'])}</tr>",
        f"<tr><th>narrations dropped</th>{_count_cell('narrations/dropped', n['dropped'])}</tr>",
        f"<tr><th>narrations unaccounted</th>{_count_cell('narrations/unaccounted', n['unaccounted'])}</tr>",
        f"<tr><th>alpha (EgoClip rule)</th><td class=\"count\">{stats.get('alpha', 0):.4f}</td></tr>",
        "</tbody></table>",
        "<h2>Splits</h2><table><thead><tr><th>split</th>"
        + "".join(f'<th class="count">{k}</th>' for k in ("takes", "narrations", "samples", "shards", "bytes"))
        + "</tr></thead><tbody>",
    ]
    for split, d in stats["splits"].items():
        parts.append(f"<tr><th>{_e(split)}</th>" + "".join(
            _count_cell(f"splits/{split}/{k}", d[k]) for k in ("takes", "narrations", "samples", "shards", "bytes")
        ) + "</tr>")  # fmt: skip
    parts.append("</tbody></table>")

    shown = len(picks)
    parts += [
        "<h2>Contact sheet</h2>",
        f'<p class="muted">{shown} of {stats["samples"]} samples drawn at random (seed {seed}'
        + (f"; {n_requested} requested" if shown != n_requested else "")
        + "). Left: the ego frame, middle: the exo frame, both the clip frame nearest the narration time; "
        "right: the caption (the sample's <code>txt</code>).</p>",
        '<p><img src="contact_sheet.png" alt="contact sheet of random samples"></p>',
        f'<ol class="samples" data-count="{shown}">',
        *(sample_item(i, p) for i, p in enumerate(picks)),
        "</ol>",
    ]

    cl = stats["clip_length"]
    parts += [
        "<h2>Clip lengths</h2>",
        '<p><img src="clip_lengths.png" alt="histogram of clip lengths"></p>',
        "<table><thead><tr><th>window length (s)</th><th class=\"count\">narrations</th></tr></thead><tbody>",
        *(f"<tr><td>{_e(_bin_label(b))}</td>{_count_cell(f'clip_length/{_bin_label(b)}', b['count'])}</tr>"
          for b in cl["histogram_sec"]),  # fmt: skip
        "</tbody></table>",
        f'<p class="muted">{cl["count"]} narrations; mean {cl.get("mean_sec", 0):.3f} s, median '
        f'{cl.get("median_sec", 0):.3f} s, p90 {cl.get("p90_sec", 0):.3f} s, '
        f'{100 * cl.get("fraction_under_1s", 0):.1f}% under 1 s.</p>',
        "<h2>Samples by split and scenario</h2>",
        '<p><img src="counts.png" alt="samples by split and scenario"></p>',
        "<table><thead><tr><th>split</th><th>scenario</th><th class=\"count\">samples</th></tr></thead><tbody>",
    ]
    for split, scen in stats["samples_by_split_and_scenario"].items():
        for name, count in scen.items():
            parts.append(f"<tr><td>{_e(split)}</td><td>{_e(name)}</td>"
                         f"{_count_cell(f'samples_by_split_and_scenario/{split}/{name}', count)}</tr>")  # fmt: skip
    parts.append("</tbody></table>")

    examples: dict[str, list[dict]] = defaultdict(list)
    for rec in errors:
        label = f"{rec.get('scope', '?')}: {rec.get('reason', '?')}"
        if len(examples[label]) < 2:
            examples[label].append(rec)
    counted = Counter(f"{r.get('scope', '?')}: {r.get('reason', '?')}" for r in errors)
    failures = stats["failures_by_scope_and_reason"]
    parts += [
        "<h2>Failures</h2>",
        f'<p class="muted">{sum(failures.values())} records in errors.jsonl, by scope and reason. '
        "Every input narration is either in a shard or recorded here.</p>",
        '<p><img src="failures.png" alt="failures by scope and reason"></p>',
        "<table><thead><tr><th>scope: reason</th><th class=\"count\">count</th><th>examples (take, camera, "
        "narration, file, detail)</th></tr></thead><tbody>",
    ]
    for label, count in sorted(failures.items(), key=lambda kv: (-kv[1], kv[0])):
        ex = "<br>".join(_e(_shorten(" · ".join(str(r.get(k)) for k in ("take_name", "cam_id", "narration", "file",
                                                                       "detail") if r.get(k))))
                         for r in examples.get(label, []))  # fmt: skip
        parts.append(f'<tr><td class="reason">{_e(label)}</td>{_count_cell(f"failures/{label}", count)}<td>{ex}</td></tr>')
    parts.append("</tbody></table>")
    if counted != Counter(failures):
        parts.append('<p class="problem">errors.jsonl and stats.json disagree on the failure counts.</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------------------- main


def make_report(out: str | Path, n_samples: int = 12, seed: int = 0) -> Path:
    """Write OUT/report/ and return the path of its index.html."""
    out = Path(out)
    stats, rows, errors = load_build(out)
    kind = stats.get("options", {}).get("kind", "mp4")
    picks = [Pick(r) for r in draw_samples(rows, n_samples, seed)]
    read_members(out, picks)
    for p in picks:
        fill_frames(p, kind)
    rep = out / REPORT_DIR
    rep.mkdir(parents=True, exist_ok=True)
    opts = stats.get("options", {})
    fmt = f"{opts.get('layout', '?')}, {kind}"
    save_png(contact_sheet(
        picks,
        f"Ego-ExoClip: {len(picks)} random samples of {stats['samples']}",
        f"{out.name} ({fmt}) · seed {seed} · ego | exo frame nearest the narration time | caption",
    ), rep / "contact_sheet.png")  # fmt: skip

    cl = stats["clip_length"]
    save_png(histogram(
        "Clip lengths (window per narration)",
        f"{cl['count']} narrations · mean {cl.get('mean_sec', 0):.2f} s · median {cl.get('median_sec', 0):.2f} s · "
        f"p90 {cl.get('p90_sec', 0):.2f} s · {100 * cl.get('fraction_under_1s', 0):.0f}% under 1 s",
        cl["histogram_sec"],
    ), rep / "clip_lengths.png")  # fmt: skip

    by = stats["samples_by_split_and_scenario"]
    splits = list(by)
    split_col = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(splits)}
    labels, values, colors = [], [], []
    for split in splits:
        for name, count in by[split].items():
            labels.append(f"{split} · {name}")
            values.append(count)
            colors.append(split_col[split])
    totals = " · ".join(f"{s} {sum(by[s].values())}" for s in splits)
    save_png(hbar_chart(
        "Samples by split and scenario", f"{stats['samples']} samples ({totals})", labels, values, colors,
        legend=[(s, split_col[s]) for s in splits],
    ), rep / "counts.png")  # fmt: skip

    fail = sorted(stats["failures_by_scope_and_reason"].items(), key=lambda kv: (-kv[1], kv[0]))
    scopes = sorted({k.split(":", 1)[0] for k, _ in fail})
    scope_col = {s: PALETTE[(i + 3) % len(PALETTE)] for i, s in enumerate(scopes)}
    n = stats["narrations"]
    save_png(hbar_chart(
        "Failures by scope and reason",
        f"{sum(v for _, v in fail)} records in errors.jsonl · narrations: {n['input']} in, {n['in_shards']} in "
        f"shards, {n['dropped']} dropped, {n['unaccounted']} unaccounted",
        [k for k, _ in fail], [v for _, v in fail], [scope_col[k.split(':', 1)[0]] for k, _ in fail],
        legend=[(s, scope_col[s]) for s in scopes], empty="no failures",
    ), rep / "failures.png")  # fmt: skip

    index = rep / "index.html"
    index.write_text(render_html(out, stats, picks, errors, seed, n_samples), encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="a finished Ego-ExoClip build (local directory)")
    ap.add_argument("--samples", type=int, default=12, help="samples on the contact sheet (default 12)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample draw (default 0)")
    args = ap.parse_args(argv)
    if args.samples < 1:
        ap.error("--samples must be >= 1")
    try:
        index = make_report(args.out, args.samples, args.seed)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report written: {index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
