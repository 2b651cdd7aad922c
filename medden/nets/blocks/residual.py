"""Residual blocks: two convolutions with an activation, optional attention and residual scaling."""

from __future__ import annotations

import torch
from torch import nn

from medden.nets.blocks.attention import ChannelAttention, SpatialAttention
from medden.nets.blocks.conv import act, conv


class ResidualBlock(nn.Module):
    """``skip(x) + scale · attention(act(conv(act(conv(x)))))``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels (a 1×1 projection on the skip path when they differ).
        activation: activation after each convolution (``silu`` in HMAD-Net).
        scale: residual scaling (0.2 in HMAD-Net's bottleneck, as in EDSR/ESRGAN).
        residual: keep the skip connection (False: a plain double convolution, for ablation).
        channel_attention: apply channel attention (avg + max pooling) to the residual branch.
        spatial_attention: apply 7×7 spatial attention to the residual branch.
        reduction: channel-attention reduction.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int | None = None,
        activation: str = "silu",
        scale: float = 1.0,
        residual: bool = True,
        channel_attention: bool = False,
        spatial_attention: bool = False,
        reduction: int = 8,
    ) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        self.body = nn.Sequential(
            conv(spatial_dims, in_channels, out_channels),
            act(activation),
            conv(spatial_dims, out_channels, out_channels),
            act(activation),
        )
        attention: list[nn.Module] = []
        if channel_attention:
            attention.append(ChannelAttention(spatial_dims, out_channels, reduction=reduction))
        if spatial_attention:
            attention.append(SpatialAttention(spatial_dims))
        self.attention = nn.Sequential(*attention)
        self.residual = residual
        self.scale = float(scale)
        self.skip = (
            conv(spatial_dims, in_channels, out_channels, kernel_size=1)
            if residual and in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attention(self.body(x))
        if not self.residual:
            return y
        return self.skip(x) + self.scale * y if self.scale != 1.0 else self.skip(x) + y
