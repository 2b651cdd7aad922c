"""One model path (issue 20): one protocol, one loader, one predict, used by denoise and evaluate alike."""

from __future__ import annotations

import numpy as np
import pytest

from medden import baselines, nets
from medden.cli import main
from medden.denoiser import Denoiser, LoadedModel
from medden.loading import load_model


def test_nets_and_baselines_implement_the_protocol():
    for name in nets.available():
        spec = nets.spec(name)
        net = nets.get(name, spatial_dims=spec.spatial_dims[0], in_channels=spec.channels[0])
        assert isinstance(net, Denoiser), name
        assert net.default_mode == ("3d" if net.spatial_dims == 3 else "2d")
    for name in baselines.available():
        fn = baselines.get(name)
        assert isinstance(fn, Denoiser), name
    assert baselines.get("bm4d").default_mode == "3d" and baselines.get("bm3d").default_mode == "2d"
    assert not isinstance(lambda x: x, Denoiser)


def test_loaded_model_is_a_denoiser_and_callable():
    import torch

    model = load_model(model="hmadnet_mri_rician")
    assert isinstance(model, Denoiser) and isinstance(model, LoadedModel)
    x = torch.rand(1, 1, 32, 32)
    with torch.inference_mode():
        assert model(x).shape == x.shape
    median = load_model(model="median")
    assert median.kind == "baseline" and median.provenance()["baseline_config"]["size"] == 3


def test_a_plain_callable_is_blind_2d():
    model = LoadedModel.of_callable(lambda x, sigma=None: x)
    assert (model.spatial_dims, model.in_channels, model.noise_aware, model.default_mode) == (
        2,
        None,
        False,
        "2d",
    )


@pytest.mark.parametrize("dims", [2, 3])
def test_denoise_and_evaluate_give_identical_output(tmp_path, dims):
    """One bundle on one noisy volume: ``medden denoise`` and ``medden evaluate`` agree bit for bit (the
    bundle is noise-level-aware: both estimate the level, ``--sigma estimate``, as a user's run does)."""
    import nibabel as nib

    from medden.data.samples import mni152

    vol, _ = mni152("t1")
    data = tmp_path / "data"
    data.mkdir()
    nib.save(nib.Nifti1Image(vol[50:110, 60:130, 80:92].astype(np.float32), np.eye(4)), data / "t1.nii.gz")
    ev = tmp_path / "eval"
    args = ["evaluate", "--methods", "noisy", "hmadnet_mri_rician", "--data", str(data), "--noise", "rician"]
    args += ["--levels", "0.05", "--dims", str(dims), "--axis", "2", "--out", str(ev), "--max-images", "1"]
    assert main([*args, "--sigma", "estimate", "--save-outputs", "--no-figures", "--quiet"]) == 0
    noisy = np.load(ev / "outputs" / "noisy" / "0.05" / "0.npy")
    ours = np.load(ev / "outputs" / "hmadnet_mri_rician" / "0.05" / "0.npy")
    volume = noisy[0] if dims == 3 else noisy[0][:, :, None]  # a 2D item is a one-slice volume
    src = tmp_path / "in"
    src.mkdir()
    nib.save(nib.Nifti1Image(volume.astype(np.float32), np.eye(4)), src / "noisy.nii.gz")
    out = tmp_path / "out"
    assert (
        main(["denoise", str(src), str(out), "--model", "hmadnet_mri_rician", "--axis", "2", "--quiet"]) == 0
    )
    theirs = np.asarray(nib.load(out / "noisy.nii.gz").dataobj)
    expected = ours[0] if dims == 3 else ours[0][:, :, None]
    assert theirs.dtype == np.float32
    np.testing.assert_array_equal(theirs, expected.astype(np.float32))
    assert np.abs(theirs - volume).mean() > 1e-3  # it did denoise
