"""Sample images shipped by installed packages: nothing is downloaded.

- :func:`mni152` — nilearn's bundled 1 mm MNI152 T1 template (and GM/WM probability maps).
- :func:`mni152_slice` — one 2D slice of it, channel-first.
- :func:`natural_image` — images shipped in ``skimage.data``.
- :func:`mni152_dicom_series` — the MNI152 template written as a synthetic MR DICOM series.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from medden.io.dicom import write_synthetic_series
from medden.noise import rician

#: photographs and micrographs shipped inside the scikit-image wheel (no download).
GRAY_IMAGES = ("camera", "moon", "coins", "text", "page", "clock", "brick", "grass", "gravel", "cell")
COLOR_IMAGES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "stereo_motorcycle",
)

#: split by image: validation and test images are never cropped for training.
NATURAL_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "brick",
        "grass",
        "gravel",
        "page",
        "text",
        "cell",
        "clock",
        "chelsea",
        "rocket",
        "immunohistochemistry",
        "hubble_deep_field",
        "retina",
        "stereo_motorcycle",
    ),
    "val": ("coffee", "moon"),
    "test": ("camera", "astronaut", "coins"),
}


@functools.lru_cache(maxsize=4)
def _mni152_cached(kind: str) -> tuple[np.ndarray, np.ndarray]:
    import warnings

    from nilearn import datasets

    loaders = {
        "t1": datasets.load_mni152_template,
        "gm": datasets.load_mni152_gm_template,
        "wm": datasets.load_mni152_wm_template,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = loaders[kind](resolution=1)
    data = np.asarray(img.get_fdata(dtype=np.float32))
    data.setflags(write=False)
    return data, np.asarray(img.affine)


def mni152(kind: str = "t1", normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The 1 mm MNI152 template bundled with nilearn, as ``(array[X, Y, Z], affine)``.

    Args:
        kind: ``t1``, ``gm`` or ``wm``.
        normalize: scale to [0, 1] by the maximum.

    Returns:
        a float32 array (a fresh copy, safe to modify) and its 4×4 RAS affine.
    """
    if kind not in ("t1", "gm", "wm"):
        raise ValueError(f"kind must be 't1', 'gm' or 'wm', not {kind!r}")
    data, affine = _mni152_cached(kind)
    out = np.array(data, dtype=np.float32)
    if normalize:
        out /= max(float(out.max()), 1e-12)
    return out, affine.copy()


def mni152_slice(axis: int = 2, index: int | None = None, kind: str = "t1") -> np.ndarray:
    """One slice of the normalised MNI152 template, channel-first ``(1, H, W)`` float32 in [0, 1].

    Args:
        axis: 0 sagittal, 1 coronal, 2 axial.
        index: slice index; the middle slice when None.
        kind: ``t1``, ``gm`` or ``wm``.
    """
    vol, _ = mni152(kind)
    index = vol.shape[axis] // 2 if index is None else index
    plane = np.take(vol, index, axis=axis)
    return np.ascontiguousarray(plane[None])


def natural_image(name: str = "camera", gray: bool | None = None) -> np.ndarray:
    """An image from ``skimage.data``, channel-first float32 in [0, 1].

    Args:
        name: a function name in ``skimage.data`` (see :data:`GRAY_IMAGES`, :data:`COLOR_IMAGES`).
        gray: convert to gray (True), keep as is (None), or require color (False).

    Returns:
        ``(1, H, W)`` for gray images, ``(3, H, W)`` for color ones.
    """
    from skimage import data as skdata
    from skimage.color import rgb2gray, rgba2rgb
    from skimage.util import img_as_float32

    loader: Any = getattr(skdata, name, None)
    if loader is None or name.startswith("_"):
        raise ValueError(f"skimage.data has no image {name!r}")
    raw = loader()
    if name == "stereo_motorcycle":
        raw = raw[0]  # (left, right, disparity): the left view
    img = img_as_float32(raw)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = rgba2rgb(img).astype(np.float32)
    if gray and img.ndim == 3:
        img = rgb2gray(img).astype(np.float32)
    if gray is False and img.ndim == 2:
        raise ValueError(f"skimage.data.{name} is a gray image")
    return np.ascontiguousarray(img[None] if img.ndim == 2 else np.moveaxis(img, -1, 0))


def mni152_dicom_series(
    folder: str | os.PathLike[str], step: int = 2, kind: str = "t1", scale: float = 1000.0, **kwargs: Any
) -> Path:
    """Write the MNI152 template as a synthetic MR DICOM series, one file per axial slice.

    The volume is subsampled by ``step`` along each axis, scaled to ``[0, scale]`` and rounded to
    unsigned 16-bit values; the series is written by :func:`medden.io.dicom.write_synthetic_series`
    (the same writer as derived series), so it reads back with medden, pydicom, SimpleITK and dcm2niix.

    Args:
        folder: output folder (built atomically, replaced if it exists).
        step: subsampling factor (2 gives 91×109×91 voxels of 2 mm).
        kind: ``t1``, ``gm`` or ``wm``.
        scale: value of the template's maximum.
        kwargs: further arguments of :func:`~medden.io.dicom.write_synthetic_series`
            (``series_description``, ``patient_name``, ``series_number``...).

    Returns:
        the folder.
    """
    vol, affine = mni152_phantom(step, scale, kind)
    vol = np.rint(vol)
    kwargs.setdefault("series_description", f"MNI152 {kind.upper()} {step} mm (synthetic)")
    return write_synthetic_series(vol, affine, folder, modality="MR", **kwargs).path


def mni152_phantom(step: int = 2, scale: float = 1000.0, kind: str = "t1") -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 template subsampled by ``step`` (2 → 2 mm, 91×109×91) in units up to ``scale``,
    and its affine: a clean MR-like volume to build sample series from."""
    vol, affine = mni152(kind)
    sub = np.ascontiguousarray(vol[::step, ::step, ::step]) * np.float32(scale)
    return sub, affine @ np.diag([float(step)] * 3 + [1.0])


def write_noisy_mr_series(
    folder: str | os.PathLike[str],
    level: float = 0.05,
    seed: int = 0,
    step: int = 2,
    series_number: int = 1,
    clean_folder: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Write the MNI152 phantom with Rician noise (σ = ``level`` × maximum) as a DICOM MR series.

    Deterministic for a given ``level``, ``seed`` and ``step``. With ``clean_folder`` the clean
    volume is written too (a reference series in the same geometry). Returns the folders and the
    noise parameters.
    """
    clean, affine = mni152_phantom(step)
    noisy = rician(clean, level, rng=seed).astype(np.float32)
    description = f"MNI152 phantom Rician {100 * level:g} %"
    write_synthetic_series(noisy, affine, folder, series_number=series_number, series_description=description)
    out: dict[str, Any] = {"series": str(folder), "level": level, "seed": seed, "step": step}
    if clean_folder is not None:
        write_synthetic_series(
            clean,
            affine,
            clean_folder,
            series_number=series_number + 100,
            series_description="MNI152 phantom clean",
        )
        out["clean_series"] = str(clean_folder)
    return out
