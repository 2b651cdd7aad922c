"""One :class:`NoiseModel` per noise kind: everything medden knows about a kind, in one place.

The transforms, the CLI's choices and help, the level checks, the training defaults and the
evaluation all read the registry :data:`NOISE_MODELS` (or a table derived from it with
:func:`per_kind` and :func:`kinds_where`), so a kind is described once.

Example:
    >>> m = noise_model("rician")
    >>> m.level_argument, m.default_range, m.level_is_sigma
    ('level', (0.01, 0.09), True)
    >>> m.check_level(0.05)
    'level'
    >>> kinds_where(lambda m: m.estimator is not None)
    ('rician', 'salt_pepper', 'gaussian')
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from medden.errors import UsageError
from medden.noise.estimate import NoiseEstimate, estimate_gaussian, estimate_rician, estimate_salt_pepper
from medden.noise.gaussian import gaussian
from medden.noise.impulse import salt_pepper
from medden.noise.lowlight import lowlight
from medden.noise.poisson import poisson_gaussian
from medden.noise.rician import rician

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class NoiseModel:
    """A noise kind: its function, what its level means, and how to estimate it.

    Attributes:
        kind: the kind's name (``rician``), the key of :data:`NOISE_MODELS` and the CLI's ``--kind``.
        function: the noise function of :mod:`medden.noise`, ``function(x, <level>, ..., rng=...)``.
        level_argument: the name of the function's argument that holds the level (``level``,
            ``amount``, ``peak``, ``gain``); a Rand transform draws it, ``--level`` feeds it.
        level_interval: ``(low, high)`` of a valid user-given level (``--level``, evaluation levels).
        interval_closed: whether ``low`` and ``high`` themselves are valid; a level must be finite
            in any case (so ``peak`` in ``(0, inf]`` excludes infinity).
        default_range: ``(low, high)`` that training draws the level from when none is given; within
            the interval's closure (Gaussian's starts at σ = 0: blind training sees clean patches too).
        level_is_sigma: the level is a Gaussian σ relative to the maximum, so an absolute ``sigma``
            can replace it (``--sigma``, ``absolute=True``) and Gaussian denoisers can take it as σ.
        takes_reference: the function takes ``reference``, the intensity the level is relative to
            (the image maximum by default; 1.0 for training data in [0, 1]).
        estimator: ``estimator(x, reference=None) -> NoiseEstimate`` of :mod:`medden.noise.estimate`
            recovering the level from the noisy image alone, or None.
        description: one line on the physics, for help texts and reports.
        level_help: what ``--level`` means for this kind, for the CLI's help.
    """

    kind: str
    function: Callable[..., Any]
    level_argument: str
    level_interval: tuple[float, float]
    interval_closed: tuple[bool, bool]
    default_range: tuple[float, float]
    level_is_sigma: bool
    takes_reference: bool
    estimator: Callable[..., NoiseEstimate] | None
    description: str
    level_help: str

    def __post_init__(self) -> None:
        """Refuse an inconsistent spec when it is made, not when a user first needs it."""
        lo, hi = self.level_interval
        dlo, dhi = self.default_range
        problems = [
            f"its function has no argument {name!r}"
            for name in (self.level_argument, *(["sigma"] if self.level_is_sigma else []))
            if not self.accepts(name)
        ]
        if self.takes_reference != self.accepts("reference"):
            problems.append(f"takes_reference={self.takes_reference} disagrees with its function")
        if not lo <= dlo <= dhi <= hi:
            problems.append(f"default range {self.default_range} is not within {self.interval_text}")
        if problems:
            raise ValueError(f"noise model {self.kind!r}: " + "; ".join(problems))

    def accepts(self, parameter: str) -> bool:
        """Whether the noise function takes a keyword argument named ``parameter``."""
        return parameter in inspect.signature(self.function).parameters and parameter not in ("x", "rng")

    @property
    def interval_text(self) -> str:
        """The valid interval in interval notation, e.g. ``(0, 1]``."""
        (lo, hi), (lo_closed, hi_closed) = self.level_interval, self.interval_closed
        return f"{'[' if lo_closed else '('}{lo:g}, {hi:g}{']' if hi_closed else ')'}"

    def check_level(self, level: float) -> str:
        """Validate a user-given ``level`` and return the function argument it feeds.

        Raises:
            UsageError: ``--level for <kind> is the <argument> and must be in <interval>, got <level>``.
        """
        (lo, hi), (lo_closed, hi_closed) = self.level_interval, self.interval_closed
        ok = (
            math.isfinite(level)
            and (level >= lo if lo_closed else level > lo)
            and (level <= hi if hi_closed else level < hi)
        )
        if not ok:
            raise UsageError(
                f"--level for {self.kind} is the {self.level_argument} and must be in "
                f"{self.interval_text}, got {level:g}"
            )
        return self.level_argument


#: every noise kind medden knows, by name (the order of the CLI's choices)
NOISE_MODELS: dict[str, NoiseModel] = {
    m.kind: m
    for m in (
        NoiseModel(
            kind="rician",
            function=rician,
            level_argument="level",
            level_interval=(0.0, 1.0),
            interval_closed=(False, True),
            default_range=(0.01, 0.09),
            level_is_sigma=True,
            takes_reference=True,
            estimator=estimate_rician,
            description="magnitude-MRI noise sqrt((x + n1)² + n2²), n1, n2 ~ N(0, σ²)",
            level_help="σ relative to the image maximum (BrainWeb: 0.01-0.09)",
        ),
        NoiseModel(
            kind="salt_pepper",
            function=salt_pepper,
            level_argument="amount",
            level_interval=(0.0, 1.0),
            interval_closed=(True, True),
            default_range=(0.05, 0.40),
            level_is_sigma=False,
            takes_reference=False,
            estimator=estimate_salt_pepper,
            description="impulse noise: a fraction of the voxels set to the image's minimum or maximum",
            level_help="the corrupted fraction (0-1)",
        ),
        NoiseModel(
            kind="gaussian",
            function=gaussian,
            level_argument="level",
            level_interval=(0.0, 1.0),
            interval_closed=(False, True),
            default_range=(0.0, 55.0 / 255.0),
            level_is_sigma=True,
            takes_reference=True,
            estimator=estimate_gaussian,
            description="additive white Gaussian noise x + N(0, σ²)",
            level_help="σ relative to the image maximum (e.g. 0.05; σ 25 of 255 is 0.098)",
        ),
        NoiseModel(
            kind="poisson_gaussian",
            function=poisson_gaussian,
            level_argument="peak",
            level_interval=(0.0, math.inf),
            interval_closed=(False, True),
            default_range=(10.0, 1000.0),
            level_is_sigma=False,
            takes_reference=True,
            estimator=None,
            description="shot noise (peak photons at the maximum) plus Gaussian read-out noise",
            level_help="the photon count at the maximum (e.g. 100; fewer is noisier)",
        ),
        NoiseModel(
            kind="lowlight",
            function=lowlight,
            level_argument="gain",
            level_interval=(0.0, 1.0),
            interval_closed=(False, True),
            default_range=(0.05, 0.3),
            level_is_sigma=False,
            takes_reference=True,
            estimator=None,
            description="darkening (gain, gamma) then Poisson-Gaussian noise, as in a low-light capture",
            level_help="the brightness gain (0-1)",
        ),
    )
}


def noise_model(kind: str) -> NoiseModel:
    """The spec of noise ``kind``.

    Raises:
        UsageError: (a ``ValueError``) ``unknown noise kind '<kind>'; choose from <the kinds>``.
    """
    try:
        return NOISE_MODELS[kind]
    except (KeyError, TypeError):
        raise UsageError(f"unknown noise kind {kind!r}; choose from {', '.join(NOISE_MODELS)}") from None


def per_kind(
    field: Callable[[NoiseModel], T], models: Mapping[str, NoiseModel] = NOISE_MODELS
) -> dict[str, T]:
    """A table ``kind -> field(model)``, e.g. ``per_kind(lambda m: m.function)``."""
    return {kind: field(m) for kind, m in models.items()}


def kinds_where(
    predicate: Callable[[NoiseModel], bool], models: Mapping[str, NoiseModel] = NOISE_MODELS
) -> tuple[str, ...]:
    """The kinds whose model satisfies ``predicate``, in registry order."""
    return tuple(kind for kind, m in models.items() if predicate(m))


#: kinds whose level on [0, 1] data is the σ that Gaussian denoisers take (``--sigma``, ``absolute``)
SIGMA_KINDS: tuple[str, ...] = kinds_where(lambda m: m.level_is_sigma)


def estimate_noise(x: Any, kind: str, **kwargs: Any) -> NoiseEstimate:
    """Estimate the noise level of ``x`` for a noise ``kind`` (``rician``, ``gaussian``, ``salt_pepper``:
    the kinds whose :class:`NoiseModel` has an estimator), with that model's estimator.

    Raises:
        ValueError: ``kind`` has no estimator, or the estimator cannot estimate ``x``.
    """
    model = NOISE_MODELS.get(kind)
    if model is None or model.estimator is None:
        estimable = sorted(kinds_where(lambda m: m.estimator is not None))
        raise ValueError(f"no estimator for noise kind {kind!r}; choose from {estimable}")
    return model.estimator(x, **kwargs)
