"""Noise physics: statistics of each model, reproducibility, shapes, dtypes, torch and numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medden.data.samples import mni152_slice, natural_image
from medden.noise import (
    NOISE_FUNCTIONS,
    estimate_gaussian,
    estimate_noise,
    estimate_rician,
    estimate_salt_pepper,
    gaussian,
    lowlight,
    poisson_gaussian,
    rician,
    salt_pepper,
    sigma_255,
)

DEFAULT_ARGS = {
    "rician": {"level": 0.05},
    "salt_pepper": {"amount": 0.2},
    "gaussian": {"level": 0.05},
    "poisson_gaussian": {"peak": 50.0},
    "lowlight": {"gain": 0.2},
}


def test_rician_on_zero_is_rayleigh():
    sigma = 0.7
    y = rician(np.zeros((1, 256, 256)), sigma=sigma, rng=0)
    # Rayleigh mean sigma*sqrt(pi/2), std sigma*sqrt((4 - pi)/2); tolerance: 5 standard errors
    se = sigma * np.sqrt((4 - np.pi) / 2) / np.sqrt(y.size)
    assert abs(y.mean() - sigma * np.sqrt(np.pi / 2)) < 5 * se
    assert (y >= 0).all()


@pytest.mark.parametrize("amplitude", [5.0, 20.0])
def test_rician_on_bright_constant(amplitude):
    from scipy import stats

    sigma = 1.0
    y = rician(np.full((1, 512, 512), amplitude), sigma=sigma, rng=1)
    # tolerance: 5 standard errors of the mean (the Rician std, close to sigma at high SNR)
    se = stats.rice.std(amplitude / sigma, scale=sigma) / np.sqrt(y.size)
    exact = stats.rice.mean(amplitude / sigma, scale=sigma)
    assert abs(y.mean() - exact) < 5 * se
    # the high-SNR approximation sqrt(A^2 + sigma^2) of the issue, within 5 SE plus its own error
    approx = np.sqrt(amplitude**2 + sigma**2)
    assert abs(y.mean() - approx) < 5 * se + abs(exact - approx)
    # and it is not plain Gaussian noise, whose mean would stay at A
    assert y.mean() - amplitude > 5 * se
    # the second moment is exactly A^2 + 2 sigma^2 (var of y^2 = 4 A^2 sigma^2 + 4 sigma^4)
    se2 = np.sqrt(4 * amplitude**2 * sigma**2 + 4 * sigma**4) / np.sqrt(y.size)
    assert abs((y**2).mean() - (amplitude**2 + 2 * sigma**2)) < 5 * se2


def test_rician_level_is_relative_to_maximum():
    x = np.zeros((1, 128, 128))
    x[:, 10:20, 10:20] = 200.0
    y = rician(x, 0.05, rng=0)  # sigma = 0.05 * 200 = 10
    bg = y[:, 40:, 40:]
    assert abs(bg.mean() - 10 * np.sqrt(np.pi / 2)) < 0.3
    y_abs = rician(x, sigma=10.0, rng=0)
    np.testing.assert_array_equal(y, y_abs)
    y_ref = rician(x, 0.05, reference=100.0, rng=0)  # sigma = 5
    assert abs(y_ref[:, 40:, 40:].mean() - 5 * np.sqrt(np.pi / 2)) < 0.15


@pytest.mark.parametrize("amount", [0.05, 0.2, 0.4])
def test_salt_pepper_fraction_and_mask(amount):
    x = np.full((1, 200, 200), 0.5)
    y, mask = salt_pepper(x, amount, salt_vs_pepper=0.3, low=0.0, high=1.0, rng=3, return_mask=True)
    assert abs(mask.mean() - amount) <= 0.01
    assert np.array_equal(mask, y != 0.5)
    assert abs((y == 1.0).sum() / mask.sum() - 0.3) < 0.01
    # the corrupted voxels are exactly min or max of the image's range by default
    z = salt_pepper(np.linspace(2.0, 7.0, 1000).reshape(1, 10, 100), amount, rng=0)
    changed = z != np.linspace(2.0, 7.0, 1000).reshape(1, 10, 100)
    assert set(np.unique(z[changed])) <= {2.0, 7.0}


def test_gaussian_sigma_and_clip():
    y = gaussian(np.full((1, 256, 256), 0.5), sigma=sigma_255(25), rng=0)
    assert abs(y.std() - 25 / 255) < 0.002
    y8 = gaussian(np.full((1, 256, 256), 128.0), sigma=25.0, rng=0)  # 0-255 convention
    assert abs(y8.std() - 25) < 0.5
    yc = gaussian(np.full((1, 64, 64), 0.9), sigma=0.5, clip=(0.0, 1.0), rng=0)
    assert yc.min() >= 0 and yc.max() <= 1 and (yc == 1.0).any()


def test_poisson_gaussian_variance():
    x = np.full((1, 256, 256), 0.25)
    y = poisson_gaussian(x, peak=40, read_sigma=0.02, reference=1.0, rng=0)
    expected_var = 0.25 / 40 + 0.02**2
    assert abs(y.mean() - 0.25) < 0.002
    assert abs(y.var() - expected_var) / expected_var < 0.03
    with pytest.raises(ValueError):
        poisson_gaussian(x, peak=0)


def test_lowlight_darkens_and_is_noisy():
    x = natural_image("astronaut")
    y = lowlight(x, gain=0.1, rng=0)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert 0.05 < y.mean() / x.mean() < 0.15
    assert y.min() >= 0
    # relative noise is much stronger in the dark image than shot noise at full exposure would be
    flat = lowlight(np.full((1, 128, 128), 0.5), gain=0.2, gamma=1.0, reference=1.0, rng=0)
    assert flat.std() / flat.mean() > 0.05


@pytest.mark.parametrize("kind", sorted(NOISE_FUNCTIONS))
@pytest.mark.parametrize("shape", [(1, 33, 47), (2, 9, 11, 13)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_kind_keeps_shape_dtype_and_seed(kind, shape, dtype):
    fn = NOISE_FUNCTIONS[kind]
    x = np.random.default_rng(0).random(shape).astype(dtype)
    x_before = x.copy()
    a = fn(x, rng=5, **DEFAULT_ARGS[kind])
    b = fn(x, rng=5, **DEFAULT_ARGS[kind])
    c = fn(x, rng=6, **DEFAULT_ARGS[kind])
    assert a.shape == x.shape and a.dtype == x.dtype
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(x, x_before)  # the input is never modified


@pytest.mark.parametrize("kind", sorted(NOISE_FUNCTIONS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_input_gives_torch_output_equal_to_numpy(kind, dtype):
    fn = NOISE_FUNCTIONS[kind]
    x = torch.rand(1, 20, 24, dtype=dtype, generator=torch.Generator().manual_seed(0))
    y = fn(x, rng=2, **DEFAULT_ARGS[kind])
    assert isinstance(y, torch.Tensor) and y.dtype == dtype and y.shape == x.shape
    np.testing.assert_allclose(y.numpy(), fn(x.numpy(), rng=2, **DEFAULT_ARGS[kind]), rtol=1e-6)


def test_metatensor_keeps_metadata():
    from monai.data import MetaTensor

    x = MetaTensor(torch.ones(1, 8, 8), meta={"filename_or_obj": "a.nii"})
    y = rician(x, 0.1, rng=0)
    assert isinstance(y, MetaTensor) and y.meta["filename_or_obj"] == "a.nii"


def test_generator_and_randomstate_are_accepted():
    x = np.ones((1, 16, 16))
    a = gaussian(x, 0.1, rng=np.random.RandomState(4))
    b = gaussian(x, 0.1, rng=np.random.RandomState(4))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError):
        gaussian(x, 0.1, rng="seed")


def test_level_and_sigma_are_exclusive():
    with pytest.raises(ValueError):
        rician(np.ones((1, 4, 4)), 0.1, sigma=0.1)
    with pytest.raises(ValueError):
        rician(np.ones((1, 4, 4)))
    with pytest.raises(ValueError):
        salt_pepper(np.ones((1, 4, 4)), 1.5)


# --- estimators: each recovers the level it is given within 15 % ------------------------------

MRI_LEVELS = [0.01, 0.03, 0.05, 0.07, 0.09]


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("level", MRI_LEVELS)
def test_rician_estimator_on_mri_slice(axis, level):
    clean = mni152_slice(axis=axis)
    clean = clean / clean.max()
    est = estimate_rician(rician(clean, level, rng=11), reference=1.0)
    assert abs(est.level - level) / level < 0.15, est


def test_rician_estimator_on_3d_volume():
    from medden.data.samples import mni152

    vol, _ = mni152()
    sub = vol[None, ::2, ::2, ::2]  # keeps the test fast
    est = estimate_rician(rician(sub, 0.04, rng=0), reference=1.0)
    assert abs(est.level - 0.04) / 0.04 < 0.15


@pytest.mark.parametrize("level", [0.02, 0.05, 0.09])
@pytest.mark.parametrize("kind", ["rician", "gaussian"])
def test_estimators_ignore_zero_padding_and_masked_backgrounds(kind, level):
    """Zero fill around the field of view or a masked (skull-stripped) background holds no noise: it
    must not pull σ to 0, or a noise-aware net given the estimate leaves the scan as it was."""
    clean = mni152_slice(axis=2)
    clean = clean / clean.max()
    noisy = np.asarray((rician if kind == "rician" else gaussian)(clean, level, rng=3), dtype=np.float32)
    framed = np.pad(noisy, ((0, 0), (48, 48), (48, 48)))  # a field of view padded with zeros
    masked = np.where(clean > 0.1, noisy, 0.0)  # a skull-stripped image: air set to 0
    for image in (framed, masked):
        est = estimate_noise(image, kind, reference=1.0)
        assert abs(est.level - level) / level < 0.15, est
    assert estimate_noise(np.zeros((64, 64)), kind).sigma == 0.0
    padded_series = np.zeros((96, *noisy.shape[1:]), dtype=np.float32)  # blank slices around a few
    padded_series[40:43] = noisy[0]
    est = estimate_noise(padded_series, kind, reference=1.0)
    assert abs(est.level - level) / level < 0.15, est


def test_rician_background_fit_refuses_image_without_air():
    noisy = rician(natural_image("coins"), 0.03, rng=0)
    with pytest.raises(ValueError, match="Rician noise cannot be estimated"):
        estimate_rician(noisy, method="background")


# Photographs carry their own noise (sensor, JPEG): `moon`, `brick` and `clock` have below 0.4 % of
# their own (0.14 %, 0.18 % and 0.39 % measured by the same estimator on the clean images), so even at
# 1 % added the measured total sqrt(added² + own²) stays within 8 % of what was added. Other
# photographs measure their own noise too (see estimate_gaussian's docstring).
CLEAN_PHOTOS = ["moon", "brick", "clock"]


@pytest.mark.parametrize("name", CLEAN_PHOTOS)
@pytest.mark.parametrize("level", MRI_LEVELS)
def test_gaussian_estimator_on_natural_images(name, level):
    clean = natural_image(name, gray=True)
    own = estimate_gaussian(clean, reference=1.0).level
    assert own < 0.004
    est = estimate_gaussian(gaussian(clean, sigma=level, rng=7), reference=1.0)
    assert abs(est.level - level) / level < 0.15, est


@pytest.mark.parametrize("level", [0.01, 0.05, 0.09])
def test_gaussian_estimator_on_color_and_3d(level):
    color = natural_image("astronaut")
    est = estimate_gaussian(gaussian(color, sigma=0.09, rng=0), reference=1.0)
    assert abs(est.level - 0.09) / 0.09 < 0.15
    vol = np.zeros((1, 12, 64, 64))
    est3 = estimate_gaussian(gaussian(vol, sigma=level, rng=0), reference=1.0)
    assert abs(est3.level - level) / level < 0.05


def test_gaussian_wavelet_method_is_available():
    y = gaussian(natural_image("moon"), sigma=0.05, rng=0)
    est = estimate_gaussian(y, reference=1.0, method="wavelet")
    assert abs(est.level - 0.05) / 0.05 < 0.15 and "wavelet" in est.method


@pytest.mark.parametrize("amount", [0.05, 0.1, 0.2, 0.3, 0.4])
@pytest.mark.parametrize("source", ["mri", "camera"])
def test_salt_pepper_estimator(amount, source):
    clean = mni152_slice() if source == "mri" else natural_image("camera")
    est = estimate_salt_pepper(salt_pepper(clean, amount, rng=9))
    assert abs(est.level - amount) / amount < 0.15, est


def test_salt_pepper_estimator_ignores_zero_background():
    clean = mni152_slice()
    assert (clean == 0).mean() > 0.5  # mostly air
    noisy = salt_pepper(clean, 0.05, rng=0)
    naive = float(((noisy == noisy.min()) | (noisy == noisy.max())).mean())
    assert naive > 0.5  # counting extremes alone would be badly wrong
    assert abs(estimate_salt_pepper(noisy).level - 0.05) < 0.0075


def test_estimate_dispatch():
    with pytest.raises(ValueError):
        estimate_noise(np.ones((1, 8, 8)), "poisson_gaussian")
    est = estimate_noise(gaussian(np.zeros((1, 64, 64)), sigma=0.1, rng=0), "gaussian", reference=1.0)
    assert est.kind == "gaussian" and est.to_dict()["sigma"] == est.sigma


# --- a 2D image stored as a volume (issue 19): the planes are those of the two longest axes -------

PLANE_LAYOUTS = {
    "(1, H, W)": lambda p: p[None],
    "(1, H, W, 1)": lambda p: p[None, :, :, None],
    "(1, 1, H, W)": lambda p: p[None, None],
    "(H, W, 1)": lambda p: p[:, :, None],  # a one-slice NIfTI or DICOM series as medden.io loads it
}


@pytest.mark.parametrize("layout", sorted(PLANE_LAYOUTS))
@pytest.mark.parametrize("level", [0.03, 0.05, 0.09])
@pytest.mark.parametrize("kind", ["rician", "gaussian"])
def test_estimators_on_a_single_slice_in_any_layout(kind, level, layout):
    clean = mni152_slice()[0]
    clean = clean / clean.max()
    noisy = (rician if kind == "rician" else gaussian)(clean, sigma=level, rng=5)
    est = estimate_noise(PLANE_LAYOUTS[layout](noisy), kind, reference=1.0)
    assert abs(est.level - level) / level < 0.15, (layout, est)


@pytest.mark.parametrize("level", [0.03, 0.05, 0.09])
@pytest.mark.parametrize("kind", ["rician", "gaussian"])
def test_estimators_on_a_three_slice_volume(kind, level):
    from medden.data.samples import mni152

    vol, _ = mni152()
    k = vol.shape[2] // 2
    three = vol[None, :, :, k - 1 : k + 2] / vol.max()  # (1, X, Y, 3): too thin to filter across
    noisy = (rician if kind == "rician" else gaussian)(three, sigma=level, rng=6)
    est = estimate_noise(noisy, kind, reference=1.0)
    assert abs(est.level - level) / level < 0.15, est


def test_salt_pepper_estimator_on_a_single_slice_volume():
    noisy = salt_pepper(mni152_slice(), 0.1, rng=2)
    flat = estimate_salt_pepper(noisy).level
    assert abs(flat - 0.1) < 0.015
    assert estimate_salt_pepper(noisy[0][:, :, None]).level == pytest.approx(flat)


def test_too_small_image_is_refused_with_its_shape():
    for shape in ((1, 4, 300, 1), (6, 6, 6)):
        with pytest.raises(ValueError, match="too small") as info:
            estimate_gaussian(np.ones(shape))
        assert str(shape) in str(info.value)
    with pytest.raises(ValueError, match="too small"):
        estimate_rician(np.ones((1, 4, 300, 1)))
