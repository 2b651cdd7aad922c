"""DICOM: scanning, reading (compressed, multi-frame, malformed), derived-series writing, NIfTI conversion."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import shutil
import subprocess
import sys
import unicodedata
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hostile_corpus import PHI, PHI_PARTS, corrupt_rle, truncate_before_rows, with_header_values
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import medden.io as mio
from medden.io.dicom import (
    DicomSeries,
    dicom_to_nifti,
    scan,
    write_derived_series,
    write_synthetic_series,
)

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


# --------------------------------------------------------------------------------------------- helpers


def _dcm2niix() -> str:
    exe = shutil.which("dcm2niix") or str(Path(sys.executable).parent / "dcm2niix")
    if not Path(exe).exists():
        pytest.skip("the dcm2niix binary (PyPI package dcm2niix) is not installed")
    return exe


def _run_dcm2niix(folder: Path, out_dir: Path, *options: str) -> nib.Nifti1Image:
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [_dcm2niix(), *options, "-b", "n", "-z", "n", "-f", "d2n", "-o", str(out_dir), str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    img = nib.load(out_dir / "d2n.nii")
    return nib.Nifti1Image(np.asanyarray(img.dataobj).copy(), img.affine, img.header)


def _copy_testfile(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(get_testdata_file(name), folder / name))


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _oblique_affine(shape: tuple[int, ...], spacing=(0.9, 1.1, 2.5)) -> np.ndarray:
    """A RAS affine in medden's DICOM convention (negative determinant), rotated and shifted."""
    a, b = np.radians(12.0), np.radians(-7.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    aff = np.eye(4)
    aff[:3, :3] = rz @ rx @ np.diag([-spacing[0], spacing[1], spacing[2]])
    aff[:3, 3] = [12.5, -30.0, 41.0]
    return aff


@pytest.fixture(scope="module")
def mr_series(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A small oblique synthetic MR series (written by the package's writer) and its volume/affine."""
    rng = np.random.default_rng(7)
    vol = rng.integers(0, 2000, (24, 20, 7)).astype(np.float32)
    aff = _oblique_affine(vol.shape)
    folder = tmp_path_factory.mktemp("mr") / "series"
    write_synthetic_series(vol, aff, folder, modality="MR", series_description="T1 oblique")
    return folder, vol, aff


def _patch(folder: Path, **values) -> None:
    for f in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        for key, value in values.items():
            setattr(ds, key, value)
        ds.save_as(f)


# --------------------------------------------------------------------------------------------- reading


def test_ct_small_in_hu_with_dcm2niix_geometry(tmp_path):
    src = _copy_testfile("CT_small.dcm", tmp_path / "ct")
    loaded = mio.load(src)
    ds = pydicom.dcmread(src)
    assert loaded.kind == "dicom" and loaded.array.shape == (128, 128, 1)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.array_equal(loaded.array[:, ::-1, 0].T, hu)  # (X, Y) with rows flipped, as dcm2niix
    ref = _run_dcm2niix(tmp_path / "ct", tmp_path / "d2n")
    assert np.allclose(loaded.affine, ref.affine, atol=1e-4)
    assert np.array_equal(np.asanyarray(ref.dataobj)[..., 0], loaded.array[..., 0])


@pytest.mark.parametrize(
    "reference, variants",
    [
        (
            "MR_small.dcm",
            [
                "MR_small_RLE.dcm",  # RLE
                "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless
                "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
                "MR_small_implicit.dcm",
                "MR_small_bigendian.dcm",
                "MR_small_expb.dcm",
                "MR_small_padded.dcm",
            ],
        ),
        ("SC_rgb_rle.dcm", ["SC_rgb_jpeg_gdcm.dcm"]),  # JPEG lossless (process 14, SV1), RGB
    ],
)
def test_lossless_compressed_twins_are_pixel_equal(tmp_path, reference, variants):
    ref = mio.load(_copy_testfile(reference, tmp_path / "ref"))
    for i, name in enumerate(variants):
        got = mio.load(_copy_testfile(name, tmp_path / f"v{i}"))
        assert got.array.dtype == ref.array.dtype and np.array_equal(got.array, ref.array), name
        assert np.allclose(got.affine, ref.affine)


@pytest.mark.parametrize(
    "name, min_psnr",
    [
        ("SC_rgb_jpeg_dcmtk.dcm", 35),  # JPEG baseline, YBR_FULL
        ("SC_rgb_dcmtk_+eb+cr.dcm", 40),  # JPEG baseline, RGB (no colour transform)
        ("SC_rgb_dcmtk_+eb+cy+s2.dcm", 35),  # JPEG baseline, YBR 4:2:2
        ("SC_rgb_dcmtk_+eb+cy+np.dcm", 25),  # JPEG baseline, YBR, subsampled chroma
        ("SC_rgb_jpeg_lossy_gdcm.dcm", 25),
        ("SC_rgb_gdcm_KY.dcm", 35),  # JPEG 2000
        ("SC_rgb_jls_lossy_line.dcm", 40),  # JPEG-LS near-lossless
        ("SC_rgb_jls_lossy_sample.dcm", 40),
    ],
)
def test_lossy_compressed_twins_within_tolerance(tmp_path, name, min_psnr):
    ref = mio.load(_copy_testfile("SC_rgb_rle.dcm", tmp_path / "ref")).array.astype(float)
    got = mio.load(_copy_testfile(name, tmp_path / "lossy")).array.astype(float)
    assert got.shape == ref.shape == (100, 100, 1, 3)
    mse = float(np.mean((got - ref) ** 2))
    psnr = 10 * np.log10(255.0**2 / max(mse, 1e-12))
    assert psnr >= min_psnr, psnr


def test_jpeg_extended_12bit_and_jpeg2000_ct(tmp_path):
    ext = mio.load(_copy_testfile("JPGExtended.dcm", tmp_path / "a"))
    assert ext.array.shape == (256, 1024, 1) and 0 <= ext.array.min() and ext.array.max() < 4096
    src = _copy_testfile("693_J2KI.dcm", tmp_path / "b")  # lossy JPEG 2000 CT
    ct, ds = mio.load(src), pydicom.dcmread(src)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert ct.array.shape == (512, 512, 1) and np.array_equal(ct.array[:, ::-1, 0].T, hu)


def test_multiframe_objects(tmp_path):
    src = _copy_testfile("SC_rgb_rle_2frame.dcm", tmp_path / "mf")
    loaded = mio.load(src)
    frames = pydicom.dcmread(src).pixel_array  # (2, rows, cols, 3)
    assert loaded.array.shape == (100, 100, 2, 3)
    for k in range(2):
        assert np.array_equal(loaded.array[:, ::-1, k].transpose(1, 0, 2), frames[k])
    us = mio.load(_copy_testfile("examples_ybr_color.dcm", tmp_path / "us"))  # 30 JPEG frames, YBR_422
    assert us.array.shape == (320, 240, 30, 3) and us.array.dtype == np.uint8


def _enhanced_mr(path: Path, raw: np.ndarray, slopes: list[float], order: list[int]) -> np.ndarray:
    """Write an Enhanced MR object (functional groups, per-frame rescale, frames stored in ``order``).

    Returns the expected medden affine, derived from the DICOM geometry by hand.
    """
    rows, cols, nz = raw.shape[1], raw.shape[0], raw.shape[2]
    row_dir, col_dir = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])  # sagittal
    normal = np.cross(row_dir, col_dir)
    dr, dc, dz = 1.2, 0.8, 3.0
    origin = np.array([-20.0, -40.0, 60.0])
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["enhanced", str(path)])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["enhanced-series"])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["enhanced-study"])
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=["enhanced-for"])
    ds.Modality, ds.SeriesNumber, ds.SeriesDescription = "MR", 9, "enhanced"
    ds.PatientName, ds.PatientID = "Test^Enhanced", "E1"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, nz
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing, pm.SliceThickness = [dr, dc], dz
    po = Dataset()
    po.ImageOrientationPatient = [*row_dir, *col_dir]
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = Sequence([pm]), Sequence([po])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per, frames = [], []
    for k in order:
        item = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [float(v) for v in origin + k * dz * normal]
        pvt = Dataset()
        pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = slopes[k], -100, "US"
        fc = Dataset()
        fc.InStackPositionNumber = k + 1
        item.PlanePositionSequence, item.PixelValueTransformationSequence = Sequence([pp]), Sequence([pvt])
        item.FrameContentSequence = Sequence([fc])
        per.append(item)
        frames.append(raw[:, ::-1, k].T)  # medden (i, j) -> DICOM (row, col)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.PixelData = np.stack(frames).astype("<u2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
        ds.SOPClassUID,
        ds.SOPInstanceUID,
    )
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = row_dir * dc, -col_dir * dr, normal * dz
    lps[:3, 3] = origin + (rows - 1) * col_dir * dr
    return LPS @ lps


def test_enhanced_multiframe_sorted_rescaled_and_rewritten(tmp_path):
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 1000, (12, 10, 5)).astype(np.float64)
    slopes = [1.0, 2.0, 0.5, 1.5, 3.0]
    expected_affine = _enhanced_mr(tmp_path / "enh" / "enhanced", raw, slopes, order=[3, 0, 4, 1, 2])
    loaded = mio.load(tmp_path / "enh")
    expected = raw * np.array(slopes) - 100
    assert loaded.array.shape == (12, 10, 5)
    assert np.allclose(loaded.array, expected)
    assert np.allclose(loaded.affine, expected_affine)
    ref = _run_dcm2niix(tmp_path / "enh", tmp_path / "d2n", "-x", "i")
    assert np.allclose(ref.affine, expected_affine, atol=1e-3)
    out = mio.save(loaded, loaded.array + 10, tmp_path / "derived", description="plus ten")
    files = list(out.iterdir())
    assert len(files) == 1  # still one multi-frame object
    ds = pydicom.dcmread(files[0])
    assert ds.NumberOfFrames == 5 and ds.ImageType[:2] == ["DERIVED", "SECONDARY"]
    again = mio.load(out)
    assert np.allclose(again.array, expected + 10, atol=max(slopes) / 2 + 1e-6)
    assert np.allclose(again.affine, expected_affine)


def test_monochrome1_inverted_and_written_back(tmp_path, mr_series):
    folder = tmp_path / "m1"
    shutil.copytree(mr_series[0], folder)
    _patch(folder, PhotometricInterpretation="MONOCHROME1")
    loaded = mio.load(folder)
    assert np.array_equal(loaded.array, 65535 - mr_series[1])  # inverted: bright is high
    out = mio.save(loaded, loaded.array, tmp_path / "m1_out")
    src = {
        pydicom.dcmread(f).ImagePositionPatient[2]: pydicom.dcmread(f).pixel_array for f in folder.iterdir()
    }
    for f in out.iterdir():
        ds = pydicom.dcmread(f)
        assert ds.PhotometricInterpretation == "MONOCHROME1"
        assert np.array_equal(ds.pixel_array, src[ds.ImagePositionPatient[2]])  # the same stored values


# ------------------------------------------------------------------------------------------- bad input


def _unsupported_compression(folder: Path) -> Path:
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: pydicom has no decoder
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00\x00\x01\xb3" + bytes(100)])
    ds["PixelData"].VR = "OB"
    path = folder / "mpeg2.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _short_pixel_data(folder: Path) -> Path:
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.PixelData = ds.PixelData[:1000]
    path = folder / "short.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


BAD_FILES = [
    ("MR_truncated.dcm", mio.PixelDataError, "truncated"),
    ("meta_missing_tsyntax.dcm", mio.MissingTransferSyntaxError, "Transfer Syntax"),
    ("rtstruct.dcm", mio.MissingFileMetaError, "file meta"),
    ("ExplVR_LitEndNoMeta.dcm", mio.MissingFileMetaError, "file meta"),
    ("ExplVR_BigEndNoMeta.dcm", mio.MissingFileMetaError, "file meta"),
    ("no_meta.dcm", mio.UnsupportedFormatError, "not a DICOM file"),
    ("badVR.dcm", mio.InvalidHeaderError, "NumberOfFrames"),
    ("nested_priv_SQ.dcm", mio.InvalidHeaderError, "missing required attribute"),
    ("JPEG2000-embedded-sequence-delimiter.dcm", mio.PixelDataError, "cannot decode"),
    ("rtplan.dcm", mio.NonImageObjectError, "RT Plan"),
    ("rtplan_truncated.dcm", mio.NonImageObjectError, "RT Plan"),
    ("test-SR.dcm", mio.NonImageObjectError, "SR"),
    ("rtdose.dcm", mio.NonImageObjectError, "dose"),
    ("liver_1frame.dcm", mio.NonImageObjectError, "segmentation"),
    ("waveform_ecg.dcm", mio.NonImageObjectError, "Waveform"),
]


@pytest.mark.parametrize("name, error, reason", BAD_FILES)
def test_malformed_file_gives_typed_one_line_error(tmp_path, name, error, reason):
    path = _copy_testfile(name, tmp_path / "bad")
    with pytest.raises(error) as info:
        mio.load(path)
    message = str(info.value)
    assert "\n" not in message and name in message and reason in message, message
    assert isinstance(info.value, mio.MeddenIOError) and info.value.exit_code == 2


def _save_with_meta(ds: pydicom.Dataset, path: Path) -> Path:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _rtstruct_with_file_meta(folder: Path) -> Path:
    """pydicom's rtstruct.dcm lacks file meta (so it is refused for that); with it, it is an RTSTRUCT."""
    ds = pydicom.dcmread(get_testdata_file("rtstruct.dcm"), force=True)
    return _save_with_meta(ds, folder / "rtstruct_meta.dcm")


def _presentation_state(folder: Path) -> Path:
    """A Grayscale Softcopy Presentation State referencing MR_small (no pixel data)."""
    src = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds = pydicom.Dataset()
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "Modality"):
        setattr(ds, keyword, getattr(src, keyword))
    ds.Modality = "PR"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.11.1"
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["medden test presentation state"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["medden test presentation state series"])
    return _save_with_meta(ds, folder / "gsps.dcm")


@pytest.mark.parametrize(
    "make, error, reason",
    [
        (_unsupported_compression, mio.UnsupportedTransferSyntaxError, "MPEG2"),
        (_short_pixel_data, mio.PixelDataError, "shorter than declared"),
        (_rtstruct_with_file_meta, mio.NonImageObjectError, "RT Structure"),
        (_presentation_state, mio.NonImageObjectError, "Presentation State"),
    ],
)
def test_generated_bad_files(tmp_path, make, error, reason):
    path = make(tmp_path)
    with pytest.raises(error, match=reason) as info:
        mio.load(path)
    assert path.name in str(info.value) and "\n" not in str(info.value)


def test_scan_returns_good_series_and_skipped_files(tmp_path, mr_series):
    root = tmp_path / "export"
    shutil.copytree(mr_series[0], root / "good")
    for name, _, _ in BAD_FILES:
        _copy_testfile(name, root / "bad")
    _copy_testfile("DICOMDIR", root)  # an index: ignored
    (root / "notes.txt").write_text("not an image")
    _unsupported_compression(root / "bad")
    result = scan(root)
    # the scan reads headers only: a file whose compressed pixels cannot be decoded is found as a
    # series, and loading that series raises the typed error naming the file
    undecodable = "JPEG2000-embedded-sequence-delimiter.dcm"
    good = [s for s in result.series if s.path.name != undecodable]
    assert len(good) == 1 and good[0].shape == mr_series[1].shape
    (broken,) = [s for s in result.series if s.path.name == undecodable]
    with pytest.raises(mio.PixelDataError, match=undecodable):
        mio.load(broken)
    skipped = {s.path.name: s for s in result.skipped}
    for name, error, reason in BAD_FILES:
        if name != undecodable:
            assert skipped[name].error == error.__name__ and reason in skipped[name].reason
    assert "DICOMDIR" in skipped["DICOMDIR"].reason
    # a text file is recognised by its name as not an image (skipped by a batch, not failed; issue 23)
    assert (skipped["notes.txt"].reason, skipped["notes.txt"].error) == (
        "not an image (text)",
        "NonImageObjectError",
    )
    assert skipped["mpeg2.dcm"].error == "UnsupportedTransferSyntaxError"
    json.dumps(result.to_dict())  # JSON-ready


# ------------------------------------------------------------------- hostile headers (issue 19)


def test_decoder_panic_is_a_pixel_data_error(tmp_path):
    """pylibjpeg-rle's Rust decoder panics on corrupt RLE data; pyo3's PanicException derives from
    BaseException, not Exception, and escaped every handler up to the batch."""
    path = corrupt_rle(tmp_path / "rle" / "corrupt.dcm")
    with pytest.raises(mio.PixelDataError, match="cannot decode RLE Lossless pixel data") as info:
        mio.load(path)
    assert "corrupt.dcm" in str(info.value) and "\n" not in str(info.value)


def test_slice_truncated_before_rows_fails_and_is_recorded_on_its_series(tmp_path):
    vol = np.random.default_rng(3).integers(0, 1000, (12, 10, 5)).astype(np.float32)
    folder = tmp_path / "five"
    files = write_synthetic_series(vol, np.diag([-0.8, 0.8, 3.0, 1.0]), folder).files
    truncate_before_rows(files[2])
    result = scan(folder)
    (skipped,) = result.skipped
    assert skipped.path == files[2] and skipped.error == "PixelDataError", skipped  # not "non-image"
    assert "truncated" in skipped.reason
    (series,) = result.series
    assert series.n_slices == 4 and series.missing_files == (skipped,)
    for summary in (series.summary(folder), series.to_dict(folder)):
        assert summary["missing_files"] == 1
        assert summary["missing"] == [
            {"path": files[2].name, "reason": skipped.reason, "error": "PixelDataError"}
        ]
        json.dumps(summary)
    assert any("1 file(s) of this series could not be read" in w for w in series.warnings)
    for source in (folder, files[0]):  # the folder, or one good file of the series
        loaded = mio.load(source)
        assert loaded.shape == (12, 10, 4) and loaded.meta["missing_files"] == 1


def _header_only(folder: Path, name: str, sop_class: str | None) -> Path:
    """A Part 10 DICOM file whose SOP class is ``sop_class`` (none when None), without pixel data
    and without image attributes."""
    ds = Dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a garbled SOPClassUID is the point of one probe
        if sop_class is not None:
            ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[name])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[name, "series"])
    ds.Modality = "OT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.preamble = b"\x00" * 128
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=False)
    return path


@pytest.mark.parametrize(
    "sop_class, error, reason",
    [
        ("1.2.840.10008.5.1.4.1.1.4", mio.PixelDataError, "MR Image Storage without pixel data"),
        ("1.3.12.2.1107.5.9.1", mio.NonImageObjectError, "private SOP class"),  # Siemens CSA non-image
        ("1.2.840.10008.5.1.4.1.1.88.11", mio.NonImageObjectError, "Basic Text SR"),
        (PHI, mio.InvalidHeaderError, "SOPClassUID is not a UID"),
        (None, mio.InvalidHeaderError, "no SOPClassUID"),
    ],
    ids=["image-class", "private-class", "sr", "garbled-class", "no-class"],
)
def test_file_without_pixel_data_is_skipped_only_when_known_not_an_image(tmp_path, sop_class, error, reason):
    path = _header_only(tmp_path, "nopixels.dcm", sop_class)
    with pytest.raises(mio.MeddenIOError) as info:
        mio.load(path)
    assert type(info.value) is error and reason in info.value.reason, info.value
    assert all(part not in str(info.value) for part in PHI_PARTS)


@pytest.mark.filterwarnings("ignore:Invalid value for VR", "ignore:The value length")  # writing the probes
def test_header_values_are_validated_before_they_are_echoed(tmp_path, mr_series):
    folder = tmp_path / "src"
    shutil.copytree(mr_series[0], folder)
    _patch(folder, Modality=PHI, SeriesDescription="T1\x00\x1b[31m red\tpost " + "x" * 80)
    (series,) = scan(folder).series
    assert series.modality == "OT"
    assert series.description.startswith("T1 [31m red post x") and len(series.description) == 64
    assert not any(unicodedata.category(c).startswith("C") for c in series.description)
    text = json.dumps(mio.load(folder).meta) + repr(series)
    assert all(part not in text for part in PHI_PARTS)
    one = folder / sorted(p.name for p in folder.iterdir())[0]
    bad = {  # a value in the wrong field may be patient data: it is never quoted
        "PhotometricInterpretation": (mio.InvalidHeaderError, "unsupported PhotometricInterpretation"),
        "RescaleSlope": (mio.InvalidHeaderError, "invalid RescaleSlope value (not shown)"),
        "ImagePositionPatient": (mio.InvalidHeaderError, "invalid ImagePositionPatient value (not shown)"),
    }
    for keyword, (error, reason) in bad.items():
        path = shutil.copy(one, tmp_path / f"{keyword}.dcm")
        with_header_values(Path(path), as_text=keyword != "PhotometricInterpretation", **{keyword: PHI})
        with pytest.raises(error, match=re.escape(reason)) as info:
            mio.load(path)
        assert all(part not in str(info.value) for part in PHI_PARTS), info.value
    number = with_header_values(
        Path(shutil.copy(one, tmp_path / "comma.dcm")), as_text=True, RescaleSlope="1,5"
    )
    with pytest.raises(mio.InvalidHeaderError, match="invalid RescaleSlope value '1,5'"):
        mio.load(number)  # a number-like value helps and is shown
    ds = pydicom.dcmread(one)
    ds.file_meta.TransferSyntaxUID = PHI
    ds.save_as(tmp_path / "ts.dcm")
    with pytest.raises(mio.UnsupportedTransferSyntaxError, match="unknown transfer syntax") as info:
        mio.load(tmp_path / "ts.dcm")
    assert all(part not in str(info.value) for part in PHI_PARTS), info.value


def test_a_readable_slice_without_its_uids_is_still_written(tmp_path, mr_series):
    """A byte flip turned (0008,0018) into another tag: the slice reads, so the derived series has it."""
    folder = tmp_path / "src"
    shutil.copytree(mr_series[0], folder)
    damaged = sorted(folder.iterdir())[3]
    ds = pydicom.dcmread(damaged)
    del ds.SOPInstanceUID, ds.SOPClassUID  # the file meta still names the class
    ds.save_as(damaged)
    loaded = mio.load(folder)
    out = mio.save(loaded, loaded.array, tmp_path / "out")
    written = [pydicom.dcmread(f) for f in sorted(out.iterdir())]
    assert len(written) == 7 and len({str(d.SOPInstanceUID) for d in written}) == 7
    assert {str(d.SOPClassUID) for d in written} == {"1.2.840.10008.5.1.4.1.1.4"}
    assert sum("SourceImageSequence" in d for d in written) == 6  # nothing to reference for the damaged one
    assert np.allclose(mio.load(out).array, loaded.array)


def test_loaded_series_and_errors_pickle(tmp_path):
    vol = np.random.default_rng(4).integers(0, 1000, (8, 6, 4)).astype(np.float32)
    files = write_synthetic_series(vol, np.diag([-1.0, 1.0, 2.0, 1.0]), tmp_path / "s").files
    truncate_before_rows(files[1])
    loaded = mio.load(tmp_path / "s")
    again = pickle.loads(pickle.dumps(loaded))
    assert np.array_equal(again.array, loaded.array) and again.meta == loaded.meta
    series = again.source
    assert isinstance(series, DicomSeries) and series.summary() == loaded.source.summary()
    assert isinstance(series.missing_files[0].exception, mio.PixelDataError)
    error = pickle.loads(pickle.dumps(mio.PixelDataError(files[1], "short")))
    assert type(error) is mio.PixelDataError and error.path == files[1] and str(error) == f"{files[1]}: short"


# ---------------------------------------------------------------------------------------------- series


def test_interleaved_series_shuffled_names_missing_slice(tmp_path):
    """Two series of identical geometry in one folder, random file names, one slice missing: never mixed."""
    rng = np.random.default_rng(11)
    aff = _oblique_affine((16, 14, 9))
    vol_a = rng.integers(0, 900, (16, 14, 9)).astype(np.float32)
    vol_b = rng.integers(1000, 1900, (16, 14, 9)).astype(np.float32)
    study = generate_uid(entropy_srcs=["same study"])
    write_synthetic_series(
        vol_a, aff, tmp_path / "a", series_description="A", series_number=3, study_uid=study
    )
    write_synthetic_series(
        vol_b, aff, tmp_path / "b", series_description="B", series_number=4, study_uid=study
    )
    mixed = tmp_path / "mixed" / "deep"
    mixed.mkdir(parents=True)
    files = [(f, "a") for f in sorted((tmp_path / "a").iterdir())] + [
        (f, "b") for f in (tmp_path / "b").iterdir()
    ]
    order = rng.permutation(len(files))
    missing = sorted((tmp_path / "a").iterdir())[4]  # the 5th slice of A
    for n, i in enumerate(order):
        src, _ = files[i]
        if src == missing:
            continue
        name = hashlib.md5(f"{n}".encode()).hexdigest()[:10] + (".dcm" if n % 2 else "")
        shutil.copy(src, mixed / name)
    result = scan(tmp_path / "mixed")
    assert [s.description for s in result.series] == ["A", "B"] and not result.skipped
    a, b = result.series
    assert a.shape == (16, 14, 8) and b.shape == (16, 14, 9)
    assert any("missing slice" in w for w in a.warnings) and not b.warnings
    assert np.array_equal(mio.load(a).array, np.delete(vol_a, 4, axis=2))
    assert np.array_equal(mio.load(b).array, vol_b)
    assert np.allclose(a.affine, aff, atol=1e-4) and np.allclose(b.affine, aff, atol=1e-4)
    assert np.array_equal(
        mio.load(a.path).array, mio.load(a).array
    )  # the datasets contract: load(series.path)
    with pytest.raises(mio.SeriesSelectionError, match="holds 2 series"):
        mio.load(tmp_path / "mixed")
    assert np.array_equal(mio.load(tmp_path / "mixed", series=4).array, vol_b)  # by SeriesNumber


def test_echoes_split_repeats_stacked_and_uneven_spacing_warned(tmp_path):
    rng = np.random.default_rng(5)
    aff = np.diag([-1.0, 1.0, 2.0, 1.0])
    vol = rng.integers(0, 500, (8, 8, 6)).astype(np.float32)
    uid = generate_uid(entropy_srcs=["one series uid"])
    write_synthetic_series(vol, aff, tmp_path / "e1", series_description="ME")
    write_synthetic_series(vol + 1000, aff, tmp_path / "e2", series_description="ME")
    _patch(tmp_path / "e1", EchoNumbers=1, SeriesInstanceUID=uid)
    _patch(tmp_path / "e2", EchoNumbers=2, SeriesInstanceUID=uid)
    both = tmp_path / "echoes"
    both.mkdir()
    for echo in ("e1", "e2"):
        for f in (tmp_path / echo).iterdir():
            shutil.copy(f, both / f"{echo}_{f.name}")
    echoes = scan(both).series
    assert [s.split for s in echoes] == ["echo 1", "echo 2"]
    assert np.array_equal(mio.load(echoes[1]).array, vol + 1000)
    # the same files without echo numbers: positions repeat twice -> a 4th dimension
    _patch(both, EchoNumbers=None)
    (stacked,) = scan(both).series
    assert stacked.shape == (8, 8, 6, 2) and stacked.n_volumes == 2
    # uneven spacing
    f = sorted((tmp_path / "e1").iterdir())[3]
    ds = pydicom.dcmread(f)
    ds.ImagePositionPatient = [
        ds.ImagePositionPatient[0],
        ds.ImagePositionPatient[1],
        ds.ImagePositionPatient[2] + 0.5,
    ]
    ds.save_as(f)
    (uneven,) = scan(tmp_path / "e1").series
    assert any("uneven slice spacing" in w for w in uneven.warnings)


def _one_uid_folder(tmp_path: Path, parts: dict[str, tuple[np.ndarray, np.ndarray, dict]]) -> Path:
    """Several synthetic stacks given one SeriesInstanceUID, their files shuffled into one folder."""
    uid = generate_uid(entropy_srcs=["one uid, several geometries"])
    both = tmp_path / "mixed"
    both.mkdir()
    for name, (vol, aff, extra) in parts.items():
        write_synthetic_series(vol, aff, tmp_path / name, series_description="one uid")
        _patch(tmp_path / name, SeriesInstanceUID=uid, **extra)
        for f in (tmp_path / name).iterdir():
            shutil.copy(f, both / f"{name}_{f.name}")
    return both


def test_one_uid_with_two_orientations_is_two_volumes(tmp_path):
    rng = np.random.default_rng(6)
    axial = np.diag([-1.0, 1.0, 2.0, 1.0])
    sagittal = np.array([[0.0, 0, 2, 0], [-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    a, b = (rng.integers(0, 500, (8, 8, 5)).astype(np.float32) for _ in range(2))
    series = scan(_one_uid_folder(tmp_path, {"ax": (a, axial, {}), "sag": (b, sagittal, {})})).series
    assert len(series) == 2 and all(s.split for s in series)
    loaded = [mio.load(s) for s in series]
    got = sorted(loaded, key=lambda x: abs(x.affine[0, 0]))  # the axial stack has a diagonal affine
    assert np.allclose(got[1].affine, mio.load(tmp_path / "ax").affine, atol=1e-4)
    assert np.allclose(got[0].affine, mio.load(tmp_path / "sag").affine, atol=1e-4)
    assert np.array_equal(got[1].array, mio.load(tmp_path / "ax").array)


def test_one_uid_with_two_matrix_sizes_is_two_volumes(tmp_path):
    rng = np.random.default_rng(7)
    aff = np.diag([-1.0, 1.0, 2.0, 1.0])
    small = rng.integers(0, 500, (8, 8, 4)).astype(np.float32)
    large = rng.integers(0, 500, (12, 10, 4)).astype(np.float32)
    folder = _one_uid_folder(tmp_path, {"small": (small, aff, {}), "large": (large, aff, {})})
    series = scan(folder).series
    assert sorted(s.shape[:2] for s in series) == [(8, 8), (12, 10)]
    assert all("x" in (s.split or "") for s in series)  # the split names the matrix size


def test_one_uid_with_temporal_positions_is_split_by_time(tmp_path):
    rng = np.random.default_rng(8)
    aff = np.diag([-1.0, 1.0, 2.0, 1.0])
    t1, t2 = (rng.integers(0, 500, (8, 8, 4)).astype(np.float32) for _ in range(2))
    folder = _one_uid_folder(
        tmp_path,
        {
            "t1": (t1, aff, {"TemporalPositionIdentifier": 1}),
            "t2": (t2, aff, {"TemporalPositionIdentifier": 2}),
        },
    )
    series = scan(folder).series
    assert [s.split for s in series] == ["time 1", "time 2"]
    assert np.array_equal(mio.load(series[1]).array, mio.load(tmp_path / "t2").array)


# --------------------------------------------------------------------------------------------- writing


def test_ct_round_trip_within_half_hu_and_clipping_reported(tmp_path):
    rng = np.random.default_rng(0)
    hu = rng.uniform(-1024, 3000, (20, 18, 6))
    aff = _oblique_affine(hu.shape, spacing=(0.7, 0.7, 1.25))
    write_synthetic_series(hu, aff, tmp_path / "ct", modality="CT")
    loaded = mio.load(tmp_path / "ct")
    assert np.max(np.abs(loaded.array - hu)) <= 0.5 + 1e-6
    assert np.allclose(loaded.affine, aff, atol=1e-4)
    out = write_derived_series(loaded, loaded.array, tmp_path / "ct_out", processing="identity")
    again = mio.load(out.path)
    assert np.array_equal(again.array, loaded.array) and out.clipped == 0
    assert np.max(np.abs(again.array - hu)) <= 0.5 + 1e-6
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(out.path)))
    itk = sitk.GetArrayFromImage(reader.Execute())  # (z, y, x) in HU
    assert np.array_equal(itk.transpose(2, 1, 0)[:, ::-1, :], loaded.array)
    hot = loaded.array.copy()
    hot[0, 0, :] = 50000.0  # beyond int16 + intercept
    clipped = write_derived_series(loaded, hot, tmp_path / "ct_hot", processing="hot")
    assert clipped.clipped == hot.shape[2]
    assert mio.load(clipped.path).array[0, 0, 0] == 32767 - 1024


def test_derived_series_header_uids_and_file_meta(tmp_path, mr_series):
    folder, vol, _ = mr_series
    loaded = mio.load(folder)
    out1 = write_derived_series(
        loaded, vol * 0.5, tmp_path / "d1", description="dncnn", processing="dncnn sha 1"
    )
    out2 = write_derived_series(
        loaded, vol * 0.5, tmp_path / "d2", description="dncnn", processing="dncnn sha 1"
    )
    out3 = write_derived_series(
        loaded, vol * 0.5, tmp_path / "d3", description="dncnn", processing="dncnn sha 2"
    )
    assert out1.series_uid == out2.series_uid != out3.series_uid
    source = {str(d.SOPInstanceUID): d for d in (pydicom.dcmread(f) for f in folder.iterdir())}
    uids = set()
    for f, f2 in zip(sorted(out1.path.iterdir()), sorted(out2.path.iterdir())):
        assert f.name.startswith("IM") and f.suffix == ".dcm"
        ds, ds2 = pydicom.dcmread(f), pydicom.dcmread(f2)
        assert ds.SOPInstanceUID == ds2.SOPInstanceUID  # deterministic: a rerun overwrites in a PACS
        uids.add(ds.SOPInstanceUID)
        src = source[ds.SourceImageSequence[0].ReferencedSOPInstanceUID]
        assert ds.SOPInstanceUID != src.SOPInstanceUID and ds.SeriesInstanceUID != src.SeriesInstanceUID
        for keyword in (
            "StudyInstanceUID",
            "FrameOfReferenceUID",
            "PatientName",
            "PatientID",
            "ImagePositionPatient",
            "ImageOrientationPatient",
            "PixelSpacing",
            "WindowCenter",
            "WindowWidth",
            "BitsAllocated",
            "BitsStored",
            "PixelRepresentation",
            "InstanceNumber",
        ):
            assert ds.get(keyword) == src.get(keyword), keyword
        assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]
        assert ds.SeriesDescription == "T1 oblique dncnn" and "dncnn sha 1" in ds.DerivationDescription
        assert ds.SeriesNumber == src.SeriesNumber + 1000
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert f.read_bytes()[128:132] == b"DICM"
    assert len(uids) == vol.shape[2]
    assert np.array_equal(mio.load(out1.path).array, np.rint(vol * 0.5))


def test_derived_series_reads_back_with_sitk_and_dcm2niix_to_source_geometry(tmp_path, mr_series):
    import SimpleITK as sitk

    folder, vol, _ = mr_series
    loaded = mio.load(folder)
    out = mio.save(loaded, loaded.array, tmp_path / "out", description="copy", processing="identity")

    def itk(path: Path):
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path)))
        return reader.Execute()

    a, b = itk(folder), itk(out)
    assert np.allclose(a.GetOrigin(), b.GetOrigin()) and np.allclose(a.GetSpacing(), b.GetSpacing())
    assert np.allclose(a.GetDirection(), b.GetDirection())
    assert np.array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
    ref_src = _run_dcm2niix(folder, tmp_path / "n1")
    ref_out = _run_dcm2niix(out, tmp_path / "n2")
    assert np.allclose(ref_src.affine, ref_out.affine, atol=1e-4)
    assert np.array_equal(np.asanyarray(ref_src.dataobj), np.asanyarray(ref_out.dataobj))


@pytest.mark.parametrize("reorient", [None, False])
@pytest.mark.parametrize("acquisition", ["3D", "2D"])
def test_dicom_to_nifti_affine_equals_dcm2niix(tmp_path, mr_series, reorient, acquisition):
    folder = tmp_path / "src"
    shutil.copytree(mr_series[0], folder)
    _patch(folder, MRAcquisitionType=acquisition)
    nii = dicom_to_nifti(folder, tmp_path / "medden.nii.gz", reorient=reorient)
    ours = nib.load(nii)
    options = ("-x", "i") if reorient is False else ()  # dcm2niix reorients 3D acquisitions by default
    ref = _run_dcm2niix(folder, tmp_path / "d2n", *options)
    assert np.allclose(ours.affine, ref.affine, atol=1e-4)
    assert np.array_equal(ours.get_fdata(), ref.get_fdata())
    assert int(ours.header["qform_code"]) == int(ref.header["qform_code"]) == 1
    assert int(ours.header["sform_code"]) == int(ref.header["sform_code"]) == 1
    if reorient is False or acquisition == "2D":  # medden's own layout is dcm2niix's un-rotated one
        assert np.allclose(ours.affine, mio.load(folder).affine, atol=1e-4)


def test_save_dicom_to_nifti_suffix(tmp_path, mr_series):
    loaded = mio.load(mr_series[0])
    out = mio.save(loaded, loaded.array * 2, tmp_path / "x.nii.gz")
    img = nib.load(out)
    assert np.allclose(
        img.get_fdata(),
        nib.as_closest_canonical(nib.Nifti1Image(loaded.array * 2, loaded.affine)).get_fdata(),
    )


def test_output_names_never_come_from_the_header(tmp_path, mr_series):
    folder = tmp_path / "src"
    shutil.copytree(mr_series[0], folder)
    _patch(folder, SeriesDescription="../../x", PatientName="../../../etc/passwd")
    loaded = mio.load(folder)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = mio.save(loaded, loaded.array, tmp_path / "out", description="../../y", processing="../z")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "out"])
    assert all(p.parent == out and p.name.startswith("IM") for p in out.rglob("*"))
    assert pydicom.dcmread(next(out.iterdir())).SeriesDescription == "../../x ../../y"


def test_output_folder_must_not_touch_the_source(tmp_path, mr_series):
    folder = tmp_path / "src"
    shutil.copytree(mr_series[0], folder)
    loaded = mio.load(folder)
    for dst in (folder, folder / "inside", tmp_path):
        with pytest.raises(mio.OutputError, match="source"):
            mio.save(loaded, loaded.array, dst)
    with pytest.raises(mio.OutputError, match="shape"):
        mio.save(loaded, loaded.array[:-1], tmp_path / "wrong")


def test_inputs_unchanged_by_reading_and_writing(tmp_path, mr_series):
    folder = tmp_path / "src"
    shutil.copytree(mr_series[0], folder)
    _copy_testfile("MR_small_jp2klossless.dcm", tmp_path / "j2k")
    before = {**_hashes(folder), **_hashes(tmp_path / "j2k")}
    for src in (folder, tmp_path / "j2k"):
        loaded = mio.load(src)
        mio.save(loaded, loaded.array, tmp_path / f"out_{src.name}")
        dicom_to_nifti(src, tmp_path / f"{src.name}.nii.gz")
        scan(src)
    assert {**_hashes(folder), **_hashes(tmp_path / "j2k")} == before


# --------------------------------------------------------------------------------------- MONAI and CLI


@pytest.mark.filterwarnings("ignore:NvImgCodecPydicomReader")
def test_monai_loadimage_reads_a_series_folder(tmp_path, mr_series):
    from monai.transforms import LoadImage, LoadImaged

    from medden.io.readers import DicomSeriesReader

    folder, vol, aff = mr_series
    img = LoadImage(reader=DicomSeriesReader(), image_only=True)(str(folder))
    assert tuple(img.shape) == vol.shape and np.array_equal(img.numpy(), vol)
    assert np.allclose(img.affine.numpy(), aff, atol=1e-4)
    assert img.meta["0008|0060"] == "MR" and img.meta["space"] == "RAS"
    assert "0010|0010" in img.meta  # the source metadata, as MONAI's ITKReader gives it
    data = LoadImaged(keys="image", reader=DicomSeriesReader(), ensure_channel_first=True)(
        {"image": str(folder)}
    )
    assert tuple(data["image"].shape) == (1, *vol.shape)
    two = tmp_path / "two"
    shutil.copytree(folder, two / "a")
    write_synthetic_series(vol[:, :, :3], aff, two / "b", series_description="other")
    with pytest.raises(RuntimeError, match="holds 2 series"):  # never stacked like PydicomReader does
        LoadImage(reader=DicomSeriesReader(), image_only=True)(str(two))


def test_cli_noise_on_a_dicom_series_folder_and_file(tmp_path, mr_series):
    from medden.cli import main

    folder, vol, aff = mr_series
    out = tmp_path / "noisy"
    assert main(["noise", str(folder), str(out), "--kind", "rician", "--level", "0.05", "--seed", "1"]) == 0
    noisy = mio.load(out)
    assert noisy.array.shape == vol.shape and np.allclose(noisy.affine, aff, atol=1e-4)
    assert not np.array_equal(noisy.array, vol)
    ds = pydicom.dcmread(next(out.iterdir()))
    assert "seed 1" in ds.DerivationDescription and ds.ImageType[0] == "DERIVED"
    out2 = tmp_path / "noisy2"
    one_file = sorted(folder.iterdir())[2]
    assert (
        main(["noise", str(one_file), str(out2), "--kind", "rician", "--level", "0.05", "--seed", "1"]) == 0
    )
    assert np.array_equal(mio.load(out2).array, noisy.array)
    proc = subprocess.run(
        [sys.executable, "-m", "medden", "noise", str(tmp_path / "noisy"), str(tmp_path / "noisy"), "--kind",
         "gaussian", "--level", "0.1", "--overwrite"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_series_object_and_scan_contract(tmp_path, mr_series):
    result = mio.scan(mr_series[0])
    (series,) = result.series
    assert isinstance(series, DicomSeries) and series.n_slices == mr_series[1].shape[2]
    assert np.array_equal(mio.load(series).array, mio.load(series.path).array)
    summary = series.summary()
    assert summary["slices"] == 7 and summary["modality"] == "MR" and "uid" not in json.dumps(summary).lower()
