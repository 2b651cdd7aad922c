"""Self-supervised losses for noisy data without a clean reference (J-invariant training).

- :class:`Neighbor2NeighborLoss` — Huang et al., CVPR 2021: two sub-images drawn from neighbouring
  pixels of each 2×2 (2×2×2 in 3D) cell see independent noise over almost the same signal; the
  net maps one to the other, with a regulariser that ties the result to the full-image output.
- :class:`Noise2SelfLoss` — Batson & Royer, ICML 2019: a grid of pixels is hidden (replaced by the
  mean of its neighbours) and the net is scored only on the hidden pixels, so it cannot copy noise.

Both need only ``image`` (noisy) and work with any net mapping a noisy image to a clean one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import nn


def _cell_pairs(spatial_dims: int) -> torch.Tensor:
    """Ordered pairs of positions inside a 2^d cell that differ in exactly one coordinate."""
    cells = list(itertools.product((0, 1), repeat=spatial_dims))
    pairs = [
        (i, j)
        for i, a in enumerate(cells)
        for j, b in enumerate(cells)
        if sum(x != y for x, y in zip(a, b)) == 1
    ]
    return torch.tensor(pairs, dtype=torch.long)


def _to_cells(x: torch.Tensor) -> torch.Tensor:
    """(B, C, *S) with even sizes -> (B, C, *S/2, 2^d): the pixels of each cell on the last axis."""
    d = x.ndim - 2
    b, c, *sizes = x.shape
    shape = [b, c]
    for s in sizes:
        shape += [s // 2, 2]
    y = x.reshape(shape)
    order = [0, 1, *range(2, 2 + 2 * d, 2), *range(3, 3 + 2 * d, 2)]
    return y.permute(order).reshape(b, c, *[s // 2 for s in sizes], 2**d)


class NeighborSubsampler:
    """Draws a random neighbour pair per cell and returns the two sub-images (Neighbor2Neighbor)."""

    def __init__(self, spatial_dims: int, generator: torch.Generator | None = None) -> None:
        self.pairs = _cell_pairs(spatial_dims)
        self.generator = generator

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        """Choose a pair per cell for a batch shaped like ``x``: (B, *S/2, 2) position indices."""
        b, _, *sizes = x.shape
        grid = [s // 2 for s in sizes]
        choice = torch.randint(len(self.pairs), (b, *grid), generator=self.generator)
        return self.pairs[choice].to(x.device)

    @staticmethod
    def apply(x: torch.Tensor, chosen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two sub-images of ``x`` (cropped to even sizes) for a drawn choice."""
        even = tuple(slice(0, s - s % 2) for s in x.shape[2:])
        cells = _to_cells(x[(slice(None), slice(None), *even)])
        idx = chosen.unsqueeze(1).expand(-1, x.shape[1], *([-1] * (chosen.ndim - 1)))
        first = torch.gather(cells, -1, idx[..., :1]).squeeze(-1)
        second = torch.gather(cells, -1, idx[..., 1:]).squeeze(-1)
        return first, second


class Neighbor2NeighborLoss(nn.Module):
    """Neighbor2Neighbor loss: ``‖f(g1(y)) − g2(y)‖² + γ·‖f(g1(y)) − g2(y) − (g1(f(y)) − g2(f(y)))‖²``.

    ``f(y)`` is computed without gradient, as in the paper. Input sizes must be at least 2 per axis
    (odd sizes lose their last row).

    Args:
        spatial_dims: 2 or 3.
        gamma: weight of the regulariser (the paper ramps it to 2).
        generator: torch generator for the sub-sampling (reproducible runs).
    """

    def __init__(
        self, spatial_dims: int = 2, gamma: float = 2.0, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.sampler = NeighborSubsampler(spatial_dims, generator)
        self.gamma = gamma

    def forward(self, model: Callable[[torch.Tensor], torch.Tensor], noisy: torch.Tensor) -> torch.Tensor:
        chosen = self.sampler.draw(noisy)
        g1, g2 = self.sampler.apply(noisy, chosen)
        with torch.no_grad():
            full = model(noisy)
        f1, f2 = self.sampler.apply(full, chosen)
        pred = model(g1)
        diff = pred - g2
        return (diff**2).mean() + self.gamma * ((diff - (f1 - f2)) ** 2).mean()


class Noise2SelfLoss(nn.Module):
    """Noise2Self (blind-spot masking) loss on a random grid of hidden pixels.

    One pixel in each ``grid``^d cell is hidden (replaced by the mean of its 2d direct neighbours);
    the MSE is taken on the hidden pixels only.

    Args:
        spatial_dims: 2 or 3.
        grid: cell side of the masking grid (4 hides 1/16 of the pixels in 2D).
        generator: torch generator (reproducible runs).
    """

    def __init__(
        self, spatial_dims: int = 2, grid: int = 4, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.grid = grid
        self.generator = generator
        kernel = torch.zeros((3,) * spatial_dims)
        centre = (1,) * spatial_dims
        for axis in range(spatial_dims):
            for step in (-1, 1):
                pos = list(centre)
                pos[axis] += step
                kernel[tuple(pos)] = 1.0 / (2 * spatial_dims)
        self.register_buffer("kernel", kernel[None, None])

    def forward(self, model: Callable[[torch.Tensor], torch.Tensor], noisy: torch.Tensor) -> torch.Tensor:
        offset = torch.randint(self.grid, (self.spatial_dims,), generator=self.generator).tolist()
        mask = torch.zeros(noisy.shape[2:], dtype=torch.bool, device=noisy.device)
        mask[tuple(slice(o, None, self.grid) for o in offset)] = True
        conv = nn.functional.conv2d if self.spatial_dims == 2 else nn.functional.conv3d
        c = noisy.shape[1]
        pad = [1] * (2 * self.spatial_dims)
        padded = nn.functional.pad(noisy, pad, mode="reflect")
        neighbour_mean = conv(
            padded, self.kernel.to(noisy.dtype).expand(c, 1, *self.kernel.shape[2:]), groups=c
        )
        masked_input = torch.where(mask, neighbour_mean, noisy)
        pred = model(masked_input)
        return ((pred - noisy)[..., mask] ** 2).mean()


SELF_SUPERVISED = {"neighbor2neighbor": Neighbor2NeighborLoss, "noise2self": Noise2SelfLoss}
