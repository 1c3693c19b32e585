"""Frames to squares (video.fit_square): VideoLLaMA2's pad-to-square with the CLIP mean colour by default, the
centre crop as a switch (model.aspect), and the same function, with the same result, for training (the loader),
evaluation (eval.protocol.Runner) and the lmms-eval adapter (eval.lmms.load_visual)."""

from __future__ import annotations

import tarfile
from io import BytesIO

import numpy as np
import pytest
import torch
from PIL import Image

from exo2ego_model import video
from exo2ego_model.config import ConfigError, DataConfig, ModelConfig
from exo2ego_model.data import make_loader
from exo2ego_model.eval.protocol import Runner
from exo2ego_model.tiny import tiny_tokenizer
from exo2ego_model.video import PAD_RGB, fit_square, uniform_indices
from tools.samples.stamped_video import write_stamped_video


def frames(t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """uint8 THWC, random green and blue, red 200 everywhere (the pad colour's red is 122)."""
    g = torch.Generator().manual_seed(seed)
    out = torch.randint(0, 256, (t, h, w, 3), generator=g, dtype=torch.uint8)
    out[..., 0] = 200
    return out


def expand2square_pil(img: Image.Image, background) -> Image.Image:
    """VideoLLaMA2's videollama2/mm_utils.py expand2square, restated: the reference for "pad"."""
    width, height = img.size
    if width == height:
        return img
    side = max(width, height)
    result = Image.new(img.mode, (side, side), background)
    result.paste(img, ((side - width) // 2, (side - height) // 2))
    return result


def test_the_pad_colour_is_videollama2s():
    # tuple(int(x * 255) for x in CLIPImageProcessor.image_mean) in videollama2/mm_utils.py process_video
    assert PAD_RGB == (122, 116, 104) and ModelConfig().aspect == "pad"


@pytest.mark.parametrize(("h", "w"), [(13, 20), (20, 13)])  # landscape: rows padded; portrait: columns
def test_pad_fills_the_short_side_with_the_mean_colour(h, w):
    x = frames(2, h, w)
    out = fit_square(x, 20)  # side 20 = size: no resize, every pixel exact
    assert out.shape == (2, 3, 20, 20) and out.dtype == torch.uint8
    off = (20 - 13) // 2  # 3: VideoLLaMA2's paste offset (floor), 4 pad lines on the other side
    hw = out.permute(0, 2, 3, 1) if h < w else out.permute(0, 3, 2, 1)  # short side on dim 1
    body = x if h < w else x.transpose(1, 2)
    pad = torch.tensor(PAD_RGB, dtype=torch.uint8)
    assert (hw[:, :off] == pad).all() and (hw[:, off + 13 :] == pad).all()
    assert torch.equal(hw[:, off : off + 13], body)


def test_pad_then_resize_matches_videollama2_with_pil():
    x = frames(1, 48, 80, seed=1)
    out = fit_square(x, 32)
    want = expand2square_pil(Image.fromarray(x[0].numpy()), PAD_RGB).resize((32, 32), Image.BICUBIC)
    diff = (out[0].permute(1, 2, 0).int() - torch.from_numpy(np.array(want)).int()).abs()
    assert int(diff.max()) <= 2  # torch's antialiased bicubic = PIL's kernel up to uint8 rounding
    # the padded bands (16 of 80 rows top and bottom -> 6.4 of 32) are the mean colour, the middle is the frame
    assert (out[0, :, :4] == torch.tensor(PAD_RGB)[:, None, None]).all()
    assert (out[0, 0, 9:23] == 200).all()  # the frame's red, away from the band edges


def test_crop_switch_takes_the_centre_square():
    x = frames(2, 13, 20)
    assert torch.equal(fit_square(x, 13, "crop"), x[:, :, 3:16].permute(0, 3, 1, 2))
    assert torch.equal(
        fit_square(x.transpose(1, 2), 13, "crop"), x.transpose(1, 2)[:, 3:16].permute(0, 3, 1, 2)
    )
    square = frames(1, 16, 16)
    for aspect in ("pad", "crop"):  # an already square frame of the right size is not touched
        assert torch.equal(fit_square(square, 16, aspect), square.permute(0, 3, 1, 2))
    with pytest.raises(ValueError, match="aspect='stretch'"):
        fit_square(x, 13, "stretch")
    with pytest.raises(ConfigError, match="model.aspect='stretch'"):
        ModelConfig(aspect="stretch")


@pytest.fixture(scope="module")
def clip_shard(tmp_path_factory):
    """A 64x48 (non-square) mp4 clip of 8 frames, and an EgoClip-layout shard holding it."""
    root = tmp_path_factory.mktemp("aspect")
    write_stamped_video(root / "c.mp4", 1, 8, 64, 48, audio=False)
    mp4 = (root / "c.mp4").read_bytes()
    shard = root / "clips-000000.tar"
    with tarfile.open(shard, "w") as tf:
        for name, data in (("c0.ego.mp4", mp4), ("c0.txt", b"I open the door")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, BytesIO(data))
    return mp4, str(shard)


@pytest.mark.parametrize("aspect", ["pad", "crop"])
def test_training_evaluation_and_lmms_share_one_function(clip_shard, monkeypatch, aspect):
    lmms = pytest.importorskip("exo2ego_model.eval.lmms", reason="lmms-eval adapter dependencies missing")
    import decord

    mp4, shard = clip_shard
    calls = []

    def spy(frames_THWC, size, aspect="pad"):
        calls.append(aspect)
        return fit_square(frames_THWC, size, aspect)

    monkeypatch.setattr(video, "fit_square", spy)
    T, S = 4, 32
    data = DataConfig(shards=shard, n_frames=T, image_size=S, num_workers=0, shuffle_buffer=0)
    loader = make_loader(data, "ego", tiny_tokenizer(), batch_size=1, normalize_frames=False, aspect=aspect)
    train = next(iter(loader))["ego_BTCHW"][0]
    evaluation = Runner(None, None, None, T, S, aspect=aspect).video({0: mp4}, 0, 1)
    adapter = lmms.load_visual(mp4, T, S, aspect)
    assert calls == [aspect] * 3  # each path went through video.fit_square, with the configured aspect
    vr = decord.VideoReader(BytesIO(mp4))
    want = fit_square(vr.get_batch(uniform_indices(len(vr), T)).asnumpy(), S, aspect)
    assert torch.equal(train, want) and torch.equal(evaluation, want) and torch.equal(adapter, want)
    top_rows_are_pad = bool((want[:, :, :2] == torch.tensor(PAD_RGB)[:, None, None]).all())
    assert top_rows_are_pad == (aspect == "pad")  # 64x48: 8 pad rows above and below -> 4 of 32
