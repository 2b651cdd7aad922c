"""The one denoiser protocol, and a loaded model with its provenance.

Every denoiser medden runs, a trained net or a classical baseline, is called ``model(x, sigma=None)``
on a ``(B, C, H, W)`` or ``(B, C, D, H, W)`` tensor in [0, 1] (after the workflow's intensity scaling),
and says what a caller needs to know: :class:`Denoiser`. :class:`LoadedModel` is that protocol for
something loaded from a name, a bundle or a weights file, with where it came from (name, weights and
their sha256). Capabilities are read here and only here: nobody else probes a model with
``getattr(..., default)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

#: how a model expects its input scaled into [0, 1] (:class:`medden.inferers.IntensityScaler` modes)
INTENSITIES = ("minmax", "percentile", "dtype", "unit")
#: self-ensemble sizes (:class:`medden.inferers.SelfEnsemble`): geometric copies averaged per call, 1: off
ENSEMBLE_SIZES = (1, 2, 4, 8)


def is_ensemble_size(value: Any) -> bool:
    """``value`` is one of :data:`ENSEMBLE_SIZES` as an integer: ``2.0`` (a float from JSON or a config
    override) and ``True`` are not, as a count of copies they would fail later, as a slice index.

    Example:
        >>> [is_ensemble_size(v) for v in (2, 2.0, True, 3)]
        [True, False, False, False]
    """
    return isinstance(value, int) and not isinstance(value, bool) and value in ENSEMBLE_SIZES


@runtime_checkable
class Denoiser(Protocol):
    """What every denoiser is (as deepinv's ``Denoiser``).

    Attributes:
        spatial_dims: 2 (planes) or 3 (volumes).
        in_channels: input channels it takes (None: any).
        noise_aware: it uses ``sigma`` (and estimates it when not given).
        default_mode: the inference mode it was made for: ``2d`` or ``3d``.
        intensity: the scaling into [0, 1] it was trained for: ``minmax`` per unit (medical images) or
            ``dtype`` (0–255 photographs).
    """

    spatial_dims: int
    in_channels: int | None
    noise_aware: bool
    default_mode: str
    intensity: str

    def __call__(self, x: Any, sigma: Any = None) -> Any: ...


@dataclass
class LoadedModel:
    """A denoiser ready to run, with its provenance; implements :class:`Denoiser`.

    Attributes:
        name: what the user asked for (model, bundle or net name).
        fn: the net (in eval mode, on its device) or the baseline.
        spatial_dims, in_channels, noise_aware, default_mode, intensity: see :class:`Denoiser`.
        weights: the weights file (None for baselines).
        sha256: the weights file's sha256 (None for baselines).
        kind: ``net``, ``bundle``, ``baseline`` or ``callable``.
        ensemble: geometric copies it is averaged over by default
            (:class:`medden.inferers.SelfEnsemble`; 1: none); a bundle's metadata may set more.
        extra: anything else worth recording (bundle version, net arguments, baseline settings).
    """

    name: str
    fn: Any
    spatial_dims: int
    in_channels: int | None
    noise_aware: bool
    weights: Path | None = None
    sha256: str | None = None
    kind: str = "net"
    default_mode: str = "2d"
    extra: dict[str, Any] = field(default_factory=dict)
    intensity: str = "minmax"
    ensemble: int = 1

    def __call__(self, x: Any, sigma: Any = None) -> Any:
        return self.fn(x) if sigma is None else self.fn(x, sigma)

    @classmethod
    def wrap(cls, fn: Denoiser, name: str, kind: str, **fields: Any) -> LoadedModel:
        """A :class:`Denoiser` (a medden net or baseline) with its provenance ``fields``."""
        values = {
            "spatial_dims": int(fn.spatial_dims),
            "in_channels": fn.in_channels,
            "noise_aware": bool(fn.noise_aware),
            "default_mode": fn.default_mode,
            "intensity": fn.intensity,
        }
        return cls(name=name, fn=fn, kind=kind, **{**values, **fields})

    @classmethod
    def of_callable(cls, fn: Any) -> LoadedModel:
        """Any ``fn(x, sigma=None)`` of the Python API: a :class:`Denoiser` as it is, else a 2D,
        any-channel, blind denoiser on min–max scaled input."""
        if isinstance(fn, Denoiser):
            return cls.wrap(fn, type(fn).__name__, "callable")
        return cls(type(fn).__name__, fn, 2, None, False, kind="callable")

    def provenance(self) -> dict[str, Any]:
        """The model part of a provenance record."""
        return {
            "model": self.name,
            "model_kind": self.kind,
            "weights": str(self.weights) if self.weights else None,
            "weights_sha256": self.sha256,
            **self.extra,
        }
