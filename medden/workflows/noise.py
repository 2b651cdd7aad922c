"""Add noise to a file, or estimate the noise level of one (``medden noise``, ``medden estimate-noise``)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from medden.errors import UsageError

KINDS = ("rician", "salt_pepper", "gaussian", "poisson_gaussian", "lowlight")
ESTIMABLE_KINDS = ("rician", "gaussian", "salt_pepper")

#: the meaning and valid interval of ``--level`` for each kind: (argument, low, high, low inclusive)
LEVEL_SPEC: dict[str, tuple[str, float, float, bool]] = {
    "rician": ("level", 0.0, 1.0, False),
    "gaussian": ("level", 0.0, 1.0, False),
    "salt_pepper": ("amount", 0.0, 1.0, True),
    "poisson_gaussian": ("peak", 0.0, float("inf"), False),
    "lowlight": ("gain", 0.0, 1.0, False),
}


def check_level(kind: str, level: float) -> str:
    """Validate ``level`` for ``kind`` and return the noise-function argument it feeds."""
    if kind not in LEVEL_SPEC:
        raise UsageError(f"unknown noise kind {kind!r}; choose from {', '.join(KINDS)}")
    arg, lo, hi, lo_incl = LEVEL_SPEC[kind]
    ok = np.isfinite(level) and (level >= lo if lo_incl else level > lo) and level <= hi
    if not ok:
        interval = f"{'[' if lo_incl else '('}{lo:g}, {hi:g}]"
        raise UsageError(f"--level for {kind} is the {arg} and must be in {interval}, got {level:g}")
    return arg


def _load(path: Path) -> Any:
    import medden.io as mio

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
        level: the kind's level (relative σ, amount, peak or gain; see :data:`LEVEL_SPEC`).
        sigma: absolute σ in the image's units instead of ``level`` (rician, gaussian).
        seed: random seed; a fresh one is drawn (and returned) when None.
        overwrite: replace an existing output.
        params: further keyword arguments of the noise function (e.g. ``salt_vs_pepper``).

    Returns:
        a JSON-ready record: input, output, kind, parameters, seed and the written path.
    """
    from medden.noise import NOISE_FUNCTIONS

    src, dst = Path(input_path), Path(output_path)
    if kind not in KINDS:
        raise UsageError(f"unknown noise kind {kind!r}; choose from {', '.join(KINDS)}")
    if (level is None) == (sigma is None):
        raise UsageError("give exactly one of --level or --sigma")
    if sigma is not None:
        if kind not in ("rician", "gaussian"):
            raise UsageError(f"--sigma applies to rician and gaussian noise, not {kind}")
        if not (np.isfinite(sigma) and sigma > 0):
            raise UsageError(f"--sigma must be > 0, got {sigma:g}")
        noise_args: dict[str, Any] = {"sigma": float(sigma)}
    else:
        noise_args = {check_level(kind, float(level)): float(level)}
    if dst.exists() and dst.resolve() == src.resolve():
        raise UsageError("the output would replace the input; choose another output path")
    if dst.exists() and not overwrite:
        raise UsageError(f"output exists: {dst} (use --overwrite to replace it)")
    loaded = _load(src)
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    try:
        noisy = NOISE_FUNCTIONS[kind](loaded.array, rng=seed, **noise_args, **params)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    import medden.io as mio

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
    """Estimate the noise level of a file for ``kind`` (rician, gaussian or salt_pepper)."""
    from medden.noise import estimate_noise

    if kind not in ESTIMABLE_KINDS:
        raise UsageError(f"no estimator for {kind!r}; choose from {', '.join(ESTIMABLE_KINDS)}")
    loaded = _load(Path(input_path))
    try:
        est = estimate_noise(loaded.array, kind)
    except ValueError as exc:
        raise UsageError(f"{input_path}: {exc}") from None
    return {"input": str(input_path), **est.to_dict()}
