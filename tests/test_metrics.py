"""Metrics agree with scikit-image, statistics with scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from medden.metrics import foreground_mask, paired_stats, psnr, ssim
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


def test_ssim_matches_skimage_3d_and_color():
    rng = np.random.default_rng(1)
    vol = rng.random((1, 16, 20, 24))
    noisy = vol + rng.normal(0, 0.1, vol.shape)
    ref = structural_similarity(vol[0], noisy[0], data_range=1.0)
    assert ssim(vol, noisy, 1.0) == pytest.approx(ref, rel=1e-9)
    rgb = rng.random((3, 40, 40))
    noisy_rgb = rgb + rng.normal(0, 0.1, rgb.shape)
    ref_rgb = structural_similarity(rgb, noisy_rgb, data_range=1.0, channel_axis=0)
    assert ssim(rgb, noisy_rgb, 1.0) == pytest.approx(ref_rgb, rel=1e-9)


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
