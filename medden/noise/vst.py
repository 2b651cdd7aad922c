"""The Rician variance-stabilising transform (VST) and its exact unbiased inverse.

Reference: A. Foi, "Noise estimation and removal in MR imaging: the variance-stabilization approach",
Proc. IEEE ISBI 2011, pp. 1809–1814.

Magnitude MR data ``z`` of a noise-free value ``ν`` and noise ``σ`` follow the Rice distribution
(``scipy.stats.rice(ν / σ, scale=σ)``), whose variance depends on ``ν``. The VST approach: ``y =
f(z / σ)`` has approximately unit variance whatever ``ν``, so a Gaussian denoiser with σ = 1 estimates
``E[f(z / σ) | ν]``; the exact unbiased inverse ``I`` (the map ``E[f(z) | ν] ↦ ν`` for σ = 1) turns that
back into ``ν / σ``. :func:`rician_vst` is ``f(x / σ)``, :func:`rician_vst_inverse` is ``σ · I(y)``.

How ``f`` and ``I`` are built (σ = 1; nothing is read from Foi's published tables, all is computed
here, once, in about 0.1 s, the first time either function is called):

1. Rice moments in closed form: the mean ``m(ν) = sqrt(π/2) · L_{1/2}(−ν²/2)`` written with the
   exponentially scaled Bessel functions (``m = sqrt(π/2) · ((1 + 2a) i0e(a) + 2a i1e(a))``,
   ``a = ν²/4``; no overflow, ``m ≈ ν + 1/(2ν)`` for large ν), the variance ``s² = ν² + 2 − m²``.
2. Start from the delta-method / ODE transform ``f₀(m(ν)) = ∫₀^ν m'(t) / s(t) dt``, i.e.
   ``f₀' = 1 / s(ν(z))`` with ``ν(z)`` the inverse of ``m``, continued below ``m(0) = sqrt(π/2)``
   with the slope ``1 / s(0)``, and ``f₀(0) = 0``. Its std ``std{f₀(z) | ν}`` spans 0.89–1.06.
3. Refine it (Foi's optimisation, done here as a regularised Gauss–Newton least-squares fit):
   ``f' = f₀' · exp(Σ θ_j φ_j)`` with hat functions ``φ_j`` on knots over ``z ∈ [0, 12]``; ``θ``
   minimises ``Σ_ν (std{f(z) | ν} − 1)² + μ ‖Δ²θ‖²`` over ``ν ∈ [0, 24]``. The smoothness penalty
   keeps ``f`` smooth, its slope between 0.8 and 7 (an unpenalised fit gets to 1 ± 0.003 only with
   an almost vertical ``f`` at 0); the result has ``std{f(z) | ν}`` within [0.986, 1.012] for every
   ``ν`` (lowest at ν = 0, highest near ν = 1.15; 1 ± 0.0003 beyond ν = 10).
4. Every expectation is a Simpson quadrature against the Rice pdf
   ``z · exp(−(z − ν)² / 2) · i0e(z ν)`` over ``ν ± 9`` on a grid of ``z`` with step 0.02, on which
   ``f`` is tabulated up to ``z = 73`` (linear interpolation in between, continued linearly beyond:
   ``f(z) ≈ z + 2.73`` for large ``z``). Negative inputs are treated as 0 (a magnitude is ``>= 0``).
5. The exact unbiased inverse: ``E[f(z) | ν]`` tabulated for ``ν ∈ [0, 64]``, and ``ν²`` interpolated
   as a function of it with a monotone cubic (PCHIP; ``ν²`` because ``E[f(z) | ν] − E[f(z) | 0] ∝ ν²``
   near 0); values below ``E[f(z) | 0]`` map to 0, values beyond the table are continued linearly.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from medden.noise._common import float_array, like

#: step of the z grid on which f is tabulated and the quadratures are done
_STEP = 0.02
#: half-width of the quadrature window around ν (the Rice std is at most 1)
_HALF_WINDOW = 9.0
#: ν grid of the tables: fine where the Rice distribution changes shape, coarse where it is Gaussian
_NU = np.concatenate([np.arange(0.0, 8.0, 0.05), np.arange(8.0, 24.0, 0.25), np.arange(24.0, 64.5, 1.0)])
#: the fit of f covers ν up to this (beyond, the delta-method start is already within 1 ± 0.001)
_NU_FIT = 24.0
#: knots of the correction exp(Σ θ_j φ_j) of f'; the last one is held at 0
_KNOTS = np.concatenate([np.arange(0.0, 4.0, 0.25), np.arange(4.0, 13.0, 1.0), [14.0]])
#: weight of the smoothness penalty on the second differences of θ
_SMOOTHNESS = 0.1
_ITERATIONS = 10


class _Tables(NamedTuple):
    z: np.ndarray  # grid of z (σ = 1)
    f: np.ndarray  # f on it
    slope: float  # f' beyond the grid
    nu: np.ndarray  # grid of ν of the inverse
    mean: np.ndarray  # E[f(z) | ν] on it, strictly increasing
    nu2: Any  # PCHIP of ν² as a function of E[f(z) | ν]
    end_slope: float  # dE[f(z) | ν] / dν beyond the ν grid


def rice_mean(nu: np.ndarray) -> np.ndarray:
    """Mean of the Rice distribution of σ = 1, ``sqrt(π/2) · L_{1/2}(−ν²/2)``, without overflow."""
    from scipy.special import i0e, i1e

    a = np.asarray(nu, dtype=np.float64) ** 2 / 4
    return math.sqrt(math.pi / 2) * ((1 + 2 * a) * i0e(a) + 2 * a * i1e(a))


def _quadrature(nu: np.ndarray, z: np.ndarray) -> Any:
    """Sparse ``(len(nu), len(z))`` matrix ``P`` with ``P @ h(z) ≈ E[h(z) | ν]`` (Simpson, Rice pdf)."""
    from scipy.sparse import csr_matrix
    from scipy.special import i0e

    n = 2 * round(_HALF_WINDOW / _STEP) + 1  # odd: Simpson
    weights = np.ones(n)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    weights *= _STEP / 3
    start = np.maximum(0, np.round((nu - _HALF_WINDOW) / _STEP)).astype(np.int64)
    idx = start[:, None] + np.arange(n)[None]
    zz, col = z[idx], nu[:, None]
    pdf = zz * np.exp(-0.5 * (zz - col) ** 2) * i0e(zz * col)
    rows = np.arange(0, idx.size + 1, n)
    return csr_matrix(((pdf * weights).ravel(), idx.ravel(), rows), shape=(len(nu), len(z)))


def _cumulative(g: np.ndarray) -> np.ndarray:
    """Trapezoidal ``∫₀^z g`` on the z grid (along the first axis), 0 at z = 0."""
    steps = np.cumsum((g[1:] + g[:-1]) * (_STEP / 2), axis=0)
    return np.concatenate([np.zeros((1,) + g.shape[1:]), steps])


def _delta_slope(z: np.ndarray) -> np.ndarray:
    """``f₀'(z) = 1 / s(ν(z))`` of the delta-method transform (``ν(z) = 0`` below ``m(0)``)."""
    m = rice_mean(_NU)
    s = np.sqrt(np.maximum(_NU**2 + 2 - m**2, 1e-12))
    return 1.0 / np.interp(np.interp(z, m, _NU), _NU, s)


def _moments(quad: Any, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``E[f(z) | ν]`` and ``std{f(z) | ν}`` for the rows of ``quad``."""
    mean = quad @ f
    return mean, np.sqrt(np.maximum(quad @ (f * f) - mean**2, 0.0))


def _fit_slope(quad: Any, z: np.ndarray) -> np.ndarray:
    """``f'`` on the z grid: the delta-method slope times the fitted correction (step 3 of the module)."""
    g0 = _delta_slope(z)
    eye = np.eye(len(_KNOTS))
    phi = np.stack([np.interp(z, _KNOTS, eye[j]) for j in range(len(_KNOTS) - 1)], axis=1)
    diff2 = np.diff(np.eye(phi.shape[1]), 2, axis=0)
    penalty = _SMOOTHNESS * diff2.T @ diff2
    theta = np.zeros(phi.shape[1])
    for _ in range(_ITERATIONS):
        g = g0 * np.exp(phi @ theta)
        f = _cumulative(g)
        mean, std = _moments(quad, f)
        basis = _cumulative(g[:, None] * phi)  # ∂f/∂θ_j
        jac = (quad @ (f[:, None] * basis) - mean[:, None] * (quad @ basis)) / std[:, None]
        lhs = jac.T @ jac + penalty + 1e-9 * np.eye(len(theta))
        step = np.linalg.solve(lhs, -jac.T @ (std - 1.0) - penalty @ theta)
        theta += step
        if np.max(np.abs(step)) < 1e-7:
            break
    return g0 * np.exp(phi @ theta)


@functools.lru_cache(maxsize=1)
def _tables() -> _Tables:
    """Build f and the inverse table once (module docstring, steps 1–5)."""
    from scipy.interpolate import PchipInterpolator

    z = np.arange(0.0, _NU[-1] + _HALF_WINDOW + 2 * _STEP, _STEP)
    quad = _quadrature(_NU, z)
    g = _fit_slope(quad[np.flatnonzero(_NU <= _NU_FIT)], z)
    f = _cumulative(g)
    mean, _ = _moments(quad, f)
    if not np.all(np.diff(mean) > 0):  # f is increasing, the Rice family stochastically ordered in ν
        raise RuntimeError("the Rician VST inverse table is not increasing")
    end_slope = float((mean[-1] - mean[-2]) / (_NU[-1] - _NU[-2]))
    for a in (z, f, mean):
        a.setflags(write=False)
    return _Tables(z, f, float(g[-1]), _NU, mean, PchipInterpolator(mean, _NU**2), end_slope)


def _check_sigma(sigma: float) -> float:
    s = float(sigma)
    if not math.isfinite(s) or s <= 0:
        raise ValueError(f"sigma must be finite and > 0, got {sigma}")
    return s


def rician_vst(x: Any, sigma: float) -> Any:
    """Foi's Rician variance-stabilising transform ``f(x / σ)``: about unit variance for every ``ν``.

    Args:
        x: magnitude data (numpy array or torch tensor, any shape); negative values count as 0.
        sigma: the Rician σ, in x's units.

    Returns:
        ``f(x / σ)``, same type, shape and float dtype as ``x`` (computed in float64; integers give
        float64), ``>= 0`` and increasing in ``x``; ``f(z) ≈ z + c`` for large ``z``.

    Example:
        >>> import numpy as np
        >>> y = rician_vst(np.array([0.0, 0.5, 1.0]), 0.1)
        >>> bool(y[0] == 0 and np.all(np.diff(y) > 0))
        True
    """
    s = _check_sigma(sigma)
    arr = float_array(x)
    t = _tables()
    z = np.maximum(arr.astype(np.float64) / s, 0.0)
    y = np.where(z > t.z[-1], t.f[-1] + (z - t.z[-1]) * t.slope, np.interp(z, t.z, t.f))
    return like(y.astype(arr.dtype, copy=False), x)


def rician_vst_inverse(y: Any, sigma: float) -> Any:
    """The exact unbiased inverse of :func:`rician_vst`: ``σ · ν`` where ``E[f(z) | ν] = y``.

    Applied to an estimate of ``E[rician_vst(z, σ)]`` (a denoised stabilised image) it gives the
    noise-free magnitude ``ν`` without the Rician bias.

    Args:
        y: stabilised data (numpy array or torch tensor, any shape).
        sigma: the Rician σ of the data :func:`rician_vst` was applied to.

    Returns:
        ``ν`` in the units of the original data, ``>= 0`` (0 for ``y <= E[f(z) | ν = 0]``), same type,
        shape and float dtype as ``y``.

    Example:
        >>> import numpy as np
        >>> bool(rician_vst_inverse(np.array([0.0]), 0.1)[0] == 0)
        True
    """
    s = _check_sigma(sigma)
    arr = float_array(y)
    t = _tables()
    v = arr.astype(np.float64).ravel()
    inside = v <= t.mean[-1]
    nu = t.nu[-1] + (v - t.mean[-1]) / t.end_slope  # beyond the table (and NaN)
    nu[inside] = np.sqrt(np.maximum(t.nu2(np.maximum(v[inside], t.mean[0])), 0.0))
    return like((s * nu).reshape(arr.shape).astype(arr.dtype, copy=False), y)


__all__ = ["rice_mean", "rician_vst", "rician_vst_inverse"]
