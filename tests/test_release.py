"""Reading the release: quirks of real files, text normalisation, path safety, every drop with a reason."""

import json
from dataclasses import astuple
from pathlib import Path

import pytest

from pipeline.core.ego4d import normalize_text
from pipeline.egoexoclip.release import (
    NarrationFilters,
    RecordError,
    join_under_root,
    parse_bool,
    parse_take,
    parse_take_descriptions,
    take_exclusion,
)

REAL = Path(__file__).resolve().parents[2] / "shared" / "real" / "ego_exo4d"


def _take(**over):
    record = {
        "take_uid": "u1",
        "take_name": "cmu_bike01_2",
        "root_dir": "takes/cmu_bike01_2",
        "duration_sec": 12.0,
        "parent_task_name": "Bike Repair",
        "best_exo": None,
        "is_dropped": False,
        "capture": {
            "cameras": [
                {"cam_id": "aria01", "is_ego": True, "device_type": "aria"},
                {"cam_id": "cam01", "is_ego": "false", "device_type": "hero10"},
                {"cam_id": "cam02", "is_ego": "true", "device_type": "hero10"},
                {"cam_id": "gp03", "is_ego": False, "device_type": "hero10"},
            ]
        },
        "frame_aligned_videos": {
            "aria01": {
                "rgb": {
                    "readable_stream_id": "rgb",
                    "relative_path": "frame_aligned_videos/aria01_214-1.mp4",
                },
                "slam-left": {
                    "readable_stream_id": "slam-left",
                    "relative_path": "frame_aligned_videos/aria01_1201-1.mp4",
                },
            },
            "cam01": {"0": {"relative_path": "frame_aligned_videos/cam01.mp4"}},
            "cam02": {"0": {"relative_path": "frame_aligned_videos/cam02.mp4"}},
            "gp03": {"0": {"relative_path": "frame_aligned_videos/gp03.mp4"}},
            "collage": {"0": {"relative_path": "ego_preview.mp4"}},
            "best_exo": {"0": {"clip_uid": None, "relative_path": None}},
        },
    }
    record.update(over)
    return record


def test_views_aria_rgb_ego_gopros_exo_pseudo_and_egocentric_gopro_skipped():
    take = parse_take(_take(), "/r", {"u1": "train"})
    assert [(v.cam_id, v.role) for v in take.views] == [("aria01", "ego"), ("cam01", "exo"), ("gp03", "exo")]
    assert take.ego.path == "/r/takes/cmu_bike01_2/frame_aligned_videos/downscaled/448/aria01_214-1.mp4"
    assert ("cam02", "egocentric GoPro") in take.skipped_cameras
    full = parse_take(_take(), "/r", {"u1": "train"}, resolution="full")
    assert full.ego.path == "/r/takes/cmu_bike01_2/frame_aligned_videos/aria01_214-1.mp4"
    assert take.split == "train" and take.best_exo == ""


def test_path_escaping_root_costs_only_that_view():
    bad = _take()
    bad["frame_aligned_videos"]["cam01"]["0"]["relative_path"] = "../../../../etc/passwd"
    take = parse_take(bad, "/r", {"u1": "train"})
    assert [v.cam_id for v in take.views] == ["aria01", "gp03"]
    ((cam_id, role, reason, _),) = [astuple(r) for r in take.rejected_views]
    assert (cam_id, role, reason) == ("cam01", "exo", "path escapes root")
    assert take_exclusion(bad, take, ("train",)) is None
    with pytest.raises(RecordError, match="path escapes root"):
        join_under_root("/r", "/etc/passwd")
    with pytest.raises(RecordError, match="path escapes root"):
        join_under_root("gs://bucket/r", "takes/../../x")
    assert join_under_root("gs://bucket/r", "takes/a/../b.mp4") == "gs://bucket/r/takes/b.mp4"


def test_missing_take_uid_is_schema_violation_naming_field():
    record = _take()
    del record["take_uid"]
    with pytest.raises(RecordError, match="take_uid") as err:
        parse_take(record, "/r", {})
    assert err.value.reason == "schema violation"


def test_exclusion_reasons():
    take = parse_take(_take(), "/r", {"u1": "test"})
    assert take_exclusion(_take(), take, ("train", "val")) == "split test not selected"
    take = parse_take(_take(is_dropped="1"), "/r", {"u1": "train"})
    assert take_exclusion(_take(is_dropped="1"), take, ("train",)) == "take dropped"


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), ("1", True), ("0", False), ("false", False), (None, False)]
)
def test_loose_booleans(value, expected):
    assert parse_bool(value, "x") is expected


def test_loose_boolean_rejects_garbage():
    with pytest.raises(RecordError, match="unsure"):
        parse_bool("maybe", "unsure")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "C picks up the wrench with his right hand.",
            "Camera-wearer picks up the wrench with his right hand.",
        ),
        ("  C   picks up the  knife .", "Camera-wearer picks up the knife."),
        ("O hands C the bowl.", "A person hands the camera-wearer the bowl."),
        ("#C C opens the door", "Camera-wearer C opens the door".replace(" C ", " the camera-wearer ")),
        ("Cuts the onion.", "Cuts the onion."),
        ("   ", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def _passes():
    return [
        {
            "annotation_uid": "a1",
            "annotator_id": "11",
            "rejected": False,
            "descriptions": [
                {
                    "text": "C cuts.",
                    "timestamp": 1.0,
                    "subject": "C",
                    "ego_visible": True,
                    "unsure": False,
                    "best_exo": {"cam_id": "cam02"},
                },
                {
                    "text": "O waves.",
                    "timestamp": 2.0,
                    "narration_subject": "O",
                    "ego_visible": "0",
                    "unsure": "1",
                    "best_exo": None,
                },
                {"text": "   ", "timestamp": 3.0},
                {"text": "C nods.", "timestamp": "abc"},
                {"text": "C nods."},
            ],
        },
        {
            "annotation_uid": "a2",
            "annotator_id": "12",
            "rejected": True,
            "reject_reason": "low quality",
            "descriptions": [{"text": "C x.", "timestamp": 1.5}],
        },
        {
            "annotation_uid": "a3",
            "annotator_id": "13",
            "rejected": "0",
            "descriptions": [{"text": "C y.", "timestamp": 1.2, "subject": "C"}],
        },
    ]


def test_descriptions_every_record_kept_or_dropped_with_reason():
    parsed = parse_take_descriptions("u1", _passes(), "train")
    kept = {(n.annotation_uid, n.desc_index) for n in parsed.narrations}
    assert kept == {("a1", 0), ("a1", 1), ("a3", 0)}  # several annotators
    reasons = {src: reason for _, src, reason, _ in parsed.dropped}
    assert reasons == {
        "a1:2": "empty text",
        "a1:3": "bad timestamp",
        "a1:4": "schema violation",
        "a2:0": "rejected annotation pass",
    }
    o = next(n for n in parsed.narrations if n.desc_index == 1)
    assert (o.subject, o.ego_visible, o.unsure, o.best_exo) == ("O", False, True, "")
    c = next(n for n in parsed.narrations if n.annotation_uid == "a1" and n.desc_index == 0)
    assert (c.subject, c.best_exo, c.text) == ("C", "cam02", "Camera-wearer cuts.")


def test_description_filters():
    parsed = parse_take_descriptions("u1", _passes(), "train", NarrationFilters(skip_unsure=True))
    assert ("u1", "a1:1", "filtered: unsure", "") in parsed.dropped
    parsed = parse_take_descriptions("u1", _passes(), "train", NarrationFilters(require_ego_visible=True))
    assert ("u1", "a1:1", "filtered: ego not visible", "") in parsed.dropped


@pytest.mark.skipif(not REAL.exists(), reason="shared/real not present")
def test_real_documentation_sample_parses():
    doc = json.loads((REAL / "atomic_descriptions.docs_sample.json").read_text())
    total = 0
    for uid, passes in doc["annotations"].items():
        parsed = parse_take_descriptions(uid, passes, "train")
        total += len(parsed.narrations)
        n_in = sum(len(p["descriptions"]) for p in passes)
        assert len(parsed.narrations) + len(parsed.dropped) == n_in
    assert total > 0
