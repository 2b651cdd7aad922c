"""Poisson-Gaussian (shot + read-out) noise."""

from __future__ import annotations

from typing import Any

import numpy as np

from medden.noise._common import as_rng, float_array, image_max, like, poisson, standard_normal


def poisson_gaussian(
    x: Any,
    peak: float,
    *,
    read_sigma: float = 0.0,
    reference: float | None = None,
    clip: bool = False,
    rng: Any = None,
) -> Any:
    """Shot noise for a sensor collecting ``peak`` photons at ``reference``, plus Gaussian read-out.

    ``y = reference × (Poisson(peak × x / reference) / peak + N(0, read_sigma²))``; the signal stays
    on average where it was and the shot-noise variance is ``reference × x / peak``.

    Args:
        x: image, numpy array or torch tensor of any shape, non-negative.
        peak: photon count at ``reference`` (> 0); smaller is noisier (e.g. 1000 mild, 10 severe).
        read_sigma: read-out σ relative to ``reference``.
        reference: the intensity that collects ``peak`` photons; the image maximum when None.
        clip: clip the result to ``[0, reference]``.
        rng: seed, numpy ``Generator`` or ``RandomState``.

    Returns:
        the noisy image, same type, shape, dtype and device as ``x``.

    Example:
        >>> import numpy as np
        >>> y = poisson_gaussian(np.full((1, 256, 256), 0.5), peak=100, reference=1.0, rng=0)
        >>> bool(abs(y.var() - 0.5 / 100) < 5e-4)
        True
    """
    if peak <= 0:
        raise ValueError(f"peak must be > 0, got {peak}")
    if read_sigma < 0:
        raise ValueError(f"read_sigma must be >= 0, got {read_sigma}")
    arr = float_array(x)
    ref = image_max(arr) if reference is None else float(reference)
    gen = as_rng(rng)
    photons = poisson(gen, np.clip(arr / ref, 0.0, None) * peak)
    out = photons / peak
    if read_sigma > 0:
        out = out + standard_normal(gen, arr.shape) * read_sigma
    out = out * ref
    if clip:
        out = np.clip(out, 0.0, ref)
    return like(out.astype(arr.dtype, copy=False), x)
