"""Medical image I/O: DICOM series in and derived series out, NIfTI and 2D images without loss.

One entry point each way:

- :func:`load` reads a DICOM series (a folder holding one, one of its files, or a
  :class:`~medden.io.dicom.DicomSeries` from :func:`scan`), a NIfTI file or a 2D image into a
  :class:`Loaded` (``array``, ``kind``, ``affine``, ``meta``);
- :func:`save` writes a processed array back in the source's format, bit depth and value range,
  atomically: a derived DICOM series (new UIDs, same study), a NIfTI with the source header, or an
  image with the source's dtype.

Orientation (one convention inside medden, see :mod:`medden.io.dicom`): volumes are ``(X, Y, Z[, T])``
arrays with a 4×4 affine from voxel indices to RAS+ millimetres, as nibabel gives them; DICOM series
come out in the layout dcm2niix writes (an axial series is LAS). 2D images are channel-first
``(C, H, W)``, row 0 at the top. Errors are :class:`MeddenIOError` subclasses whose one-line message
names the file and the reason.

:func:`load_isolated` is :func:`load` in a worker process: a decoder that crashes on a hostile file
fails that input with :class:`ReaderCrashError` instead of ending the calling process.

Importing this package is light (numpy only): pydicom, nibabel, Pillow, SimpleITK and MONAI are
imported by the functions that need them.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medden.io import dicom, images, nifti
from medden.io.base import KINDS, Loaded, to_stored
from medden.io.errors import (
    CorruptFileError,
    DuplicateInstanceError,
    GeometryError,
    InputNotFoundError,
    InvalidHeaderError,
    MeddenIOError,
    MissingFileMetaError,
    MissingTransferSyntaxError,
    NonImageObjectError,
    OutputError,
    PixelDataError,
    ReaderCrashError,
    SeriesSelectionError,
    UnsupportedFormatError,
    UnsupportedTransferSyntaxError,
)

if TYPE_CHECKING:
    from medden.io.dicom import ScanResult

#: suffixes :func:`is_supported` accepts (DICOM files without a suffix are found by :func:`scan`)
SUPPORTED_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".nii", ".nii.gz", ".dcm")

#: re-exported names -> their module, imported on first access: :mod:`medden.io.readers` pulls in
#: MONAI, and :mod:`medden.io.isolate` imports this package
_LAZY = {
    "DicomSeries": "medden.io.dicom",
    "ScanResult": "medden.io.dicom",
    "SkippedFile": "medden.io.dicom",
    "SliceRef": "medden.io.dicom",
    "WriteResult": "medden.io.dicom",
    "find_series": "medden.io.dicom",
    "load_dicom": "medden.io.dicom",
    "read_series": "medden.io.dicom",
    "write_derived_series": "medden.io.dicom",
    "write_synthetic_series": "medden.io.dicom",
    "dicom_to_nifti": "medden.io.dicom",
    "load_nifti": "medden.io.nifti",
    "save_nifti": "medden.io.nifti",
    "write_nifti": "medden.io.nifti",
    "load_image": "medden.io.images",
    "save_image": "medden.io.images",
    "DicomSeriesReader": "medden.io.readers",
    "describe": "medden.io.discover",
    "IsolatedLoader": "medden.io.isolate",
    "load_isolated": "medden.io.isolate",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medden.io' has no attribute {name!r}")


def is_supported(path: str | os.PathLike[str]) -> bool:
    """True when medden can read ``path`` by its name: an image, NIfTI or ``.dcm`` file.

    DICOM files without a suffix are not recognised by name; :func:`scan` finds them by content.
    """
    name = Path(path).name.lower()
    return name.endswith(SUPPORTED_SUFFIXES)


def _kind_of(path: Path) -> str:
    if path.is_dir():
        return "dicom"
    if nifti.is_nifti(path):
        return "nifti"
    if images.image_format(path):
        return "dicom" if dicom.has_dicom_preamble(path) else "image"
    return "dicom"


def load(src: Any, series: int | str | None = None) -> Loaded:
    """Read an image, a NIfTI volume or a DICOM series.

    Args:
        src: a path (image file, ``.nii``/``.nii.gz``, DICOM file or folder) or a
            :class:`~medden.io.dicom.DicomSeries` from :func:`scan`.
        series: for a folder holding several DICOM series, which one (index in the scan,
            :attr:`DicomSeries.id` or SeriesNumber).

    Returns:
        a :class:`Loaded`; see its docstring for the array layout of each kind.

    Raises:
        MeddenIOError: a subclass naming the file and the reason.

    Example:
        >>> import medden.io as mio
        >>> loaded = mio.load("scan.nii.gz")  # doctest: +SKIP
        >>> out = mio.save(loaded, loaded.array * 0.5, "half.nii.gz")  # doctest: +SKIP
    """
    if isinstance(src, dicom.DicomSeries):
        return dicom.load_dicom(src)
    path = Path(src)
    if not path.exists():
        raise InputNotFoundError(path, "not found")
    kind = _kind_of(path)
    if kind == "nifti":
        return nifti.load_nifti(path)
    if kind == "image":
        return images.load_image(path)
    return dicom.load_dicom(path, series=series)


def save(
    loaded: Loaded,
    array: Any,
    dst: str | os.PathLike[str],
    description: str | None = None,
    processing: str | None = None,
    dtype: Any = None,
) -> Path:
    """Write ``array`` (processed from ``loaded``) in the same format, bit depth and value range.

    - image: the source's dtype and channels (integers rounded and clipped), format from ``dst``'s
      suffix;
    - NIfTI: the source header (affine, codes, pixdim, units, scaling, dtype unless ``dtype``);
    - DICOM: a derived series in the folder ``dst`` (or a NIfTI for a ``.nii``/``.nii.gz`` ``dst``),
      see :func:`medden.io.dicom.write_derived_series`.

    Every output is written atomically.

    Args:
        loaded: what :func:`load` returned for the source.
        array: the new values, same shape as ``loaded.array``.
        dst: the output path (a folder for a DICOM series).
        description: a short label (DICOM SeriesDescription suffix, NIfTI ``descrip``).
        processing: what was done (DICOM DerivationDescription and UID entropy).
        dtype: output dtype for images and NIfTI (default: the source's).

    Returns:
        the written path.
    """
    if loaded.kind == "image":
        return images.save_image(loaded, array, dst, dtype=dtype)
    if loaded.kind == "nifti":
        return nifti.save_nifti(loaded, array, dst, dtype=dtype, description=description)
    if loaded.kind == "dicom":
        return dicom.save_dicom(
            loaded, array, dst, description=description or "medden", processing=processing or ""
        )
    raise OutputError(dst, f"unknown kind {loaded.kind!r}; expected one of {KINDS}")


def scan(folder: str | os.PathLike[str], recursive: bool = True) -> ScanResult:
    """Scan a folder for DICOM series (never raises for one bad file); see :func:`medden.io.dicom.scan`."""
    return dicom.scan(folder, recursive=recursive)


__all__ = [
    "SUPPORTED_SUFFIXES",
    "CorruptFileError",
    "DuplicateInstanceError",
    "GeometryError",
    "InputNotFoundError",
    "InvalidHeaderError",
    "Loaded",
    "MeddenIOError",
    "MissingFileMetaError",
    "MissingTransferSyntaxError",
    "NonImageObjectError",
    "OutputError",
    "PixelDataError",
    "ReaderCrashError",
    "SeriesSelectionError",
    "UnsupportedFormatError",
    "UnsupportedTransferSyntaxError",
    "is_supported",
    "load",
    "save",
    "scan",
    "to_stored",
    *sorted(_LAZY),
]
