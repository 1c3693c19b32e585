"""EgoIT building blocks without Beam: image-sequence and odd-size clips (real ffmpeg), near-duplicate removal
(the real all-MiniLM-L6-v2 weights), mixing, frame windows."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.core.clips import ClipFormat, ClipRequest, extract_clips, ffmpeg_exe, probe_video, read_frames
from pipeline.core.clips.images import extract_image_clip
from pipeline.core.framecode import decode_frame, encode_frame
from pipeline.egoit import dedup, mix
from pipeline.egoit.plan import frame_window

CODE = 77


def _stamped_pngs(folder: Path, n: int, w: int = 160, h: int = 120) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for j in range(n):
        p = folder / f"{j}-rgb.png"
        Image.fromarray(encode_frame(CODE, j, w, h)).save(p)
        paths.append(str(p))
    return paths


def _indices(frames_THWC: np.ndarray) -> list[int]:
    out = []
    for f in frames_THWC:
        code, index = decode_frame(f)
        assert code == CODE
        out.append(index)
    return out


def test_image_sequence_to_mp4_keeps_every_image_in_order(tmp_path):
    images = _stamped_pngs(tmp_path / "ep", 10)
    clip = extract_image_clip(images, ClipRequest("q", 2, 9), ClipFormat(), workdir=str(tmp_path),
                              keep_dir=str(tmp_path / "keep"), fps=2.0)  # fmt: skip
    assert clip.kind == "mp4" and clip.source_frames == tuple(range(2, 9))
    info = probe_video(clip.paths[0])
    assert (info.n_frames, info.fps, info.width, info.height) == (7, 2.0, 160, 120)
    assert _indices(read_frames(clip.paths[0])) == list(range(2, 9))


def test_image_sequence_to_frames_samples_uniformly_and_scales(tmp_path):
    images = _stamped_pngs(tmp_path / "ep", 10)
    fmt = ClipFormat(kind="frames", n_frames=4, size=64)
    clip = extract_image_clip(images, ClipRequest("q", 0, 10), fmt, workdir=str(tmp_path),
                              keep_dir=str(tmp_path / "keep"))  # fmt: skip
    assert clip.source_frames == (1, 3, 6, 8)  # centres of 4 bins over 10 images
    got = [_indices(read_frames(p)) for p in clip.paths]
    assert got == [[1], [3], [6], [8]]
    assert Image.open(clip.paths[0]).size == (86, 64)  # 160x120 -> short side 64: 85.3 -> nearest even


def test_image_sequence_failures_name_the_file(tmp_path):
    from pipeline.core.clips import ExtractionError

    images = _stamped_pngs(tmp_path / "ep", 3)
    missing = [*images, str(tmp_path / "ep" / "3-rgb.png")]
    with pytest.raises(ExtractionError) as err:
        extract_image_clip(missing, ClipRequest("q", 0, 4), ClipFormat(), workdir=str(tmp_path),
                           keep_dir=str(tmp_path / "k"))  # fmt: skip
    assert err.value.reason == "missing file" and err.value.path.endswith("3-rgb.png")
    Path(images[1]).write_bytes(b"not an image")
    with pytest.raises(ExtractionError) as err:
        extract_image_clip(images, ClipRequest("q", 0, 3), ClipFormat(), workdir=str(tmp_path),
                           keep_dir=str(tmp_path / "k2"))  # fmt: skip
    assert err.value.reason in ("corrupt video", "unreadable video", "ffmpeg failed")


def test_odd_sized_vp9_webm_is_cut_to_even_mp4(tmp_path):
    """SSv2 ships 427x240 VP9 WebM: x264 needs even sizes, so such a source is scaled to 426x240."""
    src = tmp_path / "74225.webm"
    w, h, n = 427, 240, 24
    cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", "12", "-i", "pipe:0", "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
           "-b:v", "0", "-crf", "30", str(src)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for j in range(n):
        proc.stdin.write(encode_frame(CODE, j, w, h).tobytes())
    proc.stdin.close()
    assert proc.wait() == 0
    info = probe_video(str(src))
    assert (info.codec, info.n_frames, info.width, info.fps) == ("vp9", n, 427, 12.0)
    (clip,) = list(extract_clips(str(src), [ClipRequest("c", 5, 17)], ClipFormat(), workdir=str(tmp_path), info=info))
    frames = read_frames(clip.data)
    assert frames.shape[1:3] == (240, 426)
    assert _indices(frames) == list(range(5, 17))


@pytest.mark.parametrize(
    ("window", "expected"),
    [((None, None), (0, 90)), ((1.0, 2.0), (30, 60)), ((2.9, None), (87, 90)), ((1.0, 1.01), (30, 31)),
     ((2.5, 9.0), (75, 90))],
)  # fmt: skip
def test_frame_window(window, expected):
    assert frame_window(*window, fps=30.0, n_frames=90) == expected


def test_frame_window_outside_the_video():
    with pytest.raises(ValueError, match="starts at frame 90"):
        frame_window(3.0, 4.0, fps=30.0, n_frames=90)


# ----------------------------------------------------------------------------------------------- dedup


@pytest.fixture(scope="module")
def encoder():
    return dedup.load_encoder()


def test_bundled_model_is_the_official_revision():
    assert dedup.verify_model(dedup.bundled_model_dir(), dedup.MINILM_SHA256) == dedup.MINILM_SHA256


def test_model_digest_mismatch_is_refused(tmp_path):
    fake = tmp_path / "model"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(dedup.ModelDigestError, match="model.safetensors: sha256"):
        dedup.verify_model(fake, dedup.MINILM_SHA256)
    with pytest.raises(dedup.ModelDigestError, match="not found"):
        dedup.verify_model(tmp_path, None)


def test_user_given_model_folder_loads_and_embeds_like_the_bundled_one(tmp_path, encoder):
    import shutil

    copy = tmp_path / "minilm"
    shutil.copytree(dedup.bundled_model_dir(), copy)
    theirs = dedup.load_encoder(str(copy), dedup.MINILM_SHA256)
    texts = ["I open the fridge.", "What is on the table? A red cup."]
    assert np.allclose(dedup.embed(theirs, texts), dedup.embed(encoder, texts), atol=1e-6)


def test_near_duplicates_within_task_and_overlapping_windows(encoder):
    C = dedup.DedupCandidate
    items = [
        C("a", "open_qa", "What did I put in the fridge? The milk.", (10.0, 14.0)),
        C("b", "open_qa", "What did I place in the fridge? The milk.", (12.0, 16.0)),  # paraphrase of a
        C("c", "open_qa", "What did I place in the fridge? The milk.", (40.0, 44.0)),  # same words, other time
        C("d", "multiple_choice", "What did I put in the fridge? The milk.", (10.0, 14.0)),  # other task
        C("e", "open_qa", "Where did I leave my keys? On the sofa.", (10.0, 14.0)),  # different meaning
    ]
    vectors = dedup.embed(encoder, [c.text for c in items])
    cos_ab = float(vectors[0] @ vectors[1])
    assert cos_ab > 0.95 > float(vectors[0] @ vectors[4])
    dropped = dedup.near_duplicates(items, vectors, threshold=0.95)
    assert dropped == {"b": ("a", round(cos_ab, 4))}
    assert dedup.near_duplicates(items, vectors, threshold=1.0) == {}  # only exact copies at 1.0
    # order of the input does not matter: the first id wins
    assert dedup.near_duplicates(items[::-1], vectors[::-1], threshold=0.95) == dropped


def test_threshold_is_validated():
    with pytest.raises(ValueError, match="threshold"):
        dedup.near_duplicates([], np.zeros((0, 4)), threshold=0.0)


# ----------------------------------------------------------------------------------------------- mixing


def test_mix_ratio_and_cap_are_hash_decisions():
    ids = [f"ssv2-{i}" for i in range(2000)]
    ranks = {i: mix.item_rank(i) for i in ids}
    assert all(0.0 <= r < 1.0 for r in ranks.values())
    assert mix.item_rank("x", seed=1) != mix.item_rank("x", seed=0)
    half = mix.MixRule(ratio=0.5)
    kept = {i for i in ids if mix.passes_ratio(ranks[i], half)}
    assert 900 < len(kept) < 1100  # about half
    capped = mix.MixRule(ratio=0.5, cap=100)
    threshold = mix.cap_threshold([ranks[i] for i in kept], capped)
    final = {i for i in ids if mix.mix_decision(ranks[i], capped, threshold) is None}
    assert len(final) == 100 and final <= kept
    assert final == set(sorted(kept, key=ranks.get)[:100])  # the 100 smallest ranks
    bigger = mix.MixRule(ratio=0.5, cap=200)
    threshold2 = mix.cap_threshold([ranks[i] for i in kept], bigger)
    assert final < {i for i in ids if mix.mix_decision(ranks[i], bigger, threshold2) is None}  # superset
    reasons = {mix.mix_decision(ranks[i], capped, threshold) for i in ids}
    assert reasons == {None, "mixing ratio", "mixing cap"}


@pytest.mark.parametrize(("ratio", "cap"), [(1.5, 0), (-0.1, 0), (0.5, -1), (0.5, 1.5)])
def test_mix_rule_validation(ratio, cap):
    with pytest.raises(ValueError, match="mix"):
        mix.MixRule(ratio=ratio, cap=cap)
