"""Fixed (not learned) depthwise filters: Sobel gradients in 2 or 4 directions and a blur for
anti-aliased downsampling. The kernels are buffers, so they are saved with the state dict but never
trained.

GIMSANet's partial public code builds its "horizontal" Sobel kernel wrongly; here the vertical
kernel is the true transpose of the horizontal one (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Sobel kernels: ``h`` is d/dx (responds to vertical edges), ``v`` its transpose (d/dy), ``d45`` and
#: ``d135`` the two diagonal gradients.
SOBEL: dict[str, list[list[float]]] = {
    "h": [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
    "v": [[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]],
    "d45": [[0.0, 1.0, 2.0], [-1.0, 0.0, 1.0], [-2.0, -1.0, 0.0]],
    "d135": [[-2.0, -1.0, 0.0], [-1.0, 0.0, 1.0], [0.0, 1.0, 2.0]],
}


class FixedFilter2d(nn.Module):
    """Apply fixed 2D kernels to every channel separately (depthwise), replicate-padded.

    Args:
        channels: input channels C.
        kernels: (K, k, k) kernels; the output has C·K channels, grouped per input channel.
        stride: 1 (filtering) or 2 (anti-aliased downsampling with a blur kernel).
    """

    def __init__(self, channels: int, kernels: torch.Tensor, stride: int = 1) -> None:
        super().__init__()
        k = kernels.shape[-1]
        self.channels, self.stride, self.pad = channels, stride, (k - 1) // 2
        weight = kernels[:, None].repeat(channels, 1, 1, 1)  # (C·K, 1, k, k)
        self.register_buffer("weight", weight.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pad
        x = F.pad(x, (p, p, p, p), mode="replicate") if p else x
        return F.conv2d(x, self.weight.to(x.dtype), stride=self.stride, groups=self.channels)


class GradientFilter(FixedFilter2d):
    """Sobel gradient maps of each input channel in the given directions (2D).

    Args:
        channels: input channels C; the output has ``C · len(directions)`` channels.
        directions: any of ``h``, ``v``, ``d45``, ``d135`` (GIMSANet: h, v; MGMSDNet: all four).
    """

    def __init__(self, channels: int, directions: tuple[str, ...] = ("h", "v")) -> None:
        unknown = set(directions) - set(SOBEL)
        if unknown:
            raise ValueError(f"unknown gradient directions {sorted(unknown)}; choose from {sorted(SOBEL)}")
        super().__init__(channels, torch.tensor([SOBEL[d] for d in directions]) / 8.0)
        self.directions = tuple(directions)


class Blur2d(FixedFilter2d):
    """Binomial [1, 2, 1] ⊗ [1, 2, 1] / 16 blur with stride 2 (anti-aliased downsampling, Zhang 2019)."""

    def __init__(self, channels: int) -> None:
        b = torch.tensor([1.0, 2.0, 1.0])
        super().__init__(channels, (torch.outer(b, b) / 16.0)[None], stride=2)
