"""Convolution helpers for 2D and 3D (MONAI's layer factories pick the right class)."""

from __future__ import annotations

from monai.networks.layers.factories import Act, Conv, Norm, Pool
from torch import nn

__all__ = ["Act", "Conv", "Norm", "Pool", "conv", "act"]


def conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = True,
) -> nn.Module:
    """A 'same'-padded convolution (``kernel_size`` odd) in 1, 2 or 3 spatial dimensions."""
    padding = dilation * (kernel_size - 1) // 2
    return Conv[Conv.CONV, spatial_dims](
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=bias,
    )


def act(name: str = "silu") -> nn.Module:
    """An activation by MONAI name (``silu``/``swish``, ``relu``, ``prelu``, ``leakyrelu`` …)."""
    name = name.lower()
    if name == "silu":
        return nn.SiLU()
    return Act[name]()
