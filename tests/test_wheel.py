"""Trained weights reach pip users: the wheel carries the bundles (setup.py copies them in as
``medden/bundles/``), medden finds them without a clone, and ``medden models`` lists what ``--model``
accepts apart from the architectures ``--net`` accepts.

The two tests that build the wheel (sdist, then the wheel from it, as ``python -m build`` does) and
install it into a fresh venv outside the repository are marked slow (about a minute): ``make test-slow``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from medden import bundle_format
from medden.commands import models as models_command
from medden.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
BUNDLES = sorted(p.parents[1].name for p in (REPO / "bundles").glob("*/configs/inference.json"))
SMALL = "gimsanet_gray"  # the smallest weights: a quick copy
WHEEL_MB = 40  # nine bundles' safetensors are ~23 MB; model.pt/.ts copies would double or triple it


def _copy_bundle(name: str, dest: Path) -> Path:
    src = REPO / "bundles" / name
    out = dest / name
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("eval", "*.pt", "*.ts"))
    return out


@pytest.fixture
def no_checkout(tmp_path, monkeypatch):
    """medden as installed from a wheel: no checkout beside the package, bundles as package data."""
    monkeypatch.delenv("MEDDEN_BUNDLES", raising=False)
    monkeypatch.setattr(bundle_format, "CHECKOUT_BUNDLES", tmp_path / "site-packages" / "bundles")
    installed = tmp_path / "site-packages" / "medden" / "bundles"
    installed.mkdir(parents=True)
    monkeypatch.setattr(bundle_format, "INSTALLED_BUNDLES", installed)
    return installed


def test_a_checkout_finds_its_own_bundles(monkeypatch):
    monkeypatch.delenv("MEDDEN_BUNDLES", raising=False)
    assert bundle_format.shipped_bundles() == REPO / "bundles"
    assert sorted(bundle_format.available_bundles()) == BUNDLES
    assert bundle_format.find_bundle("hmadnet_mri_rician") == REPO / "bundles" / "hmadnet_mri_rician"
    assert bundle_format.SCHEMA == REPO / "bundles" / "schema" / "meta_schema.json"


def test_an_installed_package_finds_the_bundles_it_carries(no_checkout, tmp_path):
    # a folder named bundles beside the package is not a checkout without its pyproject.toml
    _copy_bundle("dncnn_gray", bundle_format.CHECKOUT_BUNDLES)
    copy = _copy_bundle(SMALL, no_checkout)
    assert bundle_format.shipped_bundles() == no_checkout
    assert bundle_format.available_bundles() == {SMALL: copy}
    assert bundle_format.find_bundle(SMALL) == copy
    with pytest.raises(UsageError, match=f"known: {SMALL}$"):
        bundle_format.find_bundle("dncnn_gray")
    model = bundle_format.load_network(None, copy)
    assert model.provenance()["bundle"] == str(copy) and model.provenance()["verified"] is True


def test_medden_bundles_comes_first_and_may_name_one_bundle(no_checkout, tmp_path, monkeypatch):
    shipped = _copy_bundle(SMALL, no_checkout)
    own = _copy_bundle(SMALL, tmp_path / "mine")
    other = _copy_bundle("dncnn_gray", tmp_path / "other")
    monkeypatch.setenv("MEDDEN_BUNDLES", os.pathsep.join([str(own.parent), str(other), ""]))
    assert bundle_format.bundle_search_path() == [own.parent, other, no_checkout]
    assert bundle_format.available_bundles() == {SMALL: own, "dncnn_gray": other}
    assert bundle_format.find_bundle(SMALL) != shipped


def test_no_bundle_anywhere_is_a_one_line_usage_error(no_checkout):
    assert bundle_format.shipped_bundles() == no_checkout and bundle_format.available_bundles() == {}
    with pytest.raises(UsageError, match="bundle 'hmadnet_mri_rician' not found; known: none"):
        bundle_format.find_bundle("hmadnet_mri_rician")


def test_weights_status_tells_whether_the_weights_verify(tmp_path):
    root = _copy_bundle(SMALL, tmp_path)
    assert bundle_format.weights_status(root) == "verified"
    weights = root / bundle_format.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert bundle_format.weights_status(root) == "mismatch"
    meta_file = root / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    del meta["medden"]["weights_sha256"]
    meta_file.write_text(json.dumps(meta))
    assert bundle_format.weights_status(root) == "unrecorded"
    weights.unlink()
    assert bundle_format.weights_status(root) == "missing"


def test_models_lists_bundles_and_a_broken_one_without_failing(no_checkout, tmp_path, monkeypatch):
    good = _copy_bundle(SMALL, no_checkout)
    broken = _copy_bundle("dncnn_gray", tmp_path / "mine")
    (broken / "configs" / "inference.json").write_text("{not json")
    monkeypatch.setenv("MEDDEN_BUNDLES", str(broken.parent))
    rows = {r["name"]: r for r in models_command.list_bundles()}
    assert rows[SMALL] == {
        "kind": "bundle",
        "name": SMALL,
        "path": str(good),
        "task": "GIMSANet blind gray AWGN denoising",
        "net": "gimsanet-compact",
        "spatial_dims": 2,
        "modality": "OT",
        "channels": 1,
        "noise": "gaussian",
        "version": json.loads((good / "configs" / "metadata.json").read_text())["version"],
        "weights": "verified",
    }
    assert rows["dncnn_gray"]["weights"] == "invalid" and "not readable JSON" in rows["dncnn_gray"]["error"]


def test_models_lists_exactly_what_model_accepts(monkeypatch):
    """Every bundle and baseline ``medden models`` lists loads by name; no architecture does."""
    from medden import nets
    from medden.loading import load_model

    monkeypatch.delenv("MEDDEN_BUNDLES", raising=False)
    bundles = models_command.list_bundles()
    baselines = models_command.list_baselines()
    assert [r["name"] for r in bundles] == BUNDLES and all(r["weights"] == "verified" for r in bundles)
    for row in bundles + baselines:
        assert load_model(row["name"]).provenance()["model_kind"] == row["kind"]
    for name in nets.available():
        with pytest.raises(UsageError, match="unknown model"):
            load_model(name)


# ------------------------------------------------------------------------------------------------
# the wheel itself (slow: built from an sdist, installed into a fresh venv)
# ------------------------------------------------------------------------------------------------


def _run(cmd: list, cwd: Path, env: dict | None = None, timeout: int = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{cmd[:3]} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    )
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel as ``python -m build`` makes it: an sdist of the working tree, then a wheel from the
    sdist (offline: this venv's setuptools, no build isolation, no index, no cache)."""
    out = tmp_path_factory.mktemp("dist")
    build = f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"
    _run([sys.executable, "-c", build], cwd=REPO)
    (sdist,) = out.glob("medden-*.tar.gz")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    _run([*pip, "--no-cache-dir", "--quiet", "-w", str(out), str(sdist)], cwd=out)
    (whl,) = out.glob("medden-*.whl")
    return whl


@pytest.mark.slow
def test_the_wheel_carries_the_bundles_without_their_sample_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for bundle in BUNDLES:
        for rel in ("configs/inference.json", "configs/metadata.json", "models/model.safetensors", "LICENSE"):
            assert f"medden/bundles/{bundle}/{rel}" in names, (bundle, rel)
        for doc in (REPO / "bundles" / bundle / "docs").iterdir():  # the data licences too
            assert f"medden/bundles/{bundle}/docs/{doc.name}" in names, (bundle, doc.name)
    assert "medden/bundles/schema/meta_schema.json" in names
    assert not [n for n in names if "/eval/" in n or n.endswith((".pt", ".ts")) or n.endswith("generate.py")]
    modules = {str(p.relative_to(REPO)) for p in (REPO / "medden").rglob("*.py")}
    assert modules <= names, sorted(modules - names)  # every subpackage found
    size_mb = wheel.stat().st_size / 1e6
    assert size_mb < WHEEL_MB, f"the wheel is {size_mb:.1f} MB"


def _fresh_venv(root: Path) -> Path:
    """A venv without medden that sees this venv's packages (its dependencies) through a .pth line
    (which adds a path but runs no .pth of that path: the editable install's finder stays out)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=300)
    python = root / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root)
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib.strip()) / "medden_test_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


@pytest.mark.slow
def test_the_installed_wheel_denoises_with_a_bundle_by_name(wheel, tmp_path):
    import nibabel as nib

    from medden.noise import rician

    python = _fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MEDDEN_BUNDLES", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    install = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed"]
    _run([*install, "--no-cache-dir", "--quiet", str(wheel)], cwd=tmp_path, env=env)
    where = "import medden, medden.bundle_format as b; print(medden.__file__); print(b.shipped_bundles())"
    package, shipped = _run([str(python), "-c", where], cwd=tmp_path, env=env).split()
    venv = (tmp_path / "venv").resolve()
    assert Path(package).is_relative_to(venv) and Path(shipped) == Path(package).parent / "bundles"

    work = tmp_path / "work"  # outside the repository: nothing found through the cwd
    work.mkdir()
    zz, yy, xx = np.mgrid[:6, :64, :64]
    clean = np.where((yy - 32) ** 2 + (xx - 32) ** 2 < 26**2, 600.0 + 8 * yy, 40.0) + 0 * zz
    noisy = rician(clean.astype(np.float32), 0.05, rng=0)  # σ = 5 % of the maximum
    nib.save(nib.Nifti1Image(noisy.transpose(1, 2, 0), np.diag([1.0, 1.0, 2.0, 1.0])), work / "scan.nii.gz")
    medden = str(tmp_path / "venv" / "bin" / "medden")
    _run(
        [medden, "denoise", "scan.nii.gz", "out", "--model", "hmadnet_mri_rician", "--quiet"],
        cwd=work,
        env=env,
    )

    denoised = np.asarray(nib.load(work / "out" / "scan.nii.gz").get_fdata()).transpose(2, 0, 1)
    assert denoised.shape == noisy.shape and not np.allclose(denoised, noisy)
    assert np.abs(denoised - clean).mean() < np.abs(noisy - clean).mean()  # noise removed, not added
    provenance = json.loads((work / "out" / "scan.nii.gz.provenance.json").read_text())
    assert provenance["model"] == "hmadnet_mri_rician" and provenance["verified"] is True
    assert Path(provenance["bundle"]).is_relative_to(venv)

    rows = [json.loads(line) for line in _run([medden, "models", "--json"], cwd=work, env=env).splitlines()]
    bundles = {r["name"]: r for r in rows if r["kind"] == "bundle"}
    assert sorted(bundles) == BUNDLES and {r["weights"] for r in bundles.values()} == {"verified"}
    assert all(Path(r["path"]).is_relative_to(venv) for r in bundles.values())
