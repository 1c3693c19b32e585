"""Visual features -> LLM token embeddings: VideoLLaMA2's STC connector, or a pooled MLP.

Shapes (model.py's legend): B batch, T frames, h x w patch grid, C vision width, D LLM width, N tokens.
Both connectors take features [B, T, h, w, C] and return tokens [B, N, D].

STCConnector mirrors VideoLLaMA2's `STCConnector` (videollama2/model/projector.py, mm_projector_type
"stc_connector") module for module, with the same state_dict key names, so that a VideoLLaMA2 checkpoint's
`model.mm_projector.*` loads into it unchanged:

    s1       RegStage(depth, C -> width)       per frame, 2D
    sampler  Sequential(Conv3d(width, width, kernel = stride = (2, 2, 2), padding 1), SiLU)
    s2       RegStage(depth, width -> width)   per (down-sampled) frame
    readout  Sequential(Linear(width, D), GELU, Linear(D, D))

VideoLLaMA2 builds RegStage from timm (1.0.3: timm/models/regnet.py `RegStage` / `Bottleneck`, timm/layers
`ConvNormAct`, `LayerNormAct2d`, `SEModule`), with act_layer=SiLU and norm_layer=LayerNorm2d. timm is not a
dependency here: the classes below are plain-torch equivalents of exactly that configuration (names noted on
each), nothing more.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNormAct2d(nn.LayerNorm):
    """timm.layers.LayerNormAct2d: LayerNorm over the channels of an NCHW map, then an optional SiLU.

    timm maps VideoLLaMA2's norm_layer=LayerNorm2d to this class with its own defaults (eps 1e-5, not
    LayerNorm2d's 1e-6); parameters `weight`, `bias` as nn.LayerNorm."""

    def __init__(self, channels: int, apply_act: bool = True):
        super().__init__(channels, eps=1e-5)
        self.act = nn.SiLU() if apply_act else nn.Identity()

    def forward(self, x_MChw: torch.Tensor) -> torch.Tensor:
        x_MhwC = F.layer_norm(
            x_MChw.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps
        )
        return self.act(x_MhwC.permute(0, 3, 1, 2))


class ConvNormAct(nn.Module):
    """timm.layers.ConvNormAct: bias-free Conv2d (`conv`, symmetric padding) then norm + act (named `bn` in timm
    for weight compatibility, whatever the norm)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int = 1, apply_act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=(kernel - 1) // 2, groups=groups, bias=False)
        self.bn = LayerNormAct2d(c_out, apply_act=apply_act)

    def forward(self, x_MChw: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x_MChw))


class SEModule(nn.Module):
    """timm.layers.SEModule: squeeze (spatial mean), fc1 (1x1 conv) + SiLU, fc2 (1x1 conv), sigmoid gate."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.bn = nn.Identity()  # timm's slot for an optional norm (none here): keeps the module layout
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x_MChw: torch.Tensor) -> torch.Tensor:
        s_MC11 = self.fc2(self.act(self.bn(self.fc1(x_MChw.mean((2, 3), keepdim=True)))))
        return x_MChw * torch.sigmoid(s_MC11)


class Bottleneck(nn.Module):
    """timm.models.regnet.Bottleneck at RegStage's defaults (bottle_ratio 1, group_size 1, se_ratio 0.25,
    stride 1, dilation 1, downsample "conv1x1", no drop path): conv1 1x1 -> conv2 3x3 depthwise -> SE ->
    conv3 1x1 (no act) -> + shortcut -> SiLU. The shortcut (`downsample`) is a 1x1 ConvNormAct without act when
    the width changes, else the identity."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = ConvNormAct(c_in, c_out, 1)
        self.conv2 = ConvNormAct(c_out, c_out, 3, groups=c_out)  # group_size 1: depthwise
        self.se = SEModule(c_out, int(round(c_in * 0.25)))  # timm sizes SE from the block's *input* width
        self.conv3 = ConvNormAct(c_out, c_out, 1, apply_act=False)
        self.downsample = ConvNormAct(c_in, c_out, 1, apply_act=False) if c_in != c_out else nn.Identity()
        self.act3 = nn.SiLU()

    def forward(self, x_MChw: torch.Tensor) -> torch.Tensor:
        h_MChw = self.conv3(self.se(self.conv2(self.conv1(x_MChw))))
        return self.act3(h_MChw + self.downsample(x_MChw))


class RegStage(nn.Module):
    """timm.models.regnet.RegStage(depth, in_chs, out_chs, stride=1, dilation=1): blocks b1 .. b{depth},
    the first changing the width."""

    def __init__(self, depth: int, c_in: int, c_out: int):
        super().__init__()
        for i in range(depth):
            self.add_module(f"b{i + 1}", Bottleneck(c_in if i == 0 else c_out, c_out))

    def forward(self, x_MChw: torch.Tensor) -> torch.Tensor:
        for block in self.children():
            x_MChw = block(x_MChw)
        return x_MChw


class STCConnector(nn.Module):
    """VideoLLaMA2's spatial-temporal convolution connector (see the module doc). padding 1 is its
    "stc_connector", padding 0 its "stc_connector_v35"."""

    def __init__(self, dim_C: int, width: int, dim_D: int, depth: int = 4, padding: int = 1):
        super().__init__()
        # depth 0: VideoLLaMA2 replaces the stages by identities (its spatial_conv variants)
        self.s1 = RegStage(depth, dim_C, width) if depth else nn.Identity()
        conv = nn.Conv3d(width if depth else dim_C, width, kernel_size=2, stride=2, padding=padding)
        self.sampler = nn.Sequential(conv, nn.SiLU())
        self.s2 = RegStage(depth, width, width) if depth else nn.Identity()
        self.readout = nn.Sequential(nn.Linear(width, dim_D), nn.GELU(), nn.Linear(dim_D, dim_D))
        self.padding = padding

    def n_tokens(self, T: int, h: int, w: int) -> int:
        """Tokens per clip: each of (T, h, w) becomes floor((n + 2 * padding - 2) / 2) + 1."""
        return (
            ((T + 2 * self.padding - 2) // 2 + 1)
            * ((h + 2 * self.padding - 2) // 2 + 1)
            * ((w + 2 * self.padding - 2) // 2 + 1)
        )

    def forward(self, feats_BThwC: torch.Tensor) -> torch.Tensor:
        B, T, h, w, C = feats_BThwC.shape
        x_MChw = feats_BThwC.reshape(B * T, h, w, C).permute(0, 3, 1, 2)
        x_MChw = self.s1(x_MChw)
        x_BCThw = x_MChw.reshape(B, T, *x_MChw.shape[1:]).transpose(1, 2)
        x_BCKhw = self.sampler(x_BCThw)  # K: time steps after the temporal down-sampling
        K = x_BCKhw.shape[2]
        x_MChw = self.s2(x_BCKhw.transpose(1, 2).flatten(0, 1))
        # token order (t, h, w), time-major, as VideoLLaMA2's "(b t) d h w -> b (t h w) d"
        tokens_BNC = (
            x_MChw.reshape(B, K, *x_MChw.shape[1:]).permute(0, 1, 3, 4, 2).reshape(B, -1, x_MChw.shape[1])
        )
        return self.readout(tokens_BNC)


class PooledMLPConnector(nn.Module):
    """The parameter-light option: each frame's grid average-pooled to pool_side x pool_side, runs of
    temporal_stride frames averaged, then a per-token 2-layer MLP (LLaVA-1.5's projector). 16 frames of
    CLIP-L/14-336 with pool_side 4 and stride 2 give 8 x 16 = 128 tokens instead of STC's 9 x 13 x 13."""

    def __init__(self, dim_C: int, dim_D: int, pool_side: int, temporal_stride: int):
        super().__init__()
        self.fc1 = nn.Linear(dim_C, dim_D)
        self.fc2 = nn.Linear(dim_D, dim_D)
        self.pool_side, self.temporal_stride = pool_side, temporal_stride

    def n_tokens(self, T: int, h: int, w: int) -> int:
        return (T // self.temporal_stride) * self.pool_side**2

    def forward(self, feats_BThwC: torch.Tensor) -> torch.Tensor:
        B, T, h, w, C = feats_BThwC.shape
        stride, side = self.temporal_stride, self.pool_side
        if T % stride:
            raise ValueError(f"clip has T={T} frames, not a multiple of temporal_stride={stride}")
        grid_MChw = feats_BThwC.reshape(B * T, h, w, C).permute(0, 3, 1, 2)
        pooled_MSC = F.adaptive_avg_pool2d(grid_MChw, side).flatten(2).transpose(1, 2)
        S = pooled_MSC.shape[1]
        steps_BKSC = pooled_MSC.reshape(B, T // stride, stride, S, C).mean(dim=2)
        return self.fc2(F.gelu(self.fc1(steps_BKSC.reshape(B, -1, C))))


def build_connector(cfg, dim_C: int, dim_D: int) -> nn.Module:
    """The connector of ModelConfig `cfg` from vision width C to LLM width D."""
    if cfg.connector == "mlp":
        return PooledMLPConnector(dim_C, dim_D, cfg.pool_side, cfg.temporal_stride)
    width = cfg.connector_width or dim_D
    return STCConnector(dim_C, width, dim_D, cfg.connector_depth, padding=1 if cfg.connector == "stc" else 0)
