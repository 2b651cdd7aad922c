"""Attention blocks: channel attention, spatial attention and MIRNet's dual attention unit.

Shared by HMAD-Net (CBAM-style channel attention with average and max pooling, 7×7 spatial
attention), DRAN, MIRNet (dual attention unit), GIMSANet and MGMSDNet.
"""

from __future__ import annotations

import torch
from torch import nn

from medden.nets.blocks.conv import Pool, act, conv


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention: ``x · sigmoid(MLP(avg(x)) [+ MLP(max(x))])``.

    Args:
        spatial_dims: 2 or 3.
        channels: feature channels.
        reduction: channel reduction of the two 1×1 convolutions of the shared MLP.
        use_max: also pool by maximum (CBAM, the HMAD-Net paper); average only otherwise (RCAN/MIRNet).
        activation: activation between the two 1×1 convolutions.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        reduction: int = 8,
        use_max: bool = True,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.use_max = use_max
        self.avg = Pool[Pool.ADAPTIVEAVG, spatial_dims](1)
        self.max = Pool[Pool.ADAPTIVEMAX, spatial_dims](1) if use_max else nn.Identity()
        self.mlp = nn.Sequential(
            conv(spatial_dims, channels, hidden, kernel_size=1),
            act(activation),
            conv(spatial_dims, hidden, channels, kernel_size=1),
        )

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights, shape (B, C, 1, …)."""
        w = self.mlp(self.avg(x))
        if self.use_max:
            w = w + self.mlp(self.max(x))
        return torch.sigmoid(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: ``x · sigmoid(conv_k([mean_c(x), max_c(x)]))`` (k = 7 in HMAD-Net)."""

    def __init__(self, spatial_dims: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = conv(spatial_dims, 2, 1, kernel_size=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class ChannelSpatialAttention(nn.Sequential):
    """Channel attention followed by spatial attention ("what", then "where"; CBAM order)."""

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 8, kernel_size: int = 7) -> None:
        super().__init__(
            ChannelAttention(spatial_dims, channels, reduction=reduction),
            SpatialAttention(spatial_dims, kernel_size=kernel_size),
        )


class DualAttention(nn.Module):
    """MIRNet's dual attention unit: conv–PReLU–conv, parallel spatial and channel attention,
    concatenated, fused by a 1×1 convolution, plus the input.

    Args:
        spatial_dims: 2 or 3.
        channels: feature channels.
        reduction: channel-attention reduction.
        kernel_size: kernel of the two body convolutions.
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 8, kernel_size: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv(spatial_dims, channels, channels, kernel_size),
            nn.PReLU(),
            conv(spatial_dims, channels, channels, kernel_size),
        )
        self.spatial = SpatialAttention(spatial_dims, kernel_size=5)
        self.channel = ChannelAttention(spatial_dims, channels, reduction=reduction, use_max=False)
        self.fuse = conv(spatial_dims, 2 * channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.body(x)
        return x + self.fuse(torch.cat([self.spatial(r), self.channel(r)], dim=1))
