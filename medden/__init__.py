"""medden: medical image denoising as a MONAI plugin.

Importing this package is cheap: no torch, no MONAI, no prints, no network.
Heavy submodules are imported lazily on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

from medden.version import __version__

_LAZY_SUBMODULES = {
    "noise",
    "transforms",
    "metrics",
    "io",
    "nets",
    "data",
    "engine",
    "losses",
    "baselines",
    "inferers",
    "workflows",
}


def __getattr__(name: str) -> Any:
    if name == "denoise":  # the notebook API: medden.denoise(data, model=..., mode=...)
        from medden.workflows.denoise import denoise  # defers torch

        return denoise
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"medden.{name}")
    raise AttributeError(f"module 'medden' has no attribute {name!r}")


__all__ = ["__version__", "denoise", *sorted(_LAZY_SUBMODULES)]
