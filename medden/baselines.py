"""Classical denoisers behind the same interface as the nets: ``fn(x, sigma=None)``.

A denoiser maps an image in [0, 1] to an image of the same type (numpy array, torch tensor or MONAI
``MetaTensor`` with its metadata), shape, dtype and device. Accepted shapes:

- numpy arrays are one image: ``(H, W)``, channel-first ``(C, H, W)`` or ``(C, D, H, W)``;
- torch tensors follow the nets' convention: ``(B, C, H, W)`` and ``(B, C, D, H, W)`` are batches,
  ``(C, H, W)`` is one image; a ``MetaTensor`` is a batch when its ``is_batch`` flag says so;
- ``batched=True/False`` overrides the guess.

``sigma`` is the Gaussian (or Rician) noise σ on the [0, 1] scale: a number, or one per batch item
(a sequence or a ``(B,)`` tensor, as the inferers pass it). Denoisers that need it (``noise_aware``)
estimate it per image with :func:`medden.noise.estimate_noise` when it is not given; the others
ignore it. Methods designed for 2D planes (BM3D) process a volume slice by slice along its first
spatial axis (``D`` of ``(C, D, H, W)``); the others work on 2D and 3D data natively.

=================== ======= ===============================================================
name                noise   method
=================== ======= ===============================================================
``bm3d``            AWGN    BM3D (``bm3d`` package); 3-channel images with ``bm3d_rgb``
``bm4d``            AWGN    BM4D (``bm4d`` package) on volumes; a 2D image is a one-slice volume
``nlm``             AWGN    non-local means (``skimage.restoration.denoise_nl_means``), h = 0.8 σ
``median``          impulse median filter (``scipy.ndimage.median_filter``) of side ``size``
``switching_median`` impulse adaptive switching median: only impulses are replaced
``gamma``           low light gamma correction, γ chosen so the mean luminance maps to mid-gray
``clahe``           low light contrast-limited adaptive histogram equalisation (scikit-image)
=================== ======= ===============================================================

``bm3d`` and ``bm4d`` take ``rician_bias_correction=True`` for magnitude MRI: before denoising,
the image is replaced by ``sqrt(max(x² − σ², 0))``, the conventional correction of Gudbjartsson &
Patz (Magn. Reson. Med. 1995;34:910–914) which removes the Rician bias (air becomes ≈ 0 instead of
σ·sqrt(π/2)) and leaves approximately Gaussian noise of σ for the Gaussian denoiser. They take
``rician_vst=True`` instead (not both) for Foi's variance-stabilisation approach (ISBI 2011;
:mod:`medden.noise.vst`): the image is stabilised with :func:`medden.noise.rician_vst` (noise of
σ ≈ 1 whatever the signal), divided by its maximum and denoised with σ = ``1 / maximum``, scaled
back and mapped to the noise-free magnitude by the exact unbiased inverse
(:func:`medden.noise.rician_vst_inverse`). Without σ, both estimate the Rician σ from the air
background (:func:`medden.noise.estimate_noise` with ``rician``).

Example:
    >>> import numpy as np
    >>> from medden import baselines
    >>> from medden.noise import salt_pepper
    >>> clean = np.full((1, 32, 32), 0.5)
    >>> noisy = salt_pepper(clean, 0.1, low=0.0, high=1.0, rng=0)
    >>> fn = baselines.get("switching_median")
    >>> bool(np.allclose(fn(noisy), clean))
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from medden.noise import estimate_noise, rician_vst, rician_vst_inverse
from medden.noise._common import float_array, is_tensor, like


def _is_batch(x: Any, batched: bool | None) -> bool:
    if batched is not None:
        return bool(batched)
    if hasattr(x, "is_batch"):  # MONAI MetaTensor knows
        return bool(x.is_batch)
    return is_tensor(x) and x.ndim >= 4


def _sigmas(sigma: Any, n: int) -> list[float | None]:
    """One σ per batch item from None, a number, a sequence, an array or a tensor."""
    if sigma is None:
        return [None] * n
    values = float_array(sigma).astype(np.float64).ravel()
    if values.size == 1:
        values = np.repeat(values, n)
    if values.size != n:
        raise ValueError(f"sigma has {values.size} values for a batch of {n}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"sigma must be finite and >= 0, got {values.tolist()}")
    return [float(v) for v in values]


@dataclass
class ClassicalDenoiser:
    """Base class: batching, σ per item (given or estimated), dtype and type of the result.

    Subclasses set :attr:`name` and :attr:`noise_aware` and implement :meth:`denoise_image` on one
    channel-first numpy image ``(C, H, W)`` or ``(C, D, H, W)``.
    """

    name: ClassVar[str] = ""
    #: spatial dimensions of the images the method is made for (2: planes; BM4D: 3)
    spatial_dims: ClassVar[int] = 2
    #: channels it takes (None: any number)
    in_channels: ClassVar[int | None] = None
    #: the scaling into [0, 1] it expects
    intensity: ClassVar[str] = "minmax"
    #: the method uses σ (nets with this attribute are called ``net(x, sigma)``).
    noise_aware: ClassVar[bool] = False
    #: noise kind of the σ estimator (``medden.noise.estimate_noise``) when σ is not given.
    noise_kind: ClassVar[str] = "gaussian"

    @property
    def default_mode(self) -> str:
        """``3d`` for a volume method (BM4D), else ``2d``: with :attr:`spatial_dims`, :attr:`in_channels`,
        :attr:`noise_aware`, :attr:`intensity` and the call, this is :class:`medden.denoiser.Denoiser`."""
        return "3d" if self.spatial_dims == 3 else "2d"

    def __call__(self, x: Any, sigma: Any = None, *, batched: bool | None = None) -> Any:
        """Denoise ``x`` (see the module docstring for the shapes); ``sigma`` on the [0, 1] scale."""
        arr = float_array(x)
        batch = _is_batch(x, batched)
        images = list(arr) if batch else [arr]
        bare = not batch and arr.ndim == 2
        if bare:
            images = [arr[None]]
        if any(im.ndim not in (3, 4) for im in images):
            shape = "(B, C, H, W) or (B, C, D, H, W)" if batch else "(H, W), (C, H, W) or (C, D, H, W)"
            raise ValueError(f"{self.name}: expected {shape}, got shape {arr.shape}")
        sigmas = _sigmas(sigma, len(images)) if self.noise_aware else [None] * len(images)
        out = []
        for im, s in zip(images, sigmas):
            if self.noise_aware and s is None:
                s = self.estimate_sigma(im)
            out.append(np.asarray(self.denoise_image(im, s), dtype=arr.dtype))
        result = np.stack(out) if batch else out[0]
        return like(result[0] if bare else result, x)

    def estimate_sigma(self, image: np.ndarray) -> float:
        """σ of one channel-first image on the [0, 1] scale, from the data."""
        try:
            return float(estimate_noise(image, self.noise_kind, reference=1.0).sigma)
        except ValueError as exc:
            raise ValueError(f"{self.name}: cannot estimate σ ({exc}); pass sigma") from None

    def denoise_image(self, image: np.ndarray, sigma: float | None) -> np.ndarray:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The method name and its settings (JSON-ready), e.g. for a report."""
        return {"name": self.name, **dataclasses.asdict(self)}


def rician_bias_correct(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gudbjartsson & Patz's Rician bias correction ``sqrt(max(x² − σ², 0))`` (σ in x's units)."""
    x = np.asarray(x)
    x64 = x.astype(np.float64, copy=False)
    return np.sqrt(np.maximum(x64 * x64 - float(sigma) ** 2, 0.0)).astype(x.dtype, copy=False)


@dataclass
class _BlockMatching(ClassicalDenoiser):
    """Shared settings of BM3D and BM4D."""

    noise_aware: ClassVar[bool] = True
    profile: str = "np"
    rician_bias_correction: bool = False
    rician_vst: bool = False

    def __post_init__(self) -> None:
        if self.rician_bias_correction and self.rician_vst:
            raise ValueError(f"{self.name}: rician_bias_correction and rician_vst are exclusive; pick one")
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()

    @property
    def _rician_data(self) -> bool:
        """Whether the data are treated as Rician (bias correction or VST)."""
        return self.rician_bias_correction or self.rician_vst

    def estimate_sigma(self, image: np.ndarray) -> float:
        if not self._rician_data:
            return super().estimate_sigma(image)

        try:  # the Rayleigh fit of the air background
            return float(estimate_noise(image, "rician", reference=1.0).sigma)
        except ValueError as exc:
            raise ValueError(f"{self.name}: cannot estimate the Rician σ ({exc}); pass sigma") from None

    def denoise_image(self, image: np.ndarray, sigma: float | None) -> np.ndarray:
        if not sigma:
            return image.copy()
        if self.rician_vst:
            return self._run_stabilised(image.astype(np.float64, copy=False), float(sigma))
        if self.rician_bias_correction:
            image = rician_bias_correct(image, sigma)
        return self._run(image.astype(np.float64, copy=False), float(sigma))

    def _run_stabilised(self, image: np.ndarray, sigma: float) -> np.ndarray:
        """Foi's VST route: stabilise, denoise in [0, 1] with the matching σ, exact unbiased inverse."""
        stabilised = rician_vst(image, sigma)  # noise std ≈ 1
        scale = 1.0 / max(float(stabilised.max()), 1.0)
        denoised = self._run(stabilised * scale, scale) / scale
        return rician_vst_inverse(denoised, sigma)

    def _run(self, image: np.ndarray, sigma: float) -> np.ndarray:
        raise NotImplementedError


@dataclass
class BM3D(_BlockMatching):
    """BM3D (Dabov et al. 2007) via the ``bm3d`` package; volumes slice by slice.

    Args:
        profile: ``bm3d`` profile (``np``, ``refilter``, ``vn``, ``high``, ...).
        rician_bias_correction: apply ``sqrt(max(x² − σ², 0))`` before denoising (magnitude MRI).
        rician_vst: denoise through Foi's Rician variance-stabilising transform and its exact unbiased
            inverse instead (magnitude MRI; not with ``rician_bias_correction``).
        colorspace: colour transform of ``bm3d_rgb`` for 3-channel images (``opp`` or ``YCbCr``).

    Example:
        >>> import numpy as np
        >>> y = BM3D()(np.full((1, 32, 32), 0.5), sigma=0.1)
        >>> y.shape
        (1, 32, 32)
    """

    name: ClassVar[str] = "bm3d"
    colorspace: str = "opp"

    def _plane(self, plane: np.ndarray, sigma: float) -> np.ndarray:
        import bm3d

        if plane.shape[0] == 3:
            rgb = bm3d.bm3d_rgb(
                np.moveaxis(plane, 0, -1), sigma, profile=self.profile, colorspace=self.colorspace
            )
            return np.moveaxis(rgb, -1, 0)
        return np.stack([bm3d.bm3d(p, sigma, profile=self.profile) for p in plane])

    def _run(self, image: np.ndarray, sigma: float) -> np.ndarray:
        if image.ndim == 3:
            return self._plane(image, sigma)
        return np.stack([self._plane(image[:, d], sigma) for d in range(image.shape[1])], axis=1)


@dataclass
class BM4D(_BlockMatching):
    """BM4D (Maggioni et al. 2013) via the ``bm4d`` package, each channel a volume.

    A 2D image is denoised as a one-slice volume; volumes thinner than 5 slices get 8×8×1 blocks (the
    ``bm4d`` package's choice), thicker ones 3D blocks.

    Args:
        profile: ``bm4d`` profile (``np``, ``refilter``, ``8x8``, ``8x8refilter``, or a ``BM4DProfile``).
        rician_bias_correction: apply ``sqrt(max(x² − σ², 0))`` before denoising (magnitude MRI).
        rician_vst: denoise through Foi's Rician variance-stabilising transform and its exact unbiased
            inverse instead (magnitude MRI; not with ``rician_bias_correction``).
    """

    name: ClassVar[str] = "bm4d"
    spatial_dims: ClassVar[int] = 3

    def _run(self, image: np.ndarray, sigma: float) -> np.ndarray:
        import bm4d

        out = []
        for c in image:
            if c.ndim == 2:
                out.append(np.reshape(bm4d.bm4d(c, sigma, profile=self.profile), c.shape))
            else:  # bm4d picks its block shape from its last axis: put D there, so thin slabs work too
                den = bm4d.bm4d(np.moveaxis(c, 0, -1), sigma, profile=self.profile)
                out.append(np.moveaxis(np.reshape(den, c.shape[1:] + c.shape[:1]), -1, 0))
        return np.stack(out)


@dataclass
class NLMeans(ClassicalDenoiser):
    """Non-local means (Buades et al. 2005) via ``skimage.restoration.denoise_nl_means``.

    2D and 3D; a 3-channel 2D image is filtered as colour. The filtering strength is
    ``h = h_factor × σ`` with σ also passed to scikit-image (its recommended ``0.8 σ`` by default).

    Args:
        patch_size: side of the compared patches.
        patch_distance: search radius.
        h_factor: ``h`` relative to σ.
        fast_mode: scikit-image's fast (uniform-weight) variant.
    """

    name: ClassVar[str] = "nlm"
    noise_aware: ClassVar[bool] = True
    patch_size: int = 5
    patch_distance: int = 6
    h_factor: float = 0.8
    fast_mode: bool = True

    def denoise_image(self, image: np.ndarray, sigma: float | None) -> np.ndarray:
        from skimage.restoration import denoise_nl_means

        if not sigma:
            return image.copy()
        kw = {
            "patch_size": self.patch_size,
            "patch_distance": self.patch_distance,
            "h": self.h_factor * sigma,
            "sigma": sigma,
            "fast_mode": self.fast_mode,
            "preserve_range": True,
        }
        if image.ndim == 3 and image.shape[0] == 3:
            return denoise_nl_means(image, channel_axis=0, **kw)
        return np.stack([denoise_nl_means(c, channel_axis=None, **kw) for c in image])


@dataclass
class Median(ClassicalDenoiser):
    """Median filter of side ``size`` over the spatial axes of each channel (``scipy.ndimage``).

    Args:
        size: window side (odd), in every spatial dimension.
        mode: border handling of ``scipy.ndimage.median_filter``.
    """

    name: ClassVar[str] = "median"
    size: int = 3
    mode: str = "reflect"

    def denoise_image(self, image: np.ndarray, sigma: float | None) -> np.ndarray:
        from scipy.ndimage import median_filter

        return median_filter(image, size=(1,) + (self.size,) * (image.ndim - 1), mode=self.mode)


@dataclass
class SwitchingMedian(ClassicalDenoiser):
    """Adaptive switching median filter for salt-and-pepper noise; only impulses are changed.

    Impulse candidates are the voxels at the impulse values (``low``/``high``; each channel's minimum
    and maximum when None). A candidate inside a region at that same value (the
    ``region_size`` median equals it — air in an MRI, a saturated highlight) is kept: there an
    impulse cannot be told from the signal. Every other candidate is an impulse, replaced by the
    median of the non-impulse voxels in the smallest window (3, 5, … ``max_size``) that holds at
    least one; if none does, by the median of the whole ``max_size`` window. This is the
    noise-adaptive switching median of Toh & Isa (2010) without its fuzzy blending, and the
    "stage B" switching of Hwang & Haddad's adaptive median filter (1995). Windows are gathered
    with numpy's ``sliding_window_view`` for all remaining impulses at once; 2D and 3D images alike.

    The region protection costs nothing up to about 30 % impulses; above about 40 % dense impulse
    clusters start to pass for such regions (camera at 50 %: 22.4 dB with it, 24.9 dB without), so
    for dense noise on images with no uniform extreme region pass ``region_size=None``.

    Args:
        max_size: largest window side (odd, >= 3).
        low, high: the impulse values; each channel's minimum and maximum when None.
        region_size: side of the median that protects uniform extreme regions (None: no protection).
    """

    name: ClassVar[str] = "switching_median"
    max_size: int = 7
    low: float | None = None
    high: float | None = None
    region_size: int | None = 5

    def __post_init__(self) -> None:
        if self.max_size < 3 or self.max_size % 2 == 0:
            raise ValueError(f"max_size must be odd and >= 3, got {self.max_size}")

    def impulse_mask(self, channel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(extreme, impulse)`` masks of one channel: voxels at an impulse value, and those replaced."""
        from scipy.ndimage import median_filter

        lo = float(channel.min()) if self.low is None else float(self.low)
        hi = float(channel.max()) if self.high is None else float(self.high)
        at_low, at_high = channel <= lo, channel >= hi
        extreme = at_low | at_high
        impulse = extreme.copy()
        if self.region_size:
            med = median_filter(channel, size=self.region_size, mode="reflect")
            impulse &= ~((at_low & (med <= lo)) | (at_high & (med >= hi)))
        return extreme, impulse

    def _channel(self, channel: np.ndarray) -> np.ndarray:
        from numpy.lib.stride_tricks import sliding_window_view
        from scipy.ndimage import median_filter

        extreme, impulse = self.impulse_mask(channel)
        out = channel.copy()
        todo = np.argwhere(impulse)
        good = np.where(impulse, np.nan, channel.astype(np.float64))
        for w in range(3, self.max_size + 1, 2):
            if not len(todo):
                break
            r = w // 2
            windows = sliding_window_view(np.pad(good, r, constant_values=np.nan), (w,) * channel.ndim)
            values = windows[tuple(todo.T)].reshape(len(todo), -1)
            found = ~np.isnan(values).all(axis=1)
            out[tuple(todo[found].T)] = np.nanmedian(values[found], axis=1)
            todo = todo[~found]
        if len(todo):  # no clean neighbour even in the largest window
            fallback = median_filter(channel, size=self.max_size, mode="reflect")
            out[tuple(todo.T)] = fallback[tuple(todo.T)]
        return out

    def denoise_image(self, image: np.ndarray, sigma: float | None) -> np.ndarray:
        return np.stack([self._channel(c) for c in image])


def _luminance(image: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of a channel-first RGB image, the image itself for one channel."""
    if image.shape[0] == 3:
        return np.tensordot(np.array([0.299, 0.587, 0.114]), image, axes=1)
    return image.mean(axis=0)


@dataclass
class Gamma(ClassicalDenoiser):
    """Low-light baseline: gamma correction ``x ** (1 / γ)`` (``skimage.exposure.adjust_gamma``).

    With ``gamma=None`` (the default) γ is chosen per image so that its mean luminance is mapped to
    ``target_mean`` (mid-gray: the classic auto-exposure rule); nothing about the reference image is
    used. The noise is not touched.

    Args:
        gamma: fixed γ (> 0; 2.2 brightens like a display curve), or None for the automatic choice.
        target_mean: mean luminance the automatic γ aims at, in (0, 1).
    """

    name: ClassVar[str] = "gamma"
    gamma: float | None = None
    target_mean: float = 0.5

    def denoise_image(self, image: np.ndarray, sigma: float | None) -> np.ndarray:
        from skimage.exposure import adjust_gamma

        x = np.clip(image, 0.0, 1.0)
        gamma = self.gamma
        if gamma is None:
            mean = float(np.clip(_luminance(x).mean(), 1e-4, 1 - 1e-4))
            gamma = np.log(mean) / np.log(self.target_mean)  # mean ** (1 / γ) == target_mean
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        return adjust_gamma(x, 1.0 / gamma)


@dataclass
class CLAHE(ClassicalDenoiser):
    """Low-light baseline: contrast-limited adaptive histogram equalisation
    (``skimage.exposure.equalize_adapthist``; an RGB image is equalised on its HSV value channel).

    Args:
        clip_limit: clipping limit in (0, 1]; higher gives more contrast.
        kernel_size: tile side in pixels, or None for 1/8 of each image side (scikit-image's default).
    """

    name: ClassVar[str] = "clahe"
    clip_limit: float = 0.01
    kernel_size: int | None = None

    def denoise_image(self, image: np.ndarray, sigma: float | None) -> np.ndarray:
        from skimage.exposure import equalize_adapthist

        x = np.clip(image, 0.0, 1.0)
        kw = {"clip_limit": self.clip_limit, "kernel_size": self.kernel_size}
        if image.ndim == 3 and image.shape[0] == 3:
            return np.moveaxis(equalize_adapthist(np.moveaxis(x, 0, -1), **kw), -1, 0)
        return np.stack([equalize_adapthist(c, **kw) for c in x])


#: name -> denoiser class; :func:`get` builds one.
BASELINES: dict[str, type[ClassicalDenoiser]] = {
    cls.name: cls for cls in (BM3D, BM4D, NLMeans, Median, SwitchingMedian, Gamma, CLAHE)
}


def available() -> list[str]:
    """Names of the classical denoisers, sorted."""
    return sorted(BASELINES)


def get(name: str, **kwargs: Any) -> Callable[..., Any]:
    """The classical denoiser ``name`` built with ``kwargs``: a callable ``fn(x, sigma=None)``.

    Example:
        >>> from medden import baselines
        >>> baselines.get("median", size=5).config()
        {'name': 'median', 'size': 5, 'mode': 'reflect'}
    """
    try:
        cls = BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; available: {', '.join(available())}") from None
    try:
        return cls(**kwargs)
    except TypeError as exc:
        fields = [f.name for f in dataclasses.fields(cls)]
        raise ValueError(f"{name}: bad arguments {sorted(kwargs)} (accepted: {fields}); {exc}") from None


__all__ = [
    "BASELINES",
    "BM3D",
    "BM4D",
    "ClassicalDenoiser",
    "Median",
    "NLMeans",
    "SwitchingMedian",
    "available",
    "get",
    "rician_bias_correct",
]
