"""Image-quality metrics and paired statistics.

PSNR and SSIM follow scikit-image exactly for 2D and 3D images with an explicit data range. SSIM
uses the window of the literature by default (Wang et al. 2004, and the training loss): an 11×11
(11³ in 3D) Gaussian window of σ 1.5 with population covariances, :data:`SSIM_WINDOW`
(``"gaussian-11-1.5"``), which every report states; scikit-image's own default, a 7×7 uniform window,
gives numbers that are not comparable with papers. The foreground variants average only over a mask,
such as the BrainWeb protocol's "clean image above a threshold". Paired statistics compare two
methods on the same images: mean difference with a t confidence interval, paired t-test and
Wilcoxon signed-rank test.

Images are channel-first (C, H, W) or (C, D, H, W) when ``channel_axis=0`` (the default); pass
``channel_axis=None`` for a bare (H, W) or (D, H, W) array. numpy arrays and torch tensors are accepted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from medden.noise._common import float_array


def _check_pair(x: Any, y: Any, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    a, b = float_array(x).astype(np.float64), float_array(y).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if not data_range or data_range <= 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    return a, b


#: Foreground threshold (fraction of the clean image's maximum) shared by the metrics and the MNI152
#: training samplers, so "brain" means the same voxels when training and when scoring.
FOREGROUND_THRESHOLD = 0.1


def foreground_mask(clean: Any, threshold: float = FOREGROUND_THRESHOLD, relative: bool = True) -> np.ndarray:
    """Foreground of a clean image: voxels above ``threshold`` (× its maximum when ``relative``).

    For channel-first images a voxel is foreground if any channel is.
    """
    arr = float_array(clean)
    thr = threshold * float(arr.max()) if relative else threshold
    return arr > thr


def _broadcast_mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    m = np.asarray(float_array(mask) if not isinstance(mask, np.ndarray) else mask).astype(bool)
    if m.shape != shape:
        m = np.broadcast_to(m, shape)
    if not m.any():
        raise ValueError("the mask is empty")
    return m


def psnr(x: Any, y: Any, data_range: float, mask: Any = None) -> float:
    """Peak signal-to-noise ratio in dB, ``10·log10(data_range² / MSE)``.

    Args:
        x: reference (clean) image.
        y: test image, same shape.
        data_range: the peak value range (1.0 for [0, 1] images, 255 for 8 bit); never inferred.
        mask: optional boolean mask (broadcast to the image): the MSE is taken over it only.

    Returns:
        PSNR in dB (``inf`` for identical images).

    Example:
        >>> import numpy as np
        >>> round(psnr(np.zeros((1, 8, 8)), np.full((1, 8, 8), 0.1), data_range=1.0), 6)
        20.0
    """
    a, b = _check_pair(x, y, data_range)
    diff = (a - b) ** 2
    mse = float(diff[_broadcast_mask(mask, diff.shape)].mean() if mask is not None else diff.mean())
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


#: the SSIM window medden reports with (:func:`ssim`'s default), as :func:`ssim_window` names it
SSIM_WINDOW = "gaussian-11-1.5"
#: side of that window: an image (or, in 3D, a volume) needs at least this many pixels along each axis
SSIM_WINDOW_SIDE = 11


def ssim_window(gaussian_weights: bool = True, win_size: int | None = None) -> str:
    """The name of an SSIM window, as reports record it: ``gaussian-11-1.5`` (the default, Wang et
    al.'s) or ``uniform-<side>`` (scikit-image's default is ``uniform-7``).

    Example:
        >>> ssim_window(), ssim_window(gaussian_weights=False)
        ('gaussian-11-1.5', 'uniform-7')
    """
    if gaussian_weights:
        if win_size not in (None, SSIM_WINDOW_SIDE):
            raise ValueError(f"the Gaussian SSIM window (σ 1.5) is {SSIM_WINDOW_SIDE} wide, not {win_size}")
        return SSIM_WINDOW
    return f"uniform-{win_size or 7}"


def ssim(
    x: Any,
    y: Any,
    data_range: float,
    mask: Any = None,
    channel_axis: int | None = 0,
    gaussian_weights: bool = True,
    win_size: int | None = None,
) -> float:
    """Structural similarity, as ``skimage.metrics.structural_similarity`` with an explicit range.

    By default with the 11×11 Gaussian window of σ 1.5 and population covariances of Wang et al.
    (2004), as papers report it (:data:`SSIM_WINDOW`): scikit-image's
    ``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.
    2D and 3D (an 11³ window: every axis at least 11 long); with ``channel_axis`` the channels are
    averaged. With a ``mask`` the SSIM map is averaged over the mask (inside the same border crop
    scikit-image uses), so an all-true mask gives exactly the unmasked value.

    Args:
        x: reference (clean) image.
        y: test image, same shape.
        data_range: the value range; never inferred.
        mask: optional boolean foreground mask (broadcast to the image).
        channel_axis: axis of the channels (0 for channel-first), or None.
        gaussian_weights: the Gaussian window (default); False for scikit-image's default uniform one.
        win_size: side of the uniform window (odd; 7 when None); the Gaussian one is always 11.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = rng.random((1, 32, 32))
        >>> ssim(x, x, data_range=1.0)
        1.0
    """
    from skimage.metrics import structural_similarity

    ssim_window(gaussian_weights, win_size)  # checks the window
    a, b = _check_pair(x, y, data_range)
    kwargs: dict[str, Any] = {"data_range": data_range, "channel_axis": channel_axis}
    if gaussian_weights:
        kwargs.update(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    elif win_size is not None:
        kwargs["win_size"] = win_size
    if mask is None:
        return float(structural_similarity(a, b, **kwargs))
    m = _broadcast_mask(mask, a.shape)
    _, smap = structural_similarity(a, b, full=True, **kwargs)
    # scikit-image averages the map over the interior, cropping (win_size - 1) // 2 at each border
    win = SSIM_WINDOW_SIDE if gaussian_weights else (win_size or 7)
    pad = (win - 1) // 2
    interior = np.zeros(a.shape, dtype=bool)
    ch = None if channel_axis is None else channel_axis % a.ndim
    sl = tuple(slice(None) if ax == ch else slice(pad, a.shape[ax] - pad) for ax in range(a.ndim))
    interior[sl] = True
    sel = m & interior
    if not sel.any():
        raise ValueError("the mask lies entirely in the image border cropped by the SSIM window")
    return float(smap[sel].mean())


@dataclass(frozen=True)
class PairedStats:
    """Paired comparison of method A against method B on the same images (differences ``A − B``).

    Attributes:
        n: number of pairs.
        mean_a, mean_b: the two methods' means.
        mean_diff: mean of ``A − B``.
        sd_diff: sample standard deviation of the differences.
        ci_low, ci_high: confidence interval of the mean difference (Student t).
        confidence: the confidence level of the interval.
        t_statistic, t_pvalue: paired t-test (two-sided).
        wilcoxon_statistic, wilcoxon_pvalue: Wilcoxon signed-rank test (two-sided; NaN if all equal).
    """

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    sd_diff: float
    ci_low: float
    ci_high: float
    confidence: float
    t_statistic: float
    t_pvalue: float
    wilcoxon_statistic: float
    wilcoxon_pvalue: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def paired_stats(a: Any, b: Any, confidence: float = 0.95) -> PairedStats:
    """Paired statistics of two methods' scores on the same images (e.g. per-image PSNR).

    Example:
        >>> s = paired_stats([30.1, 31.0, 29.5, 32.2], [29.0, 30.2, 29.4, 31.0])
        >>> round(s.mean_diff, 3), s.n
        (0.8, 4)
    """
    from scipy import stats

    xa = np.asarray(a, dtype=np.float64).ravel()
    xb = np.asarray(b, dtype=np.float64).ravel()
    if xa.shape != xb.shape:
        raise ValueError(f"paired scores must have the same length: {xa.size} vs {xb.size}")
    if xa.size < 2:
        raise ValueError("paired statistics need at least 2 pairs")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = xa - xb
    n = d.size
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd > 0:
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n))
        t = stats.ttest_rel(xa, xb)
        t_stat, t_p = float(t.statistic), float(t.pvalue)
    else:
        half, t_stat, t_p = 0.0, float("nan"), float("nan")
    if np.any(d != 0):
        w = stats.wilcoxon(xa, xb)
        w_stat, w_p = float(w.statistic), float(w.pvalue)
    else:
        w_stat, w_p = float("nan"), float("nan")
    return PairedStats(
        n=n,
        mean_a=float(xa.mean()),
        mean_b=float(xb.mean()),
        mean_diff=mean,
        sd_diff=sd,
        ci_low=mean - half,
        ci_high=mean + half,
        confidence=confidence,
        t_statistic=t_stat,
        t_pvalue=t_p,
        wilcoxon_statistic=w_stat,
        wilcoxon_pvalue=w_p,
    )


def image_scores(
    clean: np.ndarray, out: np.ndarray, threshold: float = FOREGROUND_THRESHOLD
) -> dict[str, float]:
    """PSNR and SSIM of ``out`` against ``clean`` (data range 1) on the whole image and on the foreground
    (``psnr_fg``, ``ssim_fg``; NaN when there is none), and the RMSE over the background (``rmse_bg``).
    SSIM with :data:`SSIM_WINDOW`."""
    row = {"psnr": psnr(clean, out, 1.0), "ssim": ssim(clean, out, 1.0)}
    try:
        fg = foreground_mask(clean, threshold)
        row.update(psnr_fg=psnr(clean, out, 1.0, mask=fg), ssim_fg=ssim(clean, out, 1.0, mask=fg))
    except ValueError:  # no foreground (an empty slice)
        fg = np.zeros(np.shape(clean), dtype=bool)
        row.update(psnr_fg=float("nan"), ssim_fg=float("nan"))
    bg = ~np.broadcast_to(fg, np.shape(clean))
    err = (np.asarray(out, np.float64) - np.asarray(clean, np.float64))[bg]
    row["rmse_bg"] = float(np.sqrt(np.mean(err**2))) if err.size else float("nan")  # air / background
    return row
