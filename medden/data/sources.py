"""Named data sources: which clean images a ``--data`` string stands for, split by split.

One place turns the ``data`` of a training run or an evaluation into clean channel-first float32
images in [0, 1], so the trainer (:mod:`medden.engine`) and ``medden evaluate``
(:mod:`medden.workflows.evaluate`) see exactly the same images:

- offline sources (:data:`DATA_SOURCES`): the MNI152 template (``mni152``, ``mni152-2mm``,
  ``mni152-gm``, ``mni152-wm``), the ``skimage.data`` photographs (``skimage-gray``,
  ``skimage-color``), the unlimited synthetic sources (:data:`SYNTHETIC_SOURCES`), and
  ``realscans``: the real scans shipped with the installed packages, for validation and testing
  only (:func:`realscans`);
- a path to a folder of NIfTI/DICOM/images (clean data, split 80/10/10 by file and slice order), or
  of noisy/clean pairs (:func:`is_paired`);
- several of them joined by ``+``, each with an optional weight ``*w`` (:func:`parse_mix`).

:func:`clean_sources` gives the images of one split; :func:`check_data` says why a ``data`` string
is unusable; :func:`default_level_range` and :func:`validation_levels` give the noise levels a run
draws from and validates at.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import medden.io as mio
from medden.data import datasets as ds
from medden.data.synthetic import ConcatSequence, SyntheticImages
from medden.errors import UsageError
from medden.metrics import FOREGROUND_THRESHOLD, SSIM_WINDOW_SIDE
from medden.noise import noise_model

#: unlimited synthetic sources (:mod:`medden.data.synthetic`): name -> (generator, channels, options).
#: ``synthmr-coarse`` draws the pixel size from 1.5-4 mm instead of 0.6-2 mm: the grids of EPI,
#: thick-slice and small-matrix scans, whose structures are only a few pixels wide
SYNTHETIC_SOURCES: dict[str, tuple[str, int, dict[str, Any]]] = {
    "deadleaves-gray": ("deadleaves", 1, {}),
    "deadleaves-color": ("deadleaves", 3, {}),
    "synthmr": ("synthmr", 1, {}),
    "synthmr-coarse": ("synthmr", 1, {"spacing": (1.5, 4.0)}),
}
#: items of a synthetic source per split: a large virtual epoch for training, small fixed sets otherwise
SYNTHETIC_LENGTHS = {"train": 100_000, "val": 32, "test": 32}
#: sources kept out of training: they exist to validate and report on
HELD_OUT_SOURCES = ("realscans",)
DATA_SOURCES = (
    "mni152",
    "mni152-2mm",
    "mni152-gm",
    "mni152-wm",
    "skimage-gray",
    "skimage-color",
    *SYNTHETIC_SOURCES,
    *HELD_OUT_SOURCES,
)
#: the splits :func:`clean_sources` knows; ``all`` is for folders and ``realscans``
SPLITS = (*ds.SPLITS, "all")
#: smallest side of a ``realscans`` volume in 3D (the 11-voxel SSIM window)
MIN_SIDE_3D = SSIM_WINDOW_SIDE
#: minimum fraction of foreground (above :data:`medden.metrics.FOREGROUND_THRESHOLD`) in a kept slice
MIN_FOREGROUND_2D = 0.15
NOT_FOR_TRAINING = "realscans are for validation and testing only, never training"


def parse_mix(data: str) -> list[tuple[str, float | None]]:
    """The parts of ``data`` joined by ``+``, each with its weight (``synthmr*3``) or None.

    Example:
        >>> parse_mix("synthmr*3+mni152")
        [('synthmr', 3.0), ('mni152', None)]
    """
    if Path(data).exists():
        return [(data, None)]
    parts: list[tuple[str, float | None]] = []
    for part in data.split("+"):
        name, _, weight = part.rpartition("*") if "*" in part and not Path(part).exists() else ("", "", "")
        if not name:
            parts.append((part, None))
            continue
        try:
            value = float(weight)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"data {part!r}: the weight after '*' must be a positive number")
        parts.append((name, value))
    return parts


def check_data(data: str, *, training: bool = False) -> None:
    """Raise :class:`UsageError` if ``data`` names an unknown source or a missing path, has a bad
    weight, or (``training``) holds a source kept out of training (:data:`HELD_OUT_SOURCES`)."""
    for part, _ in parse_mix(data):
        if part not in DATA_SOURCES and not Path(part).exists():
            raise UsageError(
                f"data {part!r} is neither one of {', '.join(DATA_SOURCES)} nor an existing path "
                "(combine sources with '+', e.g. mni152+skimage-gray)"
            )
        if training and part in HELD_OUT_SOURCES:
            raise UsageError(NOT_FOR_TRAINING)


def available_splits(data: str) -> tuple[str, ...]:
    """The splits :func:`clean_sources` gives for ``data`` (those every part of a mix has)."""
    out = list(SPLITS)
    for part, _ in parse_mix(data):
        if part in HELD_OUT_SOURCES:
            have = ("val", "test", "all")
        elif part in DATA_SOURCES:
            have = ds.SPLITS
        else:
            have = SPLITS
        out = [s for s in out if s in have]
    return tuple(out)


def check_split(data: str, split: str) -> None:
    """Raise :class:`UsageError` unless ``split`` is one of :func:`available_splits` of ``data``."""
    if split not in SPLITS:
        raise UsageError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    if split in available_splits(data):
        return
    if split == "train":
        raise UsageError(NOT_FOR_TRAINING)
    raise UsageError(
        f"split {split!r} is for folders and realscans; the other offline sources have {', '.join(ds.SPLITS)}"
    )


def is_paired(data: str) -> bool:
    """Whether ``data`` is a folder of noisy/clean pairs (:data:`medden.data.datasets.PAIR_LAYOUTS`)."""
    root = Path(data)
    return root.is_dir() and any((root / a).is_dir() and (root / b).is_dir() for a, b in ds.PAIR_LAYOUTS)


def clean_sources(
    data: str,
    split: str,
    *,
    axis: int = 2,
    spatial_dims: int = 2,
    patch_size: int = 64,
    seed: int = 0,
) -> Sequence[np.ndarray]:
    """Clean images ``(C, *spatial)`` in [0, 1] of one split of ``data``.

    A list, or a lazy sequence (synthetic sources and mixes) that is never materialised. ``a+b``
    concatenates the parts (e.g. MRI slices and photographs); when a part is synthetic or weighted
    (``synthmr*3+mni152``), the training split mixes them by weight instead.

    Args:
        data: a source name, a folder, or a mix (see the module docstring).
        split: ``train``, ``val``, ``test``, or ``all`` (folders and ``realscans`` only).
        axis: slicing axis of volumes in 2D.
        spatial_dims: 2 (slices, images) or 3 (volumes, slabs).
        patch_size: side of the synthetic images.
        seed: seed of the synthetic training images (their validation and test sets are fixed).
    """
    check_split(data, split)
    opts = {"axis": axis, "spatial_dims": spatial_dims, "patch_size": patch_size, "seed": seed}
    mix = parse_mix(data)
    if len(mix) > 1 or mix[0][1] is not None:
        parts = [clean_sources(name, split, **opts) for name, _ in mix]
        weighted = split == "train" and any(w is not None or n in SYNTHETIC_SOURCES for n, w in mix)
        return ConcatSequence(parts, [1.0 if w is None else w for _, w in mix] if weighted else None)
    if data in HELD_OUT_SOURCES:
        return realscans(split, axis=axis, spatial_dims=spatial_dims)
    if data in SYNTHETIC_SOURCES:
        kind, channels, options = SYNTHETIC_SOURCES[data]
        # training items from the run's seed; validation and test sets fixed (and never training items)
        key = (seed,) if split == "train" else (0, ds.SPLITS.index(split))
        return SyntheticImages(
            kind, SYNTHETIC_LENGTHS[split], key, patch_size, spatial_dims, channels=channels, **options
        )
    if data == "mni152-2mm":  # the T1 slices subsampled in-plane: structures twice as sharp per pixel
        return [np.ascontiguousarray(s[:, ::2, ::2]) for s in clean_sources("mni152", split, **opts)]
    if data.startswith("mni152"):
        kind = {"mni152": "t1", "mni152-gm": "gm", "mni152-wm": "wm"}[data]
        if spatial_dims == 3:
            return ds.mni152_slabs(split, axis=axis, kind=kind)
        return ds.mni152_slices(split, axis=axis, kind=kind)
    if data.startswith("skimage"):
        if spatial_dims == 3:
            raise UsageError("skimage images are 2D: use spatial_dims=2")
        return ds.natural_images(split, gray=data == "skimage-gray", max_side=512)
    return _folder_split(data, split, axis, spatial_dims)


def _folder_split(data: str, split: str, axis: int, spatial_dims: int) -> list[np.ndarray]:
    """A user folder split by file/slice order: 80 % train, 10 % val, 10 % test (contiguous)."""
    images = ds.folder_images(data, axis=axis, spatial_dims=spatial_dims)
    n = len(images)
    cut1, cut2 = max(1, int(0.8 * n)), max(1, int(0.9 * n))
    parts = {
        "train": images[:cut1],
        "val": images[cut1:cut2] or images[-1:],
        "test": images[cut2:] or images[-1:],
        "all": images,
    }
    return parts[split]


# ------------------------------------------------------------------------------------------ realscans


class LabelledImages(list):
    """A list of images that also says where each came from (:attr:`labels`, one per image)."""

    def __init__(self, images: Sequence[np.ndarray] = (), labels: Sequence[str] = ()) -> None:
        super().__init__(images)
        self.labels = list(labels)
        if len(self.labels) != len(self):
            raise ValueError(f"{len(self)} images but {len(self.labels)} labels")


def _scan_paths() -> list[tuple[str, Path, bool]]:
    """(name, path, is a 4D series) of the real scans shipped with the installed packages."""
    from nibabel.testing import data_path  # defers nibabel
    from pydicom.data import get_testdata_file  # defers pydicom

    nib = Path(data_path)
    return [
        ("nibabel/anatomical.nii", nib / "anatomical.nii", False),
        ("nibabel/example4d.nii.gz", nib / "example4d.nii.gz", True),
        ("pydicom/MR_small.dcm", Path(str(get_testdata_file("MR_small.dcm"))), False),
        ("pydicom/CT_small.dcm", Path(str(get_testdata_file("CT_small.dcm"))), False),
    ]


@functools.lru_cache(maxsize=1)
def real_scan_volumes() -> tuple[tuple[str, np.ndarray], ...]:
    """The four real scans as ``(name, volume[X, Y, Z])``, min–max normalised to [0, 1] (read-only).

    nibabel's ``anatomical.nii`` (a T1 volume), the first volume of its ``example4d.nii.gz`` (an
    EPI series), pydicom's ``MR_small.dcm`` and ``CT_small.dcm`` (one slice each), read through
    :func:`medden.io.load`. Nothing is downloaded.
    """
    loggers = [logging.getLogger(name) for name in ("medden.io", "pydicom")]
    levels = [lg.level for lg in loggers]
    out = []
    for name, path, series in _scan_paths():
        # pydicom's test folder also holds deliberately broken copies of MR_small, whose headers are read
        # while the series is gathered: not worth a warning from medden or pydicom
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            array = np.asarray(mio.load(path).array, dtype=np.float32)
        finally:
            for lg, lvl in zip(loggers, levels, strict=True):
                lg.setLevel(lvl)
        if series and array.ndim == 4:
            array = array[..., 0]
        lo, hi = float(array.min()), float(array.max())
        vol = ((array - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)
        vol.setflags(write=False)
        out.append((name, vol))
    return tuple(out)


def realscans(split: str = "all", *, axis: int = 2, spatial_dims: int = 2) -> LabelledImages:
    """The real scans that ship with nibabel and pydicom, for validation and testing only.

    There are only four scans (:func:`real_scan_volumes`), too few to split: ``val``, ``test`` and
    ``all`` all give all of them, and ``train`` is refused (they are what a model trained on the
    other sources is checked on). In 3D the images are the volumes at least :data:`MIN_SIDE_3D`
    voxels thick (the two single-slice DICOM files are left out). In 2D they are the slices along
    ``axis`` holding at least 15 % foreground (as :func:`medden.data.datasets.mni152_slices`), a
    single-slice scan giving its one slice whatever ``axis``; they come one scan after the other in
    turn, each scan's slices middle first and then ever finer through it, so that the first few
    (a validation cap, ``max_val_images``) already cover every scan. ``labels`` name the scan and
    slice of each image.
    """
    check_split("realscans", split)
    if spatial_dims == 3:
        kept = [(name, vol) for name, vol in real_scan_volumes() if min(vol.shape) >= MIN_SIDE_3D]
        return LabelledImages([np.array(vol[None]) for _, vol in kept], [name for name, _ in kept])
    per_scan = [_scan_slices(name, vol, axis) for name, vol in real_scan_volumes()]
    images, labels = [], []
    for k in range(max(len(s) for s in per_scan)):
        for scan in per_scan:
            if k < len(scan):
                labels.append(scan[k][0])
                images.append(scan[k][1])
    return LabelledImages(images, labels)


def _scan_slices(name: str, vol: np.ndarray, axis: int) -> list[tuple[str, np.ndarray]]:
    """The kept slices of one scan, labelled, in :func:`_spread_order`."""
    if vol.shape[2] == 1:  # one slice: the plane itself, along any axis
        return [(name, np.array(vol[None, :, :, 0]))]
    out = []
    for i in range(vol.shape[axis]):
        plane = np.take(vol, i, axis=axis)
        if (plane > FOREGROUND_THRESHOLD).mean() >= MIN_FOREGROUND_2D:
            out.append((f"{name} slice {i} of axis {axis}", np.ascontiguousarray(plane[None])))
    return [out[i] for i in _spread_order(len(out))]


def _spread_order(n: int) -> list[int]:
    """``0 .. n-1`` in an order whose every prefix is spread through the range: the middle, then the
    quarters, the eighths...

    Example:
        >>> _spread_order(8)
        [4, 2, 6, 1, 3, 5, 7, 0]
    """
    order: list[int] = []
    seen: set[int] = set()
    k = 1
    while len(order) < n:
        for j in range(k):
            i = int((j + 0.5) * n / k)
            if i not in seen:
                seen.add(i)
                order.append(i)
        k *= 2
    return order


# ------------------------------------------------------------------------------------------ levels


def default_level_range(
    noise: str | None, level_range: Sequence[float] | None = None
) -> tuple[float, float] | None:
    """The range a run draws noise levels from: ``level_range`` if given, else the default range of
    the noise kind (:class:`medden.noise.NoiseModel`); None for no noise or for several kinds (each
    then draws from its own default)."""
    if level_range is not None:
        lo, hi = level_range
        return (lo, hi)
    if noise is None:
        return None
    kinds = noise.split("+")
    return tuple(noise_model(kinds[0]).default_range) if len(kinds) == 1 else None  # type: ignore[return-value]


def validation_levels(
    noise: str | None,
    level_range: Sequence[float] | None = None,
    val_levels: Sequence[float] | None = None,
) -> list[float]:
    """The fixed validation levels: ``val_levels`` if given, else three levels across the range (its
    low end raised to a tenth of the high end: a zero level validates nothing)."""
    if val_levels:
        return [float(v) for v in val_levels]
    lo, hi = (
        default_level_range(noise, level_range)
        or noise_model((noise or "rician").split("+")[0]).default_range
    )
    lo = max(lo, hi / 10)
    return [float(v) for v in np.linspace(lo, hi, 3)]
