"""Foi's Rician variance-stabilising transform (medden.noise.vst) and the BM3D/BM4D option using it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medden import baselines
from medden.metrics import psnr
from medden.noise import rician, rician_vst, rician_vst_inverse

RATIOS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # ν / σ
SIGMAS = (0.02, 0.1)
SAMPLES = 1_000_000


@pytest.fixture(scope="module")
def stabilised() -> dict[tuple[float, float], np.ndarray]:
    """``rician_vst`` of a million seeded Rice samples for every (σ, ν/σ)."""
    out = {}
    for i, sigma in enumerate(SIGMAS):
        for j, ratio in enumerate(RATIOS):
            z = rician(np.full(SAMPLES, ratio * sigma), sigma=sigma, rng=100 * i + j)
            out[sigma, ratio] = rician_vst(z, sigma)
    return out


@pytest.mark.parametrize("sigma", SIGMAS)
def test_stabilised_std_is_one(stabilised, sigma):
    stds = np.array([stabilised[sigma, r].std() for r in RATIOS])
    # the tables give 0.986–1.012 by quadrature; a million samples add about ±0.002
    assert np.all((stds > 0.98) & (stds < 1.02)), dict(zip(RATIOS, stds.round(4)))
    assert np.all((stds > 0.9) & (stds < 1.1))
    # without the VST the std of z / σ goes from 0.66 (ν = 0) to 1: stabilised means flat
    assert stds.max() - stds.min() < 0.04


@pytest.mark.parametrize("sigma", SIGMAS)
def test_exact_unbiased_inverse(stabilised, sigma):
    for ratio in RATIOS:
        nu = ratio * sigma
        est = float(rician_vst_inverse(np.array(stabilised[sigma, ratio].mean()), sigma))
        if ratio >= 2:
            assert abs(est - nu) < 0.02 * nu, (ratio, est / sigma)
        else:
            assert abs(est - nu) < 0.1 * sigma, (ratio, est / sigma)
    # the plain sample mean is biased upward at low SNR: this is what the inverse removes
    z = rician(np.zeros(10_000), sigma=sigma, rng=7)
    assert z.mean() > 1.2 * sigma


def test_monotone_and_finite():
    sigma = 0.1
    x = np.linspace(-0.5, 30.0, 30_001)  # beyond the tabulated z = 73 σ too
    y = rician_vst(x, sigma)
    assert np.all(y[x <= 0] == 0) and np.all(np.diff(y[x >= 0]) > 0)
    back = rician_vst_inverse(y, sigma)
    assert np.all(np.isfinite(back)) and np.all(back >= 0) and np.all(np.diff(back) >= 0)
    t = np.linspace(-5.0, 3000.0, 300_001)  # the inverse beyond its ν = 64 table too
    inv = rician_vst_inverse(t, 0.02)
    assert np.all(np.isfinite(inv)) and np.all(inv >= 0) and np.all(np.diff(inv) >= 0)
    assert np.all(np.diff(inv[inv > 0]) > 0) and inv[0] == 0
    # for a high SNR the inverse of f(x) is about x (E[f(z) | ν] ≈ f(ν)), up to the Rician bias σ²/2ν
    high = x > 20 * sigma
    np.testing.assert_allclose(back[high], x[high], atol=0.03 * sigma)
    assert np.all(np.isfinite(rician_vst(np.array([0.0, 1e6]), 0.01)))


def test_dtype_shape_and_type():
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 4)).astype(np.float32)
    y = rician_vst(x, 0.05)
    assert y.dtype == np.float32 and y.shape == (2, 3, 4)
    back = rician_vst_inverse(y, 0.05)
    assert back.dtype == np.float32 and back.shape == (2, 3, 4)
    assert rician_vst(np.arange(4), 1.0).dtype == np.float64
    assert np.ndim(rician_vst_inverse(np.float64(5.0), 1.0)) == 0
    t = rician_vst(torch.from_numpy(x), 0.05)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), y)
    for bad in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma"):
            rician_vst(x, bad)
        with pytest.raises(ValueError, match="sigma"):
            rician_vst_inverse(x, bad)


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    """64×64 piecewise-constant image, values 0.1–0.8, with a ring of air (0) around it."""
    img = np.zeros((64, 64))
    img[8:56, 8:56] = 0.3
    img[12:30, 14:40] = 0.8
    img[34:52, 12:28] = 0.1
    yy, xx = np.mgrid[:64, :64]
    img[(yy - 42) ** 2 + (xx - 42) ** 2 < 64] = 0.55
    return img[None]


def test_bm3d_with_vst(phantom):
    sigma = 0.05
    noisy = rician(phantom, sigma=sigma, rng=3)
    air = phantom[0] == 0
    fn = baselines.get("bm3d", rician_vst=True)
    assert fn.config()["rician_vst"] is True and baselines.get("bm3d").config()["rician_vst"] is False
    out = fn(noisy, sigma)
    assert out.shape == noisy.shape and out.dtype == noisy.dtype
    assert psnr(phantom, out, 1.0) > psnr(phantom, noisy, 1.0) + 5.0
    assert abs(out[0][air].mean()) < 0.25 * noisy[0][air].mean()  # the Rician bias of the air is gone
    plain = baselines.get("bm3d")(noisy, sigma)
    assert out[0][air].mean() < plain[0][air].mean()


def test_vst_estimates_the_rician_sigma_like_the_correction(phantom):
    noisy = rician(np.pad(phantom, ((0, 0), (16, 16), (16, 16))), sigma=0.05, rng=4)  # more air
    vst_fn = baselines.get("bm3d", rician_vst=True)
    assert vst_fn.estimate_sigma(noisy) == baselines.get("bm3d", rician_bias_correction=True).estimate_sigma(
        noisy
    )
    assert vst_fn.estimate_sigma(noisy) != baselines.get("bm3d").estimate_sigma(noisy)


@pytest.mark.parametrize("name", ["bm3d", "bm4d"])
def test_vst_and_bias_correction_are_exclusive(name):
    with pytest.raises(ValueError, match="exclusive"):
        baselines.get(name, rician_vst=True, rician_bias_correction=True)
    assert baselines.get(name, rician_vst=True).rician_vst
