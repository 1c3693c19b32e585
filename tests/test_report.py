"""`make report`: the HTML audit page of a build and its PNG figures (tools/report.py)."""

from __future__ import annotations

import html
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.core.clips import ClipFormat
from pipeline.egoexoclip.writer import OutputFormat
from tests.conftest import build
from tools import report as R


class Page(HTMLParser):
    """What a check needs from index.html: linked images, count cells, contact-sheet items and their captions."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.images: list[str] = []
        self.links: list[str] = []
        self.cells: dict[str, str] = {}
        self.samples: list[dict] = []
        self.sheet_count: int | None = None
        self._cell: str | None = None
        self._caption = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag == "td" and "data-stat" in a:
            self._cell = a["data-stat"]
            self.cells[self._cell] = ""
        if tag == "ol" and a.get("class") == "samples":
            self.sheet_count = int(a["data-count"])
        if tag == "li" and a.get("class") == "sample":
            self.samples.append({"key": a["data-key"], "caption": ""})
        if tag == "span" and a.get("class") == "caption":
            self._caption = True

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        if tag == "span":
            self._caption = False

    def handle_data(self, data):
        if self._cell is not None:
            self.cells[self._cell] += data
        if self._caption:
            self.samples[-1]["caption"] += data


def stat_value(stats: dict, name: str):
    """The stats.json value a `data-stat` cell of the page stands for."""
    head, _, rest = name.partition("/")
    if head == "clip_length":
        return next(b["count"] for b in stats["clip_length"]["histogram_sec"] if R._bin_label(b) == rest)
    if head == "failures":
        return stats["failures_by_scope_and_reason"][rest]
    if head == "samples_by_split_and_scenario":
        split, _, scenario = rest.partition("/")
        return stats[head][split][scenario]
    value = stats
    for part in name.split("/"):
        value = value[part]
    return value


def check_report(out: Path, n_samples: int, seed: int = 0) -> tuple[Page, dict]:
    index = R.make_report(out, n_samples, seed)
    assert index == out / "report" / "index.html"
    text = index.read_text(encoding="utf-8")
    page = Page(text)
    stats = json.loads((out / "stats.json").read_text())

    # every image the page links exists next to it and decodes
    assert sorted(page.images) == sorted(R.FIGURES)
    for src in page.images + page.links:
        assert not src.startswith(("/", "http:", "https:", "file:")), src  # relative links only
        path = index.parent / src
        assert path.is_file(), src
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
            assert im.format == "PNG" and im.width > 100 and im.height > 100

    # the contact sheet holds the requested number of samples: one row each, listed on the page
    assert page.sheet_count == n_samples == len(page.samples)
    assert len({s["key"] for s in page.samples}) == n_samples
    with Image.open(index.parent / "contact_sheet.png") as im:
        assert im.size == R.sheet_size(n_samples)[:2]

    # captions: the samples' own `txt` (= the manifest text), escaped in the HTML source
    texts = {r["key"]: r["text"] for r in pq.read_table(out / "manifest.parquet").to_pylist()}
    for s in page.samples:
        assert s["caption"] == texts[s["key"]]
        assert f'<span class="caption">{html.escape(texts[s["key"]], quote=True)}</span>' in text

    # every count on the page is the one in stats.json, and every count of stats.json is on the page
    assert page.cells
    for name, shown in page.cells.items():
        assert int(shown) == stat_value(stats, name), name
    expected = {"samples", "pairs", "narrations/input", "narrations/in_shards", "narrations/dropped",
                "narrations/unaccounted"}  # fmt: skip
    expected |= {f"splits/{s}/{k}" for s in stats["splits"] for k in ("takes", "narrations", "samples", "shards", "bytes")}
    expected |= {f"samples_by_split_and_scenario/{s}/{c}" for s, d in stats["samples_by_split_and_scenario"].items() for c in d}
    expected |= {f"failures/{k}" for k in stats["failures_by_scope_and_reason"]}
    expected |= {f"clip_length/{R._bin_label(b)}" for b in stats["clip_length"]["histogram_sec"]}
    assert set(page.cells) == expected

    # the bundled sample's frames carry their camera and instant: the frames shown are the narration's, in sync
    assert "MISMATCH" not in text and "not decoded" not in text and 'class="problem"' not in text
    assert text.count("[stamp ok: ") == 2 * n_samples
    return page, stats


@pytest.fixture()
def mp4_out(bundled_build, tmp_path) -> Path:
    out = tmp_path / "build"
    shutil.copytree(bundled_build[0], out)  # the session build stays untouched
    return out


def test_report_of_the_bundled_build(mp4_out):
    page, stats = check_report(mp4_out, 12, seed=0)
    assert stats["options"]["kind"] == "mp4" and stats["options"]["layout"] == "pairs"
    first = {p.name: p.read_bytes() for p in (mp4_out / "report").iterdir()}
    # same seed: the same files, byte for byte; another seed: other samples
    R.make_report(mp4_out, 12, seed=0)
    assert {p.name: p.read_bytes() for p in (mp4_out / "report").iterdir()} == first
    other, _ = check_report(mp4_out, 5, seed=1)
    assert [s["key"] for s in other.samples] != [s["key"] for s in page.samples][:5]


def test_report_of_a_frames_build(sample_root, tmp_path):
    out = tmp_path / "frames"
    fmt = OutputFormat("moments", ClipFormat(kind="frames", n_frames=4, size=112))
    build(sample_root, out, output=fmt, splits=("train",))
    page, stats = check_report(out, 6, seed=3)
    assert stats["options"]["kind"] == "frames" and stats["options"]["layout"] == "moments"
    body = (out / "report" / "index.html").read_text()
    assert ".jpg)" in body  # the JPEG member each shown frame came from
    # more samples asked for than the build has: every sample once (a frames build: JPEGs decode fast)
    R.make_report(out, stats["samples"] + 50, seed=0)
    page = Page((out / "report" / "index.html").read_text())
    assert page.sheet_count == len(page.samples) == stats["samples"]


def test_captions_and_keys_are_escaped():
    row = {"key": 'k"<x>', "split": "train", "scenario": "A & B", "timestamp": 1.0, "raw_text": "C <raw> & 'q'"}
    pick = R.Pick(row, caption='<script>alert("x")</script> & the "knife"', ego_label="ego <a>", exo_label="exo")
    item = R.sample_item(0, pick)
    assert "<script>" not in item and "<a>" not in item and "<raw>" not in item
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; the &quot;knife&quot;" in item
    assert 'data-key="k&quot;&lt;x&gt;"' in item and "A &amp; B" in item
    parsed = Page(f'<ol class="samples" data-count="1">{item}</ol>')
    assert parsed.samples == [{"key": 'k"<x>', "caption": '<script>alert("x")</script> & the "knife"'}]


def test_charts_draw_what_they_are_given():
    im = R.hbar_chart("t", "s", ["a", "b"], [3, 120], [(0, 0, 255), (255, 0, 0)])
    empty = R.hbar_chart("t", "s", [], [], [], empty="no failures")
    hist = R.histogram("t", "s", [{"from": 0.0, "to": 0.5, "count": 0}, {"from": 0.5, "to": None, "count": 7}])
    for fig in (im, empty, hist):
        buf = io.BytesIO()
        fig.save(buf, format="PNG")
        assert Image.open(io.BytesIO(buf.getvalue())).size == fig.size
    # the longer bar is longer: count blue vs red pixels
    px = np.asarray(im)
    red, blue = (px == (255, 0, 0)).all(-1).sum(), (px == (0, 0, 255)).all(-1).sum()
    assert red > 10 * blue > 0
    assert R._nice_max(120) == (150.0, 50.0) and R._nice_max(0) == (1.0, 1.0) and R._nice_max(3) == (3.0, 1.0)


def test_cli_on_a_missing_build(tmp_path, capsys):
    assert R.main(["--out", str(tmp_path / "nothing")]) == 2
    assert "finished Ego-ExoClip build" in capsys.readouterr().err


def test_frame_stamps_are_checked_where_frames_carry_one():
    from pipeline.core.framecode import camera_code, encode_frame

    stamped = encode_frame(camera_code("cam01"), 5, 96, 60)
    assert R.stamp_note(stamped, "cam01", 5) == "stamp ok: cam01, instant 5"
    assert R.stamp_note(stamped, "cam01", 6).startswith("stamp MISMATCH: cam01, instant 5")
    assert R.stamp_note(stamped, "cam02", 5).startswith("stamp MISMATCH")
    noise = np.random.default_rng(0).integers(0, 256, (60, 96, 3), dtype=np.uint8)
    assert R.stamp_note(noise, "cam01", 5) == ""  # real footage: nothing said
