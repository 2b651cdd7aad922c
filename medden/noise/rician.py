"""Rician noise, the magnitude-MRI noise model."""

from __future__ import annotations

from typing import Any

import numpy as np

from medden.noise._common import as_rng, float_array, like, resolve_sigma, standard_normal


def rician(
    x: Any,
    level: float | None = None,
    *,
    sigma: float | None = None,
    reference: float | None = None,
    rng: Any = None,
) -> Any:
    """Add Rician noise: ``sqrt((x + n1)² + n2²)`` with ``n1, n2 ~ N(0, σ²)``.

    Args:
        x: image, numpy array or torch tensor of any shape (channel-first 2D or 3D), float32/float64
            kept (integers are computed in float64).
        level: σ relative to ``reference`` (BrainWeb protocol: 0.01–0.09 of the image maximum).
        sigma: absolute σ in the image's units, instead of ``level``.
        reference: the intensity ``level`` is relative to; the image maximum when None.
        rng: seed, numpy ``Generator`` or ``RandomState`` (MONAI's ``self.R``).

    Returns:
        the noisy image, same type, shape, dtype and device as ``x``.

    Example:
        >>> import numpy as np
        >>> y = rician(np.zeros((1, 64, 64)), sigma=1.0, rng=0)
        >>> bool(abs(y.mean() - np.sqrt(np.pi / 2)) < 0.05)
        True
    """
    arr = float_array(x)
    s = resolve_sigma(arr, level, sigma, reference)
    gen = as_rng(rng)
    n1 = standard_normal(gen, arr.shape) * s
    n2 = standard_normal(gen, arr.shape) * s
    out = np.sqrt((arr + n1) ** 2 + n2**2).astype(arr.dtype, copy=False)
    return like(out, x)
