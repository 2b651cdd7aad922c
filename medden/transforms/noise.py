"""MONAI transforms around :mod:`medden.noise`: array, dictionary and random variants.

For every noise kind there are four transforms, e.g. for Rician noise:

- ``RicianNoise(level=0.05)`` — array transform with a fixed level;
- ``RicianNoised(keys="image", level=0.05)`` — dictionary transform acting only on ``keys``, so
  the clean copy can stay in ``target``;
- ``RandRicianNoise(prob=1.0, level_range=(0.01, 0.09))`` — draws the level uniformly per call;
- ``RandRicianNoised(keys="image", prob=1.0, level_range=(0.01, 0.09))``.

All are ``Randomizable``: ``set_random_state(seed)`` reproduces a run. Each call records what it
drew — kind, whether it was applied, the level, the seed of the noise field and the fixed
parameters — in ``last_params`` and in the item's metadata (``MetaTensor.meta["noise"]``, or
``data["<key>_meta_dict"]["noise"]`` for plain arrays), so a run can be reported and replayed
with :func:`replay_noise`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, Transform

from medden.noise import SIGMA_KINDS, NoiseModel, noise_model, per_kind

#: The argument of each noise function that a Rand transform draws, and its default range
#: (derived from :data:`medden.noise.NOISE_MODELS`).
LEVEL_ARGUMENT: dict[str, str] = per_kind(lambda m: m.level_argument)
DEFAULT_LEVEL_RANGE: dict[str, tuple[float, float]] = per_kind(lambda m: m.default_range)
_SEED_MAX = 2**31 - 1


def _check_params(model: NoiseModel, params: Mapping[str, Any]) -> dict[str, Any]:
    """Fail at construction, not at the first item, on an argument the noise function lacks."""
    unknown = {name for name in params if not model.accepts(name)}
    if unknown:
        raise TypeError(f"{model.kind} noise has no parameter(s) {sorted(unknown)}")
    return dict(params)


def replay_noise(img: Any, record: Mapping[str, Any]) -> Any:
    """Apply the noise described by a recorded ``noise`` entry again, bit for bit.

    Example:
        >>> import numpy as np
        >>> t = RandRicianNoise(prob=1.0, level_range=(0.01, 0.09)); _ = t.set_random_state(0)
        >>> x = np.ones((1, 16, 16), dtype=np.float32)
        >>> y = t(x)
        >>> bool(np.array_equal(replay_noise(x, t.last_params), y))
        True
    """
    if not record.get("applied", True):
        return img
    model = noise_model(record["kind"])
    params = {k: v for k, v in record["params"].items() if v is not None}
    return model.function(img, rng=int(record["seed"]), **params)


class _NoiseCore(Randomizable):
    """Shared state of all noise transforms: the kind, fixed parameters, and the draw."""

    kind: ClassVar[str | None] = None

    def __init__(
        self,
        kind: str | None = None,
        prob: float = 1.0,
        level_range: Sequence[float] | None = None,
        absolute: bool = False,
        random_level: bool = False,
        **params: Any,
    ) -> None:
        self.noise_model = noise_model(kind or type(self).kind)  # a UsageError (ValueError) if unknown
        self.noise_kind = self.noise_model.kind
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.prob = float(prob)
        self.level_arg = self.noise_model.level_argument
        if absolute:
            if not self.noise_model.level_is_sigma:
                raise ValueError(f"absolute=True is only meaningful for {' and '.join(SIGMA_KINDS)} noise")
            self.level_arg = "sigma"
        self.random_level = random_level
        if random_level:
            lo, hi = level_range if level_range is not None else self.noise_model.default_range
            if lo > hi:
                raise ValueError(f"level_range must be (low, high) with low <= high, got {level_range}")
            self.level_range = (float(lo), float(hi))
            params[self.level_arg] = None
        self.params = _check_params(self.noise_model, params)
        self._do = True
        self._seed = 0
        self._level: float | None = None
        self.last_params: dict[str, Any] = {}

    def randomize(self, data: Any = None) -> None:
        self._do = self.R.rand() < self.prob if self.prob < 1.0 else True
        if self.random_level:
            self._level = float(self.R.uniform(*self.level_range))
        self._seed = int(self.R.randint(0, _SEED_MAX))

    def _current_params(self) -> dict[str, Any]:
        params = dict(self.params)
        if self.random_level:
            params[self.level_arg] = self._level
        return params

    def _record(self) -> dict[str, Any]:
        params = self._current_params()
        self.last_params = {
            "kind": self.noise_kind,
            "applied": bool(self._do),
            "level": params.get(self.level_arg),
            "seed": self._seed,
            "params": params,
        }
        return self.last_params

    def _apply(self, img: Any) -> Any:
        if not self._do:
            return img
        return self.noise_model.function(img, rng=self._seed, **self._current_params())


def _attach(img: Any, record: dict[str, Any]) -> bool:
    """Store ``record`` in a MetaTensor's metadata; False when ``img`` has none."""
    meta = getattr(img, "meta", None)
    if isinstance(meta, dict):
        meta["noise"] = dict(record)
        return True
    return False


class AddNoise(_NoiseCore, Transform):
    """Array transform: add noise of a ``kind`` with fixed parameters (a fresh noise field per call).

    Args:
        kind: ``rician``, ``salt_pepper``, ``gaussian``, ``poisson_gaussian`` or ``lowlight``
            (set by the named subclasses such as :class:`RicianNoise`).
        params: the keyword arguments of the matching :mod:`medden.noise` function.
    """

    def __init__(self, kind: str | None = None, **params: Any) -> None:
        super().__init__(kind, **params)

    def __call__(self, img: Any, randomize: bool = True) -> Any:
        if randomize:
            self.randomize(img)
        record = self._record()
        out = self._apply(img)
        _attach(out, record)
        return out


class RandAddNoise(AddNoise):
    """Array transform: with probability ``prob``, add noise whose level is drawn from ``level_range``.

    Args:
        kind: noise kind (set by the named subclasses).
        prob: probability of applying the noise.
        level_range: ``(low, high)`` of the uniformly drawn level (the kind's level argument:
            ``level`` for rician/gaussian — or ``sigma`` with ``absolute=True`` —, ``amount`` for
            salt_pepper, ``peak`` for poisson_gaussian, ``gain`` for lowlight).
        absolute: draw an absolute σ instead of a relative level (rician, gaussian).
        params: other fixed keyword arguments of the noise function.
    """

    def __init__(
        self,
        kind: str | None = None,
        prob: float = 1.0,
        level_range: Sequence[float] | None = None,
        absolute: bool = False,
        **params: Any,
    ) -> None:
        _NoiseCore.__init__(
            self, kind, prob=prob, level_range=level_range, absolute=absolute, random_level=True, **params
        )


class AddNoised(_NoiseCore, MapTransform):
    """Dictionary transform: add noise to ``keys`` only (one level and noise seed per item).

    Args:
        keys: keys to corrupt (e.g. ``"image"``; keep the clean copy under ``"target"``).
        kind: noise kind (set by the named subclasses).
        allow_missing_keys: do not fail on a missing key.
        params: keyword arguments of the noise function.
    """

    def __init__(
        self, keys: KeysCollection, kind: str | None = None, allow_missing_keys: bool = False, **params: Any
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        _NoiseCore.__init__(self, kind, **params)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        record = self._record()
        for key in self.key_iterator(d):
            d[key] = self._apply(d[key])
            if not _attach(d[key], record):
                meta_key = f"{key}_meta_dict"
                d[meta_key] = {**dict(d.get(meta_key) or {}), "noise": dict(record)}
        return d


class RandAddNoised(AddNoised):
    """Dictionary transform: with probability ``prob``, add noise of a level drawn from ``level_range``.

    Args:
        keys: keys to corrupt.
        kind: noise kind (set by the named subclasses).
        prob: probability of applying the noise.
        level_range: ``(low, high)`` of the uniformly drawn level (see :class:`RandAddNoise`).
        absolute: draw an absolute σ instead of a relative level (rician, gaussian).
        allow_missing_keys: do not fail on a missing key.
        params: other fixed keyword arguments of the noise function.
    """

    def __init__(
        self,
        keys: KeysCollection,
        kind: str | None = None,
        prob: float = 1.0,
        level_range: Sequence[float] | None = None,
        absolute: bool = False,
        allow_missing_keys: bool = False,
        **params: Any,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        _NoiseCore.__init__(
            self, kind, prob=prob, level_range=level_range, absolute=absolute, random_level=True, **params
        )


# Named transforms, one set per noise kind (parameters: see the matching medden.noise function).
class RicianNoise(AddNoise):
    """Rician noise with a fixed level (:func:`medden.noise.rician`)."""

    kind = "rician"


class RicianNoised(AddNoised):
    """Rician noise on ``keys`` with a fixed level (:func:`medden.noise.rician`)."""

    kind = "rician"


class RandRicianNoise(RandAddNoise):
    """Rician noise, level drawn from ``level_range`` (default 0.01–0.09 of the maximum)."""

    kind = "rician"


class RandRicianNoised(RandAddNoised):
    """Rician noise on ``keys``, level drawn from ``level_range`` (default 0.01–0.09 of the maximum)."""

    kind = "rician"


class SaltPepperNoise(AddNoise):
    """Salt-and-pepper noise with a fixed ``amount`` (:func:`medden.noise.salt_pepper`)."""

    kind = "salt_pepper"


class SaltPepperNoised(AddNoised):
    """Salt-and-pepper noise on ``keys`` with a fixed ``amount``."""

    kind = "salt_pepper"


class RandSaltPepperNoise(RandAddNoise):
    """Salt-and-pepper noise, ``amount`` drawn from ``level_range`` (default 0.05–0.40)."""

    kind = "salt_pepper"


class RandSaltPepperNoised(RandAddNoised):
    """Salt-and-pepper noise on ``keys``, ``amount`` drawn from ``level_range`` (default 0.05–0.40)."""

    kind = "salt_pepper"


class GaussianNoise(AddNoise):
    """White Gaussian noise with a fixed level or σ (:func:`medden.noise.gaussian`)."""

    kind = "gaussian"


class GaussianNoised(AddNoised):
    """White Gaussian noise on ``keys`` with a fixed level or σ."""

    kind = "gaussian"


class RandGaussianNoise(RandAddNoise):
    """White Gaussian noise, level drawn from ``level_range`` (default σ 0–55/255 of the maximum)."""

    kind = "gaussian"


class RandGaussianNoised(RandAddNoised):
    """White Gaussian noise on ``keys``, level drawn from ``level_range`` (default 0–55/255)."""

    kind = "gaussian"


class PoissonGaussianNoise(AddNoise):
    """Poisson-Gaussian noise with a fixed ``peak`` (:func:`medden.noise.poisson_gaussian`)."""

    kind = "poisson_gaussian"


class PoissonGaussianNoised(AddNoised):
    """Poisson-Gaussian noise on ``keys`` with a fixed ``peak``."""

    kind = "poisson_gaussian"


class RandPoissonGaussianNoise(RandAddNoise):
    """Poisson-Gaussian noise, ``peak`` drawn from ``level_range`` (default 10–1000 photons)."""

    kind = "poisson_gaussian"


class RandPoissonGaussianNoised(RandAddNoised):
    """Poisson-Gaussian noise on ``keys``, ``peak`` drawn from ``level_range`` (default 10–1000)."""

    kind = "poisson_gaussian"


class LowLight(AddNoise):
    """Low-light degradation with a fixed ``gain`` (:func:`medden.noise.lowlight`)."""

    kind = "lowlight"


class LowLightd(AddNoised):
    """Low-light degradation of ``keys`` with a fixed ``gain``."""

    kind = "lowlight"


class RandLowLight(RandAddNoise):
    """Low-light degradation, ``gain`` drawn from ``level_range`` (default 0.05–0.3)."""

    kind = "lowlight"


class RandLowLightd(RandAddNoised):
    """Low-light degradation of ``keys``, ``gain`` drawn from ``level_range`` (default 0.05–0.3)."""

    kind = "lowlight"


def noise_record_to_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded draw with numpy scalars turned into plain Python numbers (for JSON reports)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, np.generic):
            return v.item()
        return v

    return plain(record)
