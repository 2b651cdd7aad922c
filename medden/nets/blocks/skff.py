"""Selective kernel feature fusion (MIRNet, after Li et al.'s selective kernel networks)."""

from __future__ import annotations

import torch
from torch import nn

from medden.nets.blocks.conv import Pool, conv


class SKFF(nn.Module):
    """Fuse L same-shaped feature maps with softmax attention over the L inputs, per channel.

    ``U = Σ_l x_l``; ``z = PReLU(conv1×1(avgpool(U)))``; ``a_l = softmax_l(conv1×1_l(z))``;
    output ``Σ_l a_l · x_l``.

    Args:
        spatial_dims: 2 or 3.
        channels: channels of each input.
        num_inputs: L.
        reduction: channel reduction of the squeeze step.
    """

    def __init__(self, spatial_dims: int, channels: int, num_inputs: int = 3, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](1)
        self.squeeze = nn.Sequential(conv(spatial_dims, channels, hidden, kernel_size=1), nn.PReLU())
        self.select = nn.ModuleList(
            [conv(spatial_dims, hidden, channels, kernel_size=1) for _ in range(num_inputs)]
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(features, dim=1)  # (B, L, C, ...)
        z = self.squeeze(self.pool(stacked.sum(dim=1)))
        attn = torch.softmax(torch.stack([s(z) for s in self.select], dim=1), dim=1)
        return (stacked * attn).sum(dim=1)
