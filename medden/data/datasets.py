"""Training and validation data: clean sources, slab/image splits, and MONAI pipelines with noise on the fly.

Sources give clean channel-first float32 arrays in [0, 1]:

- :func:`mni152_slices` / :func:`mni152_slabs` — nilearn's bundled MNI152 template, 2D slices along any
  axis or 3D slabs, split by interleaved slabs (with a gap) so validation never sees a training slice
  nor its neighbour;
- :func:`natural_images` — ``skimage.data`` photographs split by image (:data:`NATURAL_SPLITS`);
- :func:`folder_images` — a user's folder of NIfTI, DICOM series or 2D images (through ``medden.io``);
- :func:`paired_folder` — noisy/clean pairs in ``low/`` + ``high/`` (LOL) or ``noisy/`` + ``clean/``.

:func:`train_transforms` builds the MONAI pipeline: pad, random patch, flips and 90° rotations, copy
the clean patch to ``target``, then a ``medden.transforms`` Rand noise on ``image`` only, and the
drawn level in ``sigma`` for noise-level-aware nets.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import medden.io as mio
from medden.data.samples import NATURAL_SPLITS, mni152, natural_image
from medden.errors import UsageError
from medden.metrics import FOREGROUND_THRESHOLD
from medden.noise import kinds_where, noise_model

SPLITS = ("train", "val", "test")
#: cycle of slab roles along the slicing axis: 4 train slabs, then one val and one test slab
SLAB_PATTERN_2D = ("train", "train", "train", "train", "val", "test")
SLAB_PATTERN_3D = ("train", "train", "val", "test")


def slab_split(
    n: int, slab: int, pattern: Sequence[str], gap: int, mirror: bool = False
) -> dict[str, list[int]]:
    """Assign indices ``0..n-1`` to splits by slabs of ``slab`` indices cycling through ``pattern``.

    ``gap`` indices at each border between slabs of different splits are dropped, so no retained
    index of one split is within ``gap`` of another split's. With ``mirror``, index ``i`` and its
    mirror ``n - 1 - i`` always fall in the same split (for a left-right symmetric volume such as the
    MNI152 template, whose sagittal slices ``i`` and ``n - 1 - i`` are identical).

    Example:
        >>> s = slab_split(24, 4, ("train", "val"), gap=1)
        >>> s["train"], s["val"]
        ([0, 1, 2, 9, 10, 17, 18], [5, 6, 13, 14, 21, 22, 23])
        >>> slab_split(12, 2, ("train", "val"), gap=0, mirror=True)["val"]
        [2, 3, 8, 9]
    """
    if slab < 1 or gap < 0:
        raise ValueError("slab must be >= 1 and gap >= 0")
    fold = (lambda i: min(i, n - 1 - i)) if mirror else (lambda i: i)
    role = [pattern[(fold(i) // slab) % len(pattern)] for i in range(n)]
    out: dict[str, list[int]] = {name: [] for name in dict.fromkeys(pattern)}
    for i in range(n):
        lo, hi = max(0, i - gap), min(n, i + gap + 1)
        if all(role[j] == role[i] for j in range(lo, hi)):
            out[role[i]].append(i)
    return out


def _mirrored(vol: np.ndarray, axis: int) -> bool:
    """Whether ``vol`` is its own mirror image along ``axis`` (nilearn's MNI152 is, left-right)."""
    return bool(np.array_equal(vol, np.flip(vol, axis=axis)))


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")


def mni152_slices(
    split: str = "train",
    axis: int = 2,
    kind: str = "t1",
    min_foreground: float = 0.15,
    slab: int = 8,
    gap: int = 2,
) -> list[np.ndarray]:
    """2D slices ``(1, H, W)`` of the normalised MNI152 template for one split.

    Slices whose brain (voxels above 10 % of the maximum) covers less than ``min_foreground`` of the
    plane are dropped.

    Args:
        split: ``train``, ``val`` or ``test``.
        axis: 0 sagittal, 1 coronal, 2 axial.
        kind: ``t1``, ``gm`` or ``wm``.
        min_foreground: minimum fraction of brain in a kept slice.
        slab: slab thickness in slices (cycling 4 train, 1 val, 1 test).
        gap: slices dropped at each border between splits.
    """
    _check_split(split)
    vol, _ = mni152(kind)
    idx = slab_split(vol.shape[axis], slab, SLAB_PATTERN_2D, gap, mirror=_mirrored(vol, axis))[split]
    out = []
    for i in idx:
        plane = np.take(vol, i, axis=axis)
        if (plane > FOREGROUND_THRESHOLD).mean() >= min_foreground:
            out.append(np.ascontiguousarray(plane[None], dtype=np.float32))
    return out


def mni152_slabs(
    split: str = "train",
    axis: int = 2,
    kind: str = "t1",
    slab: int = 40,
    gap: int = 4,
    min_foreground: float = 0.02,
) -> list[np.ndarray]:
    """3D slabs ``(1, X, Y, Z)`` of the normalised MNI152 template for one split (random 3D patches are
    then drawn inside them). Slabs of the same split that touch are merged; slabs whose brain (voxels
    above 10 % of the maximum) fills less than ``min_foreground`` of them are dropped (the axial
    template's top 25 slices are empty air)."""
    _check_split(split)
    vol, _ = mni152(kind)
    idx = slab_split(vol.shape[axis], slab, SLAB_PATTERN_3D, gap, mirror=_mirrored(vol, axis))[split]
    runs: list[list[int]] = []
    for i in idx:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    slabs = [np.ascontiguousarray(np.take(vol, run, axis=axis)[None], dtype=np.float32) for run in runs]
    return [s for s in slabs if (s > FOREGROUND_THRESHOLD).mean() >= min_foreground]


def natural_images(split: str = "train", gray: bool = True, max_side: int | None = None) -> list[np.ndarray]:
    """``skimage.data`` photographs of one split (by image), channel-first float32 in [0, 1].

    Args:
        split: ``train``, ``val`` or ``test`` (see :data:`medden.data.samples.NATURAL_SPLITS`).
        gray: convert to gray; otherwise only color images of the split are returned.
        max_side: downscale (anti-aliased) so the longer side is at most this.
    """
    from skimage.transform import rescale

    _check_split(split)
    out = []
    for name in NATURAL_SPLITS[split]:
        img = natural_image(name, gray=True if gray else None)
        if not gray and img.shape[0] != 3:
            continue
        if max_side and max(img.shape[1:]) > max_side:
            factor = max_side / max(img.shape[1:])
            img = rescale(img, (1, factor, factor), anti_aliasing=True, preserve_range=True).astype(
                np.float32
            )
        out.append(np.ascontiguousarray(img))
    return out


def _normalise(arr: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the 99.9th percentile of the positive part (robust to hot voxels), clipped."""
    a = np.asarray(arr, dtype=np.float32)
    a = a - min(float(a.min()), 0.0)
    top = float(np.percentile(a, 99.9)) if a.size else 1.0
    return np.clip(a / (top if top > 0 else 1.0), 0.0, 1.0)


def folder_images(path: str | os.PathLike[str], axis: int = 2, spatial_dims: int = 2) -> list[np.ndarray]:
    """Clean images from a user's folder (or file): NIfTI, DICOM series or 2D images, in [0, 1].

    Volumes become 2D slices along ``axis`` (``spatial_dims=2``) or stay whole (3). Unreadable files
    are skipped (a folder scan never fails because of one file); an empty result is an error.
    """
    root = Path(path)
    if not root.exists():
        raise UsageError(f"data not found: {root}")
    candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    units: list[Any] = []
    if root.is_dir() and hasattr(mio, "scan"):
        units = [s for s in mio.scan(root).series]  # DICOM series found in the folder
    out: list[np.ndarray] = []
    for unit in units:
        out.extend(
            _as_training_arrays(
                mio.load(unit.path if hasattr(unit, "path") else unit).array, "dicom", axis, spatial_dims
            )
        )
    for p in candidates:
        if not mio.is_supported(p) or p.suffix.lower() == ".dcm":
            continue
        try:
            loaded = mio.load(p)
        except Exception:  # a bad file is skipped, the rest are used
            continue
        out.extend(_as_training_arrays(loaded.array, loaded.kind, axis, spatial_dims))
    if not out:
        raise UsageError(f"no readable images in {root}")
    return out


def _as_training_arrays(arr: np.ndarray, kind: str, axis: int, spatial_dims: int) -> list[np.ndarray]:
    a = _normalise(arr)
    if kind == "image":  # (C, H, W)
        return [a]
    a = a[..., 0] if a.ndim == 4 else a  # first volume of a 4D series
    if spatial_dims == 3:
        return [a[None]]
    return [np.ascontiguousarray(np.take(a, i, axis=axis)[None]) for i in range(a.shape[axis])]


PAIR_LAYOUTS = (("low", "high"), ("noisy", "clean"), ("input", "target"))


def paired_folder(path: str | os.PathLike[str]) -> list[dict[str, np.ndarray]]:
    """Noisy/clean pairs from ``low/`` + ``high/`` (LOL), ``noisy/`` + ``clean/`` or ``input/`` + ``target/``.

    Files are matched by their path relative to the two folders; unmatched files are an error.
    Returns items ``{"image": noisy, "target": clean}`` in [0, 1] (8/16-bit images divided by their
    type's maximum, so the pair keeps its relative brightness).
    """
    root = Path(path)
    for noisy_name, clean_name in PAIR_LAYOUTS:
        noisy_dir, clean_dir = root / noisy_name, root / clean_name
        if noisy_dir.is_dir() and clean_dir.is_dir():
            break
    else:
        raise UsageError(f"{root}: no paired layout found (expected one of {PAIR_LAYOUTS} subfolders)")
    noisy = {p.relative_to(noisy_dir) for p in noisy_dir.rglob("*") if p.is_file() and mio.is_supported(p)}
    clean = {p.relative_to(clean_dir) for p in clean_dir.rglob("*") if p.is_file() and mio.is_supported(p)}
    if noisy != clean or not noisy:
        missing = sorted(str(p) for p in noisy ^ clean)[:3]
        raise UsageError(
            f"{root}: {noisy_name}/ and {clean_name}/ do not hold the same files (e.g. {missing})"
        )
    items = []
    for rel in sorted(noisy):
        pair = [mio.load(d / rel).array for d in (noisy_dir, clean_dir)]
        scale = [np.iinfo(a.dtype).max if np.issubdtype(a.dtype, np.integer) else 1.0 for a in pair]
        items.append(
            {
                "image": (pair[0] / scale[0]).astype(np.float32),
                "target": (pair[1] / scale[1]).astype(np.float32),
            }
        )
    return items


#: noise kinds whose level is relative to a reference intensity (1.0 for training data in [0, 1])
_REFERENCED = kinds_where(lambda m: m.takes_reference)


def train_transforms(
    spatial_dims: int,
    patch_size: int | Sequence[int],
    noise: str | None,
    level_range: Sequence[float] | None = None,
    absolute: bool = False,
    augment: bool = True,
    paired: bool = False,
    noise_kwargs: Mapping[str, Any] | None = None,
    foreground: float | None = None,
    foreground_threshold: float = FOREGROUND_THRESHOLD,
    target_noise: float | None = None,
) -> Any:
    """The MONAI training pipeline: pad, random patch, flips/90° rotations, clean copy, noise on ``image``.

    Args:
        spatial_dims: 2 or 3.
        patch_size: patch side (int) or sizes per spatial dim.
        noise: a medden noise kind added on the fly (several joined by ``+``: one drawn per item), or None
            for paired data.
        level_range: range of the drawn level (the kind's default when None).
        absolute: draw an absolute σ (rician, gaussian) instead of one relative to the maximum.
        augment: random flips along every spatial axis and 90° rotations in the last two axes.
        paired: items already hold ``image`` (noisy) and ``target`` (clean).
        noise_kwargs: fixed keyword arguments of the noise function.
        foreground: probability that a patch is centred on foreground (a voxel of the clean image above
            ``foreground_threshold``), through MONAI's ``RandCropByPosNegLabeld``; None draws patches
            uniformly. Volumes are mostly air: 56 % of uniform 48³ patches of the MNI152 training slabs
            hold less than 5 % brain.
        foreground_threshold: intensity above which a voxel counts as foreground (images in [0, 1]).
        target_noise: the targets carry noise of their own, as a real scan does: with probability
            :data:`TARGET_NOISE_PROB` noise of ``noise``'s first kind (``rician`` or ``gaussian``), of a
            level drawn up to ``target_noise`` (as ``absolute`` says), is added before the clean copy,
            and ``noise`` then on top of it. ``sigma`` stays the level added last, so a noise-aware net
            learns to remove the noise it is told of and keep texture finer than it, as when a real
            scan is the reference; a net trained on noise-free targets learns that every fine texture
            is noise. None: noise-free targets.
    """
    from monai.transforms import Compose, CopyItemsd, EnsureTyped, RandFlipd, RandRotate90d, SpatialPadd

    size = [patch_size] * spatial_dims if isinstance(patch_size, int) else list(patch_size)
    keys = ["image", "target"] if paired else ["image"]
    steps: list[Any] = [
        EnsureTyped(keys=keys, data_type="tensor", track_meta=True),
        SpatialPadd(keys=keys, spatial_size=size, mode="reflect"),
        *_patch_steps(keys, size, foreground, foreground_threshold),
    ]
    if augment:
        steps += [RandFlipd(keys=keys, prob=0.5, spatial_axis=a) for a in range(spatial_dims)]
        steps.append(RandRotate90d(keys=keys, prob=0.5, spatial_axes=(spatial_dims - 2, spatial_dims - 1)))
    if target_noise and not paired and noise is not None:
        steps.append(_target_noise_step(noise, target_noise, absolute, noise_kwargs))
    if not paired:
        steps.append(CopyItemsd(keys="image", names="target"))
    if noise is not None:
        steps += _noise_steps(noise, level_range, absolute, noise_kwargs)
    return Compose(steps)


def _patch_steps(
    keys: list[str], size: list[int], foreground: float | None, foreground_threshold: float
) -> list[Any]:
    """The random patch of :func:`train_transforms`: uniform, or centred on foreground with
    probability ``foreground`` (the clean image above ``foreground_threshold``)."""
    from monai.transforms import (
        CopyItemsd,
        DeleteItemsd,
        RandCropByPosNegLabeld,
        RandSpatialCropd,
        ThresholdIntensityd,
    )

    if foreground is None:
        return [RandSpatialCropd(keys=keys, roi_size=size, random_size=False)]
    if not 0.0 <= foreground <= 1.0:
        raise ValueError(f"foreground must be a probability in [0, 1], not {foreground}")
    mask = "_foreground"
    return [
        CopyItemsd(keys=keys[-1], names=mask),  # the clean image (``target`` of a pair)
        ThresholdIntensityd(keys=mask, threshold=foreground_threshold, above=True, cval=0.0),
        RandCropByPosNegLabeld(
            keys=keys,
            label_key=mask,
            spatial_size=size,
            pos=foreground,
            neg=1.0 - foreground,
            num_samples=1,
        ),
        DeleteItemsd(keys=mask),
    ]


#: probability that a training target carries noise of its own (``target_noise`` of :func:`train_transforms`)
TARGET_NOISE_PROB = 0.75
#: noise kinds a target may carry (an impulse or low-light target would not be a scan's own noise)
TARGET_NOISE_KINDS = ("rician", "gaussian")


def _target_noise_step(
    noise: str, target_noise: float, absolute: bool, noise_kwargs: Mapping[str, Any] | None
) -> Any:
    """The noise of the targets themselves (``target_noise`` of :func:`train_transforms`)."""
    import medden.transforms as mt  # defers MONAI

    kind = noise.split("+")[0]
    if kind not in TARGET_NOISE_KINDS:
        raise ValueError(f"target noise takes a {' or '.join(TARGET_NOISE_KINDS)} noise kind, not {kind!r}")
    kwargs = {"reference": 1.0} if kind in _REFERENCED else {}
    kwargs.update(noise_kwargs or {})
    return mt.RandAddNoised(
        keys="image",
        kind=kind,
        prob=TARGET_NOISE_PROB,
        level_range=(0.0, float(target_noise)),
        absolute=absolute,
        **kwargs,
    )


def _noise_steps(
    noise: str,
    level_range: Sequence[float] | None,
    absolute: bool,
    noise_kwargs: Mapping[str, Any] | None,
) -> list[Any]:
    """The noise of :func:`train_transforms` on ``image`` (one kind drawn per item when ``noise`` joins
    several with ``+``), then its level copied to ``sigma``."""
    from monai.transforms import OneOf

    import medden.transforms as mt  # defers MONAI

    adders = []
    for kind in noise.split("+"):  # several kinds: one drawn per item, with equal odds
        kwargs = {"reference": 1.0} if kind in _REFERENCED else {}
        kwargs.update(noise_kwargs or {})
        adders.append(
            mt.RandAddNoised(
                keys="image", kind=kind, prob=1.0, level_range=level_range, absolute=absolute, **kwargs
            )
        )
    return [adders[0] if len(adders) == 1 else OneOf(adders), NoiseLevelToKeyd(keys="image", name="sigma")]


class NoiseLevelToKeyd:
    """Copy the level a medden noise transform drew on ``keys`` into ``name`` (float32; 0 if not applied).

    Noise-level-aware nets then receive it batched as ``batch["sigma"]``.
    """

    def __init__(self, keys: str, name: str = "sigma") -> None:
        self.key, self.name = keys, name

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        img = d[self.key]
        rec = getattr(img, "meta", {}).get("noise") if hasattr(img, "meta") else None
        rec = rec or (d.get(f"{self.key}_meta_dict") or {}).get("noise")
        if rec is None:
            raise KeyError(f"no noise record on {self.key!r}: put a medden noise transform before this one")
        d[self.name] = np.float32(rec["level"] if rec["applied"] else 0.0)
        return d


def validation_items(
    images: Sequence[np.ndarray],
    noise: str | None,
    levels: Sequence[float],
    absolute: bool = False,
    seed: int = 1234,
    noise_kwargs: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Fixed noisy/clean validation pairs: every image at every level, with a fixed seed per pair
    (several kinds joined by ``+``: every pair for each kind)."""
    if noise is None:
        raise ValueError("validation_items needs a noise kind; paired data are validated as they are")
    if "+" in noise:
        return [
            item
            for k, kind in enumerate(noise.split("+"))
            for item in validation_items(images, kind, levels, absolute, seed + 100_000 * k, noise_kwargs)
        ]
    model = noise_model(noise)
    arg = "sigma" if absolute else model.level_argument
    kwargs = {"reference": 1.0} if model.takes_reference else {}
    kwargs.update(noise_kwargs or {})
    items = []
    for i, clean in enumerate(images):
        for j, level in enumerate(levels):
            noisy = model.function(clean, rng=seed + 1000 * i + j, **{arg: level}, **kwargs)
            items.append({"image": noisy.astype(np.float32), "target": clean, "sigma": np.float32(level)})
    return items
