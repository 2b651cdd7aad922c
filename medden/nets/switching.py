"""Switching denoisers for impulse (salt-and-pepper) noise: find the impulses, change only them.

A net that sees salt-and-pepper noise as one more noise changes every pixel and blurs the image it
should leave alone (the blind ``hmadnet_saltpepper`` was 2-3 dB below a switching median filter).
:class:`ImpulseSwitch` splits the work as the switching median does:

1. **Detect**: the impulse candidates are the voxels at each image's extreme values (its minimum and
   maximum), except those inside a region at that value (the ``region_size`` median equals it: air,
   a saturated highlight), where an impulse cannot be told from the signal —
   :func:`impulse_mask`, the rule of :class:`medden.baselines.SwitchingMedian`.
2. **Fill**: every impulse is replaced by the median of its non-impulse 3×3(×3) neighbours, repeated
   so that the fill grows into impulse clusters (:func:`median_fill`).
3. **Refine**: an HMAD-Net backbone takes the filled image and the impulse mask as two channels and
   predicts a correction to the fill (its last convolution starts at zero, so an untrained net is the
   fill itself, an iterative switching median); the result, kept within the image's range, is used
   **only at the impulses**. Every other voxel is returned bit for bit, so training with any loss on
   the output teaches the net only the impulses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medden.nets.base import Denoiser
from medden.nets.hmadnet import HMADNet


def _neighbours(x: torch.Tensor) -> torch.Tensor:
    """The 3^d neighbours of every voxel of ``x`` (N, 1, *S) as channels (N, 3^d, *S); edges replicate."""
    sd = x.dim() - 2
    k = 9 if sd == 2 else 27  # 3**sd (an int in TorchScript too)
    kernel = torch.eye(k, dtype=x.dtype, device=x.device).reshape([k, 1] + [3] * sd)
    padded = F.pad(x, [1, 1] * sd, mode="replicate")
    return F.conv2d(padded, kernel) if sd == 2 else F.conv3d(padded, kernel)


def _median(x: torch.Tensor, size: int) -> torch.Tensor:
    """Median over a ``size``-wide window of every voxel of ``x`` (N, C, *S), edges reflected."""
    sd = x.dim() - 2
    r = size // 2
    pad = F.pad(x, [r, r] * sd, mode="reflect")
    windows = pad
    for dim in range(2, 2 + sd):
        windows = windows.unfold(dim, size, 1)
    return windows.reshape(list(x.shape) + [-1]).median(dim=-1).values


def impulse_mask(x: torch.Tensor, region_size: int | None = 5) -> torch.Tensor:
    """Boolean mask of the impulses of ``x`` (B, C, *S): voxels at their image's (and channel's)
    minimum or maximum, except inside a region at that value (``region_size`` median equal to it;
    None: no such protection).

    Example:
        >>> x = torch.full((1, 1, 5, 5), 0.5); x[0, 0, 2, 2] = 1.0; x[0, 0, 0, 0] = 0.0
        >>> impulse_mask(x).sum().item()
        2
    """
    flat = x.flatten(2)
    shape = list(x.shape[:2]) + [1] * (x.dim() - 2)
    lo = flat.amin(dim=2).reshape(shape)
    hi = flat.amax(dim=2).reshape(shape)
    at_low, at_high = x <= lo, x >= hi
    impulse = at_low | at_high
    if region_size is not None and region_size > 0 and min(x.shape[2:]) > region_size // 2:
        med = _median(x, region_size)
        impulse &= ~((at_low & (med <= lo)) | (at_high & (med >= hi)))
    return impulse


def median_fill(x: torch.Tensor, impulse: torch.Tensor, iterations: int = 8) -> torch.Tensor:
    """``x`` (B, C, *S) with each ``impulse`` voxel replaced by the median of its non-impulse 3×3(×3)
    neighbours; voxels with none are filled in later passes from the ones filled before, up to
    ``iterations`` passes; what is still left takes its channel's median of the non-impulse voxels."""
    shape = x.shape
    flat = x.reshape([-1, 1] + list(shape[2:]))
    todo = impulse.reshape(flat.shape)
    filled = flat.clone()
    for _ in range(iterations):
        if not bool(todo.any()):
            break
        good = (~todo).to(x.dtype)
        values = _neighbours(filled * good)
        valid = _neighbours(good) > 0.5
        med = torch.nanmedian(values.masked_fill(~valid, float("nan")), dim=1, keepdim=True).values
        can = todo & valid.any(dim=1, keepdim=True)
        filled = torch.where(can, med, filled)
        todo = todo & ~can
    if bool(todo.any()):
        rest = torch.nanmedian(flat.masked_fill(impulse.reshape(flat.shape), float("nan")).flatten(1), dim=1)
        fallback = torch.nan_to_num(rest.values, nan=0.5).reshape([-1, 1] + [1] * (len(shape) - 2))
        filled = torch.where(todo, fallback.expand_as(filled), filled)
    return filled.reshape(shape)


class ImpulseSwitch(Denoiser):
    """HMAD-Net as a switching salt-and-pepper denoiser: detect, fill, refine only the impulses.

    ``net(x)`` on (B, C, H, W) or (B, C, D, H, W) in [0, 1]: the voxels :func:`impulse_mask` finds are
    filled by :func:`median_fill` and corrected by an HMAD-Net that takes ``[filled, mask]`` per channel;
    all other voxels are returned unchanged (bit-identical).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels (each channel is detected and filled on its own).
        out_channels: must equal ``in_channels``.
        features: HMAD-Net widths (encoder levels and bottleneck), default half width.
        region_size: window of the median that protects uniform extreme regions (odd; None: off).
        fill_iterations: passes of :func:`median_fill`.
        refine: use the HMAD-Net refinement (False: the fill alone, an iterative switching median).

    Example:
        >>> net = ImpulseSwitch(2, 1, 1, features=(8, 16))
        >>> x = torch.rand(1, 1, 20, 20); x[0, 0, 5, 5] = 1.0
        >>> keep = ~impulse_mask(x)
        >>> bool((net(x)[keep] == x[keep]).all())
        True
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (16, 32, 64, 128),
        region_size: int | None = 5,
        fill_iterations: int = 8,
        refine: bool = True,
    ) -> None:
        if out_channels != in_channels:
            raise ValueError("ImpulseSwitch returns its input channels: out_channels must equal in_channels")
        if region_size is not None and (region_size < 3 or region_size % 2 == 0):
            raise ValueError(f"region_size must be odd and >= 3 (or None), got {region_size}")
        if fill_iterations < 1:
            raise ValueError(f"fill_iterations must be >= 1, got {fill_iterations}")
        super().__init__(spatial_dims, in_channels, out_channels, multiple=1)
        self.region_size, self.fill_iterations = region_size, int(fill_iterations)
        self.backbone = (
            HMADNet(spatial_dims, 2 * in_channels, in_channels, features=features, output="linear")
            if refine
            else None
        )
        if self.backbone is not None:  # start as the fill: the correction is zero until trained
            nn.init.zeros_(self.backbone.head.weight)
            if self.backbone.head.bias is not None:
                nn.init.zeros_(self.backbone.head.bias)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float | None) -> torch.Tensor:
        impulse = impulse_mask(x, self.region_size)
        filled = median_fill(x, impulse, self.fill_iterations)
        if self.backbone is None:
            return torch.where(impulse, filled, x)
        mask = impulse.to(x.dtype)
        pairs = torch.stack([filled, mask], dim=2).flatten(1, 2)  # per channel: filled, mask
        shape = list(x.shape[:2]) + [1] * (x.dim() - 2)
        lo = x.flatten(2).amin(dim=2).reshape(shape)
        hi = x.flatten(2).amax(dim=2).reshape(shape)
        refined = torch.maximum(torch.minimum(filled + self.backbone(pairs), hi), lo)
        return torch.where(impulse, refined, x)
