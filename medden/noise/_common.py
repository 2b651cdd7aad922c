"""Helpers shared by the noise functions: array/tensor handling and random generators."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np

RngLike: TypeAlias = "int | np.random.Generator | np.random.RandomState | None"


def is_tensor(x: Any) -> bool:
    """True for a torch tensor (MetaTensor included) without importing torch eagerly."""
    return type(x).__module__.split(".")[0] in {"torch", "monai"} and hasattr(x, "detach")


def as_rng(rng: Any = None) -> np.random.Generator | np.random.RandomState:
    """A numpy generator from a seed, a Generator, a RandomState (MONAI's ``self.R``) or None."""
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a seed, numpy Generator or RandomState, not {type(rng).__name__}")


def standard_normal(rng: np.random.Generator | np.random.RandomState, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape) if isinstance(rng, np.random.Generator) else rng.standard_normal(shape)


def uniform(rng: np.random.Generator | np.random.RandomState, shape: tuple[int, ...]) -> np.ndarray:
    return rng.random(shape) if isinstance(rng, np.random.Generator) else rng.random_sample(shape)


def poisson(rng: np.random.Generator | np.random.RandomState, lam: np.ndarray) -> np.ndarray:
    return rng.poisson(lam)


def permutation(rng: np.random.Generator | np.random.RandomState, n: int) -> np.ndarray:
    return rng.permutation(n)


def float_array(x: Any) -> np.ndarray:
    """``x`` as a float numpy array (float32/float64 kept, anything else as float64), no copy if possible."""
    if is_tensor(x):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    return arr


def like(result: np.ndarray, x: Any) -> Any:
    """Return ``result`` (numpy) as the type of ``x``: a tensor on x's device and dtype, or numpy.

    A MONAI MetaTensor input gives a MetaTensor with x's metadata.
    """
    if is_tensor(x):
        import torch

        dtype = x.dtype if x.is_floating_point() else torch.float32
        out = torch.as_tensor(result, dtype=dtype, device=x.device)
        if hasattr(x, "meta") and hasattr(x, "copy_meta_from"):
            from monai.data import MetaTensor

            out = MetaTensor(out, meta=dict(x.meta), applied_operations=list(x.applied_operations))
        return out
    return result


def image_max(x: np.ndarray) -> float:
    """The reference intensity of the BrainWeb protocol: the image maximum (0 → 1 to avoid σ = 0)."""
    m = float(np.max(x)) if x.size else 0.0
    return m if m > 0 else 1.0


def resolve_sigma(x: np.ndarray, level: float | None, sigma: float | None, reference: float | None) -> float:
    """Absolute σ from either ``sigma`` or ``level × reference`` (reference: image max by default)."""
    if (level is None) == (sigma is None):
        raise ValueError("give exactly one of `level` (relative to the reference) or `sigma` (absolute)")
    if sigma is not None:
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        return float(sigma)
    if level < 0:
        raise ValueError(f"level must be >= 0, got {level}")
    ref = image_max(x) if reference is None else float(reference)
    return float(level) * ref
