"""Metrics agree with scikit-image, statistics with scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from medden.metrics import (
    SSIM_WINDOW,
    foreground_mask,
    image_scores,
    paired_stats,
    psnr,
    ssim,
    ssim_window,
)
from medden.noise import gaussian, rician


@pytest.fixture
def pair2d():
    rng = np.random.default_rng(0)
    x = rng.random((1, 64, 72))
    return x, np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)


def test_psnr_matches_skimage(pair2d):
    x, y = pair2d
    assert psnr(x, y, data_range=1.0) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1.0))
    assert psnr(x * 255, y * 255, data_range=255) == pytest.approx(psnr(x, y, 1.0))
    assert psnr(x, x, 1.0) == float("inf")


def test_psnr_accepts_torch(pair2d):
    x, y = pair2d
    assert psnr(torch.from_numpy(x), torch.from_numpy(y), 1.0) == pytest.approx(psnr(x, y, 1.0))


@pytest.mark.parametrize("gaussian_weights", [False, True])
def test_ssim_matches_skimage_2d(pair2d, gaussian_weights):
    x, y = pair2d
    kw = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False} if gaussian_weights else {}
    ref = structural_similarity(x[0], y[0], data_range=1.0, **kw)
    assert ssim(x, y, 1.0, gaussian_weights=gaussian_weights) == pytest.approx(ref, rel=1e-9)


#: scikit-image's settings for the SSIM of Wang et al. (2004): 11×11 Gaussian window, σ 1.5
WANG = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


def test_ssim_matches_skimage_3d_and_color():
    rng = np.random.default_rng(1)
    vol = rng.random((1, 16, 20, 24))
    noisy = vol + rng.normal(0, 0.1, vol.shape)
    ref = structural_similarity(vol[0], noisy[0], data_range=1.0, **WANG)
    assert ssim(vol, noisy, 1.0) == pytest.approx(ref, rel=1e-9)
    uniform = structural_similarity(vol[0], noisy[0], data_range=1.0)
    assert ssim(vol, noisy, 1.0, gaussian_weights=False) == pytest.approx(uniform, rel=1e-9)
    rgb = rng.random((3, 40, 40))
    noisy_rgb = rgb + rng.normal(0, 0.1, rgb.shape)
    ref_rgb = structural_similarity(rgb, noisy_rgb, data_range=1.0, channel_axis=0, **WANG)
    assert ssim(rgb, noisy_rgb, 1.0) == pytest.approx(ref_rgb, rel=1e-9)
    uniform_rgb = structural_similarity(rgb, noisy_rgb, data_range=1.0, channel_axis=0)
    assert ssim(rgb, noisy_rgb, 1.0, gaussian_weights=False) == pytest.approx(uniform_rgb, rel=1e-9)


@pytest.mark.parametrize("shape", [(1, 64, 72), (1, 14, 18, 22)], ids=["2d", "3d"])
def test_ssim_default_is_the_gaussian_window_of_the_literature(shape):
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(7)
    x = gaussian_filter(rng.random(shape), (0, 2, 2) if len(shape) == 3 else (0, 2, 2, 2))
    x = (x - x.min()) / (x.max() - x.min())  # a smooth image: the two windows score its noise differently
    y = np.clip(x + rng.normal(0, 0.1, shape), 0, 1)
    ref = structural_similarity(x[0], y[0], data_range=1.0, **WANG)
    assert ssim(x, y, 1.0) == pytest.approx(ref, rel=1e-9)
    assert ssim(x[0], y[0], 1.0, channel_axis=None) == pytest.approx(ref, rel=1e-9)  # a bare array
    # not scikit-image's default 7×7 uniform window: the two differ on this pair
    assert abs(ssim(x, y, 1.0) - structural_similarity(x[0], y[0], data_range=1.0)) > 0.01
    assert ssim(x, x, 1.0) == 1.0
    assert ssim(x, x.copy(), 1.0, mask=x > 0.5) == 1.0
    assert image_scores(x, x)["ssim"] == 1.0 and image_scores(x, y)["ssim"] == pytest.approx(ref, rel=1e-9)


def test_masked_ssim_uses_the_gaussian_window_and_its_border():
    rng = np.random.default_rng(8)
    x = rng.random((1, 40, 48))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    _, smap = structural_similarity(x[0], y[0], data_range=1.0, full=True, **WANG)
    mask = np.zeros_like(x, dtype=bool)
    mask[:, 2:20, 3:30] = True  # partly in the 5-pixel border the 11×11 window crops
    inner = np.zeros(x.shape[1:], dtype=bool)
    inner[5:-5, 5:-5] = True
    expected = smap[mask[0] & inner].mean()
    assert ssim(x, y, 1.0, mask=mask) == pytest.approx(expected, rel=1e-12)
    assert image_scores(x, y)["ssim_fg"] == pytest.approx(ssim(x, y, 1.0, mask=foreground_mask(x)), rel=1e-12)


def test_ssim_window_names_what_is_reported():
    assert ssim_window() == SSIM_WINDOW == "gaussian-11-1.5"
    assert ssim_window(gaussian_weights=False) == "uniform-7"
    assert ssim_window(gaussian_weights=False, win_size=9) == "uniform-9"
    x = np.random.default_rng(0).random((1, 32, 32))
    with pytest.raises(ValueError, match="11"):
        ssim(x, x, 1.0, win_size=7)  # the Gaussian window's side is fixed by σ
    with pytest.raises(ValueError):  # smaller than the window
        ssim(x[:, :9, :9], x[:, :9, :9], 1.0)


def test_masked_metrics(pair2d):
    x, y = pair2d
    full = np.ones_like(x, dtype=bool)
    assert ssim(x, y, 1.0, mask=full) == pytest.approx(ssim(x, y, 1.0), rel=1e-12)
    assert psnr(x, y, 1.0, mask=full) == pytest.approx(psnr(x, y, 1.0))
    mask = np.zeros_like(x, dtype=bool)
    mask[:, 10:30, 10:30] = True
    mse = ((x - y)[mask] ** 2).mean()
    assert psnr(x, y, 1.0, mask=mask) == pytest.approx(10 * np.log10(1 / mse))
    with pytest.raises(ValueError):
        psnr(x, y, 1.0, mask=np.zeros_like(mask))


def test_foreground_mask_brainweb_style():
    clean = np.zeros((1, 50, 50))
    clean[:, 10:40, 10:40] = 1.0
    noisy = rician(clean, 0.05, rng=0)
    m = foreground_mask(clean)
    assert m.sum() == 900
    # the background (Rician bias) lowers the whole-image PSNR more than the foreground one
    assert psnr(clean, noisy, 1.0, mask=m) > psnr(clean, noisy, 1.0)


def test_data_range_is_required_and_shapes_checked(pair2d):
    x, y = pair2d
    with pytest.raises(ValueError):
        psnr(x, y, data_range=0)
    with pytest.raises(ValueError):
        ssim(x, y[:, :10], data_range=1.0)


def test_paired_stats_match_scipy():
    rng = np.random.default_rng(3)
    b = rng.normal(30, 1.5, 25)
    a = b + rng.normal(0.4, 0.3, 25)
    s = paired_stats(a, b)
    t = stats.ttest_rel(a, b)
    w = stats.wilcoxon(a, b)
    ci = t.confidence_interval(0.95)
    assert s.n == 25
    assert s.mean_diff == pytest.approx(np.mean(a - b))
    assert s.t_statistic == pytest.approx(t.statistic) and s.t_pvalue == pytest.approx(t.pvalue)
    assert s.wilcoxon_statistic == pytest.approx(w.statistic) and s.wilcoxon_pvalue == pytest.approx(w.pvalue)
    assert s.ci_low == pytest.approx(ci.low) and s.ci_high == pytest.approx(ci.high)
    s99 = paired_stats(a, b, confidence=0.99)
    assert s99.ci_low < s.ci_low and s99.ci_high > s.ci_high


def test_paired_stats_edge_cases():
    with pytest.raises(ValueError):
        paired_stats([1.0], [2.0])
    with pytest.raises(ValueError):
        paired_stats([1.0, 2.0], [1.0])
    same = paired_stats([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same.mean_diff == 0 and np.isnan(same.t_pvalue) and np.isnan(same.wilcoxon_pvalue)


def test_denoised_scores_better_than_noisy():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    clean = gaussian_filter(rng.random((1, 96, 96)), 3)
    clean = (clean - clean.min()) / (clean.max() - clean.min())
    noisy = gaussian(clean, sigma=0.1, rng=0)
    smoothed = gaussian_filter(noisy, (0, 1.5, 1.5))
    assert psnr(clean, smoothed, 1.0) > psnr(clean, noisy, 1.0)
    assert ssim(clean, smoothed, 1.0) > ssim(clean, noisy, 1.0)
