"""MIRNet's residual down- and up-sampling between resolution streams (2D)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from medden.nets.blocks.conv import conv
from medden.nets.blocks.filters import Blur2d


class ResidualDownsample(nn.Module):
    """Halve the resolution and multiply the channels by ``factor``: an anti-aliased conv branch plus
    a blur-pooled 1×1 shortcut."""

    def __init__(self, channels: int, factor: float = 2.0) -> None:
        super().__init__()
        out = int(channels * factor)
        self.top = nn.Sequential(
            conv(2, channels, channels, 1, bias=False),
            nn.PReLU(),
            conv(2, channels, channels, 3, bias=False),
            nn.PReLU(),
            Blur2d(channels),
            conv(2, channels, out, 1, bias=False),
        )
        self.bottom = nn.Sequential(Blur2d(channels), conv(2, channels, out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(x) + self.bottom(x)


class ResidualUpsample(nn.Module):
    """Double the resolution and divide the channels by ``factor``: a transposed-conv branch plus a
    bilinear 1×1 shortcut."""

    def __init__(self, channels: int, factor: float = 2.0) -> None:
        super().__init__()
        out = int(channels / factor)
        self.top = nn.Sequential(
            conv(2, channels, channels, 1, bias=False),
            nn.PReLU(),
            nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.PReLU(),
            conv(2, channels, out, 1, bias=False),
        )
        self.bottom = conv(2, channels, out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.top(x) + self.bottom(up)


def resample(channels: int, scale: int, factor: float, down: bool) -> nn.Sequential:
    """``log2(scale)`` residual down- (or up-) sampling steps starting from ``channels``."""
    steps, layers = int(round(math.log2(scale))), []
    for _ in range(steps):
        layers.append(ResidualDownsample(channels, factor) if down else ResidualUpsample(channels, factor))
        channels = int(channels * factor) if down else int(channels / factor)
    return nn.Sequential(*layers)
