"""MONAI ``ImageReader`` for DICOM series, so bundles and pipelines read them through medden.

:class:`DicomSeriesReader` reads a folder holding one series (or one file of a series, or a
:class:`~medden.io.dicom.DicomSeries`) with the scan, sorting, rescale and geometry of
:mod:`medden.io.dicom`, and gives MONAI the volume in medden's convention with its RAS affine. Unlike
MONAI's ``PydicomReader`` it never stacks two series of one folder into one volume: such a folder is
an error unless ``series`` chooses one.

Example:
    >>> from monai.transforms import LoadImage
    >>> from medden.io.readers import DicomSeriesReader
    >>> img = LoadImage(reader=DicomSeriesReader(), image_only=True)("dicom/series1")  # doctest: +SKIP
    >>> img.affine, img.meta["0008|0060"]  # doctest: +SKIP

In a bundle config::

    {"_target_": "LoadImaged", "keys": "image", "reader": {"_target_": "medden.io.readers.DicomSeriesReader"}}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import ImageReader
from monai.utils import MetaKeys, SpaceKeys

from medden.io.dicom import DicomSeries, find_series, has_dicom_preamble, read_series

_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN", "SQ"}


def dicom_tags(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Top-level header values of a DICOM file keyed like MONAI's ITKReader (``"0008|0060"``).

    Sequences, binary values and pixel data are left out; multi-valued elements become lists.
    """
    import warnings

    import pydicom

    tags: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, stop_before_pixels=True, defer_size=1024)
        for element in ds:
            if element.VR in _BINARY_VRS or element.tag.is_private or element.value is None:
                continue
            try:
                value = element.value
                if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
                    value = [v if isinstance(v, (int, float)) else str(v) for v in value]
                elif not isinstance(value, (int, float)):
                    value = str(value)
            except Exception:  # an unreadable value is left out, never an error
                continue
            tags[f"{element.tag.group:04x}|{element.tag.element:04x}"] = value
    return tags


class DicomSeriesReader(ImageReader):
    """Read a DICOM series into a volume with its RAS affine and the source metadata.

    Args:
        series: for a folder holding several series, which one (scan index,
            :attr:`~medden.io.dicom.DicomSeries.id` or SeriesNumber); such a folder is an error
            when None.
        channel_dim: the channel dimension of the data (default: none for gray, -1 for color).
        dtype: float dtype of gray volumes.
        tags: put the first file's header values in the metadata (``"0008|0060"`` keys).

    ``get_data`` returns ``(X, Y, Z[, T])`` (``(X, Y, Z, 3)`` for color) and a metadata dict with
    ``affine``/``original_affine`` (RAS), ``spatial_shape``, ``spacing``, ``space``,
    ``original_channel_dim``, ``medden_series`` (a PHI-free summary) and the header tags.
    """

    def __init__(
        self,
        series: int | str | None = None,
        channel_dim: int | None = None,
        dtype: Any = np.float32,
        tags: bool = True,
    ) -> None:
        super().__init__()
        self.series = series
        self.channel_dim = channel_dim
        self.dtype = dtype
        self.tags = tags

    def verify_suffix(self, filename: Sequence[Any] | Any) -> bool:
        """True for folders, ``.dcm`` files and files with the DICOM preamble."""
        names = filename if isinstance(filename, (list, tuple)) else [filename]
        for name in names:
            if isinstance(name, DicomSeries):
                continue
            path = Path(name)
            if not (path.is_dir() or path.suffix.lower() == ".dcm" or has_dicom_preamble(path)):
                return False
        return True

    def read(self, data: Sequence[Any] | Any, **kwargs: Any) -> DicomSeries | list[DicomSeries]:
        """Find the series of each path (a folder, a file of a series, or a DicomSeries)."""
        items = data if isinstance(data, (list, tuple)) else [data]
        found = [d if isinstance(d, DicomSeries) else find_series(d, series=self.series) for d in items]
        return found if len(found) > 1 else found[0]

    def get_data(self, img: DicomSeries | list[DicomSeries]) -> tuple[np.ndarray, dict[str, Any]]:
        """Read the pixel data; several series are stacked on a new first axis (metadata of the first)."""
        series_list = img if isinstance(img, list) else [img]
        arrays = [read_series(s, dtype=self.dtype) for s in series_list]
        first = series_list[0]
        meta: dict[str, Any] = dict(dicom_tags(first.path)) if self.tags else {}
        spatial = first.shape[:-1] if first.samples_per_pixel > 1 else first.shape
        meta[MetaKeys.AFFINE] = first.affine.copy()
        meta[MetaKeys.ORIGINAL_AFFINE] = first.affine.copy()
        meta[MetaKeys.SPATIAL_SHAPE] = np.asarray(spatial)
        meta[MetaKeys.SPACE] = SpaceKeys.RAS
        meta["spacing"] = np.asarray(first.spacing)
        summary = {k: ("" if v is None else v) for k, v in first.summary().items()}
        meta["medden_series"] = summary
        if self.channel_dim is not None:
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = self.channel_dim
        else:
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = -1 if first.samples_per_pixel > 1 else float("nan")
        if len(arrays) == 1:
            return arrays[0], meta
        meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0
        return np.stack(arrays), meta
