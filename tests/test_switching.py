"""The switching salt-and-pepper net: detection, fill, and uncorrupted voxels passed through exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medden import nets
from medden.baselines import SwitchingMedian
from medden.data.samples import mni152_phantom
from medden.denoiser import LoadedModel
from medden.metrics import psnr
from medden.nets.switching import ImpulseSwitch, impulse_mask, median_fill
from medden.noise import salt_pepper
from medden.workflows.predict import Options, predict


@pytest.fixture(scope="module")
def brain_slice() -> np.ndarray:
    vol = np.asarray(mni152_phantom()[0], dtype=np.float32)
    img = vol[:, :, vol.shape[2] // 2]
    return (img - img.min()) / (img.max() - img.min())


def test_mask_matches_the_switching_median_rule(brain_slice):
    noisy = salt_pepper(brain_slice, 0.2, rng=0).astype(np.float32)
    _, reference = SwitchingMedian().impulse_mask(noisy)
    ours = impulse_mask(torch.from_numpy(noisy)[None, None])[0, 0].numpy()
    changed = noisy != brain_slice  # pepper in black air changes nothing and cannot be found
    assert ours[changed].mean() > 0.95
    assert changed[ours].mean() > 0.9
    assert np.array_equal(ours, reference)


def test_fill_is_close_to_the_switching_median(brain_slice):
    noisy = salt_pepper(brain_slice, 0.2, rng=1).astype(np.float32)
    x = torch.from_numpy(noisy)[None, None]
    filled = median_fill(x, impulse_mask(x))[0, 0].numpy()
    reference = SwitchingMedian()(x)[0, 0].numpy()
    assert psnr(brain_slice, filled, 1.0) > psnr(brain_slice, reference, 1.0) - 1.5
    assert psnr(brain_slice, filled, 1.0) > psnr(brain_slice, noisy, 1.0) + 15


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_uncorrupted_voxels_are_bit_identical(spatial_dims):
    torch.manual_seed(0)
    net = nets.get("hmadnet-switching", spatial_dims=spatial_dims, features=(8, 16)).eval()
    size = (1, 1) + ((24, 28) if spatial_dims == 2 else (10, 12, 14))
    clean = torch.rand(size) * 0.8 + 0.1
    noisy = torch.from_numpy(salt_pepper(clean.numpy(), 0.25, rng=2).astype(np.float32))
    with torch.no_grad():
        out = net(noisy)
    corrupted, found = noisy != clean, impulse_mask(noisy)
    assert found[corrupted].float().mean() > 0.95
    assert corrupted[found].float().mean() > 0.95  # at most the clean image's own extremes besides
    assert torch.equal(out[~found], noisy[~found])
    assert (out[found] != noisy[found]).float().mean() > 0.9  # the impulses were changed


def test_ablation_is_the_fill_alone():
    x = torch.rand(1, 1, 16, 16)
    x[0, 0, 3, 3], x[0, 0, 9, 9] = 0.0, 1.0
    fill_only = ImpulseSwitch(2, 1, 1, refine=False)
    expected = torch.where(impulse_mask(x), median_fill(x, impulse_mask(x)), x)
    assert torch.equal(fill_only(x), expected)
    assert nets.count_parameters(fill_only) == 0


def test_gradient_reaches_the_backbone_only_through_the_impulses():
    torch.manual_seed(0)
    net = ImpulseSwitch(2, 1, 1, features=(8, 16))
    x = torch.full((1, 1, 16, 16), 0.5) + 0.1 * torch.rand(1, 1, 16, 16)
    loss = (net(x) - 0.5).abs().sum()  # no impulse but the image's own min and max voxels
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_prediction_path_returns_uncorrupted_pixels_exactly():
    """Through ``predict`` (what ``medden denoise`` runs): integer data, scaled into [0, 1] and back."""
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    clean = rng.integers(200, 3000, size=(40, 36, 3)).astype(np.int16)
    noisy = clean.copy()
    hit = rng.random(clean.shape) < 0.2
    noisy[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 4095).astype(np.int16)
    model = LoadedModel.wrap(ImpulseSwitch(2, 1, 1, features=(8, 16)).eval(), "switch", "net")
    out, _ = predict(model, noisy, "volume", Options(mode="2d", axis=2))
    assert np.array_equal(out[~hit], noisy[~hit].astype(out.dtype))
    assert (out[hit] != noisy[hit]).mean() > 0.9


def test_untrained_refinement_is_the_fill() -> None:
    """The correction starts at zero: an untrained switching net gives the iterative switching median."""
    torch.manual_seed(0)
    x = torch.rand(2, 1, 24, 24)
    x[:, :, ::5, ::3] = 1.0
    x[:, :, 2::7, 1::4] = 0.0
    fill_only = ImpulseSwitch(2, 1, 1, refine=False)(x)
    refined = ImpulseSwitch(2, 1, 1, features=(8, 16))(x)
    assert impulse_mask(x).sum() > 0
    torch.testing.assert_close(refined, fill_only, rtol=0, atol=0)
