"""A model made for one modality refuses inputs of another (exit 2, or ``--any-modality``); a derived
DICOM series names medden as its equipment and keeps the source's in ContributingEquipmentSequence."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.datadict import keyword_for_tag
from pydicom.sr.codedict import codes
from pydicom.valuerep import DT

import medden.io as mio
from medden import __version__
from medden.bundle_format import available_bundles, input_modality, read_metadata
from medden.cli import main
from medden.loading import load_model
from medden.workflows.denoise import model_modality

MR_BUNDLE = "hmadnet_mri_rician"


def _series(folder: Path, modality: str, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    vol = rng.random((24, 20, 3)) * (1000.0 if modality == "CT" else 500.0)
    mio.write_synthetic_series(vol, np.diag([1.0, 1.0, 2.0, 1.0]), folder, modality=modality)
    return folder


def _final(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return {r["key"]: r for r in rows if r["status"] != "started"}


def test_bundle_metadata_names_the_modality():
    bundles = available_bundles()
    assert input_modality(read_metadata(bundles[MR_BUNDLE])) == "MR"
    assert input_modality(read_metadata(bundles["dncnn_gray"])) == "OT"  # photographs: not checked
    assert input_modality({"network_data_format": {"inputs": {}}}) is None and input_modality({}) is None
    assert model_modality(load_model(MR_BUNDLE)) == "MR"
    assert model_modality(load_model("median")) is None
    from medden.denoiser import LoadedModel

    photographs = LoadedModel.of_callable(lambda x, sigma=None: x)
    photographs.extra["bundle_modality"] = "OT"
    assert model_modality(photographs) is None


def test_mr_bundle_refuses_ct_in_one_line_unless_any_modality(tmp_path, capsys):
    src = _series(tmp_path / "in" / "ct", "CT")
    out = tmp_path / "out"
    assert main(["denoise", str(tmp_path / "in"), str(out), "--model", MR_BUNDLE]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "MR" in err and "CT" in err and "--any-modality" in err
    assert not out.exists()  # refused before anything was written
    # the Python API refuses it too
    from medden.errors import UsageError
    from medden.workflows.denoise import denoise

    with pytest.raises(UsageError, match="--any-modality"):
        denoise(src, model=MR_BUNDLE)
    # --any-modality runs it, and the manifest says so
    assert (
        main(["denoise", str(tmp_path / "in"), str(out), "--model", MR_BUNDLE, "--any-modality", "--quiet"])
        == 0
    )
    (record,) = _final(out).values()
    assert record["status"] == "done" and record["modality"] == "CT"
    assert "--any-modality" in record["modality_check"]


def test_mr_bundle_runs_on_mr_and_on_nifti_with_a_note(tmp_path, capsys):
    import nibabel as nib

    _series(tmp_path / "in" / "mr", "MR")
    vol = np.random.default_rng(1).random((24, 20, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "in" / "scan.nii.gz")
    out = tmp_path / "out"
    assert main(["denoise", str(tmp_path / "in"), str(out), "--model", MR_BUNDLE]) == 0
    assert "1 unit(s) name no modality" in capsys.readouterr().err
    final = _final(out)
    nifti = final["scan.nii.gz"]
    assert nifti["status"] == "done" and nifti["modality"] is None
    assert nifti["modality_check"].startswith("not checked")
    (dicom,) = [r for k, r in final.items() if r["kind"] == "dicom"]
    assert dicom["status"] == "done" and (dicom["modality"], dicom["modality_check"]) == ("MR", "ok")


def test_a_ct_bundle_refuses_mr(tmp_path, capsys):
    """The reverse: the MR bundle's metadata rewritten to name CT (same checksummed weights)."""
    root = tmp_path / "ct_bundle"
    shutil.copytree(available_bundles()[MR_BUNDLE], root)
    meta_file = root / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta["network_data_format"]["inputs"]["image"]["modality"] = "CT"
    meta_file.write_text(json.dumps(meta))
    _series(tmp_path / "in" / "mr", "MR")
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), "--bundle", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "model for CT images" in err and "1 MR unit(s)" in err
    assert not (tmp_path / "out").exists()


@pytest.fixture
def scanner_series(tmp_path) -> Path:
    """A synthetic MR series made to look acquired by a scanner: ORIGINAL, its own equipment, and a
    ContributingEquipmentSequence item from an earlier step."""
    folder = _series(tmp_path / "scanner", "MR")
    earlier = pydicom.Dataset()
    earlier.Manufacturer = "Anonymizer Inc"
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
        ds.Manufacturer = "ACME Medical"
        ds.ManufacturerModelName = "Scanner 9"
        ds.DeviceSerialNumber = "SN-0042"
        ds.SoftwareVersions = ["VE11", "syngo"]
        ds.StationName = "MR1"
        ds.InstitutionName = "General Hospital"
        ds.ContributingEquipmentSequence = pydicom.Sequence([earlier])
        ds.save_as(path, enforce_file_format=True)
    return folder


def test_derived_series_names_medden_as_its_equipment(scanner_series, tmp_path):
    loaded = mio.load(scanner_series)
    before = datetime.datetime.now().astimezone()
    out = mio.save(
        loaded, loaded.array, tmp_path / "derived", description="denoised x", processing="denoise x"
    )
    files = sorted(Path(out).iterdir())
    headers = [pydicom.dcmread(f) for f in files]
    assert keyword_for_tag(0x0018A001) == "ContributingEquipmentSequence"
    for ds in headers:
        # General Equipment: the device that made the new series
        assert (ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions) == (
            "medden",
            "medden",
            __version__,
        )
        assert "DeviceSerialNumber" not in ds and "StationName" not in ds
        assert ds.InstitutionName == "General Hospital"
        items = ds.ContributingEquipmentSequence
        assert len(items) == 3 and items[0].Manufacturer == "Anonymizer Inc"  # the earlier item first
        source, ours = items[1], items[2]
        # the scanner, kept as the acquisition equipment
        assert (source.Manufacturer, source.ManufacturerModelName, source.DeviceSerialNumber) == (
            "ACME Medical",
            "Scanner 9",
            "SN-0042",
        )
        assert list(source.SoftwareVersions) == ["VE11", "syngo"] and source.StationName == "MR1"
        code = source.PurposeOfReferenceCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == tuple(
            codes.DCM.AcquisitionEquipment
        )[:3]
        # medden, the processing equipment
        assert (ours.Manufacturer, ours.SoftwareVersions) == ("medden", __version__)
        code = ours.PurposeOfReferenceCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == tuple(
            codes.DCM.ProcessingEquipment
        )[:3]
        assert code.CodeValue == "109102" and code.CodeMeaning == "Processing Equipment"
        assert "denoise x" in ours.ContributionDescription
        when = DT(ours.ContributionDateTime)
        assert when.tzinfo is not None and abs((when - before).total_seconds()) < 120
    # one contribution time for the whole series
    assert len({ds.ContributingEquipmentSequence[-1].ContributionDateTime for ds in headers}) == 1
    # the source files are not modified
    assert pydicom.dcmread(sorted(scanner_series.iterdir())[0]).Manufacturer == "ACME Medical"
