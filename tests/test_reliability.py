"""Reliability and security of the model path and the batch (issue 19): untrusted weights metadata
and bundle configs, the output lock, non-finite values, exit codes of bad user input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medden import checkpoints, nets
from medden.cli import main
from medden.io.lock import output_lock
from medden.loading import load_model
from medden.workflows.predict import Options, predict

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


@pytest.fixture(scope="module")
def nifti_input(tmp_path_factory) -> Path:
    """A folder with one small float32 NIfTI volume (a noisy MNI152 crop)."""
    import nibabel as nib

    from medden.data.samples import mni152
    from medden.noise import rician

    vol, _ = mni152("t1")
    crop = rician(vol[60:92, 70:102, 70:74], 0.05, rng=0).astype(np.float32)
    root = tmp_path_factory.mktemp("nifti") / "in"
    root.mkdir()
    nib.save(nib.Nifti1Image(crop, np.eye(4)), root / "t1.nii.gz")
    return root


def _denoise(src: Path, out: Path, *extra: str) -> int:
    return main(["denoise", str(src), str(out), "--quiet", *extra])


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------------------------ weights files


def _tiny_weights(path: Path, **meta_override) -> Path:
    net = nets.get("dncnn", spatial_dims=2, in_channels=1, out_channels=1, depth=3, features=8)
    kwargs = {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "depth": 3, "features": 8}
    checkpoints.save_weights(
        net, path, net=meta_override.pop("net", "dncnn"), net_kwargs={**kwargs, **meta_override}
    )
    return path


def test_good_checkpoint_runs(nifti_input, tmp_path, capsys):
    w = _tiny_weights(tmp_path / "w.safetensors")
    assert _denoise(nifti_input, tmp_path / "out", "--checkpoint", str(w)) == 0


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("truncate", "not a readable safetensors file"),
        ("garbage", "not a readable safetensors file"),
        ("unknown_net", "unknown net"),
        ("bad_argument", "takes no argument"),
        ("huge", "parameters (limit"),
    ],
)
def test_bad_checkpoint_is_a_usage_error(nifti_input, tmp_path, capsys, damage, reason):
    w = tmp_path / "w.safetensors"
    if damage == "truncate":
        _tiny_weights(w)
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    elif damage == "garbage":
        w.write_bytes(os.urandom(4096))
    elif damage == "unknown_net":
        _tiny_weights(w, net="no-such-net")
    elif damage == "bad_argument":
        _tiny_weights(w, widht=3)
    else:  # the metadata asks for a net of 120 G parameters: refused before any allocation
        _tiny_weights(w, features=30000)
    code = _denoise(nifti_input, tmp_path / "out", "--checkpoint", str(w))
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2, line
    assert reason in line


def test_pickled_checkpoint_is_refused_in_one_line(nifti_input, tmp_path, capsys):
    import torch

    w = tmp_path / "model.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, w)  # a pickled module, not a state dict
    code = _denoise(nifti_input, tmp_path / "out", "--checkpoint", str(w), "--net", "dncnn")
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2
    assert "pickled" in line and "weights_only=False" not in line


def test_build_refuses_huge_nets_without_allocating():
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(ValueError, match="parameters"):
        nets.build("dncnn", {"features": 30000})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50e6  # 121 G parameters would be 486 GB


# ------------------------------------------------------------------------------------------ bundles


@pytest.fixture
def bundle_copy(tmp_path) -> Path:
    root = tmp_path / "b"
    shutil.copytree(BUNDLES / "hmadnet_mri_rician", root, ignore=shutil.ignore_patterns("eval"))
    return root


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_bundle_config_code_is_never_run(bundle_copy, nifti_input, tmp_path, capsys, monkeypatch):
    marker = tmp_path / "pwned"
    payload = f"$__import__('os').system('touch {marker}') and 'x' or 'hmadnet-compact'"
    _edit_json(bundle_copy / "configs" / "inference.json", lambda d: d["network_def"].update(name=payload))
    code = _denoise(nifti_input, tmp_path / "out", "--bundle", str(bundle_copy))
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2 and "expression" in line
    assert not marker.exists()


def test_bundle_network_target_must_be_medden(bundle_copy, nifti_input, tmp_path, capsys):
    _edit_json(
        bundle_copy / "configs" / "inference.json", lambda d: d["network_def"].update(_target_="os.system")
    )
    assert _denoise(nifti_input, tmp_path / "out", "--bundle", str(bundle_copy)) == 2
    assert "_target_" in _one_line_error(capsys.readouterr().err)


def test_bundle_without_checksum_is_refused_unless_allowed(bundle_copy, nifti_input, tmp_path, capsys):
    _edit_json(bundle_copy / "configs" / "metadata.json", lambda d: d["medden"].pop("weights_sha256"))
    weights = bundle_copy / "models" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # altered weights
    weights.write_bytes(bytes(data))
    assert _denoise(nifti_input, tmp_path / "out", "--bundle", str(bundle_copy)) == 2
    assert "weights_sha256" in _one_line_error(capsys.readouterr().err)
    out = tmp_path / "out2"
    assert _denoise(nifti_input, out, "--bundle", str(bundle_copy), "--allow-unverified") == 0
    record = json.loads(next(out.rglob("*.provenance.json")).read_text())
    assert record["verified"] is False


def test_bundle_with_wrong_checksum_is_refused(bundle_copy, nifti_input, tmp_path, capsys):
    _edit_json(
        bundle_copy / "configs" / "metadata.json", lambda d: d["medden"].update(weights_sha256="0" * 64)
    )
    assert _denoise(nifti_input, tmp_path / "out", "--bundle", str(bundle_copy)) == 2
    assert "does not match" in _one_line_error(capsys.readouterr().err)


def test_shipped_bundle_loads_as_data():
    model = load_model(model="hmadnet_mri_rician")
    assert model.kind == "bundle" and model.extra["verified"] is True
    assert (
        model.sha256
        == json.loads((BUNDLES / "hmadnet_mri_rician/configs/metadata.json").read_text())["medden"][
            "weights_sha256"
        ]
    )


# ------------------------------------------------------------------------------------------- output


def test_live_lock_refuses_a_second_run(nifti_input, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with output_lock(out / ".medden.lock"):
        code = _denoise(nifti_input, out, "--model", "median")
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2 and "in use by another medden run" in line and f"pid {os.getpid()}" in line
    assert not (out / "manifest.jsonl").exists()  # nothing was done, nothing was marked


def test_stale_lock_of_a_dead_process_is_taken_over(nifti_input, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (out / ".medden.lock").write_text(json.dumps({"pid": int(dead.stdout), "host": "here"}))
    assert _denoise(nifti_input, out, "--model", "median") == 0


def test_two_concurrent_runs_leave_a_consistent_batch(tmp_path):
    """Two processes on one OUTPUT: one does the batch, the other exits 2; a rerun skips everything."""
    import nibabel as nib

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        nib.save(nib.Nifti1Image(rng.random((48, 48, 4), dtype=np.float32), np.eye(4)), src / f"v{i:02d}.nii")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "medden", "denoise", str(src), str(out), "--model", "median", "--quiet"]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    errors = [p.stderr.read() for p in procs]
    assert codes in ([0, 0], [0, 2]), errors  # [0, 0]: the second started after the first had finished
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["status"] in ("done", "skipped") for r in rows)
    assert not any(r.get("foreign_output") for r in rows)
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr


def test_output_that_cannot_be_created_is_a_usage_error(nifti_input, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert _denoise(nifti_input, blocker / "out", "--model", "median") == 2
    assert "cannot write to OUTPUT" in _one_line_error(capsys.readouterr().err)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_parent_is_a_usage_error(nifti_input, tmp_path, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        assert _denoise(nifti_input, parent / "out", "--model", "median") == 2
    finally:
        parent.chmod(0o755)
    assert "cannot write to OUTPUT" in _one_line_error(capsys.readouterr().err)


# ------------------------------------------------------------------------------- non-finite values


@pytest.mark.parametrize("model_name", ["median", "hmadnet_mri_rician"])
def test_one_nan_voxel_stays_one_nan_voxel(model_name):
    from medden.data.samples import mni152_slice
    from medden.noise import rician

    vol = np.stack([rician(mni152_slice(index=80 + k)[0], 0.05, rng=k) for k in range(3)], axis=-1)
    vol = (vol * 1000).astype(np.float32)
    vol[50, 60, 1] = np.nan
    vol[10, 10, 2] = np.inf
    before = vol.copy()
    out, info = predict(load_model(model=model_name), vol, "volume", Options(mode="2d"))
    assert np.isnan(out[50, 60, 1]) and np.isposinf(out[10, 10, 2])
    assert np.count_nonzero(~np.isfinite(out)) == 2
    assert info["nonfinite"] == 2
    np.testing.assert_array_equal(vol, before, strict=True)  # the input is not modified
    # the finite rest is denoised as if the bad voxels had held a local value
    assert abs(float(np.nanmean(out[np.isfinite(out)])) - float(np.nanmean(vol[np.isfinite(vol)]))) < 50


def test_all_nan_unit_fails_alone(tmp_path, nifti_input, capsys):
    import nibabel as nib

    src = tmp_path / "in"
    shutil.copytree(nifti_input, src)
    nib.save(nib.Nifti1Image(np.full((16, 16, 2), np.nan, np.float32), np.eye(4)), src / "nan.nii.gz")
    out = tmp_path / "out"
    assert _denoise(src, out, "--model", "median") == 3
    rows = {json.loads(x)["key"]: json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()}
    assert rows["t1.nii.gz"]["status"] == "done"
    assert rows["nan.nii.gz"]["status"] == "failed" and "no finite values" in rows["nan.nii.gz"]["error"]


def test_a_base_exception_in_one_unit_fails_only_that_unit(tmp_path, nifti_input, monkeypatch):
    """A decoder panic (pyo3's PanicException derives from BaseException) fails its unit only."""
    import nibabel as nib

    from medden.io.isolate import IsolatedLoader

    class PanicException(BaseException):
        pass

    src = tmp_path / "in"
    shutil.copytree(nifti_input, src)
    nib.save(nib.Nifti1Image(np.ones((16, 16, 2), np.float32), np.eye(4)), src / "panic.nii.gz")
    real_load = IsolatedLoader.load

    def load(self, source, *args, **kwargs):
        if str(source).endswith("panic.nii.gz"):
            raise PanicException("range end index 9 out of range for slice of length 4")
        return real_load(self, source, *args, **kwargs)

    monkeypatch.setattr(IsolatedLoader, "load", load)
    out = tmp_path / "out"
    assert _denoise(src, out, "--model", "median") == 3
    rows = {json.loads(x)["key"]: json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()}
    assert rows["t1.nii.gz"]["status"] == "done"
    assert rows["panic.nii.gz"]["error"].startswith("PanicException: range end index")


# ------------------------------------------------------------------------------------------ options


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mode", "4d"),
        ("axis", 5),
        ("noise_level", 1.5),
        ("noise_level", "loud"),
        ("batch_size", 0),
        ("roi_size", 4),
        ("overlap", 1.0),
        ("intensity", "log"),
        ("context", 0),
    ],
)
def test_options_validate_every_field(field, value):
    from medden.errors import UsageError

    with pytest.raises(UsageError):
        Options(**{field: value}).validate()


def test_bundle_inference_validates_its_options(tmp_path):
    from medden.bundle import inference
    from medden.errors import UsageError

    with pytest.raises(UsageError, match="overlap"):
        inference(None, BUNDLES / "hmadnet_mri_rician", tmp_path / "in", tmp_path / "out", overlap=2.0)
