"""Low-light degradation: darkening (gain and gamma) plus Poisson-Gaussian noise, for LOL-like pairs."""

from __future__ import annotations

from typing import Any

import numpy as np

from medden.noise._common import float_array, image_max, like
from medden.noise.poisson import poisson_gaussian


def lowlight(
    x: Any,
    gain: float = 0.15,
    *,
    gamma: float = 1.5,
    peak: float = 200.0,
    read_sigma: float = 0.005,
    reference: float | None = None,
    rng: Any = None,
) -> Any:
    """Make a well-exposed image look like a low-light capture.

    ``dark = gain × (x / reference) ** gamma``, then shot noise with ``peak`` photons at full scale
    and read-out noise ``read_sigma`` (both relative to the full scale), clipped to [0, 1] and
    scaled back by ``reference``. The shot noise is applied to the darkened signal, so it is
    relatively much stronger than in the bright image, as in a real low-light capture.

    Args:
        x: well-exposed image, numpy array or torch tensor, non-negative.
        gain: brightness factor in (0, 1]; LOL's low images are roughly 0.05–0.3 of the normal ones.
        gamma: exponent > 0 applied before the gain (> 1 crushes the shadows further).
        peak: photons collected at full scale (after darkening, a pixel at ``gain`` gets ``gain × peak``).
        read_sigma: read-out noise σ relative to full scale.
        reference: full-scale intensity; the image maximum when None.
        rng: seed, numpy ``Generator`` or ``RandomState``.

    Returns:
        the dark noisy image, same type, shape, dtype and device as ``x``.

    Example:
        >>> import numpy as np
        >>> y = lowlight(np.full((3, 64, 64), 0.8), gain=0.1, reference=1.0, rng=0)
        >>> bool(0.05 < y.mean() < 0.1)
        True
    """
    if not 0.0 < gain <= 1.0:
        raise ValueError(f"gain must be in (0, 1], got {gain}")
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    arr = float_array(x)
    ref = image_max(arr) if reference is None else float(reference)
    dark = gain * np.clip(arr / ref, 0.0, 1.0) ** gamma
    noisy = poisson_gaussian(dark, peak, read_sigma=read_sigma, reference=1.0, clip=True, rng=rng)
    return like((noisy * ref).astype(arr.dtype, copy=False), x)
