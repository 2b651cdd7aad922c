"""DRAN: dynamic residual attention network for medical image denoising (Sharif et al., 2020)."""

from __future__ import annotations

import torch
from torch import nn

from medden.nets.base import Denoiser
from medden.nets.blocks import DynamicConv, NoiseGate, conv, sigma_map
from medden.nets.blocks.conv import act


class DynamicResidualAttentionBlock(nn.Module):
    """``x + gate(dconv(act(dconv(x))))``: dynamic convolutions with a noise gate as attention."""

    def __init__(self, spatial_dims: int, channels: int, num_kernels: int, activation: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            DynamicConv(spatial_dims, channels, channels, num_kernels=num_kernels),
            act(activation),
            DynamicConv(spatial_dims, channels, channels, num_kernels=num_kernels),
            NoiseGate(spatial_dims, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DRAN(Denoiser):
    """DRAN: a head convolution, ``num_blocks`` dynamic residual attention blocks, a long skip and
    a tail convolution that predicts the noise; the output is ``x − noise`` (global residual).

    Each block mixes ``num_kernels`` candidate kernels per sample (dynamic convolution) and gates
    its features with a learned sigmoid noise gate. The blocks are **distinct** modules: the
    published code appends one block object repeatedly, so its blocks share weights (about 0.97 M of
    the intended 2.46 M parameters train); medden builds the intended network.

    With ``noise_level_input=True`` a constant σ map is concatenated to the input (σ on the [0, 1]
    scale, one per batch item); when ``sigma`` is not given it is estimated from the input
    (:func:`medden.nets.blocks.estimate_sigma`).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels (must equal ``in_channels``: residual learning).
        features: feature channels.
        num_blocks: dynamic residual attention blocks.
        num_kernels: candidate kernels per dynamic convolution (K).
        noise_level_input: take a noise level (``net(x, sigma)``).
        activation: activation inside the blocks.

    Example:
        >>> import torch
        >>> from medden.nets import DRAN
        >>> net = DRAN(spatial_dims=2, features=8, num_blocks=2, noise_level_input=True).eval()
        >>> net(torch.rand(2, 1, 33, 40), sigma=torch.tensor([0.05, 0.1])).shape
        torch.Size([2, 1, 33, 40])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        features: int = 64,
        num_blocks: int = 8,
        num_kernels: int = 4,
        noise_level_input: bool = False,
        activation: str = "leakyrelu",
    ) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        if out_channels != in_channels:
            raise ValueError("DRAN learns the noise residual: out_channels must equal in_channels")
        self.noise_aware = bool(noise_level_input)
        extra = 1 if noise_level_input else 0
        self.head = conv(spatial_dims, in_channels + extra, features)
        self.blocks = nn.Sequential(
            *[
                DynamicResidualAttentionBlock(spatial_dims, features, num_kernels, activation)
                for _ in range(num_blocks)
            ]
        )
        self.fuse = conv(spatial_dims, features, features)
        self.tail = conv(spatial_dims, features, out_channels)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float | None) -> torch.Tensor:
        inp = torch.cat([x, sigma_map(x, sigma)], dim=1) if self.noise_aware else x
        h = self.head(inp)
        return x - self.tail(h + self.fuse(self.blocks(h)))
