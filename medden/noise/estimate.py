"""Noise-level estimation from the noisy data alone.

Each estimator returns the level in the same convention the noise functions take, so
``estimate_rician(rician(x, level=0.05))`` is close to 0.05.
"""

from __future__ import annotations

import functools
import math
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


def _plane_stack(arr: np.ndarray) -> np.ndarray:
    """The 2D planes spanned by an image's two longest axes, as one ``(P, H, W)`` array.

    A channel-first 2D ``(C, H, W)`` image gives its channels, a 3D ``(C, D, H, W)`` volume its slices
    perpendicular to its thinnest axis, a bare ``(H, W)`` itself; a 2D image stored as a volume
    (``(1, H, W, 1)``, ``(H, W, 1)``, a one- or three-slice series) gives its ``H × W`` plane(s)
    whichever axis holds the slices. Of two axes of equal length the later is taken (a cube is cut
    along its first axis).
    """
    if arr.ndim <= 2:
        return (arr.reshape(1, -1) if arr.ndim < 2 else arr)[None]
    order = np.argsort(arr.shape, kind="stable")  # ascending; equal lengths keep their axis order
    plane_axes = sorted(int(a) for a in order[-2:])
    planes = np.moveaxis(arr, plane_axes, (-2, -1))
    return planes.reshape(-1, *planes.shape[-2:])


def _spatial_2d_slices(arr: np.ndarray) -> list[np.ndarray]:
    """The planes of :func:`_plane_stack` as a list."""
    return list(_plane_stack(arr))


# ------------------------------------------------------------------- PCA of patches (the default)

#: side of the square patches of the PCA estimator (Chen et al.'s 8×8; smaller on small planes)
PCA_PATCH = 8
#: at most this many patches enter the covariance, drawn with a fixed seed on larger images
PCA_MAX_PATCHES = 20_000
#: at most this many planes of a volume are sampled, evenly spaced through it
PCA_MAX_PLANES = 32
#: a patch of pure noise passes the weak-texture test with this probability (Liu et al. 2013)
WEAK_TEXTURE_CONFIDENCE = 1.0 - 1e-6
#: the Rician (foreground) variant keeps patches whose mean is above this many σ: a Rician's
#: variance is 0.93 σ² at a signal of 3σ and 0.98 σ² at 5σ, against 0.43 σ² over air
FOREGROUND_SNR = 3.0


def _patch_side(planes: int, h: int, w: int) -> int:
    """The largest patch side up to :data:`PCA_PATCH` (at least 3) that leaves 50 patches per
    dimension of the patch space, so the covariance is well sampled."""
    for k in range(PCA_PATCH, 3, -1):
        if planes * (h - k + 1) * (w - k + 1) >= 50 * k * k:
            return k
    return 3


def _box_sums(a: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """Sums of ``a`` over every ``kh × kw`` window of its last two axes (a summed-area table)."""
    sat = np.zeros((a.shape[0], a.shape[1] + 1, a.shape[2] + 1))
    np.cumsum(np.cumsum(a, axis=1, dtype=np.float64), axis=2, out=sat[:, 1:, 1:])
    return sat[:, kh:, kw:] - sat[:, :-kh, kw:] - sat[:, kh:, :-kw] + sat[:, :-kh, :-kw]


def _padding(stack: np.ndarray) -> np.ndarray:
    """Pixels of a ``(P, H, W)`` stack inside a constant ``3 × 3`` region: padding, a masked
    background, clipping or saturation, where noise cannot be seen (noisy data almost never hold nine
    equal neighbours)."""
    from scipy.ndimage import maximum_filter, minimum_filter

    size = (1, 3, 3)
    return maximum_filter(stack, size=size) == minimum_filter(stack, size=size)


def _sample_patches(
    stack: np.ndarray, k: int, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``n`` overlapping ``k × k`` patches of a plane stack: their pixels as rows ``(m, k²)``,
    their gradient energy (sum of squared neighbour differences) and their mean.

    All patches when there are no more than ``n``, else ``n`` positions drawn without replacement
    with ``seed``; patches holding a non-finite value are left out, and so are patches touching
    padding (:func:`_padding`): zero fill around a field of view, a skull-stripped or masked
    background, saturated or photon-free regions hold no noise, and counted as noise-free patches
    they would pull σ towards 0 (an image framed in zeros measured σ = 0 and was left undenoised).
    """
    stack = np.ascontiguousarray(stack, dtype=np.float64)
    bad = ~np.isfinite(stack)
    clean = np.where(bad, 0.0, stack) if bad.any() else stack
    energy = _box_sums(np.diff(clean, axis=2) ** 2, k, k - 1) + _box_sums(
        np.diff(clean, axis=1) ** 2, k - 1, k
    )
    means = _box_sums(clean, k, k) / (k * k)
    ok = (_box_sums(bad, k, k) == 0).ravel() if bad.any() else np.ones(energy.size, dtype=bool)
    pad = _padding(clean)
    if pad.any():
        ok &= (_box_sums(pad, k, k) == 0).ravel()
    positions = np.flatnonzero(ok)
    if positions.size > n:
        positions = np.sort(np.random.default_rng(seed).choice(positions, size=n, replace=False))
    p, i, j = np.unravel_index(positions, energy.shape)
    _, h, w = stack.shape
    corner = (p * h + i) * w + j
    offsets = (np.arange(k)[:, None] * w + np.arange(k)[None, :]).ravel()
    rows = stack.ravel()[corner[:, None] + offsets[None, :]]
    return rows, energy.ravel()[positions], means.ravel()[positions]


def _pca_noise_variance(rows: np.ndarray) -> float:
    """Noise variance from patches (Chen, Zhu & Heng, ICCV 2015).

    The patch covariance's eigenvalues split into the signal's few large ones and the noise's many,
    all equal to σ² up to sampling spread; the noise variance is the mean of the largest set of
    smallest eigenvalues whose mean equals their median (as many of them above the mean as below),
    a balance the signal's eigenvalues, all above, would upset.
    """
    centred = rows - rows.mean(axis=0)
    cov = (centred.T @ centred).astype(np.float64) / rows.shape[0]
    eig = np.sort(np.clip(np.linalg.eigvalsh(cov), 0.0, None))
    r = np.arange(1, eig.size + 1)
    means = np.cumsum(eig) / r
    below = np.searchsorted(eig, means, side="left")
    above = r - np.minimum(np.searchsorted(eig, means, side="right"), r)
    return float(means[int(r[below == above].max()) - 1])  # r = 1 always balances


@functools.lru_cache(maxsize=8)
def _texture_threshold(k: int) -> float:
    """Gradient energy of a ``k × k`` patch of unit-variance white noise that is exceeded with
    probability ``1 − WEAK_TEXTURE_CONFIDENCE``: a gamma law matched to the energy's mean
    ``tr(M)`` and variance ``2 tr(M²)``, ``M = DᵀD`` for the difference operator ``D``."""
    from scipy.special import gammaincinv

    basis = np.eye(k * k).reshape(k * k, k, k)
    d = np.concatenate(
        [np.diff(basis, axis=2).reshape(k * k, -1), np.diff(basis, axis=1).reshape(k * k, -1)], 1
    )
    m = d @ d.T
    tr, tr2 = float(np.trace(m)), float(np.trace(m @ m))
    return float(gammaincinv(tr * tr / (2 * tr2), WEAK_TEXTURE_CONFIDENCE) * 2 * tr2 / tr)


def pca_sigma(x: Any, foreground: bool = False, seed: int = 0) -> float:
    """σ of the white noise in an image from the PCA of its weakly textured patches.

    Chen, Zhu & Heng's statistic (:func:`_pca_noise_variance`) on the overlapping ``8 × 8`` patches
    of the planes of the two longest axes (as :func:`estimate_gaussian`), restricted, as Liu, Tanaka
    & Okutomi (IEEE TIP 2013) do, to the patches whose gradient energy a pure-noise patch of the
    current σ would reach (with probability ``1 − 10⁻⁶``), so edges and texture do not pass for
    noise on a smooth image at a low level; three rounds refine σ and the selection. With
    ``foreground`` only patches whose mean is above ``3σ`` count, where Rician noise is Gaussian to
    within a few percent (the Rician estimator). At most 20 000 patches are drawn with ``seed``, from
    at most 32 evenly spaced planes (of those that are not blank); patches smaller than
    ``8 × 8`` are used on planes too small to give 50 patches per dimension. Patches touching padding
    (constant ``3 × 3`` regions: zero fill, masks, saturation) are left out; a constant image gives 0.

    Raises:
        ValueError: no plane is at least ``8 × 8``.
    """
    arr = float_array(x)
    stack = _plane_stack(arr)
    if min(stack.shape[1:]) < _THIN_AXIS:
        raise ValueError(
            f"image too small to estimate noise (shape {tuple(arr.shape)}; needs planes of at least 8×8)"
        )
    if stack.shape[0] > PCA_MAX_PLANES:
        varying = np.flatnonzero(np.nanmax(stack, axis=(1, 2)) > np.nanmin(stack, axis=(1, 2)))
        planes = varying if varying.size else np.arange(stack.shape[0])  # blank (padded) slices skipped
        if planes.size > PCA_MAX_PLANES:
            planes = planes[np.linspace(0, planes.size - 1, PCA_MAX_PLANES).round().astype(int)]
        stack = stack[planes]
    k = _patch_side(*stack.shape)
    rows, energy, means = _sample_patches(stack, k, PCA_MAX_PATCHES, seed)
    if rows.shape[0] < 2:
        if np.isfinite(stack).sum() >= k * k:
            return 0.0  # nothing but padding: no noise to see
        raise ValueError("no finite patch to estimate noise from")
    var = _pca_noise_variance(rows.astype(np.float32))  # a first σ for the selection: float32 is enough
    for _ in range(3):
        keep = energy < var * _texture_threshold(k)
        if foreground:
            keep &= means > FOREGROUND_SNR * np.sqrt(var)
        if np.count_nonzero(keep) < 8 * k * k:
            break
        var, previous = _pca_noise_variance(rows[keep]), var
        if abs(var - previous) <= 0.01 * previous:  # σ moved by under 0.5 %: converged
            break
    return float(np.sqrt(var))


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


#: the Gaussian estimators by name: plane σ's of ``(P, H, W)`` planes → one σ, and a description
GAUSSIAN_METHODS: dict[str, str] = {
    "pca": "PCA of weakly textured patches (Chen et al. 2015, Liu et al. 2013)",
    "immerkaer": "Immerkær difference of Laplacians on the weakest-gradient half",
    "wavelet": "wavelet-MAD (skimage.restoration.estimate_sigma)",
}


def _gaussian_sigma(arr: np.ndarray, method: str) -> float:
    """σ of ``arr`` by one of :data:`GAUSSIAN_METHODS` (the median over planes for the per-plane ones)."""
    if method not in GAUSSIAN_METHODS:
        raise ValueError(f"method must be one of {sorted(GAUSSIAN_METHODS)}, not {method!r}")
    if method == "pca":
        return pca_sigma(arr)
    planes = [p for p in _spatial_2d_slices(arr) if min(p.shape) >= _THIN_AXIS]
    if not planes:
        raise ValueError(
            f"image too small to estimate noise (shape {tuple(arr.shape)}; needs planes of at least 8×8)"
        )
    if method == "immerkaer":
        return float(np.median([_immerkaer_sigma(p) for p in planes]))
    from skimage.restoration import estimate_sigma

    return float(np.median([float(estimate_sigma(p, channel_axis=None)) for p in planes]))


def estimate_gaussian(
    x: Any, reference: float | None = None, channel_first: bool = True, method: str = "pca"
) -> NoiseEstimate:
    """Gaussian σ of a noisy image.

    The image is read as the 2D planes of its two longest axes (channels, and slices of a 3D volume
    perpendicular to its thinnest axis, so a 2D image stored as a volume such as ``(1, H, W, 1)`` is
    one ``H × W`` plane).

    Methods:
        - ``pca`` (default): :func:`pca_sigma`, the PCA of the weakly textured ``8 × 8`` patches of
          all planes together (Chen, Zhu & Heng 2015 with Liu et al.'s weak-texture selection). On
          MNI152 slices with 1–12 % noise it is within 2 % of the σ added; see
          ``benchmarks/results/estimator.md`` for real scans.
        - ``immerkaer``: Immerkær's difference-of-Laplacians estimator restricted to the
          weakest-gradient half of each plane, the median over planes. It sees only the
          high-frequency part of correlated noise.
        - ``wavelet``: scikit-image's wavelet median-absolute-deviation estimator
          (``skimage.restoration.estimate_sigma``, Donoho & Johnstone), the median over planes; it
          overestimates textured images by 30–60 % at 1 %.

    Each measures all the white noise in the image, including what the "clean" image already had
    (sensor noise, JPEG artefacts): a photograph with 2 grey levels of its own noise and 2.55 added
    measures about sqrt(2² + 2.55²).

    Args:
        x: noisy image: (H, W), channel-first (C, H, W) or (C, D, H, W), or a bare volume; the planes
            are those of its two longest axes, so the layout need not be declared.
        reference: the intensity the level is relative to; the image maximum when None.
        channel_first: kept for compatibility; planes are found from the shape alone.
        method: ``pca``, ``immerkaer`` or ``wavelet``.

    Raises:
        ValueError: an unknown method, or no plane of at least ``8 × 8``.

    Example:
        >>> import numpy as np
        >>> from medden.noise import gaussian
        >>> y = gaussian(np.full((1, 256, 256), 0.5), sigma=0.05, rng=0)
        >>> round(estimate_gaussian(y, reference=1.0).sigma, 2)
        0.05
    """
    arr = float_array(x)
    sigma = _gaussian_sigma(arr, method)
    ref = image_max(arr) if reference is None else float(reference)
    return NoiseEstimate("gaussian", sigma / ref, sigma, ref, GAUSSIAN_METHODS[method])


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


def _background_sigma(arr: np.ndarray) -> float:
    """Rician σ from the image background, where the signal is zero and the noise is Rayleigh.

    In a magnitude MR image the air around the body has no signal, so its values follow a Rayleigh
    distribution with mode σ and ``E[m²] = 2σ²``. The background is found spatially: voxels whose
    local 5-voxel mean is below the Otsu threshold of the image, eroded twice so tissue edges stay
    out. A first σ is the mode of the background histogram (robust to anything left of the
    tissue); the estimate is then the maximum-likelihood Rayleigh fit ``sqrt(mean(m²) / 2)`` over
    the background voxels below ``5σ`` (99.9996 % of a Rayleigh's mass), which is far less noisy
    than the mode alone. Axes shorter than 8 voxels (channels, a few slices, the singleton axes of a
    2D image stored as a volume) are not filtered across: such an image is a stack of 2D planes.
    Needs a visible background (a few thousand voxels, as in brain MRI); if the darkest region's
    coefficient of variation is far from a Rayleigh's (0.52 ± 0.08) there is no signal-free air and
    a ``ValueError`` says so rather than returning a meaningless σ.
    """
    from scipy.ndimage import binary_erosion, uniform_filter
    from skimage.filters import threshold_otsu

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
    return float(np.sqrt(np.mean(inside**2) / 2.0))


#: the Rician estimators by name, with a description
RICIAN_METHODS: dict[str, str] = {
    "auto": "Rayleigh fit of the background where it agrees with the foreground PCA, else the PCA",
    "pca": "PCA of weakly textured foreground patches (Chen et al. 2015, Liu et al. 2013)",
    "background": "Rayleigh fit of the spatial background",
}

#: ``auto`` takes the background fit when it is at most the foreground PCA estimate and at least
#: this fraction of it (texture and the image's own noise can only raise the PCA estimate)
BACKGROUND_AGREEMENT = 0.5


def _rician_sigma(arr: np.ndarray, method: str) -> tuple[float, str]:
    """σ by one of :data:`RICIAN_METHODS`, and the description of the method that gave it."""
    if method not in RICIAN_METHODS:
        raise ValueError(f"method must be one of {sorted(RICIAN_METHODS)}, not {method!r}")
    if method == "background":
        return _background_sigma(arr), RICIAN_METHODS["background"]
    foreground = pca_sigma(arr, foreground=True)
    if method == "auto":
        try:
            air = _background_sigma(arr)
        except ValueError:
            air = math.nan
        if BACKGROUND_AGREEMENT * foreground <= air <= foreground:
            return air, RICIAN_METHODS["background"]
    return foreground, RICIAN_METHODS["pca"]


def estimate_rician(x: Any, reference: float | None = None, method: str = "auto") -> NoiseEstimate:
    """Rician σ of a noisy magnitude image.

    Methods:
        - ``auto`` (default): the background fit when it succeeds and lies between half the ``pca``
          estimate and that estimate (:data:`BACKGROUND_AGREEMENT`: texture and the image's own noise
          can only raise the PCA estimate), else ``pca``; what ``medden denoise --noise-level auto``
          uses for MR (errors on real scans in ``benchmarks/results/estimator.md``).
        - ``pca``: :func:`pca_sigma` on the foreground patches (mean above ``3σ``), where
          Rician noise is Gaussian within a few percent; needs no air, works on single slices and
          measures the noise the tissue has, the image's own included.
        - ``background``: the Rayleigh fit of the signal-free air around the body (the background
          found spatially, its histogram mode, then the maximum-likelihood fit below ``5σ``); needs
          a few thousand voxels of air, and says so with a ``ValueError`` when the darkest region is
          not Rayleigh-distributed (coefficient of variation far from 0.52), as on an image without
          air. It sees only the noise that is there in the air.

    Args:
        x: noisy magnitude image, any shape (channel-first 2D or 3D).
        reference: the intensity the level is relative to; the image maximum when None.
        method: ``auto``, ``pca`` or ``background``.

    Raises:
        ValueError: an unknown method, an image without planes of at least ``8 × 8``, or (for
            ``background``) no usable air.

    Example:
        >>> import numpy as np
        >>> from medden.noise import rician
        >>> clean = np.zeros((1, 128, 128)); clean[:, 32:96, 32:96] = 1.0
        >>> y = rician(clean, sigma=0.05, rng=0)
        >>> round(estimate_rician(y, reference=1.0).level, 2)
        0.05
        >>> round(estimate_rician(y, reference=1.0, method="background").level, 2)
        0.05
    """
    arr = float_array(x)
    sigma, how = _rician_sigma(arr, method)
    ref = image_max(arr) if reference is None else float(reference)
    return NoiseEstimate("rician", sigma / ref, sigma, ref, how)


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
