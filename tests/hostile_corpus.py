"""Hostile inputs, built at test time from pydicom's own test files and synthetic data (no binaries
are committed): corrupted and truncated DICOM files of every transfer syntax pydicom ships a test
file for, a truncated slice inside a series, patient data in code-string fields, 2D images stored as
volumes, a NaN voxel.

Each builder writes new files and returns their paths; nothing here reads medden's outputs, so the
tests in ``test_hostile.py`` decide what must happen.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medden.data.samples import mni152_slice
from medden.io import write_synthetic_series
from medden.noise import gaussian, rician

#: one pydicom test file per transfer syntax it ships test files for (local files: no download)
TRANSFER_SYNTAX_FILES = {
    "explicit_le": ("CT_small.dcm", "1.2.840.10008.1.2.1"),
    "implicit_le": ("MR_small_implicit.dcm", "1.2.840.10008.1.2"),
    "big_endian": ("MR_small_bigendian.dcm", "1.2.840.10008.1.2.2"),
    "deflated": ("image_dfl.dcm", "1.2.840.10008.1.2.1.99"),
    "jpeg_baseline": ("SC_rgb_jpeg_dcmtk.dcm", "1.2.840.10008.1.2.4.50"),
    "jpeg_extended": ("JPEG-lossy.dcm", "1.2.840.10008.1.2.4.51"),
    "jpeg_lossless": ("SC_rgb_jpeg_gdcm.dcm", "1.2.840.10008.1.2.4.70"),
    "jpeg_ls": ("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80"),
    "jpeg_2000": ("MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90"),
    "rle": ("MR_small_RLE.dcm", "1.2.840.10008.1.2.5"),
}
#: a patient-data-looking value (16 characters: it fits a CS element)
PHI = "DOE^JOHN 1234567"
PHI_PARTS = (PHI, "DOE^JOHN", "JOHN", "1234567")


def pydicom_file(name: str) -> Path:
    """A file of pydicom's test data (never downloaded)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        raise FileNotFoundError(f"pydicom test file {name} is not installed")
    return Path(path)


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (to show a run left its input untouched)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _save(ds: pydicom.Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid values are the point of some probes
        ds.save_as(path)
    return path


def with_new_uids(src: Path, dst: Path, entropy: str) -> Path:
    """``src`` re-saved (same transfer syntax, pixel data untouched) with its own series and instance
    UIDs, so files made from pydicom's ``MR_small*`` twins are not duplicates of one another."""
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[entropy, "instance"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[entropy, "series"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return _save(ds, dst)


def element_offset(path: Path, tag: int) -> int | None:
    """Byte offset in the file of the element ``tag`` (its tag bytes), or None when the data set is
    deflated (offsets are in the inflated stream) or the element is absent."""
    ds = pydicom.dcmread(path, defer_size=64)
    if str(ds.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.1.99" or tag not in ds:
        return None
    raw_elem = ds.get_item(tag, keep_deferred=True)
    little = ds.original_encoding[1] if ds.original_encoding[1] is not None else True
    group, elem = tag >> 16, tag & 0xFFFF
    tag_bytes = (
        group.to_bytes(2, "little") + elem.to_bytes(2, "little")
        if little
        else group.to_bytes(2, "big") + elem.to_bytes(2, "big")
    )
    offset = path.read_bytes().rfind(tag_bytes, 0, raw_elem.value_tell)
    return offset if offset >= 0 else None


def flip_bytes(data: bytes, seed: int, header_end: int | None, n_header: int = 2, n_rest: int = 24) -> bytes:
    """``data`` with ``n_header`` random bytes changed in the header (after the 132-byte preamble,
    before ``header_end``) and ``n_rest`` in the rest of the file (the pixel data, where decoders run)."""
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    split = header_end if header_end is not None else len(data) // 2
    for lo, hi, n in ((132, split, n_header), (split, len(data), n_rest)):
        if hi - lo > 0:
            for i in rng.choice(np.arange(lo, hi), size=min(n, hi - lo), replace=False):
                out[i] = (out[i] + int(rng.integers(1, 256))) % 256  # never the same byte
    return bytes(out)


def _truncation(fraction: float) -> Callable[[bytes, int | None], bytes | None]:
    def cut(data: bytes, pixel_offset: int | None) -> bytes | None:
        return data[: int(len(data) * fraction)]

    return cut


def _flips(seed: int) -> Callable[[bytes, int | None], bytes | None]:
    def flip(data: bytes, pixel_offset: int | None) -> bytes | None:
        return flip_bytes(data, seed, pixel_offset)

    return flip


def _before_pixel_data(data: bytes, pixel_offset: int | None) -> bytes | None:
    return data[:pixel_offset] if pixel_offset is not None else None


#: name -> what it does to a file's bytes (None: not applicable to that file)
MUTATIONS: dict[str, Callable[[bytes, int | None], bytes | None]] = {
    "flip_seed0": _flips(0),
    "flip_seed1": _flips(1),
    "flip_seed2": _flips(2),
    "truncate_10pct": _truncation(0.10),
    "truncate_50pct": _truncation(0.50),
    "truncate_90pct": _truncation(0.90),
    "truncate_before_pixel_data": _before_pixel_data,
}


def mutated_files(root: Path, mutation: str) -> dict[str, Path]:
    """One file per transfer syntax with ``mutation`` applied, each in its own folder
    ``root/<syntax>/`` (so a manifest record's input names the syntax)."""
    out = {}
    for key, (name, _) in TRANSFER_SYNTAX_FILES.items():
        folder = root / key
        clean = with_new_uids(pydicom_file(name), folder / "clean.tmp", f"{key}-{mutation}")
        data = MUTATIONS[mutation](clean.read_bytes(), element_offset(clean, 0x7FE00010))
        clean.unlink()
        if data is None:
            folder.rmdir()
            continue
        path = folder / f"{key}.dcm"
        path.write_bytes(data)
        out[key] = path
    return out


def corrupt_rle(dst: Path, seed: int = 0) -> Path:
    """pydicom's ``MR_small_RLE.dcm`` with the middle third of its pixel data replaced by random bytes
    (its Rust decoder panicked on it: a ``BaseException`` that escaped every handler)."""
    src = pydicom_file("MR_small_RLE.dcm")
    ds = pydicom.dcmread(src, defer_size=64)
    elem = ds.get_item(0x7FE00010, keep_deferred=True)
    data = bytearray(src.read_bytes())
    start = elem.value_tell
    length = elem.length if elem.length != 0xFFFFFFFF else len(data) - start
    a, b = start + length // 3, start + 2 * length // 3
    data[a:b] = np.random.default_rng(seed).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


def good_series(folder: Path, n_slices: int = 4, seed: int = 0, **kwargs: object) -> list[Path]:
    """A small synthetic MR series (noisy MNI152-like blob, 32×28×``n_slices``) written by medden."""
    rng = np.random.default_rng(seed)
    x, y = np.mgrid[:32, :28]
    blob = 800.0 * (((x - 16) / 11.0) ** 2 + ((y - 14) / 9.0) ** 2 < 1)
    vol = np.stack([blob + rng.normal(0, 40, blob.shape) for _ in range(n_slices)], axis=-1)
    result = write_synthetic_series(
        np.clip(vol, 0, None).astype(np.float32), np.diag([-0.9, 0.9, 3.0, 1.0]), folder, **kwargs
    )
    return list(result.files)


def truncate_before_rows(path: Path) -> Path:
    """Cut ``path`` just before its (0028,0010) Rows element (found by parsing), in place."""
    offset = element_offset(path, 0x00280010)
    assert offset is not None
    data = path.read_bytes()
    assert data[offset : offset + 4] == b"\x28\x00\x10\x00"
    path.write_bytes(data[:offset])
    return path


def with_header_values(path: Path, as_text: bool = False, **values: str) -> Path:
    """Set header values of ``path`` in place, invalid ones included; ``as_text`` stores each as an LO
    (free text) element, so a numeric attribute can hold a value that is not a number."""
    ds = pydicom.dcmread(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for keyword, value in values.items():
            if as_text:
                ds.add_new(keyword, "LO", value)
            else:
                setattr(ds, keyword, value)
    return _save(ds, path)


def noisy_mni_slice(level: float = 0.05, seed: int = 0, kind: str = "rician") -> tuple[np.ndarray, float]:
    """An MNI152 slice ``(H, W)`` scaled to 0–1000 with Rician noise (or Gaussian noise over an offset
    of 250, so no value is negative), and the noise σ."""
    clean = mni152_slice()[0]
    clean = 1000.0 * clean / clean.max()
    sigma = level * 1000.0
    if kind == "gaussian":
        return gaussian(clean + 250.0, sigma=sigma, rng=seed), sigma
    return rician(clean, sigma=sigma, rng=seed), sigma
