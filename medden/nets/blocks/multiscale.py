"""Multi-scale attention block shared by GIMSANet and MGMSDNet."""

from __future__ import annotations

import torch
from torch import nn

from medden.nets.blocks.attention import ChannelSpatialAttention
from medden.nets.blocks.conv import act, conv


class MultiScaleAttentionBlock(nn.Module):
    """Parallel dilated 3×3 convolutions (several receptive fields), fused by a 1×1 convolution,
    re-weighted by channel and spatial attention, plus the input.

    Args:
        spatial_dims: 2 or 3.
        channels: feature channels.
        dilations: one branch per dilation (1, 2, 3: receptive fields 3, 5, 7).
        activation: activation after each branch and after the fusion.
        attention: apply channel + spatial attention (False for ablation).
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        dilations: tuple[int, ...] = (1, 2, 3),
        activation: str = "prelu",
        attention: bool = True,
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [
                nn.Sequential(conv(spatial_dims, channels, channels, dilation=d), act(activation))
                for d in dilations
            ]
        )
        self.fuse = nn.Sequential(
            conv(spatial_dims, channels * len(dilations), channels, kernel_size=1), act(activation)
        )
        self.attention = ChannelSpatialAttention(spatial_dims, channels) if attention else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fuse(torch.cat([b(x) for b in self.branches], dim=1))
        return x + self.attention(y)
