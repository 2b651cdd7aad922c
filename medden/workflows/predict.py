"""One way to run a model on an array: :func:`predict`, the path ``medden denoise`` ships.

``predict(model, array, layout, options)`` scales one image or volume into [0, 1] with an exactly
invertible per-unit map (:class:`medden.inferers.IntensityScaler`), estimates the noise level for the
models that use it, runs the model slice-wise (2D), on slice stacks (2.5D), along each axis
(tri-planar), by sliding window (3D) or in tiles, and maps the result back to the input's units.
Non-finite values are kept out of the model and given back unchanged. ``medden denoise`` (every unit
of a batch), the Python API (:func:`medden.denoise`), the bundles and ``medden evaluate`` all call
it, so an evaluation scores exactly what users run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from medden.denoiser import ENSEMBLE_SIZES, INTENSITIES, LoadedModel, is_ensemble_size
from medden.errors import UsageError
from medden.inferers import IntensityScaler, SelfEnsemble, infer, triplanar_axes
from medden.noise import estimate_noise

MODES = ("2d", "2.5d", "triplanar", "3d")


@dataclass
class Options:
    """How to denoise (see :func:`run_batch`); :meth:`validate` checks every field.

    Attributes:
        mode: ``2d``, ``2.5d``, ``triplanar`` (a 2D model along each axis of a volume, averaged) or
            ``3d``; None for the model's own.
        axis: slicing axis of 2D modes (0, 1, 2 or -1).
        noise_level: σ on the scaled [0, 1] data for noise-level-aware models, ``auto`` (estimated per
            unit) or None.
        noise_sigma: σ in the input's own units (converted through the intensity scaling), instead of
            ``noise_level``: what an evaluation that knows the true σ gives.
        batch_size: slices per call in 2D modes.
        overlap: sliding-window overlap in 3D mode, in [0, 1).
        roi_size: sliding-window side in 3D mode (at least 8).
        context: neighbouring slices on each side in 2.5D mode (None: what the net takes).
        intensity: scaling into [0, 1] (:data:`INTENSITIES`); None for the model's own.
        ensemble: geometric copies averaged per call (:class:`medden.inferers.SelfEnsemble`: 1 off,
            2, 4 or 8, at that many times the cost); None for the model's own (a bundle's metadata).
        figures: also write a three-panel figure per unit.
    """

    mode: str | None = None
    axis: int = -1
    noise_level: str | float | None = "auto"
    noise_sigma: float | None = None
    batch_size: int = 8
    overlap: float = 0.25
    roi_size: int = 64
    context: int | None = None
    intensity: str | None = None
    ensemble: int | None = None
    figures: bool = False

    def validate(self) -> Options:
        """Raise a one-line :class:`UsageError` for any bad field; return self."""
        if self.mode is not None and self.mode not in MODES:
            raise UsageError(f"mode (--mode) must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.axis not in (0, 1, 2, -1):
            raise UsageError(f"axis (--axis) must be 0, 1, 2 or -1, got {self.axis!r}")
        if self.noise_level not in (None, "auto"):
            if isinstance(self.noise_level, bool) or not isinstance(self.noise_level, (int, float)):
                raise UsageError(
                    f"noise level (--noise-level) must be 'auto' or a number, got {self.noise_level!r}"
                )
            if not 0.0 < float(self.noise_level) < 1.0:
                raise UsageError(f"noise level (--noise-level) must be in (0, 1), got {self.noise_level:g}")
        if self.noise_sigma is not None and not (np.isfinite(self.noise_sigma) and self.noise_sigma > 0):
            raise UsageError(f"noise sigma must be a positive number, got {self.noise_sigma!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UsageError(f"batch size (--batch-size) must be >= 1, got {self.batch_size}")
        if not isinstance(self.roi_size, int) or self.roi_size < 8:
            raise UsageError(f"roi size (--roi-size) must be >= 8, got {self.roi_size}")
        if not 0.0 <= self.overlap < 1.0:
            raise UsageError(f"overlap (--overlap) must be in [0, 1), got {self.overlap:g}")
        if self.context is not None and (not isinstance(self.context, int) or self.context < 1):
            raise UsageError(f"context must be >= 1 slice, got {self.context}")
        if self.ensemble is not None and not is_ensemble_size(self.ensemble):
            sizes = ", ".join(map(str, ENSEMBLE_SIZES))
            raise UsageError(f"ensemble (--ensemble) must be one of {sizes}, got {self.ensemble!r}")
        if self.intensity is not None and self.intensity not in INTENSITIES:
            raise UsageError(
                f"intensity (--intensity) must be one of {', '.join(INTENSITIES)}, got {self.intensity!r}"
            )
        return self


def _scaled_sigma(arr01: np.ndarray, noise_level: str | float | None, modality: str | None) -> float | None:
    """σ on the [0, 1] scale: given, or estimated from the scaled data (``auto``, the default) by the
    PCA estimator: on the foreground patches for MR (Rician noise is Gaussian there; slices, thin
    series and volumes alike), on all weakly textured patches otherwise (measured in
    ``benchmarks/results/estimator.md``)."""
    if noise_level not in (None, "auto"):
        return float(noise_level)
    return float(estimate_noise(arr01, "rician" if modality == "MR" else "gaussian").sigma)


LAYOUTS = ("image", "volume", "color_volume")


def layout_of(kind: str, array: np.ndarray) -> str:
    """How :func:`predict` reads an array of a loaded ``kind``: a 2D image ``(C, H, W)``, a
    volume ``(X, Y, Z[, T])`` (NIfTI, gray DICOM) or a color DICOM volume ``(X, Y, Z, 3)``."""
    if kind == "image":
        return "image"
    if kind == "dicom" and array.ndim == 4:
        return "color_volume"
    return "volume"


def check_mode(model: LoadedModel, mode: str | None) -> str:
    """The mode to use with ``model`` (its own by default); a usage error when they do not fit."""
    mode = mode or model.default_mode
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "3d" and model.spatial_dims != 3:
        raise UsageError(f"--mode 3d needs a 3D model; {model.name} is 2D")
    if mode in ("2d", "2.5d", "triplanar") and model.spatial_dims != 2:
        raise UsageError(f"{model.name} is a 3D model: use --mode 3d")
    if mode == "2.5d":
        context_for(model, None)
    return mode


def context_for(model: LoadedModel, context: int | None) -> int:
    """Neighbouring slices on each side in 2.5D mode: those the net was trained with (its input
    channels are ``2·context + 1``); a usage error for a model that does not take slice stacks."""
    want = model.in_channels
    if want is None or want < 3 or want % 2 == 0:
        raise UsageError(
            f"--mode 2.5d needs a net trained on 2k+1 neighbouring slices as channels; "
            f"{model.name} takes {want or 'any number of'} channel(s): use --mode 2d"
        )
    if context is not None and 2 * context + 1 != want:
        raise UsageError(f"{model.name} takes {want} slices as channels, not 2*{context}+1")
    return (want - 1) // 2


def predict(
    model: LoadedModel,
    array: np.ndarray,
    layout: str,
    options: Options,
    modality: str | None = None,
    progress: Any = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Denoise one image or volume in its own units; return the result and what was measured.

    ``layout`` (see :func:`layout_of`): ``image`` ``(C, H, W)``; ``volume`` ``(X, Y, Z)``, or
    ``(X, Y, Z, T)`` with each volume of the series denoised separately, or ``(X, Y)`` (a one-slice
    volume); ``color_volume`` ``(X, Y, Z, 3)``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    arr = np.asarray(array)
    bad = ~np.isfinite(arr) if arr.dtype.kind in "fc" else None
    if bad is not None and bad.any():
        # NaN/Inf would spread through every convolution (one NaN voxel made a whole NaN slice): the
        # denoiser sees each one replaced by its nearest finite neighbour; the output keeps them as they were
        result, info = predict(model, fill_nonfinite(arr, bad), layout, options, modality, progress)
        result = np.asarray(result, dtype=np.result_type(result.dtype, arr.dtype))
        result[bad] = arr[bad]
        return result, {**info, "nonfinite": int(bad.sum())}
    if layout == "volume" and arr.ndim == 2:
        out, info = predict(model, arr[None], "image", options, modality, progress)
        return out[0], info
    if layout == "volume" and arr.ndim == 4:
        outs, infos = zip(
            *(
                predict(model, arr[..., t], "volume", options, modality, progress)
                for t in range(arr.shape[-1])
            )
        )
        return np.stack(outs, axis=-1), {**infos[0], "clipped": sum(i["clipped"] for i in infos)}
    return _predict_one(model, arr, layout, options, modality, progress)


def _predict_one(
    model: LoadedModel, arr: np.ndarray, layout: str, options: Options, modality: str | None, progress: Any
) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`predict` on one finite image ``(C, H, W)``, volume ``(X, Y, Z)`` or color volume."""
    is_volume = layout != "image"
    chw = channel_first(arr, layout)
    mode = check_mode(model, options.mode)
    if not is_volume and mode == "triplanar":
        mode = "2d"  # a single slice has one plane (as a volume too thin along two axes: triplanar_axes)
    if not is_volume and mode != "2d":
        raise UsageError(f"--mode {mode} needs a volume; this input is a 2D image")
    scaler = IntensityScaler.fit(chw, mode=options.intensity or model.intensity)
    x = scaler.forward(chw.astype(np.float32))
    sigma = _unit_sigma(model, x, scaler.span, options, modality)
    roi = (options.roi_size,) * (chw.ndim - 1)
    context = context_for(model, options.context) if mode == "2.5d" else 0
    size = model.ensemble if options.ensemble is None else options.ensemble
    fn = SelfEnsemble(model.fn, size, model.spatial_dims) if size > 1 else model.fn
    outs = [
        infer(
            fn,
            g,
            mode=mode,
            axis=options.axis,
            batch_size=options.batch_size,
            sigma=sigma,
            roi_size=roi,
            overlap=options.overlap,
            context=context,
            progress=progress,
        ).numpy()
        for g in _channel_groups(model, x, mode)
    ]
    out01 = np.concatenate(outs, axis=0)
    result = scaler.inverse(out01.astype(np.float64), chw)
    # a voxel the model returned unchanged is given back exactly as it came (a switching denoiser
    # changes only the impulses: the scaling round trip must not move the others by a rounding error)
    result = np.where(out01 == x, chw, result)
    result = np.moveaxis(result, 0, -1) if layout == "color_volume" else (result[0] if is_volume else result)
    info = {"clipped": int(scaler.clipped), "sigma": sigma, "mode": mode, "ensemble": size, "nonfinite": 0}
    return result, info


def _unit_sigma(
    model: LoadedModel, x: np.ndarray, span: float, options: Options, modality: str | None
) -> float | None:
    """The σ handed to a noise-level-aware model on the scaled data ``x`` (None for the others): the
    true σ in the input's units (``noise_sigma``) scaled by the intensity span, the given level, or the
    level estimated from ``x``."""
    if not model.noise_aware:
        return None
    if options.noise_sigma is not None:
        return float(options.noise_sigma) / span
    return _scaled_sigma(x, options.noise_level, modality)


def _channel_groups(model: LoadedModel, x: np.ndarray, mode: str) -> list[np.ndarray]:
    """``x`` as the model takes it: whole, or one channel at a time for a gray model on color input."""
    channels, want = x.shape[0], model.in_channels
    if want is None or want == channels or mode == "2.5d":
        return [x]
    if want == 1:
        return [x[c : c + 1] for c in range(channels)]
    raise UsageError(f"{model.name} takes {want}-channel input; this input has {channels}")


def fill_nonfinite(array: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """A copy of ``array`` with each ``bad`` (non-finite) element replaced by its nearest good one.

    Example:
        >>> fill_nonfinite(np.array([1.0, np.nan, np.nan, 4.0]), np.array([False, True, True, False]))
        array([1., 1., 4., 4.])
    """
    from scipy.ndimage import distance_transform_edt

    if bad.all():
        raise ValueError("the image has no finite values (all NaN or infinite)")
    idx = distance_transform_edt(bad, return_distances=False, return_indices=True)
    return np.asarray(array)[tuple(idx)]


def channel_first(array: np.ndarray, layout: str) -> np.ndarray:
    """An array of ``layout`` as the channel-first ``(C, ...)`` array the denoisers take; a series of
    volumes ``(X, Y, Z, T)`` gives its first volume."""
    a = np.asarray(array)
    if layout == "color_volume":
        return np.moveaxis(a, -1, 0)
    if layout == "volume":
        return (a[..., 0] if a.ndim == 4 else a)[None]
    return a


def work_size(layout: str, shape: tuple[int, ...], mode: str, axis: int) -> int:
    """Progress steps of one unit: the slices along ``axis`` of each volume (every mode reports them,
    3D ones at the end of the volume), those along each axis in tri-planar mode; 1 for an image."""
    if layout == "image" or len(shape) < 3:
        return 1
    if mode == "triplanar":
        per_volume = sum(shape[a] for a in triplanar_axes(shape[:3], axis))
    else:
        per_volume = shape[axis % 3]
    return per_volume * (shape[3] if layout == "volume" and len(shape) == 4 else 1)
