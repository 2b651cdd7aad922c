"""DICOM: scan a folder into series, read a series into a volume, write a derived series.

Orientation convention (the one used everywhere in :mod:`medden.io`, the same as nibabel's and
dcm2niix's output):

- a volume is a numpy array indexed ``[i, j, k]`` (then ``[t]`` for repeated positions, or a trailing
  ``3`` for color), and its 4×4 ``affine`` maps ``(i, j, k, 1)`` to **RAS+** millimetres (x increasing
  towards the patient's right, y anterior, z superior: nibabel's world space, DICOM's LPS with x and
  y negated);
- for a DICOM series, ``i`` runs along a row of the stored image (DICOM column index, direction
  ``ImageOrientationPatient[:3]``), ``j`` runs along a column **from the last row to the first** (rows
  are stored top to bottom; dcm2niix flips them the same way), and ``k`` runs along the slice normal
  ``row × column`` in increasing order of ``ImagePositionPatient`` projected on it. An axial series
  therefore comes out as LAS (radiological), exactly the affine dcm2niix writes, and
  :func:`dicom_to_nifti` gives the same NIfTI geometry as dcm2niix.

Reading (:func:`scan`, :func:`load_dicom`):

- every file under a folder is tried whatever its name (``DICOMDIR`` and medden's temporary files are
  ignored); a file that cannot be used is listed in :attr:`ScanResult.skipped` with its reason, a
  scan never raises because of one file;
- files are grouped by SeriesInstanceUID and split further by geometry (orientation, rows/columns,
  pixel spacing, samples per pixel) and by echo number and temporal position, so two series are never
  stacked together; multi-frame (enhanced) objects are expanded frame by frame through their
  functional groups;
- slices are sorted by the projection of ImagePositionPatient on the slice normal (InstanceNumber is
  the fallback when positions are missing); the slice spacing comes from the positions, with a
  warning for uneven spacing, a missing slice or a tilted stack; positions repeated the same number
  of times (e.g. diffusion directions) make a 4th dimension;
- pixel data are decoded by pydicom's handlers (JPEG baseline/extended/lossless, JPEG-LS and
  JPEG 2000 through pylibjpeg and its plugins; RLE, deflated and big-endian syntaxes by pydicom),
  MONOCHROME1 is inverted, and RescaleSlope/RescaleIntercept (per frame for enhanced objects) give
  real units (CT in HU) as float32.

Writing (:func:`write_derived_series`, :func:`write_synthetic_series`): one writer builds a new
series in a temporary folder and renames it into place (:func:`medden.io.atomic.atomic_dir`). A
derived series gets new SeriesInstanceUID/SOPInstanceUIDs derived deterministically from the source
UIDs and the processing (a rerun overwrites rather than duplicates in a PACS), keeps the study,
patient and frame of reference, positions, orientation, spacing and windows, sets ImageType
``DERIVED\\SECONDARY``, a SeriesDescription suffix, DerivationDescription and SourceImageSequence,
and re-encodes the pixels to the source's BitsAllocated/BitsStored/PixelRepresentation and rescale
(clipped values counted), uncompressed Explicit VR Little Endian. File names are ``IM00001.dcm``...:
nothing from the header reaches the file system.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np

from medden.io.atomic import atomic_dir, is_temporary
from medden.io.base import Loaded, report_clipped, to_stored
from medden.io.bids import non_image_kind
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
    SeriesSelectionError,
    UnsupportedFormatError,
    UnsupportedTransferSyntaxError,
    one_line,
)
from medden.io.images import image_format
from medden.io.nifti import is_nifti, write_nifti
from medden.version import __version__

logger = logging.getLogger("medden.io")

#: RAS = LPS with x and y negated
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: SOP classes with pixel data that are not images to denoise
NON_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "segmentation",
    "1.2.840.10008.5.1.4.1.1.66.7": "label map segmentation",
    "1.2.840.10008.5.1.4.1.1.481.2": "RT dose grid",
}
LOSSY_METHODS = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",
    "1.2.840.10008.1.2.4.51": "ISO_10918_1",
    "1.2.840.10008.1.2.4.81": "ISO_14495_1",
    "1.2.840.10008.1.2.4.91": "ISO_15444_1",
    "1.2.840.10008.1.2.4.93": "ISO_15444_1",
}
#: SOP classes that are images though their name does not say "Image Storage"
_IMAGE_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.6.2": "Enhanced US Volume Storage"}
#: attributes of the Image Pixel module: a header holding one of them describes an image
_IMAGE_MODULE = (
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
)
#: defined terms of Modality (PS3.3 C.7.3.1.1.1, current and retired); any other value is reported as
#: "OT", so free text typed into the field (a name, an ID) is never echoed
MODALITIES = frozenset(
    """AR AS ASMT AU BDUS BI BMD CD CF CFM CP CR CS CT CTPROTOCOL DD DF DG DM DMS DOC DS DX EC ECG EEG EMG
    EOG EPS ES FA FID FS GM HC HD IO IOL IVOCT IVUS KER KO LEN LP LS M3D MA MG MR MS NM OAM OCT OP OPM OPR
    OPT OPTBSV OPTENF OPV OSS OT PLAN POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD
    RTRECORD RTSEGANN RTSTRUCT RWV SEG SM SMR SR SRF ST STAIN TEXTUREMAP TG US VA VF XA XAPROTOCOL
    XC""".split()
)
#: defined terms of PhotometricInterpretation (PS3.3 C.7.6.3.1.2, current and retired)
PHOTOMETRIC_INTERPRETATIONS = frozenset(
    {
        "MONOCHROME1",
        "MONOCHROME2",
        "PALETTE COLOR",
        "RGB",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_PARTIAL_422",
        "YBR_PARTIAL_420",
        "YBR_ICT",
        "YBR_RCT",
        "XYB",
        "HSV",
        "ARGB",
        "CMYK",
    }
)
#: what a header value must look like to be quoted in an error message (a short number or list of
#: numbers); anything else may be patient data typed into the wrong field and is "(not shown)"
_SHOWN_VALUE = re.compile(r"^[0-9.,:;+\-eE\\ ]{1,32}$")
_UID_FORM = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_POSITION_TOL = 0.01  # mm: two slices closer than this along the normal share a position
_ORIENTATION_TOL = 1e-3
_MEDDEN_IMPLEMENTATION = "MEDDEN_0.1"
#: elements a derived series must not copy (they describe the old pixels or their encoding)
_DROP_ON_DERIVE = (
    "IconImageSequence",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "PixelDataProviderURL",
    "DataSetTrailingPadding",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "PixelData",
)
#: General Equipment attributes that describe the source's device: kept only in the derived series'
#: ContributingEquipmentSequence (the new series' own General Equipment is medden)
_SOURCE_DEVICE = (
    "StationName",
    "ManufacturerModelName",
    "DeviceSerialNumber",
    "SoftwareVersions",
    "GantryID",
    "DeviceUID",
    "UDISequence",
    "ManufacturerDeviceClassUID",
    "SpatialResolution",
    "DateOfLastCalibration",
    "TimeOfLastCalibration",
    "DateTimeOfLastCalibration",
)
#: where the source's device was: copied into its contributing equipment item, kept in the series too
_SOURCE_SITE = ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName")
_PALETTE_ELEMENTS = (
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "AlphaPaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "AlphaPaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData",
    "PaletteColorLookupTableUID",
)


# --------------------------------------------------------------------------------------------------
# data model


@dataclass(frozen=True)
class SkippedFile:
    """A file a scan could not use, with the reason (``error`` is the typed error's class name)."""

    path: Path
    reason: str
    error: str = "MeddenIOError"
    exception: MeddenIOError | None = field(default=None, compare=False, repr=False)

    def to_dict(self, root: Path | None = None) -> dict[str, str]:
        """JSON-ready ``{"path", "reason", "error"}`` (path relative to ``root`` when given)."""
        return {"path": _relative(self.path, root), "reason": self.reason, "error": self.error}


@dataclass(frozen=True)
class SliceRef:
    """One 2D frame of a series: the file, the frame index in it, and its position (LPS mm)."""

    path: Path
    frame: int = 0
    position: tuple[float, float, float] | None = None
    instance_number: int | None = None


@dataclass(eq=False)
class DicomSeries:
    """A series (or one geometry of a series) ready to be read as one volume.

    Attributes:
        uid: SeriesInstanceUID.
        slices: the frames in volume order (``k`` fastest, then ``t``).
        shape: ``(X, Y, Z)``, ``(X, Y, Z, T)``, or with a trailing 3 for color.
        affine: voxel-to-RAS affine in medden's convention (see the module docstring).
        spacing: ``(dx, dy, dz)`` in mm.
        modality, series_number, description, sop_class_uid, study_uid, frame_of_reference_uid:
            from the first file.
        rows, columns, samples_per_pixel, photometric: pixel layout.
        split: why this is only part of its SeriesInstanceUID (e.g. ``"echo 2"``), else None.
        warnings: geometry warnings (uneven spacing, missing slice, no positions...).
        transfer_syntaxes: the transfer syntax UIDs of its files.
        missing_files: files of the same SeriesInstanceUID that could not be read (truncated,
            undecodable header...), so the volume lacks them; every part of a split series lists them.

    Header values are validated before they are kept: ``modality`` is a defined term (``"OT"`` for
    anything else, ``""`` when absent), ``photometric`` a defined term, ``description`` has no control
    characters and at most 64 characters.
    """

    uid: str
    slices: tuple[SliceRef, ...]
    shape: tuple[int, ...]
    affine: np.ndarray
    spacing: tuple[float, float, float]
    modality: str = ""
    series_number: int | None = None
    description: str = ""
    sop_class_uid: str = ""
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    rows: int = 0
    columns: int = 0
    samples_per_pixel: int = 1
    photometric: str = "MONOCHROME2"
    split: str | None = None
    warnings: tuple[str, ...] = ()
    transfer_syntaxes: tuple[str, ...] = ()
    missing_files: tuple[SkippedFile, ...] = ()

    @property
    def files(self) -> tuple[Path, ...]:
        """The distinct files of the series, in slice order."""
        return tuple(dict.fromkeys(s.path for s in self.slices))

    @property
    def path(self) -> Path:
        """The first file in slice order; ``load(series.path)`` finds this series again."""
        return self.slices[0].path

    @property
    def folder(self) -> Path:
        """The deepest folder holding every file of the series."""
        return Path(os.path.commonpath([str(p.parent) for p in self.files]))

    @property
    def id(self) -> str:
        """A short stable identifier (a hash of the UID and split) for logs: never patient data."""
        return hashlib.sha1(f"{self.uid}|{self.split}".encode()).hexdigest()[:8]

    @property
    def n_slices(self) -> int:
        """Number of slice positions (``Z``)."""
        return int(self.shape[2])

    @property
    def n_volumes(self) -> int:
        """Number of volumes (``T``; 1 for a 3D series)."""
        spatial = self.shape[:-1] if self.samples_per_pixel > 1 else self.shape
        return int(spatial[3]) if len(spatial) > 3 else 1

    def summary(self, root: Path | None = None) -> dict[str, Any]:
        """A JSON-ready description without patient data (no name, ID, birth date or UID).

        ``missing_files`` counts the files of the series that could not be read, and ``missing`` lists
        them (path relative to ``root``, error class, reason).
        """
        return {
            "id": self.id,
            "modality": self.modality,
            "shape": [int(s) for s in self.shape],
            "spacing": [round(float(s), 6) for s in self.spacing],
            "slices": self.n_slices,
            "volumes": self.n_volumes,
            "files": len(self.files),
            "series_number": self.series_number,
            "description": self.description,
            "split": self.split,
            "sop_class": _uid_name(self.sop_class_uid),
            "transfer_syntaxes": sorted({_uid_name(t) for t in self.transfer_syntaxes}),
            "photometric": self.photometric,
            "folder": _relative(self.folder, root),
            "warnings": list(self.warnings),
            "missing_files": len(self.missing_files),
            "missing": [m.to_dict(root) for m in self.missing_files],
        }

    def to_dict(self, root: Path | None = None) -> dict[str, Any]:
        """The same as :meth:`summary`."""
        return self.summary(root)


@dataclass
class ScanResult:
    """What :func:`scan` found: DICOM image series, other readable files, and skipped files."""

    root: Path
    series: list[DicomSeries] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no patient data)."""
        return {
            "root": str(self.root),
            "series": [s.summary(self.root) for s in self.series],
            "others": [_relative(p, self.root) for p in self.others],
            "skipped": [s.to_dict(self.root) for s in self.skipped],
        }


@dataclass
class WriteResult:
    """What a series writer wrote."""

    path: Path
    files: list[Path]
    series_uid: str
    clipped: int = 0
    values: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "path": str(self.path),
            "files": len(self.files),
            "clipped": self.clipped,
            "values": self.values,
        }


# --------------------------------------------------------------------------------------------------
# helpers


_F = TypeVar("_F", bound=Callable[..., Any])


def _quiet(fn: _F) -> _F:
    """Run ``fn`` with Python warnings ignored: pydicom warns about invalid values while it converts
    them lazily, quoting the raw value (possibly patient data typed into the wrong field) on stderr;
    every problem medden acts on is raised or logged as its own one-line message instead."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _relative(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            rel = path.resolve().relative_to(Path(root).resolve())
            return str(rel) if str(rel) != "." else "."
        except ValueError:
            pass
    return str(path)


def _uid_name(uid: str) -> str:
    """The registered name of ``uid`` (e.g. ``"MR Image Storage"``), the UID itself when it is a valid
    but unknown UID, or ``"(invalid UID)"``: a value that is not a UID is never echoed."""
    from pydicom.uid import UID

    uid = str(uid or "").strip().rstrip("\x00")
    if not uid:
        return ""
    if len(uid) > 64 or not _UID_FORM.match(uid):
        return "(invalid UID)"
    return UID(uid).name


def modality_term(value: Any) -> str:
    """A Modality value as medden reports it: the defined term (upper case), ``"OT"`` for any other
    value, ``""`` when absent (see :data:`MODALITIES`)."""
    text = str(value or "").strip().upper()
    if not text:
        return ""
    return text if text in MODALITIES else "OT"


def clean_text(value: Any, max_len: int = 64) -> str:
    """A free-text header value (SeriesDescription) without control or format characters, whitespace
    runs collapsed, at most ``max_len`` characters."""
    text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in str(value or ""))
    return " ".join(text.split())[:max_len].rstrip()


def _shown(value: Any) -> str:
    """``repr`` of a header value for an error message when it is a short number-like string, else
    ``"(not shown)"``: a value in the wrong field may be patient data."""
    text = str(value)
    return repr(text) if _SHOWN_VALUE.match(text) else "(not shown)"


def _known_names() -> frozenset[str]:
    """DICOM keywords and element names (``PixelData``, ``Photometric Interpretation``)."""
    global _KNOWN_NAMES
    if _KNOWN_NAMES is None:
        from pydicom.datadict import DicomDictionary

        _KNOWN_NAMES = frozenset(
            name for entry in DicomDictionary.values() for name in (entry[2], entry[4]) if name
        )
    return _KNOWN_NAMES


_KNOWN_NAMES: frozenset[str] | None = None


def _scrub(text: Any) -> str:
    """A library's error message with every quoted value that may come from the header replaced by
    ``(not shown)``; numbers, UIDs, DICOM keywords and defined terms stay."""

    def keep(match: re.Match[str]) -> str:
        inner = match.group(0)[1:-1]
        if (
            _SHOWN_VALUE.match(inner)
            or (_UID_FORM.match(inner) and len(inner) <= 64)
            or inner in _known_names()
            or inner in PHOTOMETRIC_INTERPRETATIONS
            or inner in MODALITIES
        ):
            return match.group(0)
        return "(not shown)"

    return _QUOTED.sub(keep, one_line(text))


def _is_temporary(path: Path) -> bool:
    return any(is_temporary(part) for part in path.parts)


def has_dicom_preamble(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a file with the DICOM Part 10 preamble (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _looks_like_raw_dicom(path: Path) -> bool:
    """A DICOM data set without the Part 10 preamble: pydicom forced to read it finds a SOP class or
    several identifying (0008,xxxx) elements."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True, defer_size=1024, stop_before_pixels=True)
        return "SOPClassUID" in ds or sum(1 for tag in ds.keys() if tag.group == 0x0008) >= 2
    except Exception:
        return False


def _dcmread(path: Path, header_only: bool) -> Any:
    """pydicom.dcmread with typed errors and pydicom's warnings kept off the console."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(path, defer_size=1024 if header_only else None)
        except InvalidDicomError:
            if _looks_like_raw_dicom(path):
                raise MissingFileMetaError(
                    path, "no DICOM file meta (no 'DICM' preamble): not a DICOM Part 10 file"
                ) from None
            raise UnsupportedFormatError(path, "not a DICOM file (no 'DICM' preamble, no data set)") from None
        except MemoryError:
            raise CorruptFileError(
                path, "cannot parse DICOM: an element declares an impossible length"
            ) from None
        except Exception as exc:  # EOFError, OSError, struct.error, ValueError, KeyError, ...
            raise CorruptFileError(path, f"cannot parse DICOM: {type(exc).__name__}: {_scrub(exc)}") from None


def _get(
    ds: Any, keyword: str, path: Path, cast: type = float, required: bool = False, strict: bool = True
) -> Any:
    """A header value converted with ``cast`` (a list for multi-valued elements), or None.

    An unconvertible value raises :class:`InvalidHeaderError` when ``strict``, else gives None (for
    attributes that only help ordering or labelling, such as InstanceNumber).
    """
    if not strict:
        try:
            return _get(ds, keyword, path, cast, required)
        except InvalidHeaderError:
            return None
    from pydicom.multival import MultiValue

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ds.get(keyword)
    except Exception as exc:
        raise InvalidHeaderError(path, f"invalid {keyword}: {type(exc).__name__}: {_scrub(exc)}") from None
    if value is None or value == "" or (isinstance(value, (list, MultiValue)) and len(value) == 0):
        if required:
            raise InvalidHeaderError(path, f"missing required attribute {keyword}")
        return None
    try:
        if isinstance(value, (list, MultiValue)):
            return [cast(v) for v in value]
        return cast(value)
    except (TypeError, ValueError):
        raise InvalidHeaderError(path, f"invalid {keyword} value {_shown(value)} (not a number)") from None


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def _fg_item(ds: Any, frame: int, sequence: str) -> Any:
    """The first item of a functional-group ``sequence`` for ``frame`` (per-frame, else shared)."""
    per = ds.get("PerFrameFunctionalGroupsSequence")
    if per is not None and frame < len(per):
        seq = per[frame].get(sequence)
        if seq:
            return seq[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        seq = shared[0].get(sequence)
        if seq:
            return seq[0]
    return None


def _photometric_class(photometric: str) -> str:
    if photometric.startswith("MONOCHROME"):
        return "gray"
    return "color"


# --------------------------------------------------------------------------------------------------
# per-file inspection


@dataclass
class _Frame:
    path: Path
    frame: int
    iop: np.ndarray | None
    ipp: np.ndarray | None
    spacing: tuple[float, float] | None
    thickness: float | None
    between: float | None
    instance: int | None
    acquisition: int | None
    temporal: int | None
    echo: float | None
    key: tuple[Any, ...]
    info: dict[str, Any]


def _is_image_class(sop_class: str) -> bool:
    """True for a SOP class that holds an image (CT/MR/... Image Storage, Enhanced US Volume)."""
    return sop_class in _IMAGE_SOP_CLASSES or "Image Storage" in _uid_name(sop_class)


def _without_pixels(ds: Any, path: Path, sop_class: str, sop_name: str) -> MeddenIOError:
    """The error for a file without pixel data. Only a SOP class that is known not to be an image
    (SR, RTSTRUCT, presentation state, a private non-image class...) makes it a
    :class:`NonImageObjectError` (skipped); an image class or image attributes mean the file was cut
    short, and a missing or garbled SOP class a broken header: both fail, so a slice is never dropped
    from its series without a word."""
    from pydicom.uid import UID

    if _is_image_class(sop_class) or any(k in ds for k in _IMAGE_MODULE):
        return PixelDataError(
            path, f"{sop_name} without pixel data: the file is truncated or its header broken"
        )
    if not sop_class.strip():
        return InvalidHeaderError(path, "no SOPClassUID and no pixel data (truncated or broken header)")
    if sop_name == "(invalid UID)":
        return InvalidHeaderError(path, "SOPClassUID is not a UID and there is no pixel data (broken header)")
    known = UID(sop_class.strip()).type == "SOP Class"
    return NonImageObjectError(
        path,
        f"non-image object without pixel data ({sop_name if known else f'private SOP class {sop_name}'})",
    )


def _check_image(ds: Any, path: Path) -> dict[str, Any]:
    """Validate an image header; return the file-level facts, or raise the typed error."""
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if not ts:
        raise MissingTransferSyntaxError(path, "file meta has no (0002,0010) Transfer Syntax UID")
    ts = UID(str(ts))
    sop_class = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else ""))
    modality = modality_term(ds.get("Modality", ""))
    sop_name = _uid_name(sop_class) if sop_class else (modality or "unknown object")
    if sop_class == "1.2.840.10008.1.3.10":
        raise NonImageObjectError(path, "DICOMDIR index (ignored)")
    pixel_tag = next((t for t in _PIXEL_TAGS if t in ds), None)
    if pixel_tag is None:
        raise _without_pixels(ds, path, sop_class, sop_name)
    layout = _pixel_layout(ds, path)
    _check_supported(path, ts, sop_class, sop_name, pixel_tag, layout["bits_allocated"])
    _check_pixel_length(ds, path, ts, layout)
    return {
        "ts": str(ts),
        "sop_class": sop_class,
        "sop_uid": str(ds.get("SOPInstanceUID", "") or ""),
        "series_uid": str(ds.get("SeriesInstanceUID", "") or ""),
        "study_uid": str(ds.get("StudyInstanceUID", "") or ""),
        "for_uid": str(ds.get("FrameOfReferenceUID", "") or ""),
        "modality": modality,
        "series_number": _first(_get(ds, "SeriesNumber", path, int, strict=False)),
        "description": clean_text(ds.get("SeriesDescription", "")),
        **layout,
    }


def _pixel_layout(ds: Any, path: Path) -> dict[str, Any]:
    """The Image Pixel module's values (rows, columns, bits, samples, frames, photometric), checked."""
    rows = _first(_get(ds, "Rows", path, int, required=True))
    columns = _first(_get(ds, "Columns", path, int, required=True))
    bits_allocated = _first(_get(ds, "BitsAllocated", path, int, required=True))
    bits_stored = _first(_get(ds, "BitsStored", path, int)) or bits_allocated
    representation = _first(_get(ds, "PixelRepresentation", path, int)) or 0
    samples = _first(_get(ds, "SamplesPerPixel", path, int)) or 1
    frames = _first(_get(ds, "NumberOfFrames", path, int)) or 1
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip()
    if not photometric:
        raise InvalidHeaderError(path, "missing required attribute PhotometricInterpretation")
    if photometric not in PHOTOMETRIC_INTERPRETATIONS:
        raise InvalidHeaderError(
            path, "unsupported PhotometricInterpretation (not a defined term; value not shown)"
        )
    for name, value in (("Rows", rows), ("Columns", columns), ("NumberOfFrames", frames)):
        if value < 1:
            raise InvalidHeaderError(path, f"invalid {name} value {value}")
    if bits_allocated not in (1, 8, 16, 32) or not 1 <= bits_stored <= bits_allocated:
        raise InvalidHeaderError(path, f"invalid BitsAllocated/BitsStored {bits_allocated}/{bits_stored}")
    return {
        "rows": rows,
        "columns": columns,
        "bits_allocated": bits_allocated,
        "bits_stored": bits_stored,
        "representation": representation,
        "samples": samples,
        "frames": frames,
        "photometric": photometric,
    }


def _check_supported(
    path: Path, ts: Any, sop_class: str, sop_name: str, pixel_tag: int, bits_allocated: int
) -> None:
    """Raise the typed error when the object is not an image medden can decode."""
    if sop_class in NON_IMAGE_SOP_CLASSES:
        raise NonImageObjectError(path, f"non-image object: {NON_IMAGE_SOP_CLASSES[sop_class]} ({sop_name})")
    if pixel_tag != 0x7FE00010:
        raise UnsupportedFormatError(path, "float pixel data are not supported")
    if bits_allocated == 1:
        raise UnsupportedFormatError(path, "1-bit pixel data (bitmaps) are not images to denoise")
    if not ts.is_transfer_syntax:
        raise UnsupportedTransferSyntaxError(path, f"unknown transfer syntax {_uid_name(ts)}")
    if ts.is_compressed:
        from pydicom.pixels import get_decoder

        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            raise UnsupportedTransferSyntaxError(
                path, f"unsupported compression {ts.name} ({ts}): no pixel-data decoder in pydicom"
            ) from None
        if not decoder.is_available:
            raise UnsupportedTransferSyntaxError(
                path, f"unsupported compression {ts.name} ({ts}): no decoder plugin installed"
            )


def _check_pixel_length(ds: Any, path: Path, ts: Any, layout: dict[str, Any]) -> None:
    """Raise :class:`PixelDataError` when the pixel data are shorter than declared or truncated."""
    elem = ds.get_item(0x7FE00010, keep_deferred=True)
    length = getattr(elem, "length", None)
    tell = getattr(elem, "value_tell", None)
    if length is None or length == 0xFFFFFFFF:
        return
    if not ts.is_encapsulated:
        # 4:2:2 stores 2 samples per pixel
        per_pixel = 2 if layout["photometric"] == "YBR_FULL_422" else layout["samples"]
        expected = (
            layout["rows"] * layout["columns"] * per_pixel * layout["frames"] * layout["bits_allocated"] // 8
        )
        if length < expected:
            raise PixelDataError(path, f"pixel data shorter than declared ({length} of {expected} bytes)")
    deflated = ts == "1.2.840.10008.1.2.1.99"  # offsets are in the inflated stream
    if tell is not None and not deflated and tell + length > path.stat().st_size:
        have = path.stat().st_size - tell
        raise PixelDataError(
            path, f"file truncated: pixel data declare {length} bytes but only {max(have, 0)} remain"
        )


def _frames_of(ds: Any, path: Path, info: dict[str, Any]) -> list[_Frame]:
    """One :class:`_Frame` per frame of the file, with its geometry and grouping key."""
    nframes = info["frames"]
    enhanced = ds.get("PerFrameFunctionalGroupsSequence") is not None
    top_iop = _get(ds, "ImageOrientationPatient", path)
    top_ipp = _get(ds, "ImagePositionPatient", path)
    top_spacing = _get(ds, "PixelSpacing", path) or _get(ds, "ImagerPixelSpacing", path)
    top_thick = _first(_get(ds, "SliceThickness", path, strict=False))
    between = _first(_get(ds, "SpacingBetweenSlices", path, strict=False))
    instance = _first(_get(ds, "InstanceNumber", path, int, strict=False))
    acquisition = _first(_get(ds, "AcquisitionNumber", path, int, strict=False))
    temporal = _first(_get(ds, "TemporalPositionIdentifier", path, int, strict=False))
    echo = _first(_get(ds, "EchoNumbers", path, float, strict=False))
    grid = _get(ds, "GridFrameOffsetVector", path, strict=False)
    out = []
    for f in range(nframes):
        iop, ipp, spacing, thick = top_iop, top_ipp, top_spacing, top_thick
        f_temporal = temporal
        if enhanced:  # a frame's functional groups override; its slice spacing carries to the next frames
            iop, ipp, spacing, thick, between, f_temporal = _functional_geometry(
                ds, f, path, (iop, ipp, spacing, thick, between, f_temporal)
            )
        _check_value_counts(path, iop, ipp, spacing)
        iop_arr = np.asarray(iop, dtype=np.float64) if iop is not None else None
        ipp_arr = np.asarray(ipp, dtype=np.float64) if ipp is not None else None
        if not enhanced and nframes > 1 and ipp_arr is not None and iop_arr is not None:
            ipp_arr = _multiframe_position(ipp_arr, iop_arr, f, nframes, grid, between or thick)
        key = (
            info["series_uid"] or f"no-series-uid:{path.parent}",
            str(path) if nframes > 1 else "",
            info["rows"],
            info["columns"],
            info["samples"],
            _photometric_class(info["photometric"]),
            info["bits_allocated"],
            echo if not enhanced else None,
            f_temporal if not enhanced else None,
        )
        out.append(
            _Frame(
                path=path,
                frame=f,
                iop=iop_arr,
                ipp=ipp_arr,
                spacing=(float(spacing[0]), float(spacing[1])) if spacing else None,
                thickness=float(thick) if thick else None,
                between=float(between) if between else None,
                instance=instance,
                acquisition=acquisition,
                temporal=f_temporal,
                echo=echo,
                key=key,
                info=info,
            )
        )
    return out


def _functional_geometry(ds: Any, frame: int, path: Path, defaults: tuple[Any, ...]) -> tuple[Any, ...]:
    """``(iop, ipp, spacing, thickness, between, temporal)`` of one frame of an enhanced (multi-frame)
    object, from its functional groups; ``defaults`` (the same six) where a group is absent."""
    iop, ipp, spacing, thick, between, temporal = defaults
    item = _fg_item(ds, frame, "PlaneOrientationSequence")
    if item is not None:
        iop = _get(item, "ImageOrientationPatient", path)
    item = _fg_item(ds, frame, "PlanePositionSequence")
    if item is not None:
        ipp = _get(item, "ImagePositionPatient", path)
    item = _fg_item(ds, frame, "PixelMeasuresSequence")
    if item is not None:
        spacing = _get(item, "PixelSpacing", path) or spacing
        thick = _first(_get(item, "SliceThickness", path, strict=False)) or thick
        between = _first(_get(item, "SpacingBetweenSlices", path, strict=False)) or between
    item = _fg_item(ds, frame, "FrameContentSequence")
    if item is not None:
        temporal = _first(_get(item, "TemporalPositionIndex", path, int, strict=False))
    return iop, ipp, spacing, thick, between, temporal


def _check_value_counts(path: Path, iop: Any, ipp: Any, spacing: Any) -> None:
    """Raise :class:`InvalidHeaderError` for an orientation, position or spacing of the wrong length."""
    for name, value, count in (
        ("ImageOrientationPatient", iop, 6),
        ("ImagePositionPatient", ipp, 3),
        ("PixelSpacing", spacing, 2),
    ):
        if value is not None and (not isinstance(value, list) or len(value) != count):
            n = len(value) if isinstance(value, list) else 1
            raise InvalidHeaderError(path, f"{name} has {n} value(s), not {count}")


def _multiframe_position(
    ipp: np.ndarray, iop: np.ndarray, frame: int, nframes: int, grid: Any, step: float | None
) -> np.ndarray | None:
    """The position of ``frame`` of a classic multi-frame file: the first frame's position moved along
    the normal by GridFrameOffsetVector, else by the slice spacing; None when neither is known."""
    normal = np.cross(iop[:3], iop[3:])
    if grid is not None and len(grid) == nframes:
        return ipp + float(grid[frame]) * normal
    if step:
        return ipp + frame * float(step) * normal
    return None


@_quiet
def inspect_file(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """Read a DICOM file's header (pixel data deferred) and check it is a usable image.

    Returns:
        the pydicom dataset and the facts the scan uses (UIDs, modality, pixel layout...).

    Raises:
        MeddenIOError: the typed error saying why the file cannot be used.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(path, "not found")
    if path.name.upper() == "DICOMDIR":
        raise NonImageObjectError(path, "DICOMDIR index (ignored)")
    ds = _dcmread(path, header_only=True)
    try:
        return ds, _check_image(ds, path)
    except MeddenIOError:
        raise
    except Exception as exc:  # pydicom converts values lazily: a broken value can surface here
        raise InvalidHeaderError(path, f"{type(exc).__name__}: {_scrub(exc)}") from None


# --------------------------------------------------------------------------------------------------
# scanning


def _iter_files(root: Path, recursive: bool) -> list[Path]:
    if root.is_file():
        return [root]
    pattern = root.rglob("*") if recursive else root.glob("*")
    files = []
    for p in pattern:
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or _is_temporary(rel):
            continue  # hidden files (.DS_Store, .git) and medden's own temporaries
        if p.is_file():
            files.append(p)
    return sorted(files)


def scan(folder: str | os.PathLike[str], recursive: bool = True) -> ScanResult:
    """Find the DICOM image series under ``folder`` (any file names); never raises for one bad file.

    Args:
        folder: a folder (or a single file).
        recursive: also look in sub-folders.

    Returns:
        a :class:`ScanResult` with the series (sorted by series number, then description), the other
        files medden can read (NIfTI, 2D images), and the skipped files with their reasons.

    Raises:
        InputNotFoundError: ``folder`` does not exist.
    """
    root = Path(folder)
    if not root.exists():
        raise InputNotFoundError(root, "not found")
    return scan_files(_iter_files(root, recursive), root=root)


@_quiet
def scan_files(
    paths: Iterable[str | os.PathLike[str]],
    root: str | os.PathLike[str] | None = None,
    prefer: str | os.PathLike[str] | None = None,
) -> ScanResult:
    """Like :func:`scan` on an explicit list of files.

    Files repeating a SOPInstanceUID already seen are skipped as duplicates; ``prefer`` is the file
    kept when it has duplicates (by default the first path in sorted order).
    """
    paths = [Path(p) for p in paths]
    result = ScanResult(root=Path(root) if root is not None else (paths[0].parent if paths else Path(".")))
    if prefer is not None:
        prefer = Path(prefer)
        paths = sorted(
            paths, key=lambda p: p.name != prefer.name or p.parent.resolve() != prefer.parent.resolve()
        )
    frames, broken = _inspect_files(paths, result)
    result.series = _build_groups(_group_frames(frames), broken, result)
    result.skipped.sort(key=lambda s: str(s.path))
    return result


def _inspect_files(
    paths: list[Path], result: ScanResult
) -> tuple[list[_Frame], dict[str, list[SkippedFile]]]:
    """The frames of every usable DICOM file; other readable files go to ``result.others`` and the
    unusable ones to ``result.skipped``, and those of a known SeriesInstanceUID to the returned map
    (series UID -> skipped files), so their series can say it is incomplete."""
    frames: list[_Frame] = []
    seen: dict[str, Path] = {}
    broken: dict[str, list[SkippedFile]] = {}
    for path in paths:
        if path.name.upper() == "DICOMDIR":
            result.skipped.append(SkippedFile(path, "DICOMDIR index (ignored)", "NonImageObjectError"))
            continue
        if (is_nifti(path) or image_format(path)) and not has_dicom_preamble(path):
            result.others.append(path)
            continue
        what = non_image_kind(path)
        if what and not has_dicom_preamble(path):  # a sidecar, table or text file: skipped, not failed
            result.skipped.append(SkippedFile(path, f"not an image ({what})", "NonImageObjectError"))
            continue
        try:
            ds, info = inspect_file(path)
            if info["sop_uid"] and info["sop_uid"] in seen:
                raise DuplicateInstanceError(
                    path, f"duplicate of {seen[info['sop_uid']].name} (same SOPInstanceUID)"
                )
            seen[info["sop_uid"]] = path
            frames.extend(_frames_of(ds, path, info))
        except MeddenIOError as exc:
            result.skipped.append(SkippedFile(path, exc.reason, type(exc).__name__, exc))
        except Exception as exc:  # never let one file stop a scan
            err = CorruptFileError(path, f"unexpected {type(exc).__name__}: {_scrub(exc)}")
            result.skipped.append(SkippedFile(path, err.reason, "CorruptFileError", err))
        else:
            continue
        if result.skipped[-1].error not in ("DuplicateInstanceError", "NonImageObjectError"):
            uid = _series_uid_of(path)
            if uid:
                broken.setdefault(uid, []).append(result.skipped[-1])
    return frames, broken


def _group_frames(frames: list[_Frame]) -> dict[tuple[Any, ...], list[list[_Frame]]]:
    """Frames by grouping key, each group split into clusters of one geometry (and of one file where
    nothing orders the files)."""
    groups: dict[tuple[Any, ...], list[list[_Frame]]] = {}
    for fr in frames:
        clusters = groups.setdefault(fr.key, [])
        for cluster in clusters:
            if _same_geometry(cluster[0], fr):
                cluster.append(fr)
                break
        else:
            clusters.append([fr])
    for clusters in groups.values():
        clusters[:] = [part for cluster in clusters for part in _split_unordered(cluster)]
    return groups


def _build_groups(
    groups: dict[tuple[Any, ...], list[list[_Frame]]],
    broken: dict[str, list[SkippedFile]],
    result: ScanResult,
) -> list[DicomSeries]:
    """One :class:`DicomSeries` per cluster, sorted by series number, description, UID and split; the
    files of a cluster that cannot form a series go to ``result.skipped``."""
    built: list[DicomSeries] = []
    for key, clusters in groups.items():
        for i, cluster in enumerate(clusters):
            split = _split_label(key, cluster, i, len(clusters), groups)
            try:
                built.append(_with_missing(_build_series(cluster, split), broken.get(key[0], [])))
            except MeddenIOError as exc:
                for p in dict.fromkeys(f.path for f in cluster):
                    result.skipped.append(SkippedFile(p, exc.reason, type(exc).__name__, exc))
    built.sort(
        key=lambda s: (
            s.series_number if s.series_number is not None else 1 << 31,
            s.description,
            s.uid,
            s.split or "",
        )
    )
    return built


def _series_uid_of(path: Path) -> str:
    """The SeriesInstanceUID of a file that could not be used, read as far as its header goes ("" when
    it has none): a truncated slice still says which series it belonged to."""
    from pydicom.filereader import read_partial

    def past_series_uid(tag: Any, vr: Any, length: int) -> bool:
        return int(tag) > 0x0020000E

    try:
        with warnings.catch_warnings(), open(path, "rb") as fh:
            warnings.simplefilter("ignore")
            ds = read_partial(fh, stop_when=past_series_uid, defer_size=256, force=True)
            uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
    except Exception:
        return ""
    return uid if _UID_FORM.match(uid) else ""


def _with_missing(series: DicomSeries, missing: list[SkippedFile]) -> DicomSeries:
    """``series`` with the unreadable files of its SeriesInstanceUID recorded and a warning."""
    if not missing:
        return series
    kinds = ", ".join(sorted({m.error for m in missing}))
    series.missing_files = tuple(missing)
    series.warnings = (
        *series.warnings,
        f"missing file(s): {len(missing)} file(s) of this series could not be read ({kinds})",
    )
    return series


def _split_unordered(cluster: list[_Frame]) -> list[list[_Frame]]:
    """Files without positions are stacked only when distinct InstanceNumbers order them."""
    if all(f.ipp is not None for f in cluster):
        return [cluster]
    files = list(dict.fromkeys(f.path for f in cluster))
    if len(files) < 2:
        return [cluster]
    numbers = [next(f.instance for f in cluster if f.path == p) for p in files]
    if None not in numbers and len(set(numbers)) == len(numbers):
        return [cluster]
    return [[f for f in cluster if f.path == p] for p in files]


def _same_geometry(a: _Frame, b: _Frame) -> bool:
    if (a.iop is None) != (b.iop is None) or (a.spacing is None) != (b.spacing is None):
        return False
    if a.iop is not None and float(np.max(np.abs(a.iop - b.iop))) > _ORIENTATION_TOL:
        return False
    if a.spacing is not None and max(abs(x - y) for x, y in zip(a.spacing, b.spacing)) > 1e-3 * max(
        a.spacing
    ):
        return False
    return True


def _split_label(
    key: tuple[Any, ...],
    cluster: list[_Frame],
    index: int,
    n_clusters: int,
    groups: dict[tuple[Any, ...], Any],
) -> str | None:
    """Why a cluster is only part of its SeriesInstanceUID (None when it is the whole series)."""
    siblings = [k for k in groups if k[0] == key[0]]
    parts = []
    if len(siblings) > 1:
        labels = {
            "file": key[1] and f"file {Path(key[1]).name}",
            "size": f"{key[3]}x{key[2]}",
            "echo": key[7] is not None and f"echo {key[7]:g}",
            "temporal": key[8] is not None and f"time {key[8]}",
        }
        varying = {
            "file": len({k[1] for k in siblings}) > 1,
            "size": len({(k[2], k[3], k[4], k[5], k[6]) for k in siblings}) > 1,
            "echo": len({k[7] for k in siblings}) > 1,
            "temporal": len({k[8] for k in siblings}) > 1,
        }
        parts = [str(labels[name]) for name, v in varying.items() if v and labels[name]]
    if n_clusters > 1:
        parts.append(f"part {index + 1}")
    return ", ".join(parts) or None


def _normal_of(iop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    row, col = iop[:3].astype(np.float64), iop[3:].astype(np.float64)
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if nr < 1e-6 or nc < 1e-6:
        raise ValueError("zero-length orientation vector")
    row, col = row / nr, col / nc
    return row, col, np.cross(row, col)


def _build_series(frames: list[_Frame], split: str | None) -> DicomSeries:
    """Sort the frames of one geometry, find the spacing, and build the :class:`DicomSeries`."""
    first = frames[0]
    info = first.info
    notes: list[str] = []
    row, col, normal, (dr, dc) = _in_plane_geometry(first, notes)
    if all(f.ipp is not None for f in frames):
        stack = _stack_by_position(frames, normal, notes)
    else:
        stack = _stack_by_number(frames, normal, notes)
    rows, cols = info["rows"], info["columns"]
    affine = _series_affine(row * dc, col * dr, stack.step, stack.first_pos, rows)
    shape: tuple[int, ...] = (cols, rows, stack.nz) + ((stack.n_t,) if stack.n_t > 1 else ())
    photometric = info["photometric"]
    color = info["samples"] == 3 or photometric == "PALETTE COLOR"
    if color:
        shape = shape + (3,)
    slices = tuple(
        SliceRef(
            path=frames[i].path,
            frame=frames[i].frame,
            position=tuple(float(v) for v in frames[i].ipp) if frames[i].ipp is not None else None,
            instance_number=frames[i].instance,
        )
        for i in stack.order
    )
    return DicomSeries(
        uid=info["series_uid"],
        slices=slices,
        shape=shape,
        affine=affine,
        spacing=(float(dc), float(dr), float(stack.spacing_z)),
        modality=info["modality"],
        series_number=info["series_number"],
        description=info["description"],
        sop_class_uid=info["sop_class"],
        study_uid=info["study_uid"],
        frame_of_reference_uid=info["for_uid"],
        rows=rows,
        columns=cols,
        samples_per_pixel=3 if color else 1,
        photometric=photometric,
        split=split,
        warnings=tuple(notes),
        transfer_syntaxes=tuple(sorted({f.info["ts"] for f in frames})),
    )


class _Stack(NamedTuple):
    """How the frames of a series stack into a volume."""

    order: list[int]  # frame indices in volume order: slices of the first time point, then the next
    nz: int
    n_t: int
    spacing_z: float
    step: np.ndarray  # LPS vector from one slice to the next
    first_pos: np.ndarray  # LPS position of the first slice


def _in_plane_geometry(
    first: _Frame, notes: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """Row and column directions, the slice normal and PixelSpacing ``(between rows, between
    columns)`` of a series' first frame, with a note for each assumed value."""
    if first.iop is not None:
        try:
            row, col, normal = _normal_of(first.iop)
        except ValueError:
            raise GeometryError(first.path, "invalid ImageOrientationPatient (zero vector)") from None
        if abs(float(np.dot(row, col))) > 1e-3:
            notes.append("row and column directions are not orthogonal")
    else:
        row, col, normal = np.eye(3)
        notes.append("no ImageOrientationPatient: identity orientation assumed")
    if first.spacing is not None:
        return row, col, normal, first.spacing
    notes.append("no PixelSpacing: 1 mm assumed")
    return row, col, normal, (1.0, 1.0)


def _order_key(f: _Frame) -> tuple[Any, ...]:
    """The order of frames at one position (or of frames without positions)."""
    return (
        f.temporal if f.temporal is not None else 0,
        f.acquisition if f.acquisition is not None else 0,
        f.instance if f.instance is not None else 0,
        str(f.path),
        f.frame,
    )


def _stack_by_position(frames: list[_Frame], normal: np.ndarray, notes: list[str]) -> _Stack:
    """Stack frames by their position along the normal; frames sharing a position are time points."""
    first = frames[0]
    proj = np.array([float(np.dot(f.ipp, normal)) for f in frames])
    order = sorted(range(len(frames)), key=lambda i: (proj[i], _order_key(frames[i])))
    positions: list[list[int]] = []
    for i in order:
        if positions and abs(proj[i] - proj[positions[-1][0]]) <= _POSITION_TOL:
            positions[-1].append(i)
        else:
            positions.append([i])
    counts = {len(p) for p in positions}
    if len(counts) > 1:
        raise GeometryError(
            first.path.parent,
            f"series {first.info['series_number']}: slice positions repeat unevenly "
            f"({min(counts)} to {max(counts)} frames per position); cannot form one volume",
        )
    n_t = counts.pop()
    for p in positions:
        p.sort(key=lambda i: _order_key(frames[i]))
    nz = len(positions)
    first_pos = frames[positions[0][0]].ipp
    if nz > 1:
        unique = np.array([proj[p[0]] for p in positions])
        last_pos = frames[positions[-1][0]].ipp
        spacing_z, step = _slice_step(unique, last_pos - first_pos, normal, notes)
    else:
        spacing_z = float(first.between or first.thickness or 1.0)
        step = normal * spacing_z
    stacked = [positions[k][t] for t in range(n_t) for k in range(nz)]
    return _Stack(stacked, nz, n_t, spacing_z, step, first_pos)


def _slice_step(
    unique: np.ndarray, path_vec: np.ndarray, normal: np.ndarray, notes: list[str]
) -> tuple[float, np.ndarray]:
    """The slice spacing (median of the gaps between the sorted positions ``unique`` along the normal)
    and the step vector from one slice to the next along ``path_vec`` (first to last slice), with a
    note for missing slices, uneven spacing and a stack tilted from the normal."""
    diffs = np.diff(unique)
    spacing_z = float(np.median(diffs))
    ratio = diffs / spacing_z
    gaps = (np.rint(ratio) >= 2) & (np.abs(ratio - np.rint(ratio)) < 0.25)
    if gaps.any():
        missing = int(np.sum(np.rint(ratio[gaps]) - 1))
        where = ", ".join(f"after slice {int(k)}" for k in np.flatnonzero(gaps)[:3])
        notes.append(f"missing slice(s): about {missing} missing ({where}; spacing {spacing_z:.4g} mm)")
    regular = diffs[~gaps]
    if regular.size and float(np.max(np.abs(regular - spacing_z))) > max(0.01 * spacing_z, 1e-3):
        notes.append(
            f"uneven slice spacing: {float(regular.min()):.4g} to {float(regular.max()):.4g} mm "
            f"(median {spacing_z:.4g} mm used)"
        )
    extent = float(unique[-1] - unique[0])
    step = path_vec * (spacing_z / extent)
    along = float(np.dot(path_vec / np.linalg.norm(path_vec), normal))
    if along < 0.9999:
        tilt = float(np.degrees(np.arccos(min(along, 1.0))))
        notes.append(f"slices are not stacked along the normal (tilt {tilt:.2f}°)")
    return spacing_z, step


def _stack_by_number(frames: list[_Frame], normal: np.ndarray, notes: list[str]) -> _Stack:
    """Stack frames without positions by InstanceNumber (and the rest of :func:`_order_key`), spaced
    by the header's slice spacing or thickness."""
    order = sorted(range(len(frames)), key=lambda i: _order_key(frames[i]))
    first = frames[0]
    spacing_z = float(first.between or first.thickness or 1.0)
    first_pos = frames[order[0]].ipp if frames[order[0]].ipp is not None else np.zeros(3)
    if len(frames) > 1:
        notes.append("no ImagePositionPatient: slices ordered by InstanceNumber, spacing from the header")
    return _Stack(order, len(order), 1, spacing_z, normal * spacing_z, first_pos)


def _series_affine(
    col_step: np.ndarray, row_step: np.ndarray, step: np.ndarray, first_pos: np.ndarray, rows: int
) -> np.ndarray:
    """The RAS affine of a series in medden's (dcm2niix's) convention: ``i`` along a row (``col_step``,
    the LPS vector between columns), ``j`` from the last row to the first, ``k`` along ``step``."""
    lps = np.eye(4)
    lps[:3, 0] = col_step
    lps[:3, 1] = row_step
    lps[:3, 2] = step
    lps[:3, 3] = first_pos
    # medden/dcm2niix convention: j runs from the last row to the first
    lps[:3, 3] = lps[:3, 3] + (rows - 1) * lps[:3, 1]
    lps[:3, 1] = -lps[:3, 1]
    return LPS_TO_RAS @ lps


# --------------------------------------------------------------------------------------------------
# reading pixels


def find_series(path: str | os.PathLike[str], series: int | str | None = None) -> DicomSeries:
    """The series ``path`` designates: a folder holding one series (or ``series`` chosen by index,
    id or SeriesNumber), or one file of a series (its folder is scanned, not recursively).

    Raises:
        SeriesSelectionError: no series, or several and none chosen.
        MeddenIOError: ``path`` is a file that cannot be used (the file's own typed error).
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(path, "not found")
    if path.is_file():
        inspect_file(path)  # the file's own typed error before looking at its neighbours
        found = scan_files(_iter_files(path.parent, recursive=False), root=path.parent, prefer=path)
        for s in found.series:
            if any(f.samefile(path) for f in s.files if f.name == path.name):
                return s
        for skipped in found.skipped:
            if skipped.path.name == path.name and skipped.exception is not None:
                raise skipped.exception
        raise SeriesSelectionError(path, "the file belongs to no readable series")
    found = scan(path)
    if not found.series:
        hint = (
            f"; {len(found.skipped)} file(s) skipped, e.g. {found.skipped[0].path.name}: "
            f"{found.skipped[0].reason}"
            if found.skipped
            else ""
        )
        raise SeriesSelectionError(path, f"no DICOM image series found{hint}")
    if series is None:
        if len(found.series) > 1:
            listing = "; ".join(
                f"#{i} {s.modality} series {s.series_number} {s.n_slices} slices id {s.id}"
                for i, s in enumerate(found.series[:5])
            )
            raise SeriesSelectionError(
                path, f"holds {len(found.series)} series ({listing}); give one file of the series wanted"
            )
        return found.series[0]
    for i, s in enumerate(found.series):
        if series in (i, s.id, str(s.series_number), s.series_number) and not isinstance(series, bool):
            return s
    raise SeriesSelectionError(path, f"no series {series!r} among {len(found.series)}")


def _frame_rescale(ds: Any, frame: int, path: Path) -> tuple[float, float]:
    """(slope, intercept) for one frame: per-frame functional groups first, then the top level."""
    item = _fg_item(ds, frame, "PixelValueTransformationSequence")
    src = item if item is not None else ds
    slope = _first(_get(src, "RescaleSlope", path))
    inter = _first(_get(src, "RescaleIntercept", path))
    slope = 1.0 if slope in (None, 0) else float(slope)
    return slope, float(inter or 0.0)


def _stored_range(ds: Any) -> tuple[int, int]:
    bits = int(ds.get("BitsStored") or ds.BitsAllocated)
    if int(ds.get("PixelRepresentation") or 0):
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _decode(ds: Any, path: Path) -> np.ndarray:
    """All frames ``(frames, rows, cols[, 3])`` as stored (color converted to RGB), typed errors.

    Anything the decoder raises becomes a :class:`PixelDataError`, including a ``BaseException`` that
    is not an interruption (a Rust decoder's panic surfaces as pyo3's ``PanicException``).
    """
    ts_name = _uid_name(str(ds.file_meta.get("TransferSyntaxUID", "")))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
            if str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR":
                from pydicom.pixels import apply_color_lut

                arr = apply_color_lut(arr, ds)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except MemoryError:
        raise PixelDataError(path, "pixel data declare an impossible size") from None
    except NotImplementedError as exc:
        raise UnsupportedTransferSyntaxError(
            path, f"unsupported compression {ts_name}: {_scrub(exc)}"
        ) from None
    except AttributeError as exc:
        if "Transfer Syntax" in str(exc):
            raise MissingTransferSyntaxError(
                path, "file meta has no (0002,0010) Transfer Syntax UID"
            ) from None
        raise InvalidHeaderError(path, f"cannot decode pixel data: {_scrub(exc)}") from None
    except BaseException as exc:  # also a decoder's panic (pyo3's PanicException is a BaseException)
        text = _scrub(exc) or type(exc).__name__
        if "less than expected" in text or "shorter" in text:
            raise PixelDataError(path, f"pixel data shorter than declared: {text}") from None
        raise PixelDataError(path, f"cannot decode {ts_name} pixel data: {text}") from None
    if int(ds.get("NumberOfFrames") or 1) == 1:
        arr = arr[None]
    return arr


@_quiet
def read_series(series: DicomSeries, dtype: Any = np.float32) -> np.ndarray:
    """The volume of ``series`` in medden's convention, in real units (rescaled, MONOCHROME1 inverted).

    Args:
        series: from :func:`scan` or :func:`find_series`.
        dtype: float dtype for gray series (color series keep their integer dtype).

    Returns:
        ``series.shape``-shaped array.
    """
    color = series.samples_per_pixel > 1
    out: np.ndarray | None = None
    by_file: dict[Path, list[int]] = {}
    for idx, s in enumerate(series.slices):
        by_file.setdefault(s.path, []).append(idx)
    nz = series.n_slices
    for path, indices in by_file.items():
        ds = _dcmread(path, header_only=False)
        try:
            _check_image(ds, path)
        except MeddenIOError:
            raise
        except Exception as exc:
            raise InvalidHeaderError(path, f"{type(exc).__name__}: {_scrub(exc)}") from None
        pixels = _decode(ds, path)
        monochrome1 = str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"
        lo, hi = _stored_range(ds)
        for idx in indices:
            ref = series.slices[idx]
            if ref.frame >= pixels.shape[0]:
                raise PixelDataError(path, f"frame {ref.frame} missing (the file holds {pixels.shape[0]})")
            frame = pixels[ref.frame]
            if frame.shape[:2] != (series.rows, series.columns):
                raise PixelDataError(
                    path, f"frame of {frame.shape[:2]} pixels, expected {(series.rows, series.columns)}"
                )
            if color:
                values = frame[..., :3]
            else:
                values = frame.astype(np.float64)
                if monochrome1:
                    values = (hi + lo) - values
                if "ModalityLUTSequence" in ds:
                    from pydicom.pixels import apply_modality_lut

                    values = np.asarray(apply_modality_lut(frame, ds), dtype=np.float64)
                else:
                    slope, inter = _frame_rescale(ds, ref.frame, path)
                    if (slope, inter) != (1.0, 0.0):
                        values = values * slope + inter
            if out is None:
                out = np.zeros(series.shape, dtype=frame.dtype if color else dtype)
            k, t = idx % nz, idx // nz
            plane = np.swapaxes(values, 0, 1)[:, ::-1]  # (rows, cols) -> (i, j) with j from the last row
            if series.n_volumes > 1:
                out[:, :, k, t] = plane
            else:
                out[:, :, k] = plane
    assert out is not None
    return out


def load_dicom(src: str | os.PathLike[str] | DicomSeries, series: int | str | None = None) -> Loaded:
    """Read a DICOM series (a :class:`DicomSeries`, a folder holding one, or one of its files).

    Returns:
        a :class:`~medden.io.base.Loaded` with ``kind="dicom"``, the volume (float32 in real units,
        or the color values), the RAS affine, a PHI-free summary in ``meta`` and the series in
        ``source``. Geometry warnings are logged and listed in ``meta["warnings"]``.
    """
    found = src if isinstance(src, DicomSeries) else find_series(src, series=series)
    for note in found.warnings:
        serious = note.startswith(("missing", "uneven", "slices are not", "row and column"))
        logger.log(logging.WARNING if serious else logging.DEBUG, "DICOM series %s: %s", found.id, note)
    array = read_series(found)
    meta = found.summary()
    return Loaded(
        array=array, kind="dicom", path=found.path, affine=found.affine.copy(), meta=meta, source=found
    )


# --------------------------------------------------------------------------------------------------
# writing


def _uid(*parts: object) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def _volume_frames(volume: np.ndarray, series_shape: tuple[int, ...], color: bool) -> list[np.ndarray]:
    """Split a volume in medden's convention into DICOM frames ``(rows, cols[, 3])``, volume order."""
    spatial = series_shape[:-1] if color else series_shape
    nz = spatial[2]
    nt = spatial[3] if len(spatial) > 3 else 1
    frames = []
    for t in range(nt):
        for k in range(nz):
            plane = volume[:, :, k, t] if len(spatial) > 3 else volume[:, :, k]
            frames.append(np.swapaxes(plane[:, ::-1], 0, 1))
    return frames


def _encode_frames(frames: Sequence[np.ndarray], ds: Any) -> tuple[bytes, int, int]:
    """Pixel data bytes (little endian) for ``frames`` in real units, using ``ds``'s pixel module and
    rescale; returns (bytes, clipped count, value count)."""
    bits_allocated = int(ds.BitsAllocated)
    signed = bool(int(ds.get("PixelRepresentation") or 0))
    dtype = np.dtype(f"{'<i' if signed else '<u'}{bits_allocated // 8}")
    lo, hi = _stored_range(ds)
    monochrome1 = str(ds.PhotometricInterpretation).strip() == "MONOCHROME1"
    stored_frames, clipped = [], 0
    for f, values in enumerate(frames):
        if int(ds.get("SamplesPerPixel") or 1) == 1:
            slope, inter = _frame_rescale(ds, f, Path("<output>"))
            raw = np.asarray(values, dtype=np.float64)
            if (slope, inter) != (1.0, 0.0):
                raw = (raw - inter) / slope
            stored, n = to_stored(raw, np.int64, lo, hi)
            if monochrome1:
                stored = (hi + lo) - stored
        else:
            stored, n = to_stored(values, np.int64, lo, hi)
        clipped += n
        stored_frames.append(stored.astype(dtype))
    data = np.stack(stored_frames).tobytes()
    if len(data) % 2:
        data += b"\x00"
    return data, clipped, int(sum(a.size for a in stored_frames))


def _file_meta(ds: Any) -> Any:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = _MEDDEN_IMPLEMENTATION
    return meta


def _write_instances(
    instances: Sequence[tuple[Any, Sequence[np.ndarray]]], dst: Path, series_uid: str
) -> WriteResult:
    """The one series writer: encode each (header, frames) pair and write the folder atomically."""
    from pydicom import dcmwrite
    from pydicom.dataset import Dataset

    written: list[Path] = []
    clipped = total = 0
    with atomic_dir(dst) as tmp:
        for n, (ds, frames) in enumerate(instances, start=1):
            data, c, v = _encode_frames(frames, ds)
            clipped, total = clipped + c, total + v
            out = Dataset()  # a fresh data set: elements converted, no trace of the source encoding
            for element in ds:
                out.add(element)
            out.PixelData = data
            out["PixelData"].VR = "OB" if int(ds.BitsAllocated) == 8 else "OW"
            out.file_meta = _file_meta(out)
            name = f"IM{n:05d}.dcm"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dcmwrite(tmp / name, out, enforce_file_format=True)
            written.append(dst / name)
    report_clipped(dst, clipped, total)
    return WriteResult(path=dst, files=written, series_uid=series_uid, clipped=clipped, values=total)


def _check_output_folder(dst: Path, sources: Sequence[Path]) -> None:
    """Refuse an output folder that is, contains or lies inside a folder of the source series."""
    if dst.suffix and (image_format(dst) or is_nifti(dst)):
        raise OutputError(dst, "a DICOM series is written to a folder (or give .nii/.nii.gz for NIfTI)")
    if dst.exists() and not dst.is_dir():
        raise OutputError(dst, "exists and is not a folder")
    target = dst.resolve()
    for folder in {p.resolve().parent for p in sources}:
        if target == folder or folder in target.parents or target in folder.parents:
            raise OutputError(
                dst, "the output folder would mix with the source series' folder; choose another"
            )


def _derive_header(
    ds: Any,
    frames_kept: Sequence[int],
    series_uid: str,
    sop_uid: str,
    description: str,
    processing: str,
    series_number: int | None,
    contribution: Any = None,
) -> Any:
    """The header of one derived instance, from the source header (pixel data removed);
    ``contribution`` is medden's ContributingEquipmentSequence item (:func:`medden_contribution`)."""
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import UID

    src_ts = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    # a damaged source may lack its UIDs (it was readable, so it is written): Secondary Capture when the
    # class is unknown, and no SourceImageSequence without the instance it would reference
    meta = getattr(ds, "file_meta", None)
    src_class = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else ""))
    src_uid = str(ds.get("SOPInstanceUID", "") or "")
    if not _UID_FORM.match(src_class.strip()):
        src_class = _SECONDARY_CAPTURE
    ds.SOPClassUID = src_class
    for keyword in _DROP_ON_DERIVE:
        if keyword in ds:
            del ds[keyword]
    _derive_color(ds)
    if "ModalityLUTSequence" in ds:
        raise OutputError(None, "sources with a Modality LUT Sequence cannot be re-encoded")
    if src_ts in LOSSY_METHODS or str(ds.get("LossyImageCompression", "")) == "01":
        ds.LossyImageCompression = "01"
        if "LossyImageCompressionMethod" not in ds and src_ts in LOSSY_METHODS:
            ds.LossyImageCompressionMethod = LOSSY_METHODS[src_ts]
    nframes = int(ds.get("NumberOfFrames") or 1)
    if "PerFrameFunctionalGroupsSequence" in ds and len(frames_kept) != nframes:
        items = ds.PerFrameFunctionalGroupsSequence
        ds.PerFrameFunctionalGroupsSequence = DicomSequence([items[i] for i in frames_kept])
    if "NumberOfFrames" in ds:
        ds.NumberOfFrames = len(frames_kept)
    ds.SOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = series_uid
    # before ImageType becomes DERIVED: an ORIGINAL source's device is its acquisition equipment
    _record_equipment(ds, contribution if contribution is not None else medden_contribution(processing))
    _mark_derived(ds)
    _describe_derivation(ds, description, processing)
    _reference_source(ds, src_class, src_uid)
    if series_number is not None:
        ds.SeriesNumber = series_number
    return ds


def _code_item(code: Any) -> Any:
    """A code sequence item (CodeValue, CodingSchemeDesignator, CodeMeaning) of a pydicom ``Code``."""
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return item


def medden_contribution(processing: str, when: Any = None) -> Any:
    """medden's item of a derived instance's ContributingEquipmentSequence (PS3.3 C.12.1): Manufacturer
    ``medden``, its version, the time and what was done, purpose DCM 109102 "Processing Equipment"."""
    import datetime

    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.sr.codedict import codes

    when = when or datetime.datetime.now().astimezone()
    item = Dataset()
    item.PurposeOfReferenceCodeSequence = DicomSequence([_code_item(codes.DCM.ProcessingEquipment)])
    item.Manufacturer = "medden"
    item.ManufacturerModelName = "medden"
    item.SoftwareVersions = __version__
    item.ContributionDateTime = when.strftime("%Y%m%d%H%M%S%z")
    item.ContributionDescription = f"medden {__version__}: {processing or 'processed'}"[:1024]
    return item


def _record_equipment(ds: Any, contribution: Any) -> None:
    """The General Equipment of a derived instance describes medden, the device that made it; the
    source's device (Manufacturer, model, serial number, software...) moves to a new item of the
    ContributingEquipmentSequence (purpose "Acquisition Equipment" for an ORIGINAL source, else
    "Processing Equipment"), after the items the source already had, and medden's item comes last."""
    import copy

    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.sr.codedict import codes

    items = [copy.deepcopy(item) for item in ds.get("ContributingEquipmentSequence") or []]
    source = Dataset()
    for keyword in ("Manufacturer", *_SOURCE_SITE, *_SOURCE_DEVICE):
        if keyword in ds and ds[keyword].value not in (None, "", b""):
            source[keyword] = copy.deepcopy(ds[keyword])
    if len(source):  # Manufacturer is Type 1 in an item
        source.Manufacturer = str(source.get("Manufacturer", "") or "unknown")
        original = str((ds.get("ImageType") or ["DERIVED"])[0]).upper() == "ORIGINAL"
        purpose = codes.DCM.AcquisitionEquipment if original else codes.DCM.ProcessingEquipment
        source.PurposeOfReferenceCodeSequence = DicomSequence([_code_item(purpose)])
        items.append(source)
    for keyword in _SOURCE_DEVICE:
        if keyword in ds:
            del ds[keyword]
    ds.Manufacturer = "medden"
    ds.ManufacturerModelName = "medden"
    ds.SoftwareVersions = __version__
    if "PerFrameFunctionalGroupsSequence" in ds:  # Enhanced General Equipment: the serial is Type 1
        ds.DeviceSerialNumber = "medden"
    ds.ContributingEquipmentSequence = DicomSequence([*items, copy.deepcopy(contribution)])


def _derive_color(ds: Any) -> None:
    """Palette colour becomes RGB (the palette is applied on reading) and YBR becomes RGB, interleaved."""
    photometric = str(ds.PhotometricInterpretation).strip()
    if photometric == "PALETTE COLOR":
        bits = (
            int(ds.RedPaletteColorLookupTableDescriptor[2])
            if "RedPaletteColorLookupTableDescriptor" in ds
            else 8
        )
        for keyword in _PALETTE_ELEMENTS:
            if keyword in ds:
                del ds[keyword]
        ds.SamplesPerPixel = 3
        ds.BitsAllocated = ds.BitsStored = 16 if bits > 8 else 8
        ds.HighBit = int(ds.BitsStored) - 1
        ds.PixelRepresentation = 0
        photometric = "RGB"
    if photometric.startswith("YBR") or photometric == "RGB":
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0


def _mark_derived(ds: Any) -> None:
    """ImageType (and every FrameType of the functional groups) becomes ``DERIVED\\SECONDARY\\...``."""
    image_type = [str(v) for v in (ds.get("ImageType") or [])]
    ds.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in ds.get(group) or []:
            for element in item:
                if element.VR == "SQ" and element.keyword.endswith("FrameTypeSequence"):
                    for sub in element.value:
                        if "FrameType" in sub:
                            values = [str(v) for v in sub.FrameType]
                            sub.FrameType = ["DERIVED", "SECONDARY", *values[2:]]


def _describe_derivation(ds: Any, description: str, processing: str) -> None:
    """``description`` appended to SeriesDescription (64 characters at most) and DerivationDescription."""
    suffix = " ".join(description.replace("\\", "/").split()) or "medden"
    base = str(ds.get("SeriesDescription", "") or "").strip()
    room = 64 - len(suffix) - 1
    ds.SeriesDescription = (f"{base[:room].rstrip()} {suffix}" if base and room > 0 else suffix)[:64]
    ds.DerivationDescription = f"medden {__version__}: {processing or description}"[:1024]


def _reference_source(ds: Any, src_class: str, src_uid: str) -> None:
    """A SourceImageSequence naming the source instance, when its UID is a valid one."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    if _UID_FORM.match(src_uid.strip()) and len(src_uid) <= 64:
        ref = Dataset()
        ref.ReferencedSOPClassUID = src_class
        ref.ReferencedSOPInstanceUID = src_uid
        ds.SourceImageSequence = DicomSequence([ref])


@_quiet
def write_derived_series(
    source: DicomSeries | Loaded,
    volume: Any,
    dst: str | os.PathLike[str],
    description: str = "medden",
    processing: str = "",
    series_number: int | None = None,
) -> WriteResult:
    """Write ``volume`` as a new series derived from ``source``, into the folder ``dst`` (atomically).

    Args:
        source: the source series (or the :class:`Loaded` it was read into).
        volume: the processed volume, same shape as the source's, in real units (HU for CT).
        dst: the output folder (replaced as a whole if it exists; it must not be, contain or lie
            inside a folder of the source series).
        description: appended to SeriesDescription (e.g. ``"denoised dncnn"``).
        processing: what was done (model, weights hash, parameters): DerivationDescription, and
            with the source UIDs the entropy of the new UIDs (same input and processing, same UIDs).
        series_number: SeriesNumber of the new series (default: the source's + 1000).

    Returns:
        a :class:`WriteResult` (folder, files, new SeriesInstanceUID, clipped values).
    """
    series = source.source if isinstance(source, Loaded) else source
    if not isinstance(series, DicomSeries):
        raise OutputError(dst, "a derived DICOM series needs a DICOM source series")
    dst = Path(dst)
    volume = _series_shaped(volume, series, dst)
    _check_output_folder(dst, series.files)
    frames = _volume_frames(volume, series.shape, series.samples_per_pixel > 1)
    by_file: dict[Path, list[tuple[int, np.ndarray]]] = {}
    for ref, frame in zip(series.slices, frames):
        by_file.setdefault(ref.path, []).append((ref.frame, frame))
    headers = [_dcmread(path, header_only=True) for path in series.files]
    series_uid = _derived_series_uid(series, headers, by_file, processing, description)
    number = series_number
    if number is None and series.series_number is not None:
        number = int(series.series_number) + 1000
    contribution = medden_contribution(processing or description)  # one time for the whole series
    instances = []
    for path, ds in zip(series.files, headers):
        items = sorted(by_file[path], key=lambda x: x[0])
        kept = [f for f, _ in items]
        src_sop = str(ds.get("SOPInstanceUID", "")) or path.name
        ds = _derive_header(
            ds,
            kept,
            series_uid,
            _uid("instance", src_sop, series_uid),
            description,
            processing,
            number,
            contribution,
        )
        instances.append((ds, [frame for _, frame in items]))
    return _write_instances(instances, dst, series_uid)


def _series_shaped(volume: Any, series: DicomSeries, dst: Path) -> np.ndarray:
    """``volume`` as a numpy array of the series' shape (singleton axes may differ), or OutputError."""
    if hasattr(volume, "detach"):
        volume = volume.detach().cpu().numpy()
    volume = np.asarray(volume)
    if volume.shape != series.shape and volume.squeeze().shape == tuple(s for s in series.shape if s != 1):
        volume = volume.reshape(series.shape)
    if volume.shape != series.shape:
        raise OutputError(dst, f"volume shape {volume.shape} differs from the source series {series.shape}")
    return volume


def _derived_series_uid(
    series: DicomSeries,
    headers: Sequence[Any],
    by_file: dict[Path, list[tuple[int, np.ndarray]]],
    processing: str,
    description: str,
) -> str:
    """The derived series' UID: a function of the source instances and frames used, and what was done."""
    sources = "|".join(
        sorted(
            f"{h.get('SOPInstanceUID', '') or p.name}/{','.join(str(f) for f, _ in by_file[p])}"
            for h, p in zip(headers, series.files)
        )
    )
    return _uid(
        "series",
        series.uid,
        series.split or "",
        hashlib.sha256(sources.encode()).hexdigest(),
        processing,
        description,
    )


def _lps_geometry(
    affine: np.ndarray, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Row/column cosines, per-slice step and pixel spacing of a volume in medden's convention."""
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)
    a_i, a_j = lps[:3, 0], lps[:3, 1]
    dx, dy = float(np.linalg.norm(a_i)), float(np.linalg.norm(a_j))
    if dx == 0 or dy == 0:
        raise GeometryError(None, "affine with a zero-length in-plane axis")
    row, col = a_i / dx, -a_j / dy
    if abs(float(np.dot(row, col))) > 1e-4:
        raise GeometryError(None, "affine in-plane axes are not orthogonal: DICOM cannot represent it")
    first = lps[:3, 3] + (shape[1] - 1) * a_j  # DICOM row 0 is j = ny - 1
    return row, col, first, dx, dy


def write_synthetic_series(
    volume: Any,
    affine: np.ndarray,
    folder: str | os.PathLike[str],
    modality: str = "MR",
    series_description: str = "medden synthetic",
    series_number: int = 1,
    patient_name: str = "Synthetic^Phantom",
    patient_id: str = "MEDDEN-SYNTHETIC",
    study_uid: str | None = None,
    rescale: tuple[float, float] | None = None,
    signed: bool | None = None,
    bits_stored: int = 16,
    window: tuple[float, float] | None = None,
    slice_thickness: float | None = None,
) -> WriteResult:
    """Write a numpy volume as a classic single-frame DICOM series (for demos, tests and notebooks).

    The volume is in medden's convention (``(X, Y, Z)`` with a RAS affine, e.g. a NIfTI volume). DICOM
    needs the slice axis along row × column: an affine with a positive determinant (RAS-like, e.g.
    MNI152) is written with ``i`` reversed, so the series reads back with the same world geometry
    but ``array[::-1]`` and ``affine @ flip``. UIDs are derived from the content, so the same volume
    gives the same UIDs. Written by the same code as :func:`write_derived_series`.

    Args:
        volume: ``(X, Y, Z)`` (or ``(X, Y)``) values in real units.
        affine: 4×4 voxel-to-RAS affine.
        folder: output folder (built atomically, replaced if it exists).
        modality: ``"MR"`` (MR Image Storage) or ``"CT"`` (CT Image Storage, values in HU); anything
            else becomes Secondary Capture with that modality.
        series_description, series_number, patient_name, patient_id: header values.
        study_uid: StudyInstanceUID (default: derived from the content).
        rescale: ``(slope, intercept)``; default ``(1, -1024)`` for CT, ``(1, 0)`` otherwise.
        signed: signed storage (default: True for CT, else False).
        bits_stored: 8 to 16 (BitsAllocated is 8 when ``bits_stored`` is 8, else 16).
        window: ``(center, width)``; default from the 0.5th and 99.5th percentiles.
        slice_thickness: SliceThickness (default: the slice spacing).

    Returns:
        a :class:`WriteResult`.
    """
    vol, affine = _synthetic_volume(volume, affine, folder)
    spec = _synthetic_spec(
        vol,
        affine,
        folder,
        modality=modality,
        series_description=series_description,
        series_number=series_number,
        patient_name=patient_name,
        patient_id=patient_id,
        study_uid=study_uid,
        rescale=rescale,
        signed=signed,
        bits_stored=bits_stored,
        window=window,
        slice_thickness=slice_thickness,
    )
    frames = _volume_frames(vol, vol.shape, color=False)
    instances = [(_synthetic_instance(spec, k, frame), [frame]) for k, frame in enumerate(frames)]
    return _write_instances(instances, Path(folder), spec.series_uid)


@dataclass(frozen=True)
class _SyntheticSeries:
    """What every instance of a series written by :func:`write_synthetic_series` shares."""

    modality: str
    sop_class: str
    uids: tuple[str, str, str]  # StudyInstanceUID, SeriesInstanceUID, FrameOfReferenceUID
    series_number: int
    series_description: str
    patient: tuple[str, str]  # PatientName, PatientID
    row: np.ndarray  # LPS direction along a row
    col: np.ndarray  # LPS direction along a column
    first: np.ndarray  # LPS position of the first slice's first pixel
    step: np.ndarray  # LPS vector from one slice to the next
    pixel_spacing: tuple[float, float]  # (between rows, between columns)
    thickness: float
    rescale: tuple[float, float]  # (slope, intercept)
    signed: bool
    bits_stored: int
    window: tuple[float, float]  # (center, width)

    @property
    def series_uid(self) -> str:
        return self.uids[1]


def _synthetic_volume(volume: Any, affine: np.ndarray, folder: Any) -> tuple[np.ndarray, np.ndarray]:
    """An ``(X, Y, Z)`` array and its affine with the slice axis along row × column (``i`` reversed
    for an affine with a positive determinant)."""
    if hasattr(volume, "detach"):
        volume = volume.detach().cpu().numpy()
    vol = np.asarray(volume)
    if vol.ndim == 2:
        vol = vol[:, :, None]
    if vol.ndim != 3:
        raise OutputError(folder, f"expected an (X, Y, Z) volume, got shape {vol.shape}")
    affine = np.asarray(affine, dtype=np.float64)
    if np.linalg.det(affine[:3, :3]) > 0:  # DICOM stacks along row x column: reverse i
        flip = np.eye(4)
        flip[0, 0], flip[0, 3] = -1.0, vol.shape[0] - 1
        vol, affine = vol[::-1], affine @ flip
    return vol, affine


def _synthetic_spec(
    vol: np.ndarray,
    affine: np.ndarray,
    folder: Any,
    *,
    modality: str,
    series_description: str,
    series_number: int,
    patient_name: str,
    patient_id: str,
    study_uid: str | None,
    rescale: tuple[float, float] | None,
    signed: bool | None,
    bits_stored: int,
    window: tuple[float, float] | None,
    slice_thickness: float | None,
) -> _SyntheticSeries:
    """The shared header values of :func:`write_synthetic_series`, its arguments' defaults resolved."""
    from pydicom.uid import UID

    row, col, first, dx, dy = _lps_geometry(affine, vol.shape)
    step = (LPS_TO_RAS @ affine)[:3, 2]
    spacing_z = float(np.linalg.norm(step))
    modality = modality.upper()
    sop_class = {
        "MR": UID("1.2.840.10008.5.1.4.1.1.4"),
        "CT": UID("1.2.840.10008.5.1.4.1.1.2"),
    }.get(modality, UID("1.2.840.10008.5.1.4.1.1.7"))
    slope, inter = rescale if rescale is not None else ((1.0, -1024.0) if modality == "CT" else (1.0, 0.0))
    signed = (modality == "CT") if signed is None else signed
    if not 8 <= bits_stored <= 16:
        raise OutputError(folder, f"bits_stored must be 8 to 16, got {bits_stored}")
    if window is None:
        lo, hi = (float(v) for v in np.percentile(vol, [0.5, 99.5])) if vol.size else (0.0, 1.0)
        window = ((lo + hi) / 2, max(hi - lo, 1.0))
    digest = hashlib.sha256(np.ascontiguousarray(vol).tobytes() + affine.tobytes()).hexdigest()
    entropy = [digest, modality, series_description, patient_id, str(series_number)]
    uids = (
        study_uid or _uid("study", *entropy),
        _uid("series", *entropy),
        _uid("frame-of-reference", *entropy),
    )
    return _SyntheticSeries(
        modality=modality,
        sop_class=sop_class,
        uids=uids,
        series_number=series_number,
        series_description=series_description,
        patient=(patient_name, patient_id),
        row=row,
        col=col,
        first=first,
        step=step,
        pixel_spacing=(dy, dx),
        thickness=float(slice_thickness or spacing_z),
        rescale=(slope, inter),
        signed=signed,
        bits_stored=bits_stored,
        window=window,
    )


def _synthetic_instance(spec: _SyntheticSeries, k: int, frame: np.ndarray) -> Any:
    """The header of slice ``k`` of a synthetic series (pixel data are added by the writer)."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = spec.sop_class
    ds.SOPInstanceUID = _uid("instance", spec.series_uid, k)
    ds.ImageType = (
        ["DERIVED", "SECONDARY"] if spec.modality not in ("MR", "CT") else ["ORIGINAL", "PRIMARY", "AXIAL"]
    )
    ds.Modality = spec.modality
    ds.PatientName, ds.PatientID = spec.patient
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = spec.uids
    ds.StudyDate = ds.StudyTime = ds.ReferringPhysicianName = ds.StudyID = ds.AccessionNumber = ""
    ds.SeriesNumber = spec.series_number
    ds.SeriesDescription = spec.series_description[:64]
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "medden"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = k + 1
    position = spec.first + k * spec.step
    spacing_z = float(np.linalg.norm(spec.step))
    ds.ImagePositionPatient = [round(float(v), 6) for v in position]
    ds.ImageOrientationPatient = [round(float(v), 8) for v in (*spec.row, *spec.col)]
    ds.PixelSpacing = [round(v, 8) for v in spec.pixel_spacing]
    ds.SliceThickness = round(spec.thickness, 6)
    ds.SpacingBetweenSlices = round(spacing_z, 6)
    ds.SliceLocation = round(float(np.dot(position, np.cross(spec.row, spec.col))), 6)
    _synthetic_pixel_module(ds, spec, frame.shape)
    return ds


def _synthetic_pixel_module(ds: Any, spec: _SyntheticSeries, shape: tuple[int, ...]) -> None:
    """The pixel layout, rescale, modality-specific and window attributes of a synthetic slice."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = shape
    ds.BitsAllocated = 8 if spec.bits_stored == 8 else 16
    ds.BitsStored = spec.bits_stored
    ds.HighBit = spec.bits_stored - 1
    ds.PixelRepresentation = 1 if spec.signed else 0
    slope, inter = spec.rescale
    if spec.modality == "CT" or (slope, inter) != (1.0, 0.0):
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleIntercept = f"{inter:.10g}"
        ds.RescaleType = "HU" if spec.modality == "CT" else "US"
    if spec.modality == "MR":
        ds.ScanningSequence = "RM"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "3D"
        ds.EchoTime = ds.RepetitionTime = ds.EchoTrainLength = ""
    if spec.modality == "CT":
        ds.KVP = ""
        ds.AcquisitionNumber = 1
    ds.WindowCenter = f"{spec.window[0]:.6g}"
    ds.WindowWidth = f"{spec.window[1]:.6g}"


@_quiet
def dicom_to_nifti(
    source: str | os.PathLike[str] | DicomSeries | Loaded,
    dst: str | os.PathLike[str],
    array: Any = None,
    dtype: Any = None,
    description: str | None = None,
    reorient: bool | None = None,
) -> Path:
    """Convert a DICOM series (or write ``array`` with its geometry) to NIfTI, as dcm2niix does.

    The voxel layout and affine are the series' (medden's convention, which is dcm2niix's: rows
    flipped, slices along the normal), except that 3D acquisitions (MRAcquisitionType ``3D``) of
    more than one slice are reoriented to the closest RAS layout, as dcm2niix does by default
    (``reorient=False`` keeps them as they are, like ``dcm2niix -x i``). qform/sform codes are 1
    (scanner), units mm/s and the TR (in s) goes to ``pixdim[4]``. Values are stored in the source's
    integer type with ``scl_slope``/``scl_inter`` from the rescale when every slice shares it
    (lossless), otherwise as float32; ``dtype`` forces a type.

    Args:
        source: the series (path, :class:`DicomSeries`, or a loaded DICOM).
        dst: ``.nii`` or ``.nii.gz`` output path.
        array: values to write instead of the series' own (same shape), e.g. a denoised volume.
        dtype: on-disk dtype (default: see above).
        description: the NIfTI ``descrip`` field (default ``"medden from DICOM <modality>"``).
        reorient: reorient to the closest RAS layout; default: for 3D acquisitions only (dcm2niix).

    Returns:
        the written path.
    """
    loaded = source if isinstance(source, Loaded) else load_dicom(source)
    series: DicomSeries = loaded.source
    if series.samples_per_pixel > 1:
        raise OutputError(dst, "color DICOM series cannot be written as NIfTI by medden")
    values = loaded.array if array is None else array
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    if values.shape != series.shape:
        raise OutputError(dst, f"array shape {values.shape} differs from the series {series.shape}")
    first = _dcmread(series.path, header_only=True)
    scaling: tuple[float, float] | None = None
    if dtype is None:
        dtype, scaling = _nifti_storage(series, first)
    tr = _first(_get(first, "RepetitionTime", series.path))
    affine = series.affine
    if reorient is None:
        reorient = str(first.get("MRAcquisitionType", "")).strip().upper() == "3D" and series.n_slices > 1
    if reorient:
        values, affine = _reorient_to_ras(values, affine)
    return write_nifti(
        values,
        dst,
        affine=affine,
        dtype=dtype,
        scaling=scaling,
        description=description or f"medden from DICOM {series.modality}",
        codes=(1, 1),
        units=("mm", "sec"),
        tr=float(tr) / 1000.0 if tr else None,
    )


def _nifti_storage(series: DicomSeries, first: Any) -> tuple[Any, tuple[float, float] | None]:
    """The NIfTI dtype and ``(scl_slope, scl_inter)`` of a series: its stored integer type and rescale
    when every frame shares one rescale (and it is not MONOCHROME1), else float32 without scaling."""
    rescales = set()
    for path in series.files:
        ds = first if path == series.path else _dcmread(path, header_only=True)
        nframes = int(ds.get("NumberOfFrames") or 1)
        rescales |= {_frame_rescale(ds, f, path) for f in range(nframes)}
    if len(rescales) == 1 and str(first.get("PhotometricInterpretation", "")).strip() != "MONOCHROME1":
        signed = bool(int(first.get("PixelRepresentation") or 0))
        bits = int(first.BitsAllocated)
        return np.dtype(f"{'i' if signed else 'u'}{bits // 8}"), rescales.pop()
    return np.float32, None


def _reorient_to_ras(values: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values`` and ``affine`` reoriented to the closest RAS layout (as dcm2niix does for 3D scans)."""
    from nibabel.orientations import (
        apply_orientation,
        axcodes2ornt,
        inv_ornt_aff,
        io_orientation,
        ornt_transform,
    )

    transform = ornt_transform(io_orientation(affine), axcodes2ornt("RAS"))
    affine = affine @ inv_ornt_aff(transform, values.shape[:3])
    return apply_orientation(values, transform), affine


def save_dicom(
    loaded: Loaded, array: Any, dst: str | os.PathLike[str], description: str = "medden", processing: str = ""
) -> Path:
    """Write a loaded DICOM series' processed array: a derived series folder, or NIfTI for
    ``.nii``/``.nii.gz`` destinations. Returns the written path."""
    if is_nifti(dst):
        return dicom_to_nifti(loaded, dst, array=array, description=description)
    return write_derived_series(loaded, array, dst, description=description, processing=processing).path
