"""Clip decoding: mp4 bytes or a list of JPEG bytes -> uint8 frames_TCHW, uniformly sampled, square.

Both shard formats of the Ego-ExoClip build go through the same sampling rule, so a model sees the same
instants of a window whether the build wrote mp4 clips or pre-sampled JPEG frames:

- uniform sampling: T indices over a clip of n frames are the centres of T equal bins,
  index_i = floor((i + 0.5) * n / T). When n < T some frames repeat (a 10-frame clip gives 16 frames);
  when the frames format already holds exactly T frames the indices are 0..T-1 (no resampling).
- last-frame sampling (`last=True`; EgoBench's EgoPlan, whose question is about "my current observation in the
  last frame"): the clip's last frame is always the last one sampled, the other T-1 are the bin centres of the
  frames before it (last_indices; on exactly T stored frames, again 0..T-1).
- square frames, ONE function for training (data.py), evaluation (eval/protocol.py) and the lmms-eval adapter
  (eval/lmms.py): `fit_square(frames, size, aspect)`, aspect = the model config's `model.aspect`:
  "pad" (default, VideoLLaMA2's `image_aspect_ratio: pad`): the frame is padded to a square of side max(H, W)
  with the CLIP mean colour (VideoLLaMA2's mm_utils.expand2square, background
  tuple(int(x * 255) for x in image_mean) = PAD_RGB, the frame centred with the (side - H) // 2 / (side - W) // 2
  offset), then resized to size x size; nothing of the frame is lost.
  "crop": the centre square of side min(H, W) is cut, then resized (CLIPImageProcessor's own "short side to
  `size`, then centre crop", done in the other order: fewer pixels to resize, sub-pixel rounding apart).
  The resize is bicubic with antialiasing, as CLIPImageProcessor's (PIL BICUBIC; torch's antialiased bicubic
  follows PIL's kernel: at most 2 levels apart on uint8). A frame that is already size x size is not touched.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .config import ASPECTS

# CLIP's preprocessing statistics (openai/clip-vit-*): the vision towers were trained with them.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# VideoLLaMA2's pad colour: tuple(int(x * 255) for x in processor.image_mean) = (122, 116, 104)
PAD_RGB = tuple(int(x * 255) for x in CLIP_MEAN)
DEFAULT_ASPECT = "pad"


def uniform_indices(n_available: int, n_frames: int) -> list[int]:
    """Centre of each of n_frames equal bins over n_available frames (repeats when n_available < n_frames)."""
    if n_available < 1:
        raise ValueError("clip has no frames")
    # integer form of floor((i + 0.5) * n / T): no float rounding differences between platforms
    return [((2 * i + 1) * n_available) // (2 * n_frames) for i in range(n_frames)]


def last_indices(n_available: int, n_frames: int) -> list[int]:
    """Centres of n_frames - 1 equal bins over the first n_available - 1 frames, then the last frame."""
    if n_available < 1:
        raise ValueError("clip has no frames")
    before = n_available - 1
    head = [((2 * i + 1) * before) // (2 * (n_frames - 1)) for i in range(n_frames - 1)] if before else []
    return (head or [0] * (n_frames - 1)) + [n_available - 1]


def fit_square(
    frames_THWC: np.ndarray | torch.Tensor, size: int, aspect: str = DEFAULT_ASPECT
) -> torch.Tensor:
    """uint8 THWC -> uint8 frames_TCHW of size x size: padded with the CLIP mean ("pad") or centre-cropped
    ("crop") to a square, then resized (see the module doc). The one function every frame of training,
    evaluation and the lmms-eval adapter goes through."""
    if aspect not in ASPECTS:
        raise ValueError(f"aspect={aspect!r}: expected one of {ASPECTS}")
    frames_THWC = torch.as_tensor(frames_THWC)
    t, h, w, c = frames_THWC.shape
    if aspect == "pad" and h != w:
        side = max(h, w)
        square = torch.empty((t, side, side, c), dtype=frames_THWC.dtype)
        square[:] = torch.tensor(PAD_RGB, dtype=frames_THWC.dtype)
        top, left = (side - h) // 2, (side - w) // 2
        square[:, top : top + h, left : left + w] = frames_THWC
        frames_THWC = square
    else:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        frames_THWC = frames_THWC[:, top : top + side, left : left + side]
    frames_TCHW = frames_THWC.permute(0, 3, 1, 2)
    if side == size:
        return frames_TCHW.contiguous()
    # uint8 in, uint8 out: torch's CPU kernel for antialiased uint8 resizing is several times faster than going
    # through float, and the loader's throughput is decode + resize
    return F.interpolate(
        frames_TCHW.contiguous(), size=(size, size), mode="bicubic", antialias=True, align_corners=False
    )


def _decode_mp4(data: bytes, n_frames: int, num_threads: int, pick=uniform_indices) -> np.ndarray:
    import decord  # imported here: only mp4 shards need it

    vr = decord.VideoReader(io.BytesIO(data), num_threads=num_threads)
    return vr.get_batch(pick(len(vr), n_frames)).asnumpy()


def _decode_jpegs(jpegs: Sequence[bytes], n_frames: int, pick=uniform_indices) -> np.ndarray:
    # only the sampled frames are decoded; a repeated index is decoded once
    idx = pick(len(jpegs), n_frames)
    decoded = {i: np.asarray(Image.open(io.BytesIO(jpegs[i])).convert("RGB")) for i in sorted(set(idx))}
    return np.stack([decoded[i] for i in idx])


def decode_clip(
    data: bytes | Sequence[bytes],
    n_frames: int,
    size: int,
    *,
    num_threads: int = 1,
    last: bool = False,
    aspect: str = DEFAULT_ASPECT,
) -> torch.Tensor:
    """mp4 bytes (decord) or a list of JPEG bytes -> uint8 frames_TCHW of shape (n_frames, 3, size, size).

    num_threads: decord decoding threads; 1 in loader workers (the workers are the parallelism), 0 = auto.
    last: the clip's last frame is the last one sampled (last_indices), else uniform_indices.
    aspect: "pad" (VideoLLaMA2's, the default) or "crop"; see fit_square.
    """
    if n_frames < 1 or size < 1:
        raise ValueError(f"n_frames={n_frames}, size={size}: both must be >= 1")
    pick = last_indices if last else uniform_indices
    if isinstance(data, bytes | bytearray | memoryview):
        frames_THWC = _decode_mp4(bytes(data), n_frames, num_threads, pick)
    else:
        frames_THWC = _decode_jpegs(data, n_frames, pick)
    return fit_square(frames_THWC, size, aspect)


def normalize(frames_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 frames (channels at dim -3: TCHW or BTCHW) -> float32 with CLIP mean/std."""
    if frames_uint8.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 frames, got {frames_uint8.dtype}")
    mean_C11 = torch.tensor(CLIP_MEAN, device=frames_uint8.device).view(3, 1, 1)
    std_C11 = torch.tensor(CLIP_STD, device=frames_uint8.device).view(3, 1, 1)
    return (frames_uint8.float().div_(255.0) - mean_C11).div_(std_C11)
