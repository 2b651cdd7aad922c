"""Inferers: every mode is exact for the identity, scaling inverts exactly, clipping is counted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medden.denoiser import ENSEMBLE_SIZES
from medden.inferers import IntensityScaler, SelfEnsemble, infer, slicewise, sliding_window, triplanar_axes


def identity(x, sigma=None):
    return x


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_slicewise_identity_and_order(axis):
    vol = torch.rand(1, 9, 11, 13)
    assert torch.equal(slicewise(identity, vol, axis=axis, batch_size=4), vol)
    # a denoiser that adds its batch position would show any slice reordering
    seen = []

    def record(x, sigma=None):
        seen.append(x.shape[0])
        return x * 2

    out = slicewise(record, vol, axis=axis, batch_size=4)
    assert torch.allclose(out, vol * 2) and sum(seen) == vol.shape[1:][axis]


def test_two_and_a_half_d_gets_neighbours_as_channels():
    vol = torch.arange(5, dtype=torch.float32).reshape(1, 1, 1, 5).expand(1, 2, 3, 5).contiguous()

    def centre(x, sigma=None):
        assert x.shape[1] == 3  # 1 channel × (2·1 + 1) slices
        return x[:, 1:2]

    assert torch.equal(infer(centre, vol, mode="2.5d", context=1), vol)

    def first(x, sigma=None):
        return x[:, 0:1]  # the previous slice (replicated at the edge)

    out = infer(first, vol, mode="2.5d", context=1)
    assert out[0, 0, 0].tolist() == [0.0, 0.0, 1.0, 2.0, 3.0]


def test_sliding_window_identity_3d_and_tiled_2d():
    vol = torch.rand(1, 40, 36, 20)
    assert torch.allclose(sliding_window(identity, vol, roi_size=(16, 16, 16)), vol, atol=1e-6)
    assert torch.allclose(infer(identity, vol, mode="3d", roi_size=(24, 24, 24)), vol, atol=1e-6)
    img = torch.rand(1, 700, 650)
    assert torch.allclose(infer(identity, img, mode="tiled2d"), img, atol=1e-6)


def test_sliding_window_matches_full_image_for_a_local_filter_inside():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    img = torch.rand(1, 96, 96)
    with torch.no_grad():
        full = conv(img[None])[0]
        tiled = sliding_window(
            lambda x, s=None: conv(x), img, roi_size=(48, 48), overlap=0.5, mode="constant"
        )
    # window borders see zero padding; away from them the tiles agree with the whole image
    assert torch.allclose(full[:, 30:66, 30:66], tiled[:, 30:66, 30:66], atol=0.25)


def test_sigma_is_passed_per_batch():
    got = []

    def aware(x, sigma=None):
        got.append(sigma)
        return x

    infer(aware, torch.rand(1, 4, 5, 6), mode="2d", batch_size=2, sigma=0.05)
    assert all(s is not None and s.shape == (2,) and float(s[0]) == pytest.approx(0.05) for s in got)


def test_scaler_inverse_is_exact_and_counts_clipping():
    rng = np.random.default_rng(0)
    ct = rng.normal(40, 300, (1, 20, 20, 5))
    ct[0, 0, 0, 0] = 3000.0  # metal
    s = IntensityScaler.fit(ct)
    assert s.clipped == 0
    np.testing.assert_allclose(s.inverse(s.forward(ct)), ct, atol=1e-9)
    p = IntensityScaler.fit(ct, mode="percentile", percentiles=(1, 99))
    assert p.clipped == int(np.count_nonzero((ct < p.low) | (ct > p.high))) > 0
    back = p.inverse(p.forward(ct), ct)
    np.testing.assert_allclose(back, ct, atol=1e-9)  # clipped voxels pass through unchanged
    t = torch.as_tensor(ct)
    assert torch.allclose(p.inverse(p.forward(t), t), t)
    const = IntensityScaler.fit(np.full((1, 4, 4), 7.0))
    assert const.forward(np.full((1, 4, 4), 7.0)).max() == 0.0


def test_bad_modes():
    with pytest.raises(ValueError):
        infer(identity, torch.rand(1, 8, 8), mode="3d")
    with pytest.raises(ValueError):
        infer(identity, torch.rand(1, 8, 8, 8), mode="cubic")


def test_intensity_scaler_dtype_mode_keeps_the_brightness_of_photographs():
    from medden.inferers import IntensityScaler

    dark = np.array([[10, 20, 40]], dtype=np.uint8)
    s = IntensityScaler.fit(dark, mode="dtype")
    assert (s.low, s.high) == (0.0, 255.0)
    np.testing.assert_allclose(s.forward(dark.astype(np.float64)), dark / 255.0)
    np.testing.assert_allclose(s.inverse(s.forward(dark.astype(np.float64))), dark)
    assert (IntensityScaler.fit(np.array([5], np.uint16), mode="dtype").high) == 65535.0
    signed = IntensityScaler.fit(np.array([-5, 7], np.int16), mode="dtype")
    assert (signed.low, signed.high) == (-32768.0, 32767.0)
    unit = IntensityScaler.fit(np.array([0.1, 0.3]), mode="dtype")  # floats already in [0, 1] stay
    assert (unit.low, unit.high) == (0.0, 1.0)
    wide = IntensityScaler.fit(np.array([-2.0, 3.0]), mode="dtype")  # other floats: their range
    assert (wide.low, wide.high) == (-2.0, 3.0)
    minmax = IntensityScaler.fit(dark)
    assert (minmax.low, minmax.high) == (10.0, 40.0)
    with pytest.raises(ValueError, match="dtype"):
        IntensityScaler.fit(dark, mode="bogus")


def test_intensity_scaler_unit_mode_passes_data_on_0_1_as_they_are():
    """``unit``: the identity, values outside [0, 1] (unclipped noise) neither clipped nor rescaled."""
    x = np.array([[-0.12, 0.0, 0.5, 1.0, 1.15]])
    s = IntensityScaler.fit(x, mode="unit")
    assert (s.low, s.high, s.clipped) == (0.0, 1.0, 0)
    np.testing.assert_array_equal(s.forward(x), x)
    np.testing.assert_array_equal(s.inverse(s.forward(x), x), x)
    t = torch.tensor(x)
    assert torch.equal(s.forward(t), t)
    # what dtype (or minmax) makes of the same float data: a min-max map that shrinks the contrast
    assert IntensityScaler.fit(x, mode="dtype").span == pytest.approx(1.27)


def test_evaluation_gives_a_dtype_model_the_data_unscaled():
    """The evaluation's [0, 1] data with unclipped noise reach a ``dtype`` model unchanged (as an 8-bit
    photograph's 0-255 would), not min-max scaled: the net sees the contrast and noise it was trained on."""
    from medden.denoiser import LoadedModel
    from medden.workflows.evaluate import EvalConfig, Method, run_method

    seen: list[torch.Tensor] = []

    def record(x: torch.Tensor, sigma: object = None) -> torch.Tensor:
        seen.append(x.clone())
        return x

    model = LoadedModel("record", record, 2, None, False, kind="net", intensity="dtype")
    noisy = np.random.default_rng(0).normal(0.5, 0.3, (1, 16, 16))  # beyond [0, 1] on both sides
    cfg = EvalConfig(methods=("record",), out_dir="unused")
    out = run_method(Method("record", "net", "record", model=model), noisy, None, cfg)
    np.testing.assert_allclose(seen[0].numpy().reshape(noisy.shape), noisy, atol=1e-6)
    np.testing.assert_allclose(out, noisy, atol=1e-6)


def _ramp(x, sigma=None):
    """A denoiser that is not flip-equivariant: it adds the column index / 100."""
    return x + torch.arange(x.shape[-1], dtype=x.dtype) / 100


@pytest.mark.parametrize("size", ENSEMBLE_SIZES)
def test_self_ensemble_turns_every_copy_back(size):
    x = torch.rand(2, 1, 5, 7)  # not square: the quarter turns must give the shape back
    shapes = []

    def record(y, sigma=None):
        shapes.append(tuple(y.shape))
        return y

    assert torch.equal(SelfEnsemble(record, size, spatial_dims=2)(x), x)
    assert len(shapes) == size and shapes[0] == (2, 1, 5, 7)
    assert ((2, 1, 7, 5) in shapes) == (size == 8)  # only the eight-member ensemble turns by 90°
    vol = torch.rand(1, 1, 3, 4, 5)
    out = SelfEnsemble(record, size, spatial_dims=3)(vol)
    assert torch.equal(out, vol) and set(shapes[size:]) == {(1, 1, 3, 4, 5)}  # 3D: flips only


def test_self_ensemble_averages_the_copies():
    x = torch.zeros(1, 1, 4, 6)
    # identity and left-right flip: the ramp j and its mirror 5 - j average to 2.5 everywhere
    assert torch.allclose(SelfEnsemble(_ramp, 2, spatial_dims=2)(x), torch.full_like(x, 0.025))
    assert torch.allclose(SelfEnsemble(_ramp, 1, spatial_dims=2)(x), _ramp(x))
    with pytest.raises(ValueError, match="ensemble size"):
        SelfEnsemble(_ramp, 3, spatial_dims=2)


def test_self_ensemble_of_a_net_is_equivariant_and_passes_sigma():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 3))
    net = torch.nn.Sequential(net, torch.nn.ZeroPad2d(1))
    x = torch.rand(1, 1, 12, 12)
    with torch.no_grad():
        assert not torch.allclose(net(x.flip(-1)).flip(-1), net(x), atol=1e-4)  # the bare net is not
        ens = SelfEnsemble(lambda y, s=None: net(y), 8, spatial_dims=2)
        for turned, back in (
            (lambda t: t.flip(-1), lambda t: t.flip(-1)),
            (lambda t: t.rot90(1, (-2, -1)), lambda t: t.rot90(-1, (-2, -1))),
        ):
            assert torch.allclose(back(ens(turned(x))), ens(x), atol=1e-6)
    got = []
    SelfEnsemble(lambda y, s=None: got.append(s) or y, 4, spatial_dims=2)(x, torch.tensor([0.05]))
    assert len(got) == 4 and all(float(s) == pytest.approx(0.05) for s in got)
    assert next(SelfEnsemble(net, 2, 2).parameters()).device.type == "cpu"  # inferers find the device


def test_self_ensemble_returns_what_every_copy_agrees_on_exactly():
    """A switching denoiser changes only the detected impulses: the pixels it passes stay bit-identical."""
    x = torch.rand(1, 1, 9, 11) * 0.8
    x[..., 2, 3] = 1.0

    def switching(y, sigma=None):
        filled = y + torch.linspace(0.0, 0.3, y.shape[-1])  # depends on position: copies disagree
        return torch.where(y == 1.0, filled / 3, y)

    out = SelfEnsemble(switching, 8, spatial_dims=2)(x)
    keep = x != 1.0
    assert torch.equal(out[keep], x[keep]) and out[0, 0, 2, 3] != x[0, 0, 2, 3]


def test_triplanar_averages_the_three_slicings_and_skips_thin_axes():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def blur(x, sigma=None):
        return conv(x)

    vol = torch.rand(1, 18, 20, 17)
    with torch.no_grad():
        passes = [slicewise(blur, vol, axis=a) for a in range(3)]
        out = infer(blur, vol, mode="triplanar")
    assert torch.allclose(out, sum(passes) / 3, atol=1e-6)
    assert all(not torch.allclose(out, p, atol=1e-3) for p in passes)  # each pass differs from the mean
    assert triplanar_axes((18, 20, 17)) == [0, 1, 2]
    # a slab 5 slices thick: slices along X or Y would be 5 pixels wide, so only Z is sliced
    slab = torch.rand(1, 18, 20, 5)
    assert triplanar_axes((18, 20, 5)) == [2] and triplanar_axes((18, 5, 20), axis=0) == [1]
    assert triplanar_axes((4, 5, 20), axis=0) == [0]  # no plane is wide enough: the given axis
    with torch.no_grad():
        assert torch.equal(infer(blur, slab, mode="triplanar"), slicewise(blur, slab, axis=2))
    with pytest.raises(ValueError, match="needs a volume"):
        infer(blur, torch.rand(1, 20, 20), mode="triplanar")


@pytest.mark.parametrize("mode", ["2d", "2.5d", "triplanar", "3d"])
@pytest.mark.parametrize("axis", [0, 2])
def test_progress_reports_exactly_the_work_size(mode, axis):
    """The progress bar of `medden denoise` ends at its total in every mode (the 3D mode used to report
    the slices of a volume counted as one step)."""
    from medden.workflows.predict import work_size

    shape = (20, 18, 17)
    done = []
    infer(
        lambda x, sigma=None: x[:, x.shape[1] // 2 :][:, :1],  # 2.5D: the middle of the stacked slices
        torch.rand(1, *shape),
        mode=mode,
        axis=axis,
        batch_size=4,
        progress=done.append,
    )
    assert sum(done) == work_size("volume", shape, mode, axis)
    assert work_size("volume", (*shape, 3), mode, axis) == 3 * sum(done)  # a 4D series: per volume
