"""What every reader returns (:class:`Loaded`) and the value conversion every writer shares."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("medden.io")

#: image kinds :func:`medden.io.load` returns
KINDS = ("image", "nifti", "dicom")


@dataclass(eq=False)
class Loaded:
    """An image, NIfTI volume or DICOM series read by :func:`medden.io.load`.

    Attributes:
        array: the pixel values in the file's units: 2D images channel-first ``(C, H, W)`` in their
            native dtype (uint8, uint16, float32...); NIfTI ``(X, Y, Z[, T])`` (scaled by
            ``scl_slope``/``scl_inter`` when the file has them, else in the stored dtype); DICOM
            ``(X, Y, Z)`` float32 after the modality rescale (CT in HU), or ``(X, Y, Z, 3)`` for color.
        kind: ``"image"``, ``"nifti"`` or ``"dicom"``.
        path: the file (or, for a DICOM series, its first file in slice order).
        affine: 4×4 voxel-to-world matrix in RAS+ millimetres (NIfTI, DICOM); None for 2D images.
        meta: JSON-ready description without patient data (format, dtype, spacing, series fields...).
        source: what the writer needs to write the same format back (header, series, format options).
    """

    array: np.ndarray
    kind: str
    path: Path
    affine: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    source: Any = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`array`."""
        return tuple(self.array.shape)


def to_stored(
    values: Any, dtype: np.dtype | type, lo: float | None = None, hi: float | None = None
) -> tuple[np.ndarray, int]:
    """Convert ``values`` to ``dtype``: integers are rounded and clipped, floats cast.

    Args:
        values: array-like of any numeric type (numpy, or a torch tensor on the CPU).
        dtype: the target dtype.
        lo: lower bound for integers (the dtype's minimum by default).
        hi: upper bound for integers (the dtype's maximum by default).

    Returns:
        the converted array and the number of values that were clipped (NaN counts as clipped and
        becomes 0 for integer types).

    Example:
        >>> to_stored([-3.6, 1.4, 300.2], np.uint8)
        (array([  0,   1, 255], dtype=uint8), 2)
    """
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        return arr.astype(dtype, copy=False), 0
    info = np.iinfo(dtype)
    lo = info.min if lo is None else max(lo, info.min)
    hi = info.max if hi is None else min(hi, info.max)
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        clipped = int(np.count_nonzero((arr < lo) | (arr > hi)))
        return np.clip(arr, lo, hi).astype(dtype), clipped
    work = np.rint(arr.astype(np.float64, copy=False))
    nan = np.isnan(work)
    clipped = int(np.count_nonzero((work < lo) | (work > hi) | nan))
    if nan.any():
        work = np.where(nan, 0.0, work)
    return np.clip(work, lo, hi).astype(dtype), clipped


@dataclass
class ClipCount:
    """Values clipped by the writers inside one :func:`count_clipped` block."""

    clipped: int = 0
    values: int = 0


_CLIP_COUNT: contextvars.ContextVar[ClipCount | None] = contextvars.ContextVar("clip_count", default=None)


@contextlib.contextmanager
def count_clipped() -> Iterator[ClipCount]:
    """Count the values every writer clips to its representable range inside the block.

    Example:
        >>> with count_clipped() as count:
        ...     report_clipped(Path("x.png"), 0, 10)
        >>> (count.clipped, count.values)
        (0, 10)
    """
    count = ClipCount()
    token = _CLIP_COUNT.set(count)
    try:
        yield count
    finally:
        _CLIP_COUNT.reset(token)


def report_clipped(path: Path, clipped: int, total: int) -> None:
    """Record (for :func:`count_clipped`) and log how many values were clipped while writing ``path``."""
    count = _CLIP_COUNT.get()
    if count is not None:
        count.clipped += clipped
        count.values += total
    if clipped:
        logger.warning(
            "%s: %d of %d values (%.3g %%) clipped to the representable range",
            path,
            clipped,
            total,
            100.0 * clipped / max(total, 1),
        )
