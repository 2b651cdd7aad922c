"""One NoiseModel per noise kind (issue 20): each spec is consistent, and every table derives from it."""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np
import pytest

import medden.noise as mn
from medden.data.samples import mni152_slice
from medden.errors import UsageError
from medden.noise import NOISE_MODELS, NoiseModel, kinds_where, noise_model, per_kind

KINDS = sorted(NOISE_MODELS)


def _arguments(model: NoiseModel, level: float) -> dict[str, float]:
    return {model.level_argument: level, **({"reference": 1.0} if model.takes_reference else {})}


# --- every spec is consistent -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_spec_is_consistent(kind):
    m = noise_model(kind)
    assert m.kind == kind and m.description and m.level_help
    params = inspect.signature(m.function).parameters
    assert m.level_argument in params
    assert ("reference" in params) == m.takes_reference
    if m.level_is_sigma:
        assert "sigma" in params
    (lo, hi), (dlo, dhi) = m.level_interval, m.default_range
    assert lo <= dlo <= dhi <= hi
    for level in (dhi, (dlo + dhi) / 2):  # a low end on an open bound (Gaussian's σ = 0) is training-only
        assert m.check_level(level) == m.level_argument
    y = m.function(np.full((1, 16, 16), 0.5), rng=0, **_arguments(m, (dlo + dhi) / 2))
    assert y.shape == (1, 16, 16)


@pytest.mark.parametrize("kind", kinds_where(lambda m: m.estimator is not None))
def test_estimator_recovers_a_level_drawn_in_the_default_range(kind):
    m = noise_model(kind)
    clean = mni152_slice()
    clean = clean / clean.max()
    for i, level in enumerate(np.random.default_rng(0).uniform(*m.default_range, size=5)):
        noisy = m.function(clean, rng=i, **_arguments(m, float(level)))
        est = m.estimator(noisy, reference=1.0)
        assert abs(est.level - level) / level < 0.2, (kind, level, est)


def test_spec_is_frozen_and_refuses_inconsistency():
    m = noise_model("rician")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.level_argument = "amount"  # type: ignore[misc]
    with pytest.raises(ValueError, match="no argument 'amount'"):
        dataclasses.replace(m, level_argument="amount")
    with pytest.raises(ValueError, match="default range"):
        dataclasses.replace(m, default_range=(0.0, 2.0))
    with pytest.raises(ValueError, match="takes_reference"):
        dataclasses.replace(noise_model("salt_pepper"), takes_reference=True)


# --- the level check keeps today's messages -----------------------------------------------------


@pytest.mark.parametrize(
    "kind, level, message",
    [
        ("rician", 1.5, "--level for rician is the level and must be in (0, 1], got 1.5"),
        ("rician", 0.0, "must be in (0, 1]"),
        ("gaussian", -0.1, "must be in (0, 1]"),
        ("salt_pepper", 1.01, "--level for salt_pepper is the amount and must be in [0, 1]"),
        ("poisson_gaussian", 0.0, "is the peak and must be in (0, inf], got 0"),
        ("poisson_gaussian", math.inf, "must be in (0, inf]"),
        ("lowlight", 0.0, "is the gain and must be in (0, 1]"),
        ("rician", math.nan, "got nan"),
    ],
)
def test_check_level_messages(kind, level, message):
    from medden.workflows.noise import check_level

    with pytest.raises(UsageError) as info:
        noise_model(kind).check_level(level)
    assert message in str(info.value)
    with pytest.raises(UsageError) as info_fn:
        check_level(kind, level)
    assert str(info_fn.value) == str(info.value)


def test_valid_levels_and_unknown_kind():
    from medden.workflows.noise import check_level

    assert noise_model("salt_pepper").check_level(0.0) == "amount"  # the closed low end
    assert noise_model("poisson_gaussian").check_level(1e6) == "peak"
    assert check_level("lowlight", 1.0) == "gain"
    for lookup in (lambda: noise_model("speckle"), lambda: check_level("speckle", 0.1)):
        with pytest.raises(UsageError, match="unknown noise kind 'speckle'; choose from rician, salt_pepper"):
            lookup()
    with pytest.raises(ValueError):  # a UsageError is a ValueError, as the transforms promise
        noise_model("speckle")


# --- every table derives from the registry, and equals what it was before ----------------------


def test_derived_tables_match_the_spec_and_the_old_literals():
    import medden.transforms as mt
    import medden.workflows.noise as wn
    from medden.data import datasets

    assert mn.NOISE_FUNCTIONS == per_kind(lambda m: m.function)
    assert mn.NOISE_FUNCTIONS == {
        "rician": mn.rician,
        "salt_pepper": mn.salt_pepper,
        "gaussian": mn.gaussian,
        "poisson_gaussian": mn.poisson_gaussian,
        "lowlight": mn.lowlight,
    }
    assert mt.LEVEL_ARGUMENT == per_kind(lambda m: m.level_argument)
    assert mt.LEVEL_ARGUMENT == {
        "rician": "level",
        "salt_pepper": "amount",
        "gaussian": "level",
        "poisson_gaussian": "peak",
        "lowlight": "gain",
    }
    assert mt.DEFAULT_LEVEL_RANGE == per_kind(lambda m: m.default_range)
    assert mt.DEFAULT_LEVEL_RANGE == {
        "rician": (0.01, 0.09),
        "salt_pepper": (0.05, 0.40),
        "gaussian": (0.0, 55.0 / 255.0),
        "poisson_gaussian": (10.0, 1000.0),
        "lowlight": (0.05, 0.3),
    }
    assert (
        wn.KINDS
        == tuple(NOISE_MODELS)
        == ("rician", "salt_pepper", "gaussian", "poisson_gaussian", "lowlight")
    )
    assert wn.ESTIMABLE_KINDS == kinds_where(lambda m: m.estimator is not None)
    assert set(wn.ESTIMABLE_KINDS) == {"rician", "gaussian", "salt_pepper"}  # was in that order
    assert wn.LEVEL_SPEC == {
        "rician": ("level", 0.0, 1.0, False),
        "gaussian": ("level", 0.0, 1.0, False),
        "salt_pepper": ("amount", 0.0, 1.0, True),
        "poisson_gaussian": ("peak", 0.0, float("inf"), False),
        "lowlight": ("gain", 0.0, 1.0, False),
    }
    assert mn.SIGMA_KINDS == kinds_where(lambda m: m.level_is_sigma) == ("rician", "gaussian")
    assert datasets._REFERENCED == kinds_where(lambda m: m.takes_reference)
    assert datasets._REFERENCED == ("rician", "gaussian", "poisson_gaussian", "lowlight")


def test_evaluation_sigma_kinds_agree_with_the_spec():
    from medden.workflows import evaluate

    assert tuple(evaluate.SIGMA_KINDS) == mn.SIGMA_KINDS


def test_estimate_noise_dispatches_through_the_spec():
    noisy = mn.gaussian(np.zeros((1, 64, 64)), sigma=0.1, rng=0)
    assert mn.estimate_noise(noisy, "gaussian", reference=1.0) == noise_model("gaussian").estimator(
        noisy, reference=1.0
    )
    with pytest.raises(ValueError, match=r"choose from \['gaussian', 'rician', 'salt_pepper'\]"):
        mn.estimate_noise(noisy, "lowlight")


def test_a_new_kind_appears_in_the_derivations():
    def speckle(x, level, *, reference=None, rng=None):
        return x

    new = NoiseModel(
        kind="speckle",
        function=speckle,
        level_argument="level",
        level_interval=(0.0, 1.0),
        interval_closed=(False, True),
        default_range=(0.1, 0.2),
        level_is_sigma=False,
        takes_reference=True,
        estimator=None,
        description="multiplicative noise",
        level_help="the relative σ",
    )
    models = {**NOISE_MODELS, "speckle": new}
    assert per_kind(lambda m: m.function, models)["speckle"] is speckle
    assert per_kind(lambda m: m.default_range, models)["speckle"] == (0.1, 0.2)
    assert "speckle" in kinds_where(lambda m: m.takes_reference, models)
    assert "speckle" not in kinds_where(lambda m: m.level_is_sigma, models)
    assert "speckle" not in NOISE_MODELS  # the registry itself is untouched


@pytest.mark.parametrize(
    "kind, option, message",
    [
        ("gaussian", "--read-sigma", "--read-sigma applies to --kind poisson_gaussian or lowlight only"),
        ("rician", "--salt-vs-pepper", "--salt-vs-pepper applies to --kind salt_pepper only"),
    ],
)
def test_cli_options_apply_to_the_kinds_whose_function_takes_them(tmp_path, capsys, kind, option, message):
    from medden.cli import main

    src = tmp_path / "in.npy"  # never read: the option is refused first
    assert (
        main(["noise", str(src), str(tmp_path / "o.png"), "--kind", kind, "--level", "0.1", option, "0.5"])
        == 2
    )
    assert message in capsys.readouterr().err
