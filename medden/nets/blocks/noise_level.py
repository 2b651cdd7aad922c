"""Noise level from the data inside a net: Donoho's MAD estimator on the finest diagonal Haar band.

Noise-level-aware nets (DRAN with ``noise_level_input=True``) use it when no σ is given, so
``net(x)`` always works; the workflows pass a better estimate (``medden.noise.estimate``) or the
user's σ.
"""

from __future__ import annotations

import torch


def estimate_sigma(x: torch.Tensor) -> torch.Tensor:
    """Per-sample Gaussian σ of (B, C, …, H, W) data: ``median(|HH|) / 0.6745``, shape (B,)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    if h == 0 or w == 0:
        return x.new_zeros(x.shape[0])
    y = x[..., :h, :w]
    hh = (y[..., 0::2, 0::2] - y[..., 1::2, 0::2] - y[..., 0::2, 1::2] + y[..., 1::2, 1::2]) / 2.0
    return hh.abs().flatten(1).median(dim=1).values / 0.6745


def sigma_map(x: torch.Tensor, sigma: torch.Tensor | float | None) -> torch.Tensor:
    """A (B, 1, …) constant map of σ shaped like ``x`` (σ estimated from ``x`` when None)."""
    if sigma is None:
        s = estimate_sigma(x.detach())
    elif isinstance(sigma, torch.Tensor):
        s = sigma.to(device=x.device, dtype=x.dtype).reshape(-1)
    else:
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
    s = s.expand(x.shape[0])  # one σ for the batch or one per item; no branch, so exports keep B dynamic
    shape = [x.shape[0], 1] + [1] * (x.dim() - 2)
    return s.to(x.dtype).reshape(shape).expand([x.shape[0], 1] + list(x.shape[2:]))
