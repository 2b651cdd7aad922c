"""Inference over whole images and volumes: slice-wise 2D, 2.5D, tri-planar 2D, 3D sliding window, tiled 2D.

Every inferer takes a *denoiser* — any callable ``fn(x, sigma=None)`` mapping a (B, C, H, W) or
(B, C, D, H, W) tensor in [0, 1] to the same shape (a medden net, or a classical baseline behind the
same interface) — and a channel-first image ``(C, *spatial)`` already scaled into [0, 1] by
:class:`IntensityScaler`, whose exact inverse brings the result back to the input's units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medden.denoiser import ENSEMBLE_SIZES, INTENSITIES, is_ensemble_size

#: what the inferers call: the call of a :class:`medden.denoiser.Denoiser`, or any function like it
DenoiseFn = Callable[..., torch.Tensor]
MODES = ("2d", "2.5d", "triplanar", "3d", "tiled2d")
#: tri-planar mode slices a volume along each axis at least this long (shorter ones: too thin for a 2D net)
TRIPLANAR_MIN_SIDE = 16


def _call(fn: DenoiseFn, x: torch.Tensor, sigma: float | None) -> torch.Tensor:
    if sigma is None:
        out = fn(x)
    else:
        out = fn(x, torch.full((x.shape[0],), float(sigma), dtype=x.dtype, device=x.device))
    # callers (MONAI's sliding window) write into their input buffers: never hand back an alias
    return out.clone() if out.data_ptr() == x.data_ptr() else out


def _plain(x: Any) -> torch.Tensor:
    t = x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x)
    return t.float()


#: how :class:`IntensityScaler` picks its range
INTENSITY_MODES = INTENSITIES


@dataclass
class IntensityScaler:
    """A per-image linear map into [0, 1] with an exact inverse.

    ``scaled = (x − low) / (high − low)``. With ``mode="minmax"`` (the default) ``low``/``high`` are
    the image's minimum and maximum and nothing is clipped. With ``mode="percentile"`` they are the
    ``percentiles`` of the image (robust to a few very bright voxels such as metal in CT); voxels
    outside are clipped for the denoiser, counted in ``clipped``, and given back unchanged by
    :meth:`inverse` (they are passed through, not denoised). With ``mode="dtype"`` the range is the
    input's type: 0 to 255 for 8-bit, 0 to 65535 for 16-bit images (a photograph's brightness is kept:
    what a low-light model needs, and what a σ on 0-255 means), [0, 1] for floats already in it, and
    the minimum and maximum otherwise. With ``mode="unit"`` the data are taken as already on [0, 1]
    (the identity map, nothing clipped: values outside [0, 1], such as unclipped noise around black or
    white, reach the denoiser as they are, as in training); what an evaluation on [0, 1] data uses for
    models scaled by ``dtype``, the equivalent of an 8-bit file's 0-255.

    Example:
        >>> import numpy as np
        >>> x = np.array([[-1000.0, 0.0, 1000.0]])
        >>> s = IntensityScaler.fit(x)
        >>> s.forward(x).tolist(), s.inverse(s.forward(x), x).tolist()
        ([[0.0, 0.5, 1.0]], [[-1000.0, 0.0, 1000.0]])
    """

    low: float
    high: float
    clipped: int = 0
    mode: str = "minmax"

    @classmethod
    def fit(cls, x: Any, mode: str = "minmax", percentiles: Sequence[float] = (0.5, 99.5)) -> IntensityScaler:
        raw = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x)
        arr = raw.astype(np.float64, copy=False)
        finite = arr[np.isfinite(arr)]
        if finite.size == 0:
            raise ValueError("the image has no finite value")
        if mode == "unit":
            return cls(low=0.0, high=1.0, clipped=0, mode=mode)
        if mode == "dtype" and np.issubdtype(raw.dtype, np.integer):
            info = np.iinfo(raw.dtype)
            low, high = (float(info.min), float(info.max)) if info.min < 0 else (0.0, float(info.max))
        elif mode == "dtype" and finite.min() >= 0.0 and finite.max() <= 1.0:
            low, high = 0.0, 1.0
        elif mode in ("minmax", "dtype"):
            low, high = float(finite.min()), float(finite.max())
        elif mode == "percentile":
            low, high = (float(v) for v in np.percentile(finite, percentiles))
        else:
            raise ValueError(f"mode must be one of {INTENSITY_MODES}, not {mode!r}")
        if high <= low:
            high = low + 1.0  # a constant image: any positive span maps it to 0
        clipped = int(np.count_nonzero((arr < low) | (arr > high)))
        return cls(low=low, high=high, clipped=clipped, mode=mode)

    @property
    def span(self) -> float:
        return self.high - self.low

    def forward(self, x: Any) -> Any:
        """Scale into [0, 1] (clipped; ``unit``: unchanged)."""
        if self.mode == "unit":
            return x
        lib = torch if torch.is_tensor(x) else np
        return lib.clip((x - self.low) / self.span, 0.0, 1.0)

    def inverse(self, y: Any, original: Any | None = None) -> Any:
        """Back to the input's units; voxels that were clipped take their ``original`` value."""
        out = y * self.span + self.low
        if original is not None and self.clipped:
            outside = (original < self.low) | (original > self.high)
            out = (
                torch.where(outside, original, out)
                if torch.is_tensor(out)
                else np.where(outside, original, out)
            )
        return out


def _ensemble_members(spatial_dims: int, size: int) -> list[tuple[int, tuple[int, ...]]]:
    """The first ``size`` geometric transforms as (quarter turns of the last two axes, flipped axes).

    2D: the eight symmetries of the square (identity, left-right, up-down, half turn, then the quarter
    turns with and without a flip), as the training's RandFlip/RandRotate90 draw them. 3D: the eight
    flips of the three axes (no axis is swapped, so anisotropic voxels keep their spacing)."""
    if spatial_dims == 3:
        flips = [(), (-1,), (-2,), (-1, -2), (-3,), (-3, -1), (-3, -2), (-3, -2, -1)]
        return [(0, f) for f in flips[:size]]
    square = [(0, ()), (0, (-1,)), (0, (-2,)), (2, ()), (1, ()), (1, (-1,)), (3, ()), (3, (-1,))]
    return square[:size]


class SelfEnsemble:
    """A denoiser averaged over geometric copies of its input (the "self-ensemble" of Lim et al.,
    EDSR 2017; Timofte et al., CVPR 2016): each copy is flipped/rotated, denoised, and turned back.

    The errors of a convolutional net differ from copy to copy while the signal does not, so the
    mean is a little better, at ``size`` times the cost. Where every copy returns the same value
    (a switching denoiser passing an uncorrupted pixel) that value is returned exactly.

    Example:
        >>> import torch
        >>> SelfEnsemble(lambda x: x * 2, 8, spatial_dims=2)(torch.ones(1, 1, 2, 3)).unique().tolist()
        [2.0]
    """

    def __init__(self, fn: DenoiseFn, size: int, spatial_dims: int) -> None:
        if not is_ensemble_size(size):
            raise ValueError(f"ensemble size must be one of {ENSEMBLE_SIZES}, got {size!r}")
        self.fn, self.size, self.spatial_dims = fn, size, spatial_dims
        self.members = _ensemble_members(spatial_dims, size)

    def parameters(self) -> Any:
        """The wrapped net's parameters (where it runs), none for a baseline."""
        return self.fn.parameters() if hasattr(self.fn, "parameters") else iter(())

    def __call__(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        outs = []
        for turns, flips in self.members:
            y = torch.flip(x, flips) if flips else x
            y = torch.rot90(y, turns, (-2, -1)) if turns else y
            out = self.fn(y) if sigma is None else self.fn(y, sigma)
            out = torch.rot90(out, -turns, (-2, -1)) if turns else out
            outs.append(torch.flip(out, flips) if flips else out)
        stacked = torch.stack(outs)
        return torch.where((stacked == stacked[0]).all(0), stacked[0], stacked.mean(0))


def slicewise(
    fn: DenoiseFn,
    image: Any,
    axis: int = -1,
    batch_size: int = 8,
    sigma: float | None = None,
    context: int = 0,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Denoise a volume ``(C, X, Y, Z)`` one 2D slice at a time along spatial ``axis`` (0, 1, 2 or -1).

    With ``context = k > 0`` (2.5D) each slice is given with its ``k`` neighbours on either side as
    extra channels (edges replicated): the denoiser must take ``C·(2k+1)`` channels and return ``C``.

    Args:
        fn: the denoiser.
        image: channel-first volume in [0, 1] (tensor or array).
        axis: spatial axis to slice along (0..2, or -1 for the last).
        batch_size: slices per call.
        sigma: noise level passed to noise-level-aware denoisers (same scale as the image).
        context: neighbouring slices on each side given as channels (2.5D).
        progress: called with the number of slices done after each batch.

    Returns:
        the denoised volume, same shape, float32 on the CPU.
    """
    vol = _plain(image)
    if vol.ndim != 4:
        raise ValueError(f"slicewise needs a channel-first volume (C, X, Y, Z), got shape {tuple(vol.shape)}")
    ax = (axis % 3) + 1
    moved = vol.movedim(ax, 0)  # (S, C, H, W)
    n = moved.shape[0]
    out = torch.empty_like(moved)
    device = _device_of(fn)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n))
            if context:
                offsets = torch.arange(-context, context + 1)
                neighbours = (idx[:, None] + offsets[None]).clamp(0, n - 1)  # (B, 2k+1)
                x = moved[neighbours].flatten(1, 2)  # (B, (2k+1)·C, H, W)
            else:
                x = moved[idx]
            out[idx] = _call(fn, x.to(device), sigma).float().cpu()
            if progress is not None:
                progress(len(idx))
    return out.movedim(0, ax)


def sliding_window(
    fn: DenoiseFn,
    image: Any,
    roi_size: Sequence[int] = (64, 64, 64),
    overlap: float = 0.25,
    sw_batch_size: int = 1,
    sigma: float | None = None,
    mode: str = "gaussian",
) -> torch.Tensor:
    """Denoise a volume ``(C, X, Y, Z)`` (or a large image ``(C, H, W)``) by overlapping windows.

    MONAI's ``SlidingWindowInferer`` with Gaussian blending: memory stays bounded by the window, not the
    image, so a 512×512×300 volume or a 4k radiograph fits in a few GiB.

    Args:
        fn: the denoiser (3D for volumes, 2D for images).
        image: channel-first image in [0, 1].
        roi_size: window size per spatial dim (clipped to the image).
        overlap: fraction of overlap between windows.
        sw_batch_size: windows per call.
        sigma: noise level for noise-level-aware denoisers.
        mode: blending, ``gaussian`` or ``constant``.

    Returns:
        the denoised image, same shape, float32 on the CPU.
    """
    from monai.inferers import SlidingWindowInferer

    img = _plain(image)
    spatial = img.shape[1:]
    if len(roi_size) != len(spatial):
        raise ValueError(f"roi_size {tuple(roi_size)} does not match the image's {len(spatial)} spatial dims")
    roi = [min(r, s) for r, s in zip(roi_size, spatial)]
    inferer = SlidingWindowInferer(
        roi_size=roi,
        sw_batch_size=sw_batch_size,
        overlap=overlap,
        mode=mode,
        sw_device=_device_of(fn),
        device="cpu",
    )
    with torch.inference_mode():
        out = inferer(img[None], lambda x: _call(fn, x, sigma))
    return out[0].float()


def tiled2d(
    fn: DenoiseFn, image: Any, tile: int = 512, overlap: float = 0.125, sigma: float | None = None
) -> torch.Tensor:
    """Denoise a large 2D image ``(C, H, W)`` in overlapping tiles (bounded memory)."""
    return sliding_window(fn, image, roi_size=(tile, tile), overlap=overlap, sigma=sigma)


def triplanar_axes(shape: Sequence[int], axis: int = -1) -> list[int]:
    """The spatial axes tri-planar mode slices a volume of spatial ``shape`` along: those at least
    :data:`TRIPLANAR_MIN_SIDE` long in both other directions (a thin slab: the one across it), or ``axis``
    when there is none."""
    axes = [a for a in range(3) if all(shape[b] >= TRIPLANAR_MIN_SIDE for b in range(3) if b != a)]
    return axes or [axis % 3]


def triplanar(
    fn: DenoiseFn,
    image: Any,
    axis: int = -1,
    batch_size: int = 8,
    sigma: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Denoise a volume ``(C, X, Y, Z)`` with a 2D denoiser slice by slice along each of its three axes
    and average the three results (multi-planar fusion).

    The errors of the three passes are only partly correlated, so their mean is better than any one
    of them; in-plane and through-plane structure both count. An axis along which the slices would be
    thinner than :data:`TRIPLANAR_MIN_SIDE` pixels (a thin slab) is left out (:func:`triplanar_axes`).
    """
    vol = _plain(image)
    if vol.ndim != 4:
        raise ValueError(f"triplanar needs a channel-first volume (C, X, Y, Z), got shape {tuple(vol.shape)}")
    axes = triplanar_axes(vol.shape[1:], axis)
    total = torch.zeros_like(vol)
    for a in axes:
        total += slicewise(fn, vol, axis=a, batch_size=batch_size, sigma=sigma, progress=progress)
    return total / len(axes)


def _device_of(fn: Any) -> torch.device:
    try:
        return next(fn.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


def infer(
    fn: DenoiseFn,
    image: Any,
    mode: str = "2d",
    axis: int = -1,
    batch_size: int = 8,
    sigma: float | None = None,
    roi_size: Sequence[int] | None = None,
    overlap: float = 0.25,
    context: int = 1,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Run ``fn`` on a channel-first image in [0, 1] in the given ``mode``.

    ``2d`` — a 2D image ``(C, H, W)`` in one call, or a volume slice by slice along ``axis``;
    ``2.5d`` — slices with ``context`` neighbours as channels; ``triplanar`` — slice by slice along
    each axis, the three averaged (:func:`triplanar`); ``3d`` — sliding window over the volume
    (``roi_size`` default 64³); ``tiled2d`` — overlapping tiles over a large 2D image.
    """
    img = _plain(image)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if img.ndim == 3:  # a 2D image
        if mode in ("3d", "2.5d", "triplanar"):
            raise ValueError(f"mode {mode} needs a volume; this is a 2D image")
        if mode == "tiled2d" or max(img.shape[1:]) > 1024:
            return tiled2d(fn, img, sigma=sigma)
        with torch.inference_mode():
            out = _call(fn, img[None].to(_device_of(fn)), sigma)[0].float().cpu()
        if progress is not None:
            progress(1)
        return out
    if img.ndim != 4:
        raise ValueError(f"expected (C, H, W) or (C, X, Y, Z), got shape {tuple(img.shape)}")
    if mode == "3d":
        out = sliding_window(fn, img, roi_size=roi_size or (64, 64, 64), overlap=overlap, sigma=sigma)
        if progress is not None:
            progress(img.shape[1:][axis])
        return out
    if mode == "tiled2d":
        raise ValueError("tiled2d is for 2D images; use 2d or 3d for volumes")
    if mode == "triplanar":
        return triplanar(fn, img, axis=axis, batch_size=batch_size, sigma=sigma, progress=progress)
    return slicewise(
        fn,
        img,
        axis=axis,
        batch_size=batch_size,
        sigma=sigma,
        context=context if mode == "2.5d" else 0,
        progress=progress,
    )
