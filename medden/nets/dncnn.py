"""DnCNN (Zhang et al., IEEE TIP 2017): the standard residual denoising baseline."""

from __future__ import annotations

import torch
from torch import nn

from medden.nets.base import Denoiser
from medden.nets.blocks import conv
from medden.nets.blocks.conv import Norm


class DnCNN(Denoiser):
    """DnCNN: conv+ReLU, ``depth − 2`` × (conv+BatchNorm+ReLU), conv; predicts the noise, returns
    ``x − noise``.

    Args:
        spatial_dims: 2 (images, slices) or 3 (volumes).
        in_channels: input channels (1 gray, 3 color).
        out_channels: output channels (must equal ``in_channels``: residual learning).
        features: feature channels (64 in the paper).
        depth: number of convolution layers (17 for blind gray denoising, 20 for color/blind).

    Example:
        >>> import torch
        >>> from medden.nets import DnCNN
        >>> net = DnCNN(spatial_dims=2, in_channels=1, out_channels=1, features=16, depth=5).eval()
        >>> net(torch.rand(2, 1, 67, 93)).shape
        torch.Size([2, 1, 67, 93])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        features: int = 64,
        depth: int = 17,
    ) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        if out_channels != in_channels:
            raise ValueError("DnCNN learns the noise residual: out_channels must equal in_channels")
        if depth < 3:
            raise ValueError(f"depth must be >= 3, got {depth}")
        layers: list[nn.Module] = [conv(spatial_dims, in_channels, features), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [
                conv(spatial_dims, features, features, bias=False),
                Norm[Norm.BATCH, spatial_dims](features),
                nn.ReLU(inplace=True),
            ]
        layers.append(conv(spatial_dims, features, out_channels))
        self.body = nn.Sequential(*layers)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float | None) -> torch.Tensor:
        return x - self.body(x)
