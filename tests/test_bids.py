"""BIDS: sidecars and other files that are not images are skipped, not failed; ``--bids`` writes a BIDS
derivative dataset (desc-denoised names, sidecars with the source's fields, dataset_description)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medden.cli import main
from medden.io import bids
from medden.io.bids import BidsName, derivative_path, non_image_kind

T1W = "sub-01/ses-1/anat/sub-01_ses-1_acq-mp_T1w.nii.gz"
BOLD = "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_bold.nii"
DWI = "sub-02/dwi/sub-02_dwi.nii.gz"


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def _json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def _nifti(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vol = (rng.random((20, 18, 12)) * 100).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.diag([2.0, 2.0, 3.0, 1.0])), path)


@pytest.fixture
def dataset(tmp_path) -> Path:
    """A small BIDS dataset: two subjects, a session, anat/func/dwi images with sidecars at the image
    and at the top level (inheritance), tables, README, bval/bvec, sourcedata and derivatives."""
    root = tmp_path / "ds"
    _json(root / "dataset_description.json", {"Name": "toy", "BIDSVersion": "1.9.0", "DatasetDOI": "10.1/x"})
    (root / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\n")
    (root / "README").write_text("a toy dataset\n")
    _json(root / "task-rest_bold.json", {"TaskName": "rest", "RepetitionTime": 2.0})
    _nifti(root / T1W, 0)
    _json(root / T1W.replace(".nii.gz", ".json"), {"MagneticFieldStrength": 3, "EchoTime": 0.003})
    _nifti(root / BOLD, 1)
    _json(root / BOLD.replace(".nii", ".json"), {"RepetitionTime": 1.5})  # overrides the top level
    (root / BOLD.replace("_bold.nii", "_events.tsv")).write_text("onset\tduration\n0\t1\n")
    _nifti(root / DWI, 2)
    (root / DWI.replace(".nii.gz", ".bval")).write_text("0 1000\n")
    (root / DWI.replace(".nii.gz", ".bvec")).write_text("0 1\n0 0\n0 0\n")
    _nifti(root / "sub-02" / "anat" / "scan_final.nii.gz", 3)  # not a BIDS name
    _nifti(root / "sourcedata" / "sub-01" / "raw.nii.gz", 4)  # not raw data: not looked at
    _nifti(root / "derivatives" / "other" / "sub-01" / "anat" / "sub-01_desc-x_T1w.nii.gz", 5)
    return root


def _final(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return {r["key"]: r for r in rows if r["status"] != "started"}


def test_bids_names_keep_entity_order_and_put_desc_last():
    name = BidsName.parse("sub-01_ses-1_task-rest_acq-fast_run-2_bold.nii.gz")
    assert name is not None and name.suffix == "bold" and name.extension == ".nii.gz"
    assert [k for k, _ in name.entities] == ["sub", "ses", "task", "acq", "run"]
    assert str(name.denoised()) == "sub-01_ses-1_task-rest_acq-fast_run-2_desc-denoised_bold.nii.gz"
    assert (
        str(BidsName.parse("sub-01_desc-pre_T1w.nii").denoised(".nii.gz"))
        == "sub-01_desc-predenoised_T1w.nii.gz"
    )
    assert BidsName.parse("scan_final.nii.gz") is None and BidsName.parse("sub-01_ses-1.nii") is None
    target, why = derivative_path(T1W)
    assert why == "" and target == Path("sub-01/ses-1/anat/sub-01_ses-1_acq-mp_desc-denoised_T1w.nii.gz")
    assert derivative_path(BOLD)[0] == Path(
        "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_desc-denoised_bold.nii.gz"
    )
    for wrong in (
        "sub-02/anat/scan_final.nii.gz",
        "sub-01/anat/sub-02_T1w.nii.gz",
        "sub-01/sub-01_T1w.nii.gz",
        "sub-01/ses-2/anat/sub-01_ses-1_T1w.nii.gz",
        "sub-01/anat/sub-01_T1w.json",
    ):
        assert derivative_path(wrong)[0] is None, wrong
    assert non_image_kind("x/sub-01_T1w.json") == "JSON file" and non_image_kind("README") == "text"
    assert (
        non_image_kind("sub-01_dwi.bval") == "b-values" and non_image_kind("sub-01_physio.tsv.gz") == "table"
    )
    assert non_image_kind("sub-01_T1w.nii.gz") is None and non_image_kind("IM0001") is None


def test_sidecars_and_tables_are_skipped_not_failed_without_bids(dataset, tmp_path, capsys):
    before = _hashes(dataset)
    out = tmp_path / "out"
    code = main(["denoise", str(dataset), str(out), "--model", "median"])
    err = capsys.readouterr().err
    assert code == 0, err  # nothing failed: sidecars, tables and text are skipped
    assert _hashes(dataset) == before
    final = _final(out)
    status = {k: r["status"] for k, r in final.items()}
    for key in (
        "dataset_description.json",
        "participants.tsv",
        "README",
        "task-rest_bold.json",
        T1W.replace(".nii.gz", ".json"),
        DWI.replace(".nii.gz", ".bval"),
        DWI.replace(".nii.gz", ".bvec"),
        BOLD.replace("_bold.nii", "_events.tsv"),
    ):
        assert status[key] == "skipped" and "not an image" in final[key]["error"], key
    for key in (T1W, BOLD, DWI):
        assert status[key] == "done"
        assert (out / key).is_file()  # without --bids the layout is mirrored, names unchanged
    assert not (out / "derivatives" / "medden").exists()
    assert "--bids" in err  # INPUT is a BIDS dataset: the note says how to get a derivative dataset
    skipped = sum(s == "skipped" for s in status.values())
    assert "0 failed" in err and f"{skipped} skipped" in err
    # medden info says the same
    assert main(["info", str(dataset), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    assert reasons["participants.tsv"] == "not an image (table)"
    assert reasons["task-rest_bold.json"] == "not an image (JSON file)"


def test_bids_mode_writes_a_derivative_dataset(dataset, tmp_path):
    before = _hashes(dataset)
    out = tmp_path / "out"
    assert (
        main(["denoise", str(dataset), str(out), "--model", "hmadnet_mri_rician", "--bids", "--quiet"]) == 0
    )
    assert _hashes(dataset) == before
    deriv = out / "derivatives" / "medden"
    written = sorted(str(p.relative_to(deriv)) for p in deriv.rglob("*") if p.is_file())
    assert written == [
        "dataset_description.json",
        "sub-01/ses-1/anat/sub-01_ses-1_acq-mp_desc-denoised_T1w.json",
        "sub-01/ses-1/anat/sub-01_ses-1_acq-mp_desc-denoised_T1w.nii.gz",
        "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_desc-denoised_bold.json",
        "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_desc-denoised_bold.nii.gz",
        "sub-02/dwi/sub-02_desc-denoised_dwi.json",
        "sub-02/dwi/sub-02_desc-denoised_dwi.nii.gz",
    ]
    meta = json.loads(Path("bundles/hmadnet_mri_rician/configs/metadata.json").read_text())
    sha = meta["medden"]["weights_sha256"]
    # the dataset description
    desc = json.loads((deriv / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["BIDSVersion"] == bids.BIDS_VERSION
    assert desc["GeneratedBy"][0]["Name"] == "medden" and desc["GeneratedBy"][0]["WeightsSHA256"] == sha
    from medden import __version__

    assert desc["GeneratedBy"][0]["Version"] == __version__
    assert (deriv / desc["DatasetLinks"]["raw"]).resolve() == dataset.resolve()
    assert desc["SourceDatasets"] == [{"DOI": "10.1/x"}]
    # a sidecar: the source's fields (inherited ones too, the deeper winning), Sources, GeneratedBy
    bold = json.loads(
        (deriv / "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_desc-denoised_bold.json").read_text()
    )
    assert bold["TaskName"] == "rest" and bold["RepetitionTime"] == 1.5
    assert bold["Sources"] == [f"bids:raw:{BOLD}"]
    gen = bold["GeneratedBy"][0]
    assert (gen["Name"], gen["Version"], gen["Model"], gen["WeightsSHA256"]) == (
        "medden",
        __version__,
        "hmadnet_mri_rician",
        sha,
    )
    assert bold["MeddenProvenance"]["weights_sha256"] == sha
    t1 = json.loads((deriv / "sub-01/ses-1/anat/sub-01_ses-1_acq-mp_desc-denoised_T1w.json").read_text())
    assert t1["MagneticFieldStrength"] == 3 and t1["EchoTime"] == 0.003 and "TaskName" not in t1
    # the images: the source's geometry, values changed by the denoiser
    src, den = (
        nib.load(dataset / T1W),
        nib.load(deriv / "sub-01/ses-1/anat/sub-01_ses-1_acq-mp_desc-denoised_T1w.nii.gz"),
    )
    assert den.shape == src.shape and np.allclose(den.affine, src.affine)
    assert not np.allclose(np.asarray(den.dataobj), np.asarray(src.dataobj))
    # the manifest: sidecars skipped, the non-BIDS name skipped with its reason, nothing from sourcedata/
    final = _final(out)
    assert final["sub-02/anat/scan_final.nii.gz"]["status"] == "skipped"
    assert "not a BIDS image" in final["sub-02/anat/scan_final.nii.gz"]["error"]
    assert not [k for k in final if k.startswith(("sourcedata", "derivatives"))]
    assert final[T1W]["modality"] == "MR" and final[T1W]["modality_check"] == "ok"  # anat is MR
    assert not list(out.rglob("*.provenance.json"))  # the provenance is in the sidecars
    # a rerun resumes: nothing to do
    assert (
        main(["denoise", str(dataset), str(out), "--model", "hmadnet_mri_rician", "--bids", "--quiet"]) == 0
    )
    assert {r["status"] for k, r in _final(out).items()} == {"skipped"}


def test_bids_mode_needs_a_bids_dataset_and_its_own_description(dataset, tmp_path, capsys):
    plain = tmp_path / "plain"
    _nifti(plain / "scan.nii.gz", 0)
    assert main(["denoise", str(plain), str(tmp_path / "o1"), "--model", "median", "--bids"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a BIDS dataset" in err and "\n" not in err
    assert not (tmp_path / "o1").exists()
    # a dataset_description.json medden did not write is not replaced
    out = tmp_path / "o2"
    _json(out / "derivatives" / "medden" / "dataset_description.json", {"Name": "someone else's"})
    assert main(["denoise", str(dataset), str(out), "--model", "median", "--bids"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not written by medden" in err and "\n" not in err
    assert json.loads((out / "derivatives/medden/dataset_description.json").read_text()) == {
        "Name": "someone else's"
    }


def test_a_broken_sidecar_fails_its_unit_only(dataset, tmp_path):
    (dataset / T1W.replace(".nii.gz", ".json")).write_text("{not json")
    out = tmp_path / "out"
    assert main(["denoise", str(dataset), str(out), "--model", "median", "--bids", "--quiet"]) == 3
    final = _final(out)
    assert final[T1W]["status"] == "failed" and "not a readable JSON file" in final[T1W]["error"]
    assert final[BOLD]["status"] == "done" and final[DWI]["status"] == "done"
