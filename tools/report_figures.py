"""The figures of `make report` (tools/report.py), drawn with Pillow alone (its bundled font): the contact sheet of
drawn samples, horizontal bar charts and the clip-length histogram; PNGs written without text chunks or dates, so
the same input gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BG = (255, 255, 255)
INK = (33, 37, 41)
MUTED = (108, 117, 125)
GRID = (222, 226, 230)
CELL_BG = (52, 58, 64)
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # fmt: skip



def font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font (no system fonts needed); the fixed bitmap font where FreeType is absent."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def wrap(draw: ImageDraw.ImageDraw, text: str, fnt, width: int, max_lines: int = 6) -> list[str]:
    lines: list[str] = []
    for para in text.splitlines() or [""]:
        line = ""
        for word in para.split():
            trial = f"{line} {word}".strip()
            if draw.textlength(trial, font=fnt) <= width or not line:
                line = trial
            else:
                lines.append(line)
                line = word
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip() + " …"
    # a single word wider than the column: cut it
    return [_fit(draw, s, fnt, width) for s in lines]


def _fit(draw, text: str, fnt, width: int) -> str:
    if draw.textlength(text, font=fnt) <= width:
        return text
    while text and draw.textlength(text + "…", font=fnt) > width:
        text = text[:-1]
    return text + "…"


def _paste_fit(canvas: Image.Image, arr: np.ndarray | None, box: tuple[int, int, int, int], note: str) -> None:
    x, y, w, h = box
    ImageDraw.Draw(canvas).rectangle((x, y, x + w - 1, y + h - 1), fill=CELL_BG)
    if arr is None:
        d = ImageDraw.Draw(canvas)
        d.text((x + w // 2, y + h // 2), note, fill=(255, 255, 255), font=font(14), anchor="mm")
        return
    im = Image.fromarray(arr)
    scale = min(w / im.width, h / im.height)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    im = im.resize(size, Image.Resampling.BICUBIC)
    canvas.paste(im, (x + (w - size[0]) // 2, y + (h - size[1]) // 2))


SHEET = dict(pad=14, ego_w=220, exo_w=392, img_h=220, label_h=38, text_w=470, head_h=64)


def sheet_size(n: int) -> tuple[int, int, int]:
    """(width, height, row height) of the contact sheet of n samples: one row per sample."""
    s = SHEET
    row_h = s["img_h"] + s["label_h"] + 2 * s["pad"]
    width = s["pad"] * 5 + s["ego_w"] + s["exo_w"] + s["text_w"]
    return width, s["head_h"] + row_h * max(1, n) + s["pad"], row_h


def contact_sheet(picks: list, title: str, subtitle: str) -> Image.Image:
    """One row per drawn sample (tools.report.Pick): ego frame, exo frame, key, metadata and caption."""
    s = SHEET
    width, height, row_h = sheet_size(len(picks))
    canvas = Image.new("RGB", (width, height), BG)
    d = ImageDraw.Draw(canvas)
    f_title, f_sub, f_small, f_cap, f_key = font(22), font(14), font(13), font(17), font(14)
    d.text((s["pad"], 10), title, fill=INK, font=f_title)
    d.text((s["pad"], 40), _fit(d, subtitle, f_sub, width - 2 * s["pad"]), fill=MUTED, font=f_sub)
    if not picks:
        d.text((s["pad"], s["head_h"] + 20), "no samples in this build", fill=INK, font=f_cap)
    for i, p in enumerate(picks):
        y0 = s["head_h"] + i * row_h
        if i % 2:
            d.rectangle((0, y0, width, y0 + row_h - 1), fill=(246, 247, 249))
        d.line((0, y0, width, y0), fill=GRID)
        y = y0 + s["pad"]
        x_ego = s["pad"]
        x_exo = x_ego + s["ego_w"] + s["pad"]
        x_txt = x_exo + s["exo_w"] + 2 * s["pad"]
        _paste_fit(canvas, p.ego, (x_ego, y, s["ego_w"], s["img_h"]), "ego: not decoded")
        _paste_fit(canvas, p.exo, (x_exo, y, s["exo_w"], s["img_h"]), "exo: not decoded")
        ly = y + s["img_h"] + 4
        d.text((x_ego, ly), _fit(d, p.ego_label or "ego", f_small, s["ego_w"]), fill=MUTED, font=f_small)
        d.text((x_exo, ly), _fit(d, p.exo_label or "exo", f_small, s["exo_w"]), fill=MUTED, font=f_small)
        for x, w, note in ((x_ego, s["ego_w"], p.ego_stamp), (x_exo, s["exo_w"], p.exo_stamp)):
            if note:
                col = (25, 135, 84) if note.startswith("stamp ok") else (200, 30, 30)
                d.text((x, ly + 17), _fit(d, note, f_small, w), fill=col, font=f_small)
        r = p.row
        d.text((x_txt, y), f"{i + 1}. {_fit(d, r['key'], f_key, s['text_w'] - 30)}", fill=INK, font=f_key)
        meta = (f"{r['split']} · {r['scenario']} · t = {r['timestamp']:.2f} s · "
                f"window {r['window_start']:.2f}-{r['window_end']:.2f} s")  # fmt: skip
        d.text((x_txt, y + 22), _fit(d, meta, f_small, s["text_w"]), fill=MUTED, font=f_small)
        cy = y + 50
        for line in wrap(d, p.caption, f_cap, s["text_w"], max_lines=7):
            d.text((x_txt, cy), line, fill=INK, font=f_cap)
            cy += 23
        if p.problems:
            note = "problem: " + "; ".join(p.problems)
            d.text((x_txt, y + s["img_h"] + 4), _fit(d, note, f_small, s["text_w"]), fill=(200, 30, 30),
                   font=f_small)  # fmt: skip
    return canvas


def _nice_max(v: float) -> tuple[float, float]:
    """(axis max, tick step) for counts: a round integer step giving at most 5-6 ticks."""
    if v <= 0:
        return 1.0, 1.0
    raw = v / 5
    mag = 10 ** np.floor(np.log10(raw))
    step = 10 * mag
    for m in (1, 2, 5, 10):
        if m * mag >= raw:
            step = m * mag
            break
    step = max(1.0, float(step))
    return float(step * np.ceil(v / step)), step


def _fmt(v: float) -> str:
    return f"{int(v)}" if float(v).is_integer() else f"{v:g}"


def hbar_chart(title: str, subtitle: str, labels: list[str], values: list[int],
               colors: list[tuple[int, int, int]], legend: list[tuple[str, tuple]] | None = None,
               empty: str = "nothing to show") -> Image.Image:  # fmt: skip
    """Horizontal bars, one per label, value written at the bar's end."""
    f_title, f_sub, f_lab, f_val = font(20), font(13), font(14), font(13)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = int(min(420, max([probe.textlength(s, font=f_lab) for s in labels] + [80]))) + 16
    bar_h, gap, left, top, plot_w = 22, 8, 16, 74 if legend else 56, 560
    n = max(1, len(labels))
    width = left + label_w + plot_w + 70
    height = top + n * (bar_h + gap) + 40
    im = Image.new("RGB", (width, height), BG)
    d = ImageDraw.Draw(im)
    d.text((left, 10), title, fill=INK, font=f_title)
    d.text((left, 36), _fit(d, subtitle, f_sub, width - 2 * left), fill=MUTED, font=f_sub)
    if legend:
        lx = left
        for name, col in legend:
            d.rectangle((lx, 56, lx + 12, 68), fill=col)
            d.text((lx + 18, 55), name, fill=INK, font=f_sub)
            lx += 30 + int(d.textlength(name, font=f_sub))
    x0 = left + label_w
    if not labels:
        d.text((x0, top + 4), empty, fill=MUTED, font=f_lab)
        return im
    vmax, step = _nice_max(max(values))
    y_end = top + n * (bar_h + gap)
    t = 0.0
    while t <= vmax + 1e-9:
        x = x0 + round(plot_w * t / vmax)
        d.line((x, top - 4, x, y_end), fill=GRID)
        d.text((x, y_end + 4), _fmt(t), fill=MUTED, font=f_val, anchor="ma")
        t += step
    for i, (lab, v, col) in enumerate(zip(labels, values, colors, strict=True)):
        y = top + i * (bar_h + gap)
        d.text((x0 - 8, y + bar_h // 2), _fit(d, lab, f_lab, label_w - 12), fill=INK, font=f_lab, anchor="rm")
        w = round(plot_w * v / vmax)
        if w:
            d.rectangle((x0, y, x0 + w, y + bar_h), fill=col)
        d.text((x0 + w + 6, y + bar_h // 2), str(v), fill=INK, font=f_val, anchor="lm")
    d.line((x0, top - 4, x0, y_end), fill=INK)
    return im


def histogram(title: str, subtitle: str, bins: list[dict]) -> Image.Image:
    """Vertical bars over stats.json's clip-length bins (unequal widths: drawn as equal categories)."""
    f_title, f_sub, f_lab, f_val = font(20), font(13), font(13), font(13)
    left, top, plot_h, bar_w, gap = 70, 88, 300, 64, 14
    n = max(1, len(bins))
    width = left + n * (bar_w + gap) + 40
    width = max(width, 640)
    height = top + plot_h + 70
    im = Image.new("RGB", (width, height), BG)
    d = ImageDraw.Draw(im)
    d.text((16, 10), title, fill=INK, font=f_title)
    d.text((16, 36), _fit(d, subtitle, f_sub, width - 32), fill=MUTED, font=f_sub)
    counts = [b["count"] for b in bins]
    vmax, step = _nice_max(max(counts, default=0))
    y0 = top + plot_h
    t = 0.0
    while t <= vmax + 1e-9:
        y = y0 - round(plot_h * t / vmax)
        d.line((left, y, width - 20, y), fill=GRID)
        d.text((left - 8, y), _fmt(t), fill=MUTED, font=f_val, anchor="rm")
        t += step
    for i, b in enumerate(bins):
        x = left + gap + i * (bar_w + gap)
        h = round(plot_h * b["count"] / vmax)
        if h:
            d.rectangle((x, y0 - h, x + bar_w, y0), fill=PALETTE[0])
        d.text((x + bar_w // 2, y0 - h - 4), str(b["count"]), fill=INK, font=f_val, anchor="md")
        d.text((x + bar_w // 2, y0 + 8), _bin_label(b), fill=INK, font=f_lab, anchor="ma")
    d.line((left, y0, width - 20, y0), fill=INK)
    d.text((left + (width - left) // 2, y0 + 32), "window length (s), stats.json's bins (unequal widths)",
           fill=MUTED, font=f_sub, anchor="ma")  # fmt: skip
    d.text((16, top - 28), "narrations", fill=MUTED, font=f_sub)
    return im


def _bin_label(b: dict) -> str:
    return f"{_fmt(b['from'])}+" if b.get("to") is None else f"{_fmt(b['from'])}-{_fmt(b['to'])}"


def save_png(im: Image.Image, path: Path) -> None:
    im.save(path, format="PNG", optimize=False)  # no text chunks, no dates: same input, same bytes
