"""Add noise to a file, or estimate the noise level of one (``medden noise``, ``medden estimate-noise``)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

import medden.io as mio
from medden.errors import UsageError
from medden.noise import NOISE_MODELS, SIGMA_KINDS, estimate_noise, kinds_where, noise_model, per_kind

#: the noise kinds (derived from :data:`medden.noise.NOISE_MODELS`, as the two tables below)
KINDS: tuple[str, ...] = tuple(NOISE_MODELS)
ESTIMABLE_KINDS: tuple[str, ...] = kinds_where(lambda m: m.estimator is not None)

#: the meaning and valid interval of ``--level`` for each kind: (argument, low, high, low inclusive);
#: the high end is inclusive. Kept for callers of the tuple; :meth:`medden.noise.NoiseModel.check_level`
#: is the check.
LEVEL_SPEC: dict[str, tuple[str, float, float, bool]] = per_kind(
    lambda m: (m.level_argument, *m.level_interval, m.interval_closed[0])
)


def check_level(kind: str, level: float) -> str:
    """Validate ``level`` for ``kind`` and return the noise-function argument it feeds.

    Raises:
        UsageError: for an unknown kind or a level outside the kind's interval.
    """
    return noise_model(kind).check_level(level)


def _load(path: Path) -> Any:
    if not path.exists():
        raise UsageError(f"input not found: {path}")
    return mio.load(path)


def add_noise_to_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    kind: str,
    level: float | None = None,
    sigma: float | None = None,
    seed: int | None = None,
    overwrite: bool = False,
    **params: Any,
) -> dict[str, Any]:
    """Read an image, NIfTI or DICOM series, add noise, and write it in the same format and range.

    Args:
        input_path: image file (png/jpg/bmp/tif), NIfTI file, or DICOM series folder/file.
        output_path: where to write (same format as the input; a folder for a DICOM series).
        kind: one of :data:`KINDS`.
        level: the kind's level (relative σ, amount, peak or gain; see
            :attr:`medden.noise.NoiseModel.level_argument`).
        sigma: absolute σ in the image's units instead of ``level`` (rician, gaussian).
        seed: random seed; a fresh one is drawn (and returned) when None.
        overwrite: replace an existing output.
        params: further keyword arguments of the noise function (e.g. ``salt_vs_pepper``).

    Returns:
        a JSON-ready record: input, output, kind, parameters, seed and the written path.
    """
    src, dst = Path(input_path), Path(output_path)
    model = noise_model(kind)
    if (level is None) == (sigma is None):
        raise UsageError("give exactly one of --level or --sigma")
    if sigma is not None:
        if not model.level_is_sigma:
            raise UsageError(f"--sigma applies to {' and '.join(SIGMA_KINDS)} noise, not {kind}")
        if not (np.isfinite(sigma) and sigma > 0):
            raise UsageError(f"--sigma must be > 0, got {sigma:g}")
        noise_args: dict[str, Any] = {"sigma": float(sigma)}
    else:
        noise_args = {model.check_level(float(level)): float(level)}
    if dst.exists() and dst.resolve() == src.resolve():
        raise UsageError("the output would replace the input; choose another output path")
    if dst.exists() and not overwrite:
        raise UsageError(f"output exists: {dst} (use --overwrite to replace it)")
    loaded = _load(src)
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    try:
        noisy = model.function(loaded.array, rng=seed, **noise_args, **params)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None

    processing = f"noise {kind} {noise_args} seed {seed}"
    written = mio.save(loaded, noisy, dst, description=f"noise {kind}", processing=processing)
    return {
        "input": str(src),
        "output": str(written),
        "kind": kind,
        **noise_args,
        **params,
        "seed": seed,
    }


def estimate_noise_of_file(input_path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Estimate the noise level of a file for ``kind`` (one of :data:`ESTIMABLE_KINDS`)."""
    if kind not in ESTIMABLE_KINDS:
        raise UsageError(f"no estimator for {kind!r}; choose from {', '.join(ESTIMABLE_KINDS)}")
    loaded = _load(Path(input_path))
    try:
        est = estimate_noise(loaded.array, kind)
    except ValueError as exc:
        raise UsageError(f"{input_path}: {exc}") from None
    return {"input": str(input_path), **est.to_dict()}
