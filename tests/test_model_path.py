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


def _nifti_slab(tmp_path, name="in"):
    import nibabel as nib

    from medden.data.samples import mni152
    from medden.noise import rician

    vol, _ = mni152("t1")
    clean = vol[50:110, 60:130, 85:87].astype(np.float32)
    noisy = rician(clean, 0.05, rng=np.random.default_rng(0)).astype(np.float32)
    src = tmp_path / name
    src.mkdir()
    nib.save(nib.Nifti1Image(noisy, np.eye(4)), src / "noisy.nii.gz")
    return src, noisy


def test_denoise_ensemble_option_is_recorded_and_changes_the_output(tmp_path):
    import json

    import nibabel as nib

    src, noisy = _nifti_slab(tmp_path)
    outs = {}
    own = load_model(model="hmadnet_mri_rician").ensemble  # what the bundle's metadata names
    for size in sorted({1, 8, own}):
        out = tmp_path / f"out{size}"
        args = ["denoise", str(src), str(out), "--model", "hmadnet_mri_rician", "--noise-level", "0.05"]
        assert main([*args, "--ensemble", str(size), "--quiet"]) == 0
        outs[size] = np.asarray(nib.load(out / "noisy.nii.gz").dataobj)
        assert json.loads((out / "noisy.nii.gz.provenance.json").read_text())["ensemble"] == size
    default = tmp_path / "default"
    assert (
        main(["denoise", str(src), str(default), "--model", "hmadnet_mri_rician", "--noise-level", "0.05"])
        == 0
    )
    np.testing.assert_array_equal(np.asarray(nib.load(default / "noisy.nii.gz").dataobj), outs[own])
    diff = np.abs(outs[8] - outs[1])
    assert 0 < diff.mean() < 0.1 * np.abs(outs[1] - noisy).mean()  # a different, close average
    with pytest.raises(SystemExit) as exc:  # argparse's one-line usage error
        main(["denoise", str(src), str(tmp_path / "bad"), "--model", "median", "--ensemble", "3"])
    assert exc.value.code == 2 and not (tmp_path / "bad").exists()


def test_bundle_metadata_sets_the_default_ensemble(tmp_path):
    import json
    import shutil

    from medden.bundle_format import available_bundles
    from medden.errors import UsageError

    root = tmp_path / "b"
    shutil.copytree(available_bundles()["hmadnet_mri_rician"], root, ignore=shutil.ignore_patterns("eval"))
    meta_path = root / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    assert load_model(bundle=root).ensemble == meta["medden"]["ensemble"] == 2
    del meta["medden"]["ensemble"]
    meta_path.write_text(json.dumps(meta))
    assert load_model(bundle=root).ensemble == 1  # none recorded: off
    meta["medden"]["ensemble"] = 4
    meta_path.write_text(json.dumps(meta))
    assert load_model(bundle=root).ensemble == 4
    for bad in (5, 2.0, True, "2"):  # 2.0 == 2, but as a count of copies it would fail as a slice index
        meta["medden"]["ensemble"] = bad
        meta_path.write_text(json.dumps(meta))
        with pytest.raises(UsageError, match="ensemble"):
            load_model(bundle=root)


@pytest.mark.parametrize("bad", [2.0, 3, True, "4"])
def test_options_refuse_an_ensemble_size_that_is_not_an_allowed_integer(bad):
    from medden.errors import UsageError
    from medden.inferers import SelfEnsemble
    from medden.workflows.predict import Options

    with pytest.raises(UsageError, match="ensemble"):
        Options(ensemble=bad).validate()
    with pytest.raises(ValueError, match="ensemble"):
        SelfEnsemble(lambda x: x, bad, spatial_dims=2)


def test_evaluate_runs_a_method_with_its_ensemble(tmp_path):
    import json

    src, _ = _nifti_slab(tmp_path, "data")
    out = tmp_path / "ev"
    args = ["evaluate", "--methods", "noisy", "median", "m8=bundles/hmadnet_mri_rician"]
    args += ["--method-kwargs", json.dumps({"m8": {"ensemble": 8}, "median": {"ensemble": 2}})]
    args += ["--data", str(src), "--noise", "rician", "--levels", "0.05", "--out", str(out), "--quiet"]
    assert main([*args, "--no-figures", "--max-images", "1"]) == 0
    specs = {m["label"]: m for m in json.loads((out / "results.json").read_text())["methods"]}
    assert specs["m8"]["ensemble"] == 8 and specs["median"]["ensemble"] == 2
    assert specs["m8"]["mode"] == specs["median"]["mode"] == "2d"
    for kwargs in ({"median": {"ensemble": 6}}, {"median": {"ensemble": 2.0}}, {"m8": {"mode": "3d"}}):
        bad = ["--method-kwargs", json.dumps(kwargs)]
        assert main([*args[:5], *bad, *args[7:], "--no-figures"]) == 2, kwargs  # usage error
    assert (
        main([*args[:5], "--method-kwargs", '{"m8": {"mode": "triplanar"}}', *args[7:], "--no-figures"]) == 0
    )
    spec = next(m for m in json.loads((out / "results.json").read_text())["methods"] if m["label"] == "m8")
    assert spec["mode"] == "2d"  # 2D images: tri-planar runs, and is recorded, as 2D


def test_triplanar_mode_runs_a_2d_model_on_volumes_and_falls_back_on_slices(tmp_path):
    import nibabel as nib

    from medden.data.samples import mni152
    from medden.errors import UsageError
    from medden.workflows.predict import Options, predict

    model = load_model(model="hmadnet_mri_rician")
    vol, _ = mni152("t1")
    rng = np.random.default_rng(1)
    clean = vol[50:90, 60:100, 80:100].astype(np.float32) / vol.max()
    noisy = np.hypot(clean + rng.normal(0, 0.05, clean.shape), rng.normal(0, 0.05, clean.shape)).astype(
        np.float32
    )
    opts = {m: Options(mode=m, noise_level=0.05, ensemble=1).validate() for m in ("2d", "triplanar")}
    flat, _ = predict(model, noisy, "volume", opts["2d"])
    tri, info = predict(model, noisy, "volume", opts["triplanar"])
    assert info["mode"] == "triplanar" and tri.shape == noisy.shape
    err = {name: float(np.mean((out - clean) ** 2)) for name, out in (("2d", flat), ("tri", tri))}
    assert err["tri"] < err["2d"]  # three planes' errors average down
    one, _ = predict(model, noisy[:, :, 5], "volume", opts["triplanar"])  # a one-slice volume: plain 2D
    two, _ = predict(model, noisy[:, :, 5], "volume", opts["2d"])
    np.testing.assert_array_equal(one, two)
    with pytest.raises(UsageError, match="3D model"):
        predict(load_model(model="hmadnet_mri_rician_3d"), noisy, "volume", opts["triplanar"])
    src = tmp_path / "in"
    src.mkdir()
    nib.save(nib.Nifti1Image(noisy, np.eye(4)), src / "v.nii.gz")
    out = tmp_path / "out"
    args = ["denoise", str(src), str(out), "--model", "hmadnet_mri_rician", "--mode", "triplanar"]
    assert main([*args, "--noise-level", "0.05", "--ensemble", "1", "--quiet"]) == 0
    np.testing.assert_allclose(np.asarray(nib.load(out / "v.nii.gz").dataobj), tri, atol=1e-5)


def test_python_api_takes_the_ensemble_and_checks_its_options():
    from medden import denoise
    from medden.errors import UsageError

    rng = np.random.default_rng(3)
    clean = np.tile(np.linspace(0.2, 0.8, 40, dtype=np.float32), (40, 1))
    noisy = np.abs(clean + rng.normal(0, 0.05, clean.shape)).astype(np.float32)
    level = np.float32(0.05)  # numpy scalars are numbers too
    default = denoise(noisy, model="hmadnet_mri_rician", noise_level=level)  # the bundle's 2 copies
    two = denoise(noisy, model="hmadnet_mri_rician", noise_level=level, ensemble=2)
    one = denoise(noisy, model="hmadnet_mri_rician", noise_level=level, ensemble=1)
    assert np.array_equal(default, two) and not np.array_equal(one, two)
    for bad in ({"ensemble": 3}, {"ensemble": 2.0}, {"mode": "4d"}, {"noise_level": 2.0}):
        with pytest.raises(UsageError):
            denoise(noisy, model="median", **bad)
