"""The EgoClip window rule, frame ranges and offsets, against hand-computed values."""

import pytest

from pipeline.egoexoclip.windows import (
    FrameOffsets,
    WindowError,
    WindowRule,
    dataset_alpha,
    frame_range,
    take_beta,
    view_range,
    window_seconds,
)


def test_beta_is_mean_gap_of_sorted_times():
    assert take_beta([4.0, 1.0, 2.0]) == pytest.approx(1.5)  # sorted 1,2,4: gaps 1 and 2
    assert take_beta([3.0]) is None
    assert take_beta([]) is None


def test_alpha_is_mean_of_betas_ignoring_single_narration_takes():
    assert dataset_alpha([1.5, None, 0.5]) == pytest.approx(1.0)
    assert dataset_alpha([None]) == 1.0


def test_egoclip_window_hand_computed():
    # beta 1.5, alpha 1.0: half width 0.75
    assert window_seconds(10.0, 1.5, 1.0, WindowRule()) == pytest.approx((9.25, 10.75))
    # beta 0.6, alpha 1.2: half = 0.6 / 2.4 = 0.25
    assert window_seconds(5.0, 0.6, 1.2, WindowRule()) == pytest.approx((4.75, 5.25))


def test_single_narration_take_gets_one_second():
    assert window_seconds(3.0, None, 1.7, WindowRule()) == pytest.approx((2.5, 3.5))


def test_fixed_rule_ignores_beta():
    assert window_seconds(3.0, 0.2, 1.0, WindowRule("fixed", 2.0)) == pytest.approx((2.0, 4.0))


def test_rule_config_errors_name_field():
    with pytest.raises(ValueError, match="kind"):
        WindowRule("egovlp")
    with pytest.raises(ValueError, match="fixed_length_sec"):
        WindowRule("fixed", 0)


def test_frame_range_rounds_and_clamps():
    assert frame_range(4.5, 5.5, 30.0, 360) == (135, 165)
    assert frame_range(-0.5, 0.5, 30.0, 360) == (0, 15)  # narration at t=0
    assert frame_range(11.5, 12.5, 30.0, 360) == (345, 360)  # narration at the very end
    assert frame_range(2.0, 2.001, 30.0, 360) == (60, 61)  # never empty


def test_frame_range_rejects_narration_outside_video():
    with pytest.raises(WindowError, match="window outside the video"):
        frame_range(41.5, 42.5, 30.0, 360)


def test_view_range_applies_offset_and_coverage():
    assert view_range((100, 130), 5, 400) == (105, 135)
    assert view_range((100, 130), 0, 120) is None  # exo shorter than the window's end
    assert view_range((0, 10), -3, 400) is None


def test_offsets_csv_parsing_and_errors():
    offsets = FrameOffsets.from_csv_text("take_name,cam_id,offset_frames\nindiana_bike_01_2,aria01,5\n")
    assert offsets.get("indiana_bike_01_2", "aria01") == 5
    assert offsets.get("indiana_bike_01_2", "cam01") == 0
    with pytest.raises(ValueError, match="offset_frames"):
        FrameOffsets.from_csv_text("take_name,cam_id,offset_frames\nx,aria01,five\n", "o.csv")
    with pytest.raises(ValueError, match="missing columns"):
        FrameOffsets.from_csv_text("take,cam\n")
