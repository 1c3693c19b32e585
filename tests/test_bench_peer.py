"""The video2dataset side-by-side bench (tools/bench/peer.py): the clips it hands the peer are
exactly our build's (view, window) clips. The peer itself needs its own 5.9 GB venv and runs only in `make bench`;
these tests check the translation both ways on the bundled build."""

from __future__ import annotations

import os

from tools.bench import peer as bench_peer


def test_edge_seconds_round_trips_to_the_frame():
    # peer_clips maps the peer's clip spans back with ceil(s * fps): every frame must come back as itself.
    for fps in (30.0, 25.0, 29.97):
        for frame in range(0, 200_000, 7):
            assert bench_peer.math.ceil(bench_peer.edge_seconds(frame, fps) * fps) == frame


def test_peer_rows_cover_our_windows_without_overlap(bundled_build):
    out, _ = bundled_build
    windows = bench_peer.view_windows(out)
    assert windows and sum(map(len, windows.values())) > 100
    views = [{"take": take, "cam": cam, "path": f"/videos/{take}/{cam}.mp4"} for take, cam in windows]
    rows = bench_peer.url_rows(views, windows)
    by_url: dict[str, set] = {}
    for row in rows:
        spans = row["clips"]
        assert spans == sorted(spans), "video2dataset wants clips in order"
        assert all(a < b for a, b in spans)
        assert all(e1 <= s2 for (_, e1), (s2, _) in zip(spans[:-1], spans[1:], strict=True)), "clips of one row must not overlap"
        frames = {(bench_peer.math.ceil(s * 30), bench_peer.math.ceil(e * 30)) for s, e in spans}
        by_url.setdefault(row["url"], set()).update(frames)
    for (take, cam), spans in windows.items():
        assert by_url[os.path.abspath(f"/videos/{take}/{cam}.mp4")] == set(spans)


def test_our_clips_are_the_manifest_windows(bundled_build):
    out, _ = bundled_build
    ours = bench_peer.our_clips(out)
    windows = bench_peer.view_windows(out)
    assert set(ours) == {(take, cam, a, b) for (take, cam), spans in windows.items() for a, b in spans}
    assert all(data[4:8] == b"ftyp" for data in ours.values())


def test_peer_config_is_exact_clipping():
    cfg = bench_peer.peer_config(processes=2, per_shard=1)
    assert cfg["subsampling"]["ClippingSubsampler"]["args"]["precision"] == "exact"
    assert cfg["distribution"]["processes_count"] == 2
