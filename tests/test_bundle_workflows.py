"""Issue 23 parts 1 and 5: the bundles are standard MONAI workflows (every property MONAI asks of an
inference and a training workflow, ``bundle_root`` from the caller, pieces overridable on the command
line, results equal to ``medden denoise``'s and ``medden train``'s), and their metadata is complete
(medden required, evaluation metrics, citable references, data licenses, large files with sha256)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1] / "bundles"
BUNDLES = sorted(p.parents[1].name for p in ROOT.glob("*/configs/inference.json"))
SCHEMA = ROOT / "schema" / "meta_schema.json"


def _meta(name: str) -> dict:
    return json.loads((ROOT / name / "configs" / "metadata.json").read_text())


def _generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location("medden_bundles_generate_wf", ROOT / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _workflow(name: str, stem: str, kind: str, **override):
    from monai.bundle import ConfigWorkflow

    cfg_dir = ROOT / name / "configs"
    return ConfigWorkflow(
        config_file=str(cfg_dir / f"{stem}.json"),
        meta_file=str(cfg_dir / "metadata.json"),
        logging_file=False,
        workflow_type=kind,
        bundle_root=str(ROOT / name),
        **override,
    )


# ------------------------------------------------------------------------------------------------
# part 1: standard MONAI workflows
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUNDLES)
def test_bundle_root_is_the_callers_and_nothing_reads_argv(name):
    for stem in ("inference", "train", "evaluate"):
        text = (ROOT / name / "configs" / f"{stem}.json").read_text()
        assert json.loads(text)["bundle_root"] == ".", stem
        assert "sys.argv" not in text and "locate(" not in text, stem
    import medden.bundle

    assert not hasattr(medden.bundle, "locate")


@pytest.mark.parametrize("name", BUNDLES)
def test_inference_workflow_has_every_infer_property(name, tmp_path):
    """``ConfigWorkflow(workflow_type="infer").check_properties()`` finds nothing missing, and the
    pieces are MONAI's and medden's classes."""
    from monai.data import Dataset
    from monai.engines import SupervisedEvaluator
    from monai.inferers import Inferer

    wf = _workflow(name, "inference", "infer", output_dir=str(tmp_path / "out"))
    wf.initialize()
    assert wf.check_properties() == []
    assert isinstance(wf.evaluator, SupervisedEvaluator)
    assert isinstance(wf.dataset, Dataset) and len(wf.dataset) > 0
    assert isinstance(wf.inferer, Inferer)
    assert wf.evaluator.network.name == name  # named after the bundle folder, as medden denoise does


@pytest.mark.parametrize("name", BUNDLES)
def test_train_workflow_has_every_train_property(name, tmp_path):
    from monai.engines import SupervisedTrainer

    small = {"train_config#patch_size": 32, "train_config#batch_size": 2, "train_config#max_val_images": 1}
    wf = _workflow(name, "train", "train", output_dir=str(tmp_path / "train"), **small)
    wf.initialize()
    assert wf.check_properties() == []
    assert isinstance(wf.trainer, SupervisedTrainer)
    assert wf.max_epochs >= 1 and len(wf.train_dataset) > 0
    assert (tmp_path / "train" / "config.json").is_file()


def test_two_copies_of_a_bundle_each_load_their_own_weights(tmp_path):
    """A parser reading one copy gets that copy's bundle_root and weights (the argv guess of before gave
    every copy the one named on the command line)."""
    from monai.bundle import ConfigParser

    from medden.checkpoints import CheckpointError

    name = "hmadnet_mri_rician"
    good, bad = tmp_path / "good" / name, tmp_path / "bad" / name
    for copy in (good, bad):
        shutil.copytree(ROOT / name, copy, ignore=shutil.ignore_patterns("eval"))
    weights = bad / "models" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    for copy, ok in ((good, True), (bad, False)):
        parser = ConfigParser()
        parser.read_config(str(copy / "configs" / "inference.json"))
        parser["bundle_root"] = str(copy)
        if ok:
            assert Path(parser.get_parsed_content("network").weights) == copy / "models" / "model.safetensors"
        else:
            with pytest.raises(RuntimeError) as info:
                parser.get_parsed_content("network")
            assert isinstance(info.value.__cause__, CheckpointError)


def _inputs(folder: Path) -> None:
    """A small NIfTI volume, a small DICOM MR series and a 16-bit PNG, with Rician noise."""
    import nibabel as nib
    from PIL import Image

    from medden.data.samples import mni152_phantom
    from medden.io import write_synthetic_series
    from medden.noise import rician

    vol, affine = mni152_phantom(step=4)
    vol = rician(vol[5:37, 8:45, 14:22], 0.05, rng=0).astype(np.float32)
    folder.mkdir(parents=True)
    nib.save(nib.Nifti1Image(vol, affine), folder / "t1.nii.gz")
    write_synthetic_series(vol, affine, folder / "dicom" / "series")
    Image.fromarray(np.rint(vol[:, :, 3] / vol.max() * 65535).astype(np.uint16)).save(folder / "slice.png")


def _dicom_files(folder: Path) -> dict[str, object]:
    import pydicom

    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and not f.name.endswith(".json"):
            ds = pydicom.dcmread(f)
            out[ds.SOPInstanceUID] = ds
    return out


def test_bundle_inference_equals_medden_denoise_and_takes_overrides(tmp_path):
    """``python -m monai.bundle run`` of inference.json with an inferer override writes what ``medden
    denoise --bundle`` writes with the same option: the same NIfTI and PNG bytes, the same derived DICOM
    series (UIDs, description, pixels) and the same manifest statuses; the override changed the result."""
    from medden.cli import main

    name = "hmadnet_mri_rician"
    src = tmp_path / "in"
    _inputs(src)
    cfg = ROOT / name / "configs" / "inference.json"
    # the same thread count as this process: a convolution summed in another order differs in its last bits
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(cfg),
         "--bundle_root", str(ROOT / name), "--dataset_dir", str(src), "--output_dir",
         str(tmp_path / "bundle"), "--inferer#axis", "0", "--handlers#0#quiet", "True"],
        capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith('{"bundle"')))
    assert (summary["done"], summary["failed"], summary["bundle"]) == (3, 0, name)
    args = ["denoise", str(src), str(tmp_path / "cli"), "--bundle", str(ROOT / name), "--quiet"]
    assert main([*args, "--axis", "0"]) == 0
    assert main(["denoise", str(src), str(tmp_path / "axis2"), "--bundle", str(ROOT / name), "--quiet"]) == 0
    bundle, cli, axis2 = tmp_path / "bundle", tmp_path / "cli", tmp_path / "axis2"
    for rel in ("t1.nii.gz", "slice.png"):
        assert (bundle / rel).read_bytes() == (cli / rel).read_bytes(), rel
    assert (bundle / "t1.nii.gz").read_bytes() != (axis2 / "t1.nii.gz").read_bytes()  # the override acted
    records = {
        d: {r["key"]: r for r in map(json.loads, (tmp_path / d / "manifest.jsonl").read_text().splitlines())}
        for d in ("bundle", "cli")
    }
    assert {k: r["status"] for k, r in records["bundle"].items()} == {
        k: r["status"] for k, r in records["cli"].items()
    }
    series = [Path(r["output"]) for r in records["bundle"].values() if r["kind"] == "dicom"]
    assert len(series) == 1 and series[0].is_relative_to(bundle)
    ours = _dicom_files(series[0])
    theirs = _dicom_files(cli / series[0].relative_to(bundle))
    assert ours.keys() == theirs.keys() and len(ours) == 8
    for uid, ds in ours.items():
        other = theirs[uid]
        assert ds.SeriesInstanceUID == other.SeriesInstanceUID
        assert ds.SeriesDescription == other.SeriesDescription and name in ds.SeriesDescription
        np.testing.assert_array_equal(ds.pixel_array, other.pixel_array)
    prov = json.loads((bundle / "t1.nii.gz.provenance.json").read_text())
    assert prov["weights_sha256"] == _meta(name)["medden"]["weights_sha256"] and prov["axis"] == 0


def test_a_unit_that_fails_fails_alone_and_a_rerun_resumes(tmp_path, capsys):
    """The evaluator keeps ``medden denoise``'s batch guarantees: a broken file is one failed unit with
    its reason, the others are done; a second run skips what is done."""
    name = "hmadnet_mri_rician"
    src = tmp_path / "in"
    _inputs(src)
    (src / "broken.nii.gz").write_bytes(b"not a nifti file at all")
    out = tmp_path / "out"
    wf = _workflow(name, "inference", "infer", dataset_dir=str(src), output_dir=str(out))
    wf.initialize()
    wf.run()
    records = {r["key"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    assert records["broken.nii.gz"]["status"] == "failed" and records["broken.nii.gz"]["error"]
    assert "applying transform" not in records["broken.nii.gz"]["error"]  # the reader's own reason
    assert sorted(r["status"] for r in records.values()) == ["done", "done", "done", "failed"]
    assert (wf.evaluator.result.done, wf.evaluator.result.failed) == (3, 1)
    wf2 = _workflow(name, "inference", "infer", dataset_dir=str(src), output_dir=str(out))
    wf2.parser["evaluator"]["overwrite"] = False
    wf2.initialize()
    wf2.run()
    assert (wf2.evaluator.result.skipped, wf2.evaluator.result.done) == (3, 0)
    assert "failed: broken.nii.gz" in capsys.readouterr().err


def test_train_json_trains_what_medden_train_trains(tmp_path):
    """train.json (MONAI's SupervisedTrainer spelled out in the config) and ``medden.engine.train`` with
    the same settings end with byte-identical weights."""
    from medden.engine import TrainConfig, train

    name = "dncnn_gray"
    small = {"max_iterations": 3, "val_interval": 2, "patch_size": 32, "batch_size": 2, "max_val_images": 1}
    small["progress"] = False
    override = {f"train_config#{k}": v for k, v in small.items()}
    wf = _workflow(name, "train", "train", output_dir=str(tmp_path / "bundle"), **override)
    wf.initialize()
    wf.run()
    wf.finalize()
    spec = json.loads((ROOT / name / "configs" / "train.json").read_text())
    cfg = {**spec["train_config"], **small}
    result = train(
        TrainConfig(**cfg, out_dir=str(tmp_path / "engine"), data=spec["dataset_dir"], device=spec["device"])
    )
    assert result.iterations == 3
    digests = [
        hashlib.sha256((tmp_path / d / "best.safetensors").read_bytes()).hexdigest()
        for d in ("bundle", "engine")
    ]
    assert digests[0] == digests[1]
    assert (tmp_path / "bundle" / "last.pt").is_file()


# ------------------------------------------------------------------------------------------------
# part 5: metadata
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUNDLES)
def test_medden_is_required_after_monai_reads_the_metadata(name):
    """MONAI replaces ``required_packages_version`` with ``optional_packages_version`` when it reads the
    metadata; medden must survive that, and the evaluation's packages sit where MONAI leaves them."""
    from monai.bundle import ConfigParser

    import medden

    parser = ConfigParser()
    parser.read_meta(str(ROOT / name / "configs" / "metadata.json"))
    assert parser["_meta_"]["required_packages_version"] == {"medden": medden.__version__}
    meta = _meta(name)
    assert meta["required_packages_version"] == {"medden": medden.__version__}
    evaluation = meta["medden"]["evaluation_packages_version"]
    baselines = json.loads((ROOT / name / "configs" / "evaluate.json").read_text())["baselines"]
    assert set(evaluation) == {b for b in baselines if b in ("bm3d", "bm4d")}


@pytest.mark.parametrize("name", BUNDLES)
def test_references_are_citable(name):
    for ref in _meta(name)["references"]:
        assert "https://" in ref or "no published" in ref or "no proceedings" in ref, ref
    assert any("doi.org" in r or "arxiv.org" in r or "jcbi.org" in r for r in _meta(name)["references"])


def test_hmadnet_reference_names_its_paper():
    refs = " ".join(_meta("hmadnet_mri_rician")["references"])
    assert "Preserving Critical Signals in Magnetic Image Denoising" in refs and "Umair" in refs


def test_verify_metadata_from_the_command_line_offline():
    """``python -m monai.bundle verify_metadata`` against the vendored schema (no download)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    name = "dran_mri"
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file",
         str(ROOT / name / "configs" / "metadata.json"), "--filepath", str(SCHEMA)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "metadata is verified with no error" in proc.stdout + proc.stderr


@pytest.mark.parametrize("name", BUNDLES)
def test_eval_metrics_come_from_the_evaluation(name):
    gen = _generator()
    meta = _meta(name)
    results = gen._results(name)
    if results is None:
        pytest.skip(f"{name}: no eval/evaluate/results.json here (eval/ is not committed)")
    from medden.bundle import eval_metrics

    expected = eval_metrics(results, gen._net_label(name, gen.BUNDLES[name], results))
    assert meta["eval_metrics"] == json.loads(json.dumps(expected))


def test_eval_metrics_pick_the_bundle_and_reference_rows():
    from medden.bundle import LEGACY_SSIM_WINDOW, eval_metrics

    rows = [
        {
            "level": "0.05",
            "method": m,
            "psnr_mean": p,
            "ssim_mean": s,
            "psnr_fg_mean": p - 1,
            "ssim_fg_mean": s,
        }
        for m, p, s in (("noisy", 20.0, 0.5), ("bm3d", 30.0, 0.9), ("mine", 31.123456, 0.91))
    ]
    results = {"config": {"data": "mni152", "noise": "rician", "split": "test"}, "reference": "bm3d",
               "date": "2026-12-04T00:00:00", "summary": rows}  # fmt: skip
    m = eval_metrics(results, "mine")
    assert m["level_0.05"]["psnr"] == round(31.123456, 4) and m["level_0.05"]["reference_psnr"] == 30.0
    assert m["level_0.05"]["psnr_fg"] == round(30.123456, 4)
    assert m["ssim_window"] == LEGACY_SSIM_WINDOW and m["reference"] == "bm3d"
    assert (
        eval_metrics({**results, "ssim_window": "gaussian-11-1.5"}, "mine")["ssim_window"]
        == "gaussian-11-1.5"
    )


def test_a_bundle_evaluation_records_its_metrics(tmp_path):
    from medden.bundle import eval_metrics, record_eval_metrics

    name = "dncnn_gray"
    copy = tmp_path / name
    shutil.copytree(ROOT / name, copy, ignore=shutil.ignore_patterns("eval"))
    results = {
        "config": {"data": "skimage-gray", "noise": "gaussian"},
        "reference": "bm3d",
        "date": "2026-12-05T00:00:00",
        "summary": [{"level": "0.1", "method": name, "psnr_mean": 28.5, "ssim_mean": 0.8}],
    }
    record_eval_metrics(copy, results)
    meta = json.loads((copy / "configs" / "metadata.json").read_text())
    assert meta["eval_metrics"] == eval_metrics(results, name)
    assert meta["medden"] == _meta(name)["medden"]  # the rest kept


@pytest.mark.parametrize("name", BUNDLES)
def test_data_license_and_large_files_are_generated(name):
    gen = _generator()
    spec = gen.BUNDLES[name]
    text = (ROOT / name / "docs" / "data_license.txt").read_text()
    assert text == gen.data_license(name, spec)
    if spec["modality"] == "MR":
        assert "License as nilearn states it" in text and "unknown" in text
    if "skimage" in spec["train"]["data"] or spec["modality"] != "MR":
        assert "scikit-image" in text and "camera" in text
    assert "Generated by medden" in text
    assert (ROOT / name / "large_files.yml").read_text() == gen.large_files(name)


@pytest.mark.parametrize("name", BUNDLES)
def test_large_files_name_the_weights_with_their_sha256(name):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(ROOT / name / "large_files.yml"))
    files = {f["path"]: f for f in parser.get()["large_files"]}
    assert "models/model.safetensors" in files
    for rel, entry in files.items():
        assert entry["hash_type"] == "sha256"
        assert hashlib.sha256((ROOT / name / rel).read_bytes()).hexdigest() == entry["hash_val"], rel
    assert files["models/model.safetensors"]["hash_val"] == _meta(name)["medden"]["weights_sha256"]
    present = {str(p.relative_to(ROOT / name)) for p in (ROOT / name / "models").glob("model.*")}
    assert present <= set(files)


def test_download_large_files_verifies_the_weights_offline(tmp_path):
    """``monai.bundle download_large_files`` accepts the files present (sha256) and refuses a corrupt one."""
    from monai.apps.utils import HashCheckError
    from monai.bundle import download_large_files

    name = "dncnn_gray"
    copy = tmp_path / name
    shutil.copytree(ROOT / name, copy, ignore=shutil.ignore_patterns("eval"))
    download_large_files(bundle_path=str(copy))
    weights = copy / "models" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises((HashCheckError, RuntimeError, ValueError)):
        download_large_files(bundle_path=str(copy))


def test_readme_shows_a_bundle_override():
    readme = (ROOT.parent / "README.md").read_text()
    section = readme[readme.index("## Bundles") :]
    assert "--bundle_root" in section and "--inferer#" in section
