"""One shard written alone (no Beam): a view that breaks between probing and extraction costs only its pairs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipeline.core.clips import probe_video
from pipeline.core.shards import read_tar_samples
from pipeline.core.writer import shard_files, shard_is_complete
from pipeline.egoexoclip.plan import ShardPlan, VideoMeta, fingerprint, plan_take
from pipeline.egoexoclip.release import parse_take, parse_take_descriptions
from pipeline.egoexoclip.windows import FrameOffsets, WindowRule, take_beta
from pipeline.egoexoclip.writer import OutputFormat, build_shard

TAKE = "minnesota_rockclimbing_01_2"


def _plan(root: Path):
    takes = {t["take_name"]: t for t in json.loads((root / "takes.json").read_text()) if "take_uid" in t}
    record = takes[TAKE]
    splits = json.loads((root / "annotations/splits.json").read_text())["take_uid_to_split"]
    take = parse_take(record, str(root), splits)
    passes = json.loads((root / "annotations/atomic_descriptions_val.json").read_text())["annotations"][
        record["take_uid"]
    ]
    narrations = parse_take_descriptions(record["take_uid"], passes, "val").narrations
    videos = {
        v.cam_id: VideoMeta(
            **{k: getattr(probe_video(v.path), k) for k in ("n_frames", "fps", "width", "height")}
        )
        for v in take.views
    }
    beta = take_beta(n.timestamp for n in narrations)
    plan, failures = plan_take(take, videos, narrations, beta, beta, WindowRule(), FrameOffsets())
    assert not failures
    return take, plan


def test_view_broken_after_probing_loses_only_its_pairs(sample_root, tmp_path):
    root = tmp_path / "release"
    shutil.copytree(Path(sample_root) / "takes" / TAKE, root / "takes" / TAKE)
    for name in ("takes.json", "annotations"):
        src = Path(sample_root) / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    take, plan = _plan(root)
    broken = take.views[2]  # an exo view
    Path(broken.path).write_bytes(b"not a video any more")
    shard = ShardPlan("egoexoclip-val-000000", "val", 0, (plan,), fingerprint({}, [plan]))
    out = tmp_path / "out"
    out.mkdir()
    stats = build_shard(shard, str(out), OutputFormat())
    samples = read_tar_samples(out / "egoexoclip-val-000000.tar")
    cams = {json.loads(s["json"])["exo_cam"] for s in samples}
    assert broken.cam_id not in cams and len(cams) == len(take.views) - 2
    reasons = {(f["scope"], f["reason"]) for f in stats["failures"]}
    assert ("pair", "no exo clip") in reasons and any(scope == "view" for scope, _ in reasons)
    assert stats["n_narrations"] == len(plan.narrations)  # every narration still has its other pairs
    assert shard_is_complete(str(out), shard.name, shard.fingerprint)
    Path(shard_files(str(out), shard.name)["tar"]).write_bytes(b"truncated")
    assert not shard_is_complete(str(out), shard.name, shard.fingerprint)
