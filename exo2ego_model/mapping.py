"""The mapping networks F (ego -> exo) and G (exo -> ego) over visual features [B, T, h, w, C].

The paper: "9 residual blocks with down- and up-sampling" (its ablation with plain layers scores worse), the
shape of CycleGAN's ResNet generator. ResnetMapping applies that generator to each frame's CLIP feature grid:

    stem     1x1 conv C -> C / bottleneck, norm, ReLU             (channel projection; CycleGAN: 7x7 on pixels)
    down[i]  3x3 conv stride 2, channels x2, norm, ReLU           (`downsample` times)
    blocks   `blocks` x [3x3 conv, norm, ReLU, 3x3 conv, norm] + skip
    up[i]    3x3 transposed conv stride 2, channels / 2, norm, ReLU, back to the exact input grid
    head     1x1 conv back to C, added to the input (global skip)

Departures from CycleGAN, and why:
- channel LayerNorm instead of InstanceNorm: after down-sampling a small grid (a 4x4 test grid, or 24x24 -> 6x6)
  instance statistics are over very few positions (none at 1x1), and they would erase each frame's mean feature,
  which the KL term compares;
- replicate instead of reflection padding: reflection needs the map to be larger than the pad;
- the global skip: F and G learn a residual on top of the identity. The ego tower starts as a copy of the exo
  tower, so "ego features are already exo-like" is the natural starting point, and F learns the view gap instead
  of first having to reproduce CLIP features through a 4x smaller grid. The head keeps its random init (not
  zero): at exactly the identity the cycle loss would be 0 with a zero (sub)gradient, and G, which only the
  cycle loss trains, would not move until F had.
MLPMapping keeps the earlier per-token variant (model.mapping: mlp).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (per position)."""

    def forward(self, x_MChw: torch.Tensor) -> torch.Tensor:
        return super().forward(x_MChw.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _conv_norm_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, ChannelNorm(channels), nn.ReLU())


class ResidualConvBlock(nn.Module):
    """CycleGAN's ResnetBlock: x + norm(conv(relu(norm(conv(x)))))."""

    def __init__(self, channels: int):
        super().__init__()
        conv = dict(kernel_size=3, padding=1, padding_mode="replicate")
        self.conv1 = nn.Conv2d(channels, channels, **conv)
        self.norm1 = ChannelNorm(channels)
        self.conv2 = nn.Conv2d(channels, channels, **conv)
        self.norm2 = ChannelNorm(channels)

    def forward(self, x_MChw: torch.Tensor) -> torch.Tensor:
        return x_MChw + self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x_MChw)))))


class ResnetMapping(nn.Module):
    """F or G: a CycleGAN ResNet generator over each frame's feature grid (see the module doc)."""

    def __init__(self, dim_C: int, blocks: int, bottleneck: int, downsample: int):
        super().__init__()
        width = max(1, dim_C // bottleneck)
        self.stem = _conv_norm_relu(nn.Conv2d(dim_C, width, 1), width)
        self.down = nn.ModuleList(
            _conv_norm_relu(
                nn.Conv2d(width << i, width << (i + 1), 3, stride=2, padding=1, padding_mode="replicate"),
                width << (i + 1),
            )
            for i in range(downsample)
        )
        inner = width << downsample
        self.blocks = nn.Sequential(*(ResidualConvBlock(inner) for _ in range(blocks)))
        # kept apart from their norms: forward passes output_size, which picks the output padding per level
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(width << (i + 1), width << i, 3, stride=2, padding=1)
            for i in reversed(range(downsample))
        )
        self.up_norm = nn.ModuleList(ChannelNorm(width << i) for i in reversed(range(downsample)))
        self.head = nn.Conv2d(width, dim_C, 1)

    def forward(self, feats_BThwC: torch.Tensor) -> torch.Tensor:
        B, T, h, w, C = feats_BThwC.shape
        x_MChw = feats_BThwC.reshape(B * T, h, w, C).permute(0, 3, 1, 2)
        h_MChw = self.stem(x_MChw)
        sizes = []  # grid before each down-sampling: odd sizes (e.g. 7 -> 4) must come back to 7, not 8
        for down in self.down:
            sizes.append(h_MChw.shape[-2:])
            h_MChw = down(h_MChw)
        h_MChw = self.blocks(h_MChw)
        for up, norm, size in zip(self.up, self.up_norm, reversed(sizes), strict=True):
            h_MChw = F.relu(norm(up(h_MChw, output_size=size)))
        out_MChw = x_MChw + self.head(h_MChw)
        return out_MChw.permute(0, 2, 3, 1).reshape(B, T, h, w, C)


class ResidualMLPBlock(nn.Module):
    """Pre-norm MLP block with a skip connection: x + fc2(gelu(fc1(norm(x))))."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, h_BNC: torch.Tensor) -> torch.Tensor:
        return h_BNC + self.fc2(F.gelu(self.fc1(self.norm(h_BNC))))


class MLPMapping(nn.Module):
    """Per-token F or G (model.mapping: mlp): C -> C / bottleneck, `blocks` residual MLP blocks, back to C.
    Works on any [..., C] tensor, so [B, T, h, w, C] features pass through unchanged in shape."""

    def __init__(self, dim_C: int, blocks: int, bottleneck: int):
        super().__init__()
        hidden = max(1, dim_C // bottleneck)
        self.down = nn.Linear(dim_C, hidden)
        self.blocks = nn.ModuleList(ResidualMLPBlock(hidden) for _ in range(blocks))
        self.up = nn.Linear(hidden, dim_C)

    def forward(self, feats_BThwC: torch.Tensor) -> torch.Tensor:
        h = self.down(feats_BThwC)
        for block in self.blocks:
            h = block(h)
        return self.up(h)


def build_mapping(cfg, dim_C: int) -> nn.Module:
    """F or G for ModelConfig `cfg` over features of width C."""
    if cfg.mapping == "mlp":
        return MLPMapping(dim_C, cfg.mapping_blocks, cfg.mapping_bottleneck)
    return ResnetMapping(dim_C, cfg.mapping_blocks, cfg.mapping_bottleneck, cfg.mapping_downsample)
