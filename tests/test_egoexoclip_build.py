"""End to end: the bundled sample release built by the Beam pipeline (DirectRunner), checked from the pixels up."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections import Counter
from pathlib import Path

import decord
import pyarrow.parquet as pq
import pytest

from pipeline.core.framecode import camera_code, decode_frame
from pipeline.core.shards import read_tar_samples
from pipeline.egoexoclip.windows import dataset_alpha, take_beta
from tests.conftest import build
from tools.samples.egoexoclip import SAMPLE_TAKES

TAKES = {t.name: t for t in SAMPLE_TAKES}


def _errors(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]


def _manifest(out: Path) -> list[dict]:
    return pq.read_table(out / "manifest.parquet").to_pylist()


def _hashes(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir()) if p.is_file()}


def _decode(data: bytes) -> list[tuple[int, int]]:
    reader = decord.VideoReader(io.BytesIO(data))
    frames = reader.get_batch(list(range(len(reader)))).asnumpy()
    return [decode_frame(f) for f in frames]


def test_every_frame_of_every_clip_is_the_window_in_every_view(bundled_build):
    """Pixels carry (camera, take instant): each view shows exactly the window's instants (offsets applied)."""
    out, _ = bundled_build
    decoded: dict[str, list] = {}  # the ego clip of a narration repeats in each of its pairs: decode it once
    n_checked = 0
    for tar in sorted(out.glob("*.tar")):
        for sample in read_tar_samples(tar):
            meta = json.loads(sample["json"])
            first = round(meta["window_start"] * meta["fps"])
            last = round(meta["window_end"] * meta["fps"])
            expected = list(range(first, last))
            ego_key = hashlib.sha256(sample["ego.mp4"]).hexdigest()
            ego = decoded.setdefault(ego_key, _decode(sample["ego.mp4"]))
            exo = _decode(sample["exo.mp4"])
            assert [i for _, i in ego] == expected, sample["__key__"]
            assert [i for _, i in exo] == expected, sample["__key__"]  # the same instants as the ego clip
            assert {c for c, _ in ego} == {camera_code(meta["ego_cam"])}
            assert {c for c, _ in exo} == {camera_code(meta["exo_cam"])}
            assert meta["ego_end_frame"] - meta["ego_start_frame"] == len(expected)
            assert meta["exo_end_frame"] - meta["exo_start_frame"] == len(expected)
            n_checked += 1
    assert n_checked == len(_manifest(out)) > 100


def test_misaligned_take_is_corrected_by_the_offset_table(bundled_build):
    out, _ = bundled_build
    rows = [r for r in _manifest(out) if r["take_name"] == "indiana_bike_01_2"]
    assert rows
    for r in rows:  # file frame = canonical frame + 5 for the ego view only
        assert r["ego_start_frame"] - r["exo_start_frame"] == 5


def test_every_input_narration_is_in_a_shard_or_in_the_errors(bundled_build, sample_root):
    out, stats = bundled_build
    root = Path(sample_root)
    n_input = 0
    for split in ("train", "val"):
        doc = json.loads((root / f"annotations/atomic_descriptions_{split}.json").read_text())
        n_input += sum(len(p["descriptions"]) for passes in doc["annotations"].values() for p in passes)
    lost = [e for e in _errors(out) if e["scope"] == "narration"]
    kept = {(r["take_uid"], r["narration_index"]) for r in _manifest(out)}
    assert stats["narrations"] == {
        "input": n_input,
        "in_shards": len(kept),
        "dropped": len(lost),
        "unaccounted": 0,
    }
    assert len(kept) + len(lost) == n_input


def test_alpha_is_the_dataset_mean_of_take_betas(bundled_build, sample_root):
    """alpha recomputed by hand from the raw annotation files, over the takes that were built, from the
    narrations that pass the checks only: the description past the end of cmu_bike01_2 takes no part."""
    out, stats = bundled_build
    root = Path(sample_root)
    built = {r["take_uid"]: r["take_name"] for r in _manifest(out)}
    betas = []
    for split in ("train", "val"):
        doc = json.loads((root / f"annotations/atomic_descriptions_{split}.json").read_text())
        for uid, passes in doc["annotations"].items():
            if uid not in built:
                continue
            ego = TAKES[built[uid]].views[0]  # the Aria; the offset table shifts it by its offset_frames
            end = (ego.n_frames - ego.offset_frames + 0.5) / 30
            times = [
                d["timestamp"]
                for p in passes
                if not p["rejected"]
                for d in p["descriptions"]
                if isinstance(d.get("timestamp"), float | int) and d["text"].strip() and d["timestamp"] <= end
            ]
            betas.append(take_beta(times))
    assert stats["alpha"] == pytest.approx(dataset_alpha(betas))
    single = [r for r in _manifest(out) if r["take_name"] == "uniandes_cooking_01_1"]
    assert len({r["narration_index"] for r in single}) == 1
    assert single[0]["ego_end_frame"] - single[0]["ego_start_frame"] == 30  # beta = alpha: 1 s


def _reasons(out, **where) -> Counter:
    return Counter(e["reason"] for e in _errors(out) if all(e[k] == v for k, v in where.items()))


def test_quirks_of_the_release(bundled_build):
    out, _ = bundled_build
    rows = _manifest(out)
    by_take: dict[str, list] = {}
    for r in rows:
        by_take.setdefault(r["take_name"], []).append(r)
    # several annotators, rejected pass skipped
    assert len({r["annotator_id"] for r in by_take["cmu_bike01_2"]}) >= 2
    assert _reasons(out, take_name="", scope="narration")  # narrations of absent takes have no name
    assert _reasons(out, scope="narration")["rejected annotation pass"] > 0
    # narration_subject key and "1"/"0" strings read
    geo = by_take["georgiatech_cooking_03_1"]
    assert all(r["subject"] in ("C", "O") for r in geo)
    assert any(r["unsure"] for r in geo) and any(not r["ego_visible"] for r in geo)
    # egocentric GoPro is not an exo view
    assert "cam04" not in {r["exo_cam"] for r in geo}
    # gp/aria02 names
    dance = by_take["upenn_dance_02_4"]
    assert {r["ego_cam"] for r in dance} == {"aria02"} and {r["exo_cam"] for r in dance} <= {
        "gp01",
        "gp02",
        "gp03",
        "gp04",
    }
    # exo shorter than ego: late windows lose that view only
    assert _reasons(out, take_name="upenn_dance_02_4", cam_id="gp03")["view does not cover window"] > 0
    late = max(dance, key=lambda r: r["timestamp"])
    assert "gp03" not in late["exo_cams"] and len(late["exo_cams"]) == 3
    # missing and corrupt exo files: view failures, the other views still make pairs
    assert _reasons(out, take_name="sfu_basketball_05_3", cam_id="cam02", scope="view")["missing file"] == 1
    assert "cam02" not in {r["exo_cam"] for r in by_take["sfu_basketball_05_3"]}
    assert _reasons(out, take_name="iiith_soccer_01_7", cam_id="cam03", scope="view")
    assert by_take["iiith_soccer_01_7"] and "cam03" not in {
        r["exo_cam"] for r in by_take["iiith_soccer_01_7"]
    }
    # corrupt ego: the take's narrations fail with the reason
    assert "sfu_cooking_07_2" not in by_take
    assert _reasons(out, take_name="sfu_cooking_07_2", scope="take")["no usable ego video"] == 1
    # vertical GoPro pairs exist
    assert "cam01" in {r["exo_cam"] for r in by_take["minnesota_rockclimbing_01_2"]}
    # narrations at t=0 and at the very end are clamped to the video
    bike = by_take["cmu_bike01_2"]
    assert min(r["window_start"] for r in bike) == 0.0
    assert max(r["window_end"] for r in bike) == pytest.approx(TAKES["cmu_bike01_2"].views[0].n_frames / 30)
    # dropped, not in takes.json, test split
    assert "utokyo_health_03_1" not in by_take and "nus_music_02_1" not in by_take
    lost = Counter(e["reason"] for e in _errors(out) if e["scope"] == "narration")
    assert lost["take dropped"] > 0 and lost["take not in takes.json"] > 0
    assert _reasons(out, take_name="cmu_bike02_1", scope="take") == Counter({"split test not selected": 1})


def test_bad_records_are_reported_and_the_rest_completes(bundled_build):
    out, stats = bundled_build
    errors = _errors(out)
    bike = Counter(
        e["reason"] for e in errors if e["take_name"] == "cmu_bike01_2" and e["scope"] == "narration"
    )
    assert bike["schema violation"] >= 1  # timestamp missing
    assert bike["bad timestamp"] >= 1  # "abc"
    assert bike["empty text"] >= 1
    assert bike["timestamp outside the video"] >= 1
    record = [e for e in errors if e["scope"] == "record"]
    assert {e["reason"] for e in record} == {"schema violation"}
    assert all("takes.json[" in e["detail"] for e in record)
    # the path escaping the root costs that view (the ego here, so the take), reported with its cam_id
    (view,) = [e for e in errors if e["reason"] == "path escapes root"]
    assert (view["scope"], view["take_name"], view["cam_id"]) == ("view", "escape_take_01", "aria01")
    escape = _reasons(out, take_name="escape_take_01", scope="narration")
    assert escape and set(escape) == {"no usable ego video"}  # its narrations are accounted for
    assert stats["splits"]["train"]["samples"] > 0 and stats["splits"]["val"]["samples"] > 0


def test_stats_manifest_and_wids_index_agree_with_the_shards(bundled_build):
    out, stats = bundled_build
    tars = sorted(out.glob("*.tar"))
    n_samples = sum(len(read_tar_samples(t)) for t in tars)
    assert n_samples == stats["samples"] == stats["pairs"] == len(_manifest(out))
    assert stats["splits"]["train"]["shards"] >= 2
    for split in ("train", "val"):
        index = json.loads((out / f"egoexoclip-{split}.wids.json").read_text())
        assert index["__kind__"] == "wids-shard-index-v1"
        assert sum(s["nsamples"] for s in index["shardlist"]) == stats["splits"][split]["samples"]
    assert (
        0 < stats["clip_length"]["mean_sec"] < 3
        and stats["clip_length"]["count"] == stats["narrations"]["in_shards"]
    )
    assert set(stats["samples_by_split_and_scenario"]["val"]) == {"Dance", "Rock Climbing"}


def test_determinism_and_resume(bundled_build, sample_root, tmp_path):
    out, _ = bundled_build
    reference = _hashes(out)
    again = tmp_path / "again"
    build(sample_root, again)
    assert _hashes(again) == reference  # byte-identical shards, manifests, stats and errors

    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    tars = sorted(resumed.glob("*.tar"))
    deleted, truncated, kept = tars[0], tars[1], tars[2:]
    deleted.unlink()
    truncated.write_bytes(truncated.read_bytes()[:1000])
    mtimes = {p: p.stat().st_mtime_ns for p in kept}
    build(sample_root, resumed)
    assert _hashes(resumed) == reference
    assert {p: p.stat().st_mtime_ns for p in kept} == mtimes  # complete shards were not rewritten
    assert deleted.exists() and truncated.stat().st_mtime_ns > max(mtimes.values())

    build(sample_root, resumed, overwrite=True)
    assert _hashes(resumed) == reference
    assert all(p.stat().st_mtime_ns > mtimes[p] for p in kept)  # --overwrite rebuilt every shard
