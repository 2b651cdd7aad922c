"""Salt-and-pepper (impulse) noise."""

from __future__ import annotations

from typing import Any

import numpy as np

from medden.noise._common import as_rng, float_array, like, permutation


def salt_pepper(
    x: Any,
    amount: float,
    *,
    salt_vs_pepper: float = 0.5,
    low: float | None = None,
    high: float | None = None,
    rng: Any = None,
    return_mask: bool = False,
) -> Any:
    """Set a fraction ``amount`` of the voxels to the image's minimum (pepper) or maximum (salt).

    Exactly ``round(amount × N)`` voxels (elements, so each channel independently) are corrupted,
    chosen uniformly without replacement; ``round(salt_vs_pepper × that)`` of them become salt.

    Args:
        x: image, numpy array or torch tensor of any shape.
        amount: fraction of voxels corrupted, in [0, 1].
        salt_vs_pepper: fraction of the corrupted voxels that become salt (the maximum).
        low, high: the pepper and salt values; the image's minimum and maximum when None.
        rng: seed, numpy ``Generator`` or ``RandomState``.
        return_mask: also return the boolean mask of corrupted voxels (numpy, shape of ``x``).

    Returns:
        the noisy image (same type, dtype, device), or ``(noisy, mask)`` when ``return_mask``.

    Example:
        >>> import numpy as np
        >>> x = np.full((1, 100, 100), 0.5)
        >>> y, mask = salt_pepper(x, 0.2, low=0.0, high=1.0, rng=0, return_mask=True)
        >>> float(mask.mean()), float((y == 1.0).mean()), float((y == 0.0).mean())
        (0.2, 0.1, 0.1)
    """
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must be in [0, 1], got {amount}")
    if not 0.0 <= salt_vs_pepper <= 1.0:
        raise ValueError(f"salt_vs_pepper must be in [0, 1], got {salt_vs_pepper}")
    arr = float_array(x)
    lo = float(np.min(arr)) if low is None else float(low)
    hi = float(np.max(arr)) if high is None else float(high)
    gen = as_rng(rng)
    n_total = arr.size
    n_noisy = int(round(amount * n_total))
    n_salt = int(round(salt_vs_pepper * n_noisy))
    idx = permutation(gen, n_total)[:n_noisy]
    out = arr.copy().reshape(-1)
    out[idx[:n_salt]] = hi
    out[idx[n_salt:]] = lo
    out = out.reshape(arr.shape)
    result = like(out, x)
    if return_mask:
        mask = np.zeros(n_total, dtype=bool)
        mask[idx] = True
        return result, mask.reshape(arr.shape)
    return result
