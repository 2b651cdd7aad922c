"""NIfTI (``.nii``, ``.nii.gz``; NIfTI-1 and NIfTI-2) read and written with nibabel, header kept.

:func:`load_nifti` returns the voxel array ``(X, Y, Z[, T])`` in nibabel's (and medden's) orientation
convention: the 4×4 ``affine`` maps voxel indices ``(i, j, k)`` to RAS+ millimetres. Values are scaled
by ``scl_slope``/``scl_inter`` when the file has them (then float), otherwise they keep the stored dtype.

:func:`save_nifti` writes an array back with the source's header: affine, qform/sform and their codes,
pixdim, units, TR, intent, description, extensions, the on-disk dtype and the scaling. Values are
converted to the stored dtype with the source's ``scl_slope``/``scl_inter`` (integers rounded and
clipped, the count logged), so writing the loaded array unchanged gives a byte-identical header and
identical voxels. Float output only when asked (``dtype=np.float32``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from medden.io.atomic import atomic_path
from medden.io.base import Loaded, report_clipped, to_stored
from medden.io.errors import CorruptFileError, InputNotFoundError, OutputError, UnsupportedFormatError

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` ends with ``.nii`` or ``.nii.gz`` (any case)."""
    name = Path(path).name.lower()
    return name.endswith(NIFTI_SUFFIXES)


def _raw_header(path: Path, header_class: Any) -> Any:
    """The header exactly as stored (nibabel resets the scaling fields of a loaded image)."""
    from nibabel.openers import ImageOpener

    with ImageOpener(path) as fh:
        return header_class.from_fileobj(fh)


def load_nifti(path: str | os.PathLike[str]) -> Loaded:
    """Read a NIfTI file into a :class:`Loaded` (``array``, RAS ``affine``, header in ``source``).

    Raises:
        InputNotFoundError: no such file.
        UnsupportedFormatError: not a ``.nii``/``.nii.gz`` file.
        CorruptFileError: a header nibabel rejects, or fewer voxels than the header declares.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(path, "not found")
    if not is_nifti(path):
        raise UnsupportedFormatError(path, "not a NIfTI file (.nii or .nii.gz)")
    try:
        img = nib.load(path)
        if not isinstance(img, nib.Nifti1Image):  # Nifti2Image derives from Nifti1Image
            raise UnsupportedFormatError(path, f"not a NIfTI image ({type(img).__name__})")
        raw = _raw_header(path, type(img.header))
        array = np.asanyarray(img.dataobj)
        if isinstance(array, np.memmap):  # decouple from the file (copy-on-write maps keep it open)
            array = np.array(array)
    except UnsupportedFormatError:
        raise
    except Exception as exc:  # nibabel raises ImageFileError, EOFError, OSError, zlib.error, ValueError
        raise CorruptFileError(path, f"cannot read NIfTI: {type(exc).__name__}: {exc}") from None
    hdr = img.header
    zooms = [float(z) for z in hdr.get_zooms()]
    space_unit, time_unit = hdr.get_xyzt_units()
    meta = {
        "format": "NIfTI-2" if isinstance(img, nib.Nifti2Image) else "NIfTI-1",
        "shape": [int(s) for s in img.shape],
        "dtype": str(hdr.get_data_dtype()),
        "array_dtype": str(array.dtype),
        "spacing": zooms[:3],
        "tr": zooms[3] if len(zooms) > 3 else None,
        "units": [space_unit, time_unit],
        "qform_code": int(hdr["qform_code"]),
        "sform_code": int(hdr["sform_code"]),
        "scaling": [float(img.dataobj.slope), float(img.dataobj.inter)],
    }
    source = {"header": raw, "image_class": type(img)}
    return Loaded(
        array=array, kind="nifti", path=path, affine=np.asarray(img.affine), meta=meta, source=source
    )


def _valid_scaling(slope: float, inter: float) -> bool:
    return bool(np.isfinite(slope) and slope != 0 and np.isfinite(inter))


def write_nifti(
    array: Any,
    dst: str | os.PathLike[str],
    affine: np.ndarray | None = None,
    header: Any = None,
    dtype: Any = None,
    scaling: tuple[float, float] | None = None,
    description: str | None = None,
    image_class: Any = None,
    codes: tuple[int, int] | None = None,
    units: tuple[str, str] | None = None,
    tr: float | None = None,
) -> Path:
    """Write ``array`` to a NIfTI file atomically (``.nii`` or ``.nii.gz`` by the suffix of ``dst``).

    Args:
        array: the voxel values (numpy or CPU tensor), in real units.
        dst: output path ending in ``.nii`` or ``.nii.gz``.
        affine: voxel-to-RAS affine; when None, the header's (``header`` required then).
        header: a nibabel header to start from (copied); its scaling fields are kept.
        dtype: on-disk dtype (default: the header's, else the array's).
        scaling: ``(slope, inter)`` with ``real = slope * stored + inter`` (default: the header's
            scaling for integer output, none for float output).
        description: text for the ``descrip`` field (79 characters at most).
        image_class: nibabel image class (default ``Nifti1Image``).
        codes: ``(qform_code, sform_code)`` to set (default: the header's, else nibabel's).
        units: ``(space, time)`` units, e.g. ``("mm", "sec")``.
        tr: repetition time stored in ``pixdim[4]`` (in the time unit).

    Returns:
        the written path.
    """
    import nibabel as nib

    dst = Path(dst)
    if not is_nifti(dst):
        raise OutputError(dst, "a NIfTI output must end in .nii or .nii.gz")
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    arr = np.asarray(array)
    image_class = image_class or nib.Nifti1Image
    if header is not None:
        header = header.copy()
        if tuple(header.get_data_shape()) != arr.shape:
            header.set_data_shape(arr.shape)
    out_dtype = np.dtype(dtype if dtype is not None else (header.get_data_dtype() if header else arr.dtype))
    if out_dtype == np.float16 or out_dtype.kind not in "uif":
        raise OutputError(dst, f"NIfTI cannot hold {out_dtype} data")
    raw_scl = (float(header["scl_slope"]), float(header["scl_inter"])) if header is not None else None
    slope, inter = _output_scaling(dst, out_dtype, raw_scl, scaling)
    values = arr if (slope, inter) == (1.0, 0.0) else (arr.astype(np.float64) - inter) / slope
    stored, clipped = to_stored(values, out_dtype)
    if header is None:
        img = image_class(stored, affine if affine is not None else np.eye(4))
    else:
        header.set_data_dtype(out_dtype)
        img = image_class(stored, affine, header=header)
    hdr = img.header
    if raw_scl is not None and (slope, inter) == (1.0, 0.0) and not _valid_scaling(*raw_scl):
        hdr["scl_slope"], hdr["scl_inter"] = raw_scl  # e.g. 0/0 "no scaling": keep the source bytes
    else:
        hdr["scl_slope"], hdr["scl_inter"] = slope, inter
    _set_header_fields(img, arr.ndim, codes, units, tr, description)
    with atomic_path(dst) as tmp:
        nib.save(img, tmp)
    report_clipped(dst, clipped, stored.size)
    return dst


def _output_scaling(
    dst: Path, out_dtype: np.dtype, raw_scl: tuple[float, float] | None, scaling: tuple[float, float] | None
) -> tuple[float, float]:
    """``(slope, inter)`` to store with: ``scaling``, else the header's valid scaling for integer
    output, else none; an invalid one is an :class:`OutputError`."""
    if scaling is None:
        if out_dtype.kind in "ui" and raw_scl is not None and _valid_scaling(*raw_scl):
            scaling = raw_scl
        else:
            scaling = (1.0, 0.0)
    slope, inter = float(scaling[0]), float(scaling[1])
    if not _valid_scaling(slope, inter):
        raise OutputError(dst, f"invalid scaling slope={slope} inter={inter}")
    return slope, inter


def _set_header_fields(
    img: Any,
    ndim: int,
    codes: tuple[int, int] | None,
    units: tuple[str, str] | None,
    tr: float | None,
    description: str | None,
) -> None:
    """qform/sform codes, units, TR and ``descrip`` of :func:`write_nifti`, where given."""
    hdr = img.header
    if codes is not None:
        hdr.set_qform(img.affine, code=int(codes[0]))
        hdr.set_sform(img.affine, code=int(codes[1]))
    if units is not None:
        hdr.set_xyzt_units(*units)
    if tr is not None and ndim >= 4:
        zooms = list(hdr.get_zooms())
        zooms[3] = float(tr)
        hdr.set_zooms(zooms)
    elif tr is not None:
        hdr["pixdim"][4] = float(tr)
    if description is not None:
        hdr["descrip"] = description.encode("ascii", "replace")[:79]


def save_nifti(
    loaded: Loaded | None,
    array: Any,
    dst: str | os.PathLike[str],
    dtype: Any = None,
    description: str | None = None,
    affine: np.ndarray | None = None,
) -> Path:
    """Write ``array`` with the header of ``loaded`` (a NIfTI :class:`Loaded`), atomically.

    Args:
        loaded: the NIfTI the array came from (its header, dtype and scaling are kept), or None.
        array: voxel values in real units, same spatial shape as the source.
        dst: output path (``.nii`` or ``.nii.gz``).
        dtype: on-disk dtype; default the source's (pass ``np.float32`` for float output).
        description: text for the header's ``descrip`` (kept from the source when None).
        affine: a new affine (default: the source's, unchanged).

    Returns:
        the written path.
    """
    if loaded is None or loaded.kind != "nifti":
        if affine is None:
            raise OutputError(dst, "writing a NIfTI without a source NIfTI needs an affine")
        return write_nifti(array, dst, affine=affine, dtype=dtype, description=description)
    header = loaded.source["header"]
    if dtype is not None and np.dtype(dtype).kind == "f" and np.dtype(header.get_data_dtype()).kind != "f":
        scaling: tuple[float, float] | None = (1.0, 0.0)
    else:
        scaling = None
    return write_nifti(
        array,
        dst,
        affine=affine,
        header=header,
        dtype=dtype,
        scaling=scaling,
        description=description,
        image_class=loaded.source["image_class"],
    )
