"""Additive white Gaussian noise (AWGN)."""

from __future__ import annotations

from typing import Any

import numpy as np

from medden.noise._common import as_rng, float_array, like, resolve_sigma, standard_normal


def gaussian(
    x: Any,
    level: float | None = None,
    *,
    sigma: float | None = None,
    reference: float | None = None,
    clip: tuple[float, float] | None = None,
    rng: Any = None,
) -> Any:
    """Add white Gaussian noise of standard deviation σ.

    Natural-image convention: σ on the 0–255 scale, i.e. ``sigma=25`` for an 8-bit image or
    ``sigma=25/255`` for an image in [0, 1] (see :func:`sigma_255`). Medical convention: ``level``
    relative to ``reference`` (the image maximum by default).

    Args:
        x: image, numpy array or torch tensor of any shape.
        level: σ relative to ``reference``.
        sigma: absolute σ in the image's units, instead of ``level``.
        reference: the intensity ``level`` is relative to; the image maximum when None.
        clip: ``(low, high)`` to clip the result to, or None for no clipping.
        rng: seed, numpy ``Generator`` or ``RandomState``.

    Returns:
        the noisy image, same type, shape, dtype and device as ``x``.

    Example:
        >>> import numpy as np
        >>> y = gaussian(np.zeros((1, 128, 128)), sigma=sigma_255(25), rng=0)
        >>> bool(abs(y.std() - 25 / 255) < 0.002)
        True
    """
    arr = float_array(x)
    s = resolve_sigma(arr, level, sigma, reference)
    out = arr + standard_normal(as_rng(rng), arr.shape) * s
    if clip is not None:
        out = np.clip(out, clip[0], clip[1])
    return like(out.astype(arr.dtype, copy=False), x)


def sigma_255(sigma: float, data_range: float = 1.0) -> float:
    """Convert a σ given on the 0–255 scale to an image of range ``data_range`` (1.0 for [0, 1])."""
    return float(sigma) * data_range / 255.0
