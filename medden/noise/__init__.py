"""Noise physics: plain functions on numpy arrays and torch tensors, and noise-level estimators.

Every function takes ``rng`` (a seed, a numpy ``Generator`` or MONAI's ``RandomState``) so a draw
can be reproduced, keeps the input's type, dtype and device, and works on any shape (2D or 3D,
channel-first). Medical levels are relative to the image maximum (BrainWeb protocol); natural-image
AWGN uses σ on the 0–255 scale (:func:`sigma_255`). Each kind is described once, by a
:class:`NoiseModel` in :data:`NOISE_MODELS` (:mod:`medden.noise.spec`). :func:`rician_vst` and
:func:`rician_vst_inverse` are Foi's Rician variance-stabilising transform and its exact unbiased
inverse (:mod:`medden.noise.vst`).
"""

from medden.noise import estimate  # noqa: F401  (the module, medden.noise.estimate)
from medden.noise.estimate import (
    NoiseEstimate,
    estimate_gaussian,
    estimate_rician,
    estimate_salt_pepper,
)
from medden.noise.gaussian import gaussian, sigma_255
from medden.noise.impulse import salt_pepper
from medden.noise.lowlight import lowlight
from medden.noise.poisson import poisson_gaussian
from medden.noise.rician import rician
from medden.noise.spec import (
    NOISE_MODELS,
    SIGMA_KINDS,
    NoiseModel,
    estimate_noise,
    kinds_where,
    noise_model,
    per_kind,
)
from medden.noise.vst import rician_vst, rician_vst_inverse

#: noise kind -> plain function; the first positional argument after the image is the level.
NOISE_FUNCTIONS = per_kind(lambda m: m.function)

__all__ = [
    "NOISE_FUNCTIONS",
    "NOISE_MODELS",
    "SIGMA_KINDS",
    "NoiseModel",
    "kinds_where",
    "noise_model",
    "per_kind",
    "NoiseEstimate",
    "estimate_noise",
    "estimate_gaussian",
    "estimate_rician",
    "estimate_salt_pepper",
    "gaussian",
    "lowlight",
    "poisson_gaussian",
    "rician",
    "rician_vst",
    "rician_vst_inverse",
    "salt_pepper",
    "sigma_255",
]
