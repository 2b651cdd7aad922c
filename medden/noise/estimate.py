"""Noise-level estimation from the noisy data alone.

Each estimator returns the level in the same convention the noise functions take, so
``estimate_rician(rician(x, level=0.05))`` is close to 0.05.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from medden.noise._common import float_array, image_max


@dataclass(frozen=True)
class NoiseEstimate:
    """An estimated noise level.

    Attributes:
        kind: noise kind (``rician``, ``gaussian``, ``salt_pepper``).
        level: the level relative to ``reference`` (σ / reference, or the impulse fraction).
        sigma: absolute σ in the image's units (None for salt and pepper).
        reference: the intensity ``level`` is relative to (the image maximum unless given).
        method: how it was estimated.
    """

    kind: str
    level: float
    sigma: float | None
    reference: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: axes shorter than this are never filtered across (channels, a few slices): the estimators treat
#: such an image as a stack of 2D planes
_THIN_AXIS = 8


def _spatial_2d_slices(arr: np.ndarray) -> list[np.ndarray]:
    """Split an image of any layout into the 2D planes spanned by its two longest axes.

    A channel-first 2D ``(C, H, W)`` image gives its channels, a 3D ``(C, D, H, W)`` volume its slices
    perpendicular to its thinnest axis, a bare ``(H, W)`` itself; a 2D image stored as a volume
    (``(1, H, W, 1)``, ``(H, W, 1)``, a one- or three-slice series) gives its ``H × W`` plane(s)
    whichever axis holds the slices. Of two axes of equal length the later is taken (a cube is cut
    along its first axis).
    """
    if arr.ndim <= 2:
        return [arr.reshape(1, -1) if arr.ndim < 2 else arr]
    order = np.argsort(arr.shape, kind="stable")  # ascending; equal lengths keep their axis order
    plane_axes = sorted(int(a) for a in order[-2:])
    planes = np.moveaxis(arr, plane_axes, (-2, -1))
    return list(planes.reshape(-1, *planes.shape[-2:]))


_LAPLACE_DIFF = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))


def _immerkaer_sigma(plane: np.ndarray, weak_fraction: float = 0.5) -> float:
    """Immerkær's fast σ estimate on the weakest-gradient part of a plane (Tai & Yang's refinement).

    The 3×3 difference-of-Laplacians mask cancels any locally linear signal; averaging its absolute
    response only where the Sobel gradient is among the weakest ``weak_fraction`` of the plane keeps
    edges and texture out of the estimate.
    """
    from scipy.ndimage import convolve, sobel

    p = plane.astype(np.float64, copy=False)
    grad = np.hypot(sobel(p, 0), sobel(p, 1))[1:-1, 1:-1]
    resp = np.abs(convolve(p, np.asarray(_LAPLACE_DIFF))[1:-1, 1:-1])
    keep = grad <= np.quantile(grad, weak_fraction)
    return float(np.sqrt(np.pi / 2.0) / 6.0 * resp[keep].mean())


def estimate_gaussian(
    x: Any, reference: float | None = None, channel_first: bool = True, method: str = "immerkaer"
) -> NoiseEstimate:
    """Gaussian σ of a noisy image.

    Planes are estimated one by one (channels, and slices of a 3D volume perpendicular to its
    thinnest axis, so a 2D image stored as a volume such as ``(1, H, W, 1)`` is one ``H × W`` plane)
    and the median taken.

    Methods:
        - ``immerkaer`` (default): Immerkær's difference-of-Laplacians estimator restricted to the
          weakest-gradient half of the image. On ``skimage.data`` images with 1 % noise it is within
          a few percent of the image's total noise, where the wavelet estimator overestimates
          textured images by 30–60 %.
        - ``wavelet``: scikit-image's wavelet median-absolute-deviation estimator
          (``skimage.restoration.estimate_sigma``, Donoho & Johnstone).

    Either measures all the white noise in the image, including what the "clean" image already had
    (sensor noise, JPEG artefacts): a photograph with 2 grey levels of its own noise and 2.55 added
    measures about sqrt(2² + 2.55²).

    Args:
        x: noisy image: (H, W), channel-first (C, H, W) or (C, D, H, W), or a bare volume; the planes
            are those of its two longest axes, so the layout need not be declared.
        reference: the intensity the level is relative to; the image maximum when None.
        channel_first: kept for compatibility; planes are found from the shape alone.
        method: ``immerkaer`` or ``wavelet``.

    Example:
        >>> import numpy as np
        >>> from medden.noise import gaussian
        >>> y = gaussian(np.full((1, 256, 256), 0.5), sigma=0.05, rng=0)
        >>> round(estimate_gaussian(y, reference=1.0).sigma, 2)
        0.05
    """
    arr = float_array(x)
    planes = [p for p in _spatial_2d_slices(arr) if min(p.shape) >= 8]
    if not planes:
        raise ValueError(
            f"image too small to estimate noise (shape {tuple(arr.shape)}; needs planes of at least 8×8)"
        )
    if method == "immerkaer":
        sigmas = [_immerkaer_sigma(p) for p in planes]
        how = "Immerkær difference of Laplacians on the weakest-gradient half"
    elif method == "wavelet":
        from skimage.restoration import estimate_sigma

        sigmas = [float(estimate_sigma(p, channel_axis=None)) for p in planes]
        how = "wavelet-MAD (skimage.restoration.estimate_sigma)"
    else:
        raise ValueError(f"method must be 'immerkaer' or 'wavelet', not {method!r}")
    sigma = float(np.median(sigmas))
    ref = image_max(arr) if reference is None else float(reference)
    return NoiseEstimate("gaussian", sigma / ref, sigma, ref, how)


def _histogram_mode(values: np.ndarray, upper: float) -> float:
    """Mode of ``values`` in (0, upper] from a smoothed histogram (robust to a tissue tail)."""
    from scipy.ndimage import gaussian_filter1d

    n_bins = int(np.clip(np.sqrt(values.size), 32, 512))
    hist, edges = np.histogram(values, bins=n_bins, range=(0.0, upper))
    smooth = gaussian_filter1d(hist.astype(np.float64), sigma=max(1.0, n_bins / 100))
    i = int(np.argmax(smooth))
    # refine with a parabola through the peak and its neighbours
    if 0 < i < n_bins - 1:
        a, b, c = smooth[i - 1], smooth[i], smooth[i + 1]
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
    else:
        shift = 0.0
    width = edges[1] - edges[0]
    return float(edges[0] + (i + 0.5 + shift) * width)


#: coefficient of variation of a Rayleigh distribution, sqrt((4 − π) / π)
_RAYLEIGH_CV = float(np.sqrt((4.0 - np.pi) / np.pi))


def estimate_rician(x: Any, reference: float | None = None) -> NoiseEstimate:
    """Rician σ from the image background, where the signal is zero and the noise is Rayleigh.

    In a magnitude MR image the air around the body has no signal, so its values follow a Rayleigh
    distribution with mode σ and ``E[m²] = 2σ²``. The background is found spatially: voxels whose
    local 5-voxel mean is below the Otsu threshold of the image, eroded twice so tissue edges stay
    out. A first σ is the mode of the background histogram (robust to anything left of the
    tissue); the estimate is then the maximum-likelihood Rayleigh fit ``sqrt(mean(m²) / 2)`` over
    the background voxels below ``5σ`` (99.9996 % of a Rayleigh's mass), which is far less noisy
    than the mode alone. Axes shorter than 8 voxels (channels, a few slices, the singleton axes of a
    2D image stored as a volume) are not filtered across: such an image is a stack of 2D planes.
    Needs a visible background (a few thousand voxels, as in brain MRI); if
    the darkest region's coefficient of variation is far from a Rayleigh's (0.52 ± 0.08) there is
    no signal-free air and a ``ValueError`` says so rather than returning a meaningless σ.

    Args:
        x: noisy magnitude image, any shape (channel-first 2D or 3D).
        reference: the intensity the level is relative to; the image maximum when None.

    Example:
        >>> import numpy as np
        >>> from medden.noise import rician
        >>> clean = np.zeros((1, 128, 128)); clean[:, 32:96, 32:96] = 1.0
        >>> y = rician(clean, sigma=0.05, rng=0)
        >>> round(estimate_rician(y, reference=1.0).level, 2)
        0.05
    """
    from scipy.ndimage import binary_erosion, uniform_filter
    from skimage.filters import threshold_otsu

    arr = float_array(x)
    thick = [n >= _THIN_AXIS for n in arr.shape]
    if sum(thick) < 2:
        raise ValueError(f"image too small to estimate noise (shape {tuple(arr.shape)}; needs 8×8 planes)")
    size = [5 if t else 1 for t in thick]
    local_mean = uniform_filter(arr.astype(np.float64), size=size, mode="reflect")
    finite = np.isfinite(arr)
    if not finite.any():
        raise ValueError("no finite values to estimate Rician noise from")
    threshold = float(threshold_otsu(local_mean[finite]))
    mask = (local_mean < threshold) & finite
    eroded = binary_erosion(mask, structure=np.ones([3 if t else 1 for t in thick]), iterations=2)
    if np.count_nonzero(eroded) >= 256:
        mask = eroded
    background = arr[mask].astype(np.float64)
    background = background[background > 0]
    if background.size < 256:
        raise ValueError("no usable background (air) to estimate Rician noise from")
    mode = _histogram_mode(background, float(np.quantile(background, 0.99)))
    inside = background[background <= 5.0 * mode]
    if inside.size < 64:
        raise ValueError("no usable background (air) to estimate Rician noise from")
    cv = float(inside.std() / inside.mean())
    if abs(cv - _RAYLEIGH_CV) > 0.08:
        raise ValueError(
            f"the darkest region does not look like noise over air (coefficient of variation {cv:.2f}, "
            f"a Rayleigh background has {_RAYLEIGH_CV:.2f}); Rician noise cannot be estimated here"
        )
    sigma = float(np.sqrt(np.mean(inside**2) / 2.0))
    ref = image_max(arr) if reference is None else float(reference)
    return NoiseEstimate("rician", sigma / ref, sigma, ref, "Rayleigh fit of the spatial background")


def estimate_salt_pepper(
    x: Any,
    low: float | None = None,
    high: float | None = None,
    channel_first: bool = True,
    reference: float | None = None,
) -> NoiseEstimate:
    """Fraction of voxels hit by salt-and-pepper noise.

    Impulses are voxels at exactly the minimum (pepper) or maximum (salt). Counting them all would
    count a uniform zero background (MRI air) as pepper, so each kind is counted only where it is
    distinguishable: pepper where a 5×5 median of the image is above the minimum, salt where it is
    below the maximum. Because impulses hit voxels independently of the content, the fraction
    measured in those regions is the fraction for the whole image.

    Args:
        x: noisy image: (H, W), channel-first (C, H, W) or (C, D, H, W), or a bare volume; each plane
            of its two longest axes is filtered separately.
        low, high: the pepper and salt values; the image minimum and maximum when None.
        channel_first: kept for compatibility; planes are found from the shape alone.
        reference: recorded in the result only (the level is a fraction of voxels); ``high`` when None.

    Example:
        >>> import numpy as np
        >>> from medden.noise import salt_pepper
        >>> clean = np.zeros((1, 128, 128)); clean[:, 16:112, 16:112] = 0.5
        >>> y = salt_pepper(clean, 0.2, low=0.0, high=1.0, rng=0)
        >>> round(estimate_salt_pepper(y).level, 2)
        0.2
    """
    from scipy.ndimage import median_filter

    arr = float_array(x)
    lo = float(np.min(arr)) if low is None else float(low)
    hi = float(np.max(arr)) if high is None else float(high)
    planes = _spatial_2d_slices(arr)
    pepper_hits = pepper_n = salt_hits = salt_n = 0
    for plane in planes:
        med = median_filter(plane, size=5, mode="reflect")
        pepper_region = med > lo
        salt_region = med < hi
        pepper_hits += int(np.count_nonzero(plane[pepper_region] <= lo))
        pepper_n += int(np.count_nonzero(pepper_region))
        salt_hits += int(np.count_nonzero(plane[salt_region] >= hi))
        salt_n += int(np.count_nonzero(salt_region))
    p_pepper = pepper_hits / pepper_n if pepper_n else 0.0
    p_salt = salt_hits / salt_n if salt_n else 0.0
    return NoiseEstimate(
        "salt_pepper",
        p_pepper + p_salt,
        None,
        hi if reference is None else float(reference),
        "extremes counted where the 5×5 median is not extreme",
    )
