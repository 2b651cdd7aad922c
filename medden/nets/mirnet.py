"""MIRNet (Zamir et al., ECCV 2020): multi-scale residual learning for restoration and low light."""

from __future__ import annotations

import torch
from torch import nn

from medden.nets.base import Denoiser
from medden.nets.blocks import SKFF, DualAttention, conv, resample


class MultiScaleResidualBlock(nn.Module):
    """Three (``height``) parallel streams at full, 1/2 and 1/4 resolution with ``factor``× more
    channels per halving; each stream passes ``width`` dual attention units, and the streams are
    exchanged between units through SKFF (the "mesh"); the result is fused to full resolution by
    SKFF, convolved and added to the input. The published code builds the units of a stream as
    ``[DAU] * width``, one unit applied ``width`` times; ``share_units=True`` reproduces that (and the
    published parameter count), ``False`` gives every position its own unit."""

    def __init__(
        self, channels: int, height: int, width: int, factor: float, reduction: int, share_units: bool
    ) -> None:
        super().__init__()
        self.height, self.width, self.share_units = height, width, share_units
        feats = [int(channels * factor**i) for i in range(height)]
        columns = 1 if share_units else width
        self.units = nn.ModuleList(
            [nn.ModuleList([DualAttention(2, f, reduction) for _ in range(columns)]) for f in feats]
        )
        self.down = nn.ModuleDict()
        self.up = nn.ModuleDict()
        for k in range(height):
            for j in range(height):
                if k < j:
                    self.down[f"{k}_{j}"] = resample(feats[k], 2 ** (j - k), factor, down=True)
                elif k > j:
                    self.up[f"{k}_{j}"] = resample(feats[k], 2 ** (k - j), factor, down=False)
        self.mesh = nn.ModuleList(
            [nn.ModuleList([SKFF(2, f, height, reduction) for f in feats]) for _ in range(width - 1)]
        )
        self.last = nn.ModuleList([resample(feats[k], 2**k, factor, down=False) for k in range(1, height)])
        self.fuse = SKFF(2, channels, height, reduction)
        self.conv_out = conv(2, channels, channels)

    def _move(self, x: torch.Tensor, k: int, j: int) -> torch.Tensor:
        """``x`` from stream ``k``'s resolution to stream ``j``'s (``down``/``up`` key ``"k_j"``).

        TorchScript indexes a ModuleDict only with a literal key, so the key is matched in a loop
        over the (unrolled) dict: one branch runs."""
        key = f"{k}_{j}"
        for name, module in self.down.items():
            if name == key:
                x = module(x)
        for name, module in self.up.items():
            if name == key:
                x = module(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # every ModuleList is iterated, not indexed by a variable, so that TorchScript unrolls it
        streams: list[torch.Tensor] = []
        s = x
        for j, stream_units in enumerate(self.units):
            s = stream_units[0](s if j == 0 else self._move(s, j - 1, j))
            streams.append(s)
        for i, mesh in enumerate(self.mesh):  # mesh i joins unit columns i and i + 1
            mixed: list[torch.Tensor] = []
            for j, skff in enumerate(mesh):
                mixed.append(skff([self._move(streams[k], k, j) for k in range(self.height)]))
            col = 0 if self.share_units else i + 1
            streams = []
            for j, stream_units in enumerate(self.units):
                for c, unit in enumerate(stream_units):
                    if c == col:
                        streams.append(unit(mixed[j]))
        full = [streams[0]]
        for k, last in enumerate(self.last):
            full.append(last(streams[k + 1]))
        return x + self.conv_out(self.fuse(full))


class RecursiveResidualGroup(nn.Module):
    """``x + conv(MSRB(…(MSRB(conv(x)))))``."""

    def __init__(
        self,
        channels: int,
        num_blocks: int,
        height: int,
        width: int,
        factor: float,
        reduction: int,
        share_units: bool,
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *[
                MultiScaleResidualBlock(channels, height, width, factor, reduction, share_units)
                for _ in range(num_blocks)
            ],
            conv(2, channels, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MIRNet(Denoiser):
    """MIRNet: a shallow convolution, ``num_groups`` recursive residual groups of ``num_blocks``
    multi-scale residual blocks, and a reconstruction convolution.

    The published configuration (``features=64, factor=2, num_groups=3, num_blocks=2, height=3,
    width=2``, one dual attention unit per stream reused across the width: ``share_units=True``,
    31.8 M parameters) is the ``mirnet`` registry entry; ``mirnet-compact`` is small enough to train on a
    CPU. With ``residual=True`` (denoising) the output is ``x + reconstruction``; for low-light
    enhancement use ``residual=False``: the output is the reconstruction itself, not tied to the
    dark input.

    Args:
        spatial_dims: 2 (the net is 2D).
        in_channels: input channels (3 for RGB).
        out_channels: output channels.
        features: channels of the full-resolution stream.
        factor: channel multiplier per halving of the resolution.
        num_groups: recursive residual groups.
        num_blocks: multi-scale residual blocks per group.
        height: resolution streams (inputs are padded to a multiple of ``2 ** (height − 1)``).
        width: dual attention units per stream.
        reduction: channel reduction in the attention units and SKFF.
        residual: add the input to the output (denoising) or not (low-light enhancement).
        share_units: reuse one dual attention unit across the width of each stream, as the published
            code does (False: distinct units).

    Example:
        >>> import torch
        >>> from medden.nets import MIRNet
        >>> net = MIRNet(spatial_dims=2, features=8, num_groups=1, num_blocks=1).eval()
        >>> net(torch.rand(1, 3, 37, 50)).shape
        torch.Size([1, 3, 37, 50])
    """

    supported_dims = (2,)

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 3,
        features: int = 64,
        factor: float = 2.0,
        num_groups: int = 3,
        num_blocks: int = 2,
        height: int = 3,
        width: int = 2,
        reduction: int = 8,
        residual: bool = True,
        share_units: bool = False,
    ) -> None:
        super().__init__(spatial_dims, in_channels, out_channels, multiple=2 ** (height - 1))
        if residual and out_channels != in_channels:
            raise ValueError("a residual MIRNet needs out_channels == in_channels (use residual=False)")
        self.residual = residual
        self.conv_in = conv(2, in_channels, features)
        self.groups = nn.Sequential(
            *[
                RecursiveResidualGroup(features, num_blocks, height, width, factor, reduction, share_units)
                for _ in range(num_groups)
            ]
        )
        self.conv_out = conv(2, features, out_channels)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float | None) -> torch.Tensor:
        y = self.conv_out(self.groups(self.conv_in(x)))
        return x + y if self.residual else y
