"""Classical baselines: each improves the noise it targets, keeps shape/type, and behaves as documented."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medden import baselines
from medden.data.samples import mni152, mni152_slice, natural_image
from medden.metrics import foreground_mask, psnr
from medden.noise import gaussian, rician, salt_pepper


@pytest.fixture(scope="module")
def camera64():
    """64×64 camera, values kept strictly inside (0, 1) so impulses at 0 and 1 are the only extremes."""
    return (0.05 + 0.9 * natural_image("camera")[:, ::8, ::8]).astype(np.float32)


@pytest.fixture(scope="module")
def mri2d():
    """A whole axial MNI152 slice at half resolution (99×117, more than half of it air)."""
    img = mni152_slice(axis=2)[:, ::2, ::2]
    return np.ascontiguousarray(img / img.max())


@pytest.fixture(scope="module")
def mri3d():
    vol, _ = mni152()
    return np.ascontiguousarray(vol[::4, ::4, 50:98:4][None])  # (1, 49, 59, 12), with air around the head


def test_registry():
    assert baselines.available() == ["bm3d", "bm4d", "clahe", "gamma", "median", "nlm", "switching_median"]
    assert baselines.get("median", size=5).config() == {"name": "median", "size": 5, "mode": "reflect"}
    with pytest.raises(ValueError, match="unknown baseline"):
        baselines.get("wiener")
    with pytest.raises(ValueError, match="bad arguments"):
        baselines.get("median", radius=2)
    with pytest.raises(ValueError, match="max_size"):
        baselines.get("switching_median", max_size=4)
    assert baselines.get("bm3d").noise_aware and not baselines.get("median").noise_aware


@pytest.mark.parametrize("name", ["bm3d", "bm4d", "nlm"])
@pytest.mark.parametrize("given_sigma", [True, False])
def test_gaussian_denoisers_improve_awgn(name, given_sigma, camera64):
    noisy = gaussian(camera64, sigma=0.1, rng=0)
    out = baselines.get(name)(noisy, sigma=0.1 if given_sigma else None)
    assert psnr(camera64, out, 1.0) > psnr(camera64, noisy, 1.0) + 3.0


@pytest.mark.parametrize("name", ["bm3d", "nlm"])
def test_denoisers_improve_rician_slice(name, mri2d):
    noisy = rician(mri2d, 0.05, rng=1)
    out = baselines.get(name)(noisy, 0.05)
    fg = foreground_mask(mri2d)
    # the Rician bias of the air (≈ σ·sqrt(π/2)) stays without a correction: the foreground gains most
    assert psnr(mri2d, out, 1.0) > psnr(mri2d, noisy, 1.0) + 1.0
    assert psnr(mri2d, out, 1.0, mask=fg) > psnr(mri2d, noisy, 1.0, mask=fg) + 3.0


def test_bm4d_improves_rician_volume(mri3d):
    noisy = rician(mri3d, 0.05, rng=2)
    out = baselines.get("bm4d", rician_bias_correction=True)(noisy)  # σ from the Rayleigh fit
    assert out.shape == mri3d.shape
    assert psnr(mri3d, out, 1.0) > psnr(mri3d, noisy, 1.0) + 3.0


@pytest.mark.parametrize("name", ["median", "switching_median"])
def test_median_filters_improve_salt_pepper(name, camera64):
    noisy = salt_pepper(camera64, 0.2, low=0.0, high=1.0, rng=0)
    out = baselines.get(name)(noisy)
    assert psnr(camera64, out, 1.0) > psnr(camera64, noisy, 1.0) + 5.0


def test_switching_median_changes_only_impulses(camera64, mri2d):
    for amount in (0.1, 0.3, 0.5):
        noisy, mask = salt_pepper(camera64, amount, low=0.0, high=1.0, rng=3, return_mask=True)
        out = baselines.get("switching_median")(noisy)
        np.testing.assert_array_equal(out[~mask], noisy[~mask])
        assert psnr(camera64, out, 1.0) > psnr(camera64, baselines.get("median")(noisy), 1.0)
    # a flat image is restored exactly; MRI air (at the pepper value) stays air
    flat = np.full((1, 40, 40), 0.5, np.float32)
    np.testing.assert_array_equal(baselines.get("switching_median")(salt_pepper(flat, 0.3, rng=0)), flat)
    noisy = salt_pepper(mri2d, 0.2, rng=4)
    out = baselines.get("switching_median")(noisy)
    air = mri2d == 0
    assert np.mean(out[air] == 0) > 0.99
    assert psnr(mri2d, out, 1.0) > psnr(mri2d, noisy, 1.0) + 15.0


def test_rician_bias_correction_lowers_background(mri2d):
    noisy = rician(mri2d, 0.06, rng=5)
    air = mri2d < 0.01
    plain = baselines.get("bm3d")(noisy, 0.06)
    corrected = baselines.get("bm3d", rician_bias_correction=True)(noisy, 0.06)
    estimated = baselines.get("bm3d", rician_bias_correction=True)(noisy)  # σ from the air
    assert plain[air].mean() > 0.06  # the Rician bias, ≈ σ·sqrt(π/2)
    assert corrected[air].mean() < 0.7 * plain[air].mean()
    assert estimated[air].mean() < 0.7 * plain[air].mean()
    assert psnr(mri2d, corrected, 1.0) > psnr(mri2d, plain, 1.0)
    x = np.array([0.0, 0.05, 0.1, 0.5], np.float32)
    np.testing.assert_allclose(baselines.rician_bias_correct(x, 0.1), [0, 0, 0, np.sqrt(0.24)], atol=1e-4)


@pytest.mark.parametrize("name", baselines.available())
def test_shapes_types_and_batches(name):
    rng = np.random.default_rng(0)
    fn = baselines.get(name)
    shapes = [(24, 24), (1, 24, 24), (3, 24, 24), (1, 3, 24, 24)]
    if name == "bm4d":  # 0.6 s per call whatever the size
        shapes = [(24, 24), (1, 3, 24, 24)]
    for shape in shapes:
        x = rng.random(shape, dtype=np.float32)
        y = fn(x, 0.1)
        assert isinstance(y, np.ndarray) and y.shape == shape and y.dtype == np.float32, shape
    batch = torch.rand(2, 1, 24, 24, dtype=torch.float32)
    out = fn(batch, torch.tensor([0.05, 0.1]))
    assert torch.is_tensor(out) and out.shape == batch.shape and out.dtype == torch.float32
    # batch items are independent: the batch equals the items one by one
    torch.testing.assert_close(out[1:], fn(batch[1:], 0.1))
    out = fn(torch.rand(1, 1, 2, 16, 16, dtype=torch.float64), 0.1)
    assert out.shape == (1, 1, 2, 16, 16) and out.dtype == torch.float64
    from monai.data import MetaTensor

    meta = MetaTensor(torch.rand(1, 24, 24), meta={"filename_or_obj": "a.nii"})
    out = fn(meta, 0.1)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "a.nii"
    with pytest.raises(ValueError):
        fn(np.zeros((8,), np.float32), 0.1)
    if fn.noise_aware:
        with pytest.raises(ValueError, match="batch of 2"):
            fn(batch, [0.1, 0.2, 0.3])


def test_gamma_brings_the_mean_luminance_to_mid_gray_and_a_fixed_gamma_is_a_power():
    from medden.noise import lowlight

    clean = natural_image("astronaut", gray=False)[:, ::4, ::4]
    dark = lowlight(clean, 0.1, rng=0, reference=1.0)
    out = baselines.get("gamma")(dark)
    luma = np.tensordot(np.array([0.299, 0.587, 0.114]), out, axes=1)
    assert out.shape == dark.shape and out.dtype == dark.dtype
    assert 0.3 < float(luma.mean()) < 0.6 and float(out.mean()) > 3 * float(dark.mean())
    flat = np.full((3, 8, 8), 0.04, dtype=np.float32)  # the mean luminance itself is mapped to mid-gray
    np.testing.assert_allclose(baselines.get("gamma")(flat), 0.5, rtol=1e-4)
    x = np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 8, 8)
    np.testing.assert_allclose(baselines.get("gamma", gamma=2.0)(x), np.sqrt(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="gamma"):
        baselines.get("gamma", gamma=-1.0)(x)


def test_clahe_raises_the_contrast_of_a_dark_image_gray_and_color():
    from medden.noise import lowlight

    for gray in (True, False):
        clean = natural_image("astronaut", gray=gray)[:, ::4, ::4]
        dark = lowlight(clean, 0.15, rng=1, reference=1.0)
        out = baselines.get("clahe")(dark)
        assert out.shape == dark.shape and out.dtype == dark.dtype
        assert 0.0 <= out.min() and out.max() <= 1.0
        assert float(out.std()) > 2 * float(dark.std())
