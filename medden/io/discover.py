"""What is in a file or folder (``medden info``): DICOM series, NIfTI volumes, 2D images, skipped files.

Only headers are read. The report holds no patient data: no name, ID, birth date, and no UID (a
series is named by a short hash, :attr:`~medden.io.dicom.DicomSeries.id`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from medden.io.dicom import _iter_files, scan_files
from medden.io.errors import InputNotFoundError, MeddenIOError, UnsupportedFormatError
from medden.io.images import image_format
from medden.io.nifti import is_nifti


def _nifti_info(path: Path) -> dict[str, Any]:
    import nibabel as nib

    try:
        img = nib.load(path)
        hdr = img.header
        zooms = [float(z) for z in hdr.get_zooms()]
        return {
            "kind": "nifti",
            "format": "NIfTI-2" if isinstance(img, nib.Nifti2Image) else "NIfTI-1",
            "shape": [int(s) for s in img.shape],
            "dtype": str(hdr.get_data_dtype()),
            "spacing": [round(z, 6) for z in zooms[:3]],
            "orientation": "".join(nib.aff2axcodes(img.affine)),
        }
    except Exception as exc:
        raise UnsupportedFormatError(path, f"cannot read NIfTI header: {exc}") from None


def _image_info(path: Path) -> dict[str, Any]:
    fmt = image_format(path)
    try:
        if fmt == "TIFF":
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                return {
                    "kind": "image",
                    "format": "TIFF",
                    "shape": [int(s) for s in series.shape],
                    "axes": series.axes,
                    "dtype": str(series.dtype),
                }
        from PIL import Image

        with Image.open(path) as im:
            return {
                "kind": "image",
                "format": im.format or fmt,
                "shape": [int(im.height), int(im.width)],
                "mode": im.mode,
            }
    except Exception as exc:
        raise UnsupportedFormatError(path, f"cannot read {fmt} header: {exc}") from None


def describe(path: str | os.PathLike[str], recursive: bool = True) -> dict[str, Any]:
    """Describe what medden can read under ``path`` (headers only).

    Args:
        path: a file or a folder.
        recursive: look into sub-folders.

    Returns:
        ``{"path", "series": [...], "files": [...], "skipped": [...]}``: DICOM series summaries
        (:meth:`~medden.io.dicom.DicomSeries.summary`), NIfTI/image file descriptions, and the files
        that could not be used with their reasons. Paths are relative to ``path``.

    Raises:
        InputNotFoundError: ``path`` does not exist.
        MeddenIOError: ``path`` is a single file medden cannot read (its typed error).
    """
    root = Path(path)
    if not root.exists():
        raise InputNotFoundError(root, "not found")
    files = [root] if root.is_file() else _iter_files(root, recursive)
    base = root.parent if root.is_file() else root
    found = scan_files(files, root=base)
    if root.is_file() and found.skipped:
        skipped = found.skipped[0]
        raise skipped.exception or UnsupportedFormatError(root, skipped.reason)

    described, skipped_rows = [], [s.to_dict(base) for s in found.skipped]
    for other in found.others:
        rel = str(other.relative_to(base)) if other != base else other.name
        try:
            info = _nifti_info(other) if is_nifti(other) else _image_info(other)
            described.append({"path": rel, **info})
        except MeddenIOError as exc:
            if root.is_file():
                raise
            skipped_rows.append({"path": rel, "reason": exc.reason, "error": type(exc).__name__})
    return {
        "path": str(root),
        "series": [s.summary(base) for s in found.series],
        "files": described,
        "skipped": sorted(skipped_rows, key=lambda r: r["path"]),
    }


def _dims(values: list[Any], fmt: str = "{}") -> str:
    return "x".join(fmt.format(v) for v in values)


def format_report(report: dict[str, Any]) -> list[str]:
    """One line per series or file, then one per skipped file, then a count line."""
    lines = []
    n = len(report["series"])
    for i, s in enumerate(report["series"], start=1):
        desc = f' "{s["description"]}"' if s["description"] else ""
        number = s["series_number"] if s["series_number"] is not None else "-"
        split = f" ({s['split']})" if s["split"] else ""
        lines.append(
            f"DICOM {i}/{n}  {s['modality'] or '?':<3} {_dims(s['shape'])}  spacing "
            f"{_dims(s['spacing'], '{:.3g}')} mm  {s['slices']} slices"
            + (f" x {s['volumes']} volumes" if s["volumes"] > 1 else "")
            + f"  series {number}{desc}{split}  id {s['id']}  in {s['folder']}"
        )
        for warning in s["warnings"]:
            lines.append(f"    warning: {warning}")
    for f in report["files"]:
        if f["kind"] == "nifti":
            lines.append(
                f"NIfTI  {f['path']}  {f['dtype']}  {_dims(f['shape'])}  spacing "
                f"{_dims(f['spacing'], '{:.3g}')} mm  {f['orientation']}"
            )
        else:
            detail = f["mode"] if "mode" in f else f"{f['dtype']} {f['axes']}"
            lines.append(f"image  {f['path']}  {f['format']}  {detail}  {_dims(f['shape'])}")
    for s in report["skipped"]:
        lines.append(f"skipped  {s['path']}: {s['reason']}")
    lines.append(
        f"{n} DICOM series, {sum(f['kind'] == 'nifti' for f in report['files'])} NIfTI, "
        f"{sum(f['kind'] == 'image' for f in report['files'])} images, {len(report['skipped'])} skipped"
    )
    return lines
