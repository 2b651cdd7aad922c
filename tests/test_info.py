"""`medden info`: one line per series or file, skipped files with reasons, JSON, and no patient data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medden.cli import main
from medden.io.dicom import write_synthetic_series

PHI = ("Doe^Jane", "Doe", "Jane", "PID-12345", "19700101")


@pytest.fixture()
def export(tmp_path):
    """A folder like a radiologist's export: a DICOM series with patient data, NIfTI, PNG, junk."""
    root = tmp_path / "export"
    vol = np.random.default_rng(0).integers(0, 1000, (12, 10, 5)).astype(np.float32)
    write_synthetic_series(
        vol,
        np.diag([-0.8, 0.8, 3.0, 1.0]),
        root / "DICOM" / "S1",
        series_description="T2 AX",
        series_number=7,
        patient_name="Doe^Jane",
        patient_id="PID-12345",
    )
    for f in (root / "DICOM" / "S1").iterdir():
        ds = pydicom.dcmread(f)
        ds.PatientBirthDate = "19700101"
        ds.save_as(f)
        f.rename(f.with_suffix(""))  # file names without .dcm
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.eye(4)), root / "t1.nii.gz")
    Image.fromarray(np.zeros((8, 9), np.uint16)).save(root / "slice.png")
    (root / "notes.dat").write_text("hello")  # a name that does not say what it is: read, not DICOM
    shutil.copy(get_testdata_file("rtplan.dcm"), root / "rtplan.dcm")
    shutil.copy(get_testdata_file("MR_truncated.dcm"), root / "MR_truncated.dcm")
    uids = [str(pydicom.dcmread(f).SeriesInstanceUID) for f in (root / "DICOM" / "S1").iterdir()][:1]
    return root, uids


def test_info_lines(export, capsys):
    root, uids = export
    assert main(["info", str(root)]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    (series_line,) = [line for line in lines if line.startswith("DICOM")]
    for expected in ("MR", "12x10x5", "0.8x0.8x3 mm", "5 slices", "series 7", '"T2 AX"', "DICOM/S1"):
        assert expected in series_line, (expected, series_line)
    assert any(line.startswith("NIfTI  t1.nii.gz  int16  4x5x6") for line in lines)
    assert any(line.startswith("image  slice.png  PNG") and "8x9" in line for line in lines)
    skipped = {line.split(":")[0] for line in lines if line.startswith("skipped")}
    assert skipped == {"skipped  MR_truncated.dcm", "skipped  notes.dat", "skipped  rtplan.dcm"}
    assert "RT Plan" in out and "truncated" in out and "not a DICOM file" in out
    assert lines[-1] == "1 DICOM series, 1 NIfTI, 1 images, 3 skipped"
    for secret in (*PHI, *uids):
        assert secret not in out


def test_info_json(export, capsys):
    root, uids = export
    assert main(["info", str(root), "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    (series,) = report["series"]
    assert series["modality"] == "MR" and series["shape"] == [12, 10, 5] and series["slices"] == 5
    assert series["series_number"] == 7 and series["description"] == "T2 AX"
    assert series["spacing"] == [0.8, 0.8, 3.0]
    assert {f["path"] for f in report["files"]} == {"t1.nii.gz", "slice.png"}
    assert {s["path"]: s["error"] for s in report["skipped"]} == {
        "MR_truncated.dcm": "PixelDataError",
        "notes.dat": "UnsupportedFormatError",
        "rtplan.dcm": "NonImageObjectError",
    }
    for secret in (*PHI, *uids):
        assert secret not in out


def test_info_single_file_and_errors(export, tmp_path):
    root, _ = export
    one = next((root / "DICOM" / "S1").iterdir())
    proc = subprocess.run([sys.executable, "-m", "medden", "info", str(one)], capture_output=True, text=True)
    assert proc.returncode == 0 and "1 slices" in proc.stdout and "Doe" not in proc.stdout
    for path, message in ((root / "rtplan.dcm", "RT Plan"), (tmp_path / "nope", "not found")):
        proc = subprocess.run(
            [sys.executable, "-m", "medden", "info", str(path)], capture_output=True, text=True
        )
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert message in line and path.name in line


def test_info_listed_in_help():
    proc = subprocess.run([sys.executable, "-m", "medden", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "info" in proc.stdout
