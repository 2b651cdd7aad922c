"""MONAI wrappers of the noise models: array, dictionary and random variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, CopyItemsd

import medden.transforms as mt
from medden.noise import rician

FIXED = {
    "rician": {"level": 0.05},
    "salt_pepper": {"amount": 0.2},
    "gaussian": {"level": 0.05},
    "poisson_gaussian": {"peak": 50.0},
    "lowlight": {"gain": 0.2},
}
NAMES = {
    "rician": "RicianNoise",
    "salt_pepper": "SaltPepperNoise",
    "gaussian": "GaussianNoise",
    "poisson_gaussian": "PoissonGaussianNoise",
    "lowlight": "LowLight",
}


def _item(shape=(1, 24, 28), dtype=torch.float32):
    img = torch.rand(*shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    return {"image": MetaTensor(img.clone()), "target": img.clone(), "other": img.clone()}


@pytest.mark.parametrize("kind", sorted(NAMES))
@pytest.mark.parametrize("shape", [(1, 24, 28), (1, 8, 10, 12)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dict_transforms_touch_only_their_keys(kind, shape, dtype):
    base = NAMES[kind]
    fixed = getattr(mt, base + "d")(keys="image", **FIXED[kind])
    rand = getattr(mt, "Rand" + base + "d")(keys="image", prob=1.0)
    for t in (fixed, rand):
        t.set_random_state(0)
        d = _item(shape, dtype)
        out = t(d)
        assert out["image"].shape == shape and out["image"].dtype == dtype
        assert not torch.equal(out["image"], d["target"])
        assert torch.equal(out["target"], d["target"]) and torch.equal(out["other"], d["target"])
        rec = out["image"].meta["noise"]
        assert rec["kind"] == kind and rec["applied"] is True and isinstance(rec["seed"], int)


@pytest.mark.parametrize("kind", sorted(NAMES))
def test_rand_transform_is_reproducible_and_replayable(kind):
    t = getattr(mt, "Rand" + NAMES[kind])(prob=1.0)
    x = np.random.default_rng(1).random((1, 16, 20)).astype(np.float32)
    t.set_random_state(42)
    a = t(x)
    rec_a = dict(t.last_params)
    b = t(x)
    t.set_random_state(42)
    a2 = t(x)
    np.testing.assert_array_equal(a, a2)
    assert not np.array_equal(a, b)
    lo, hi = mt.DEFAULT_LEVEL_RANGE[kind]
    assert lo <= rec_a["level"] <= hi
    np.testing.assert_array_equal(mt.replay_noise(x, rec_a), a)


def test_rand_level_range_and_absolute_sigma():
    t = mt.RandRicianNoise(prob=1.0, level_range=(0.02, 0.03))
    t.set_random_state(0)
    levels = []
    for _ in range(50):
        t(np.ones((1, 4, 4)))
        levels.append(t.last_params["level"])
    assert 0.02 <= min(levels) and max(levels) <= 0.03 and len(set(levels)) == 50
    ta = mt.RandGaussianNoise(prob=1.0, level_range=(10.0, 10.0), absolute=True)
    y = ta(np.full((1, 128, 128), 128.0))
    assert ta.last_params["params"]["sigma"] == 10.0 and abs(y.std() - 10) < 0.5
    with pytest.raises(ValueError):
        mt.RandSaltPepperNoise(absolute=True)


def test_prob_zero_and_half():
    t = mt.RandSaltPepperNoised(keys="image", prob=0.0)
    d = _item()
    out = t(d)
    assert torch.equal(out["image"], d["image"]) and out["image"].meta["noise"]["applied"] is False
    t = mt.RandGaussianNoised(keys="image", prob=0.5)
    t.set_random_state(0)
    applied = [t(_item())["image"].meta["noise"]["applied"] for _ in range(200)]
    assert 70 < sum(applied) < 130


def test_numpy_item_records_in_meta_dict():
    out = mt.RandRicianNoised(keys="image").set_random_state(1)({"image": np.ones((1, 6, 6)), "target": 1})
    assert out["image_meta_dict"]["noise"]["kind"] == "rician"
    assert isinstance(out["image"], np.ndarray)


def test_fixed_array_transform_matches_function():
    t = mt.RicianNoise(level=0.05)
    t.set_random_state(3)
    x = np.random.default_rng(0).random((1, 10, 10))
    y = t(x)
    np.testing.assert_array_equal(y, rician(x, 0.05, rng=t.last_params["seed"]))


def test_bad_arguments_fail_at_construction():
    with pytest.raises(TypeError):
        mt.RicianNoise(amount=0.1)
    with pytest.raises(ValueError):
        mt.AddNoise("speckle")
    with pytest.raises(ValueError):
        mt.RandRicianNoise(level_range=(0.2, 0.1))
    with pytest.raises(ValueError):
        mt.RandRicianNoised(keys="image", prob=2.0)


def test_pipeline_with_clean_target_and_dataloader():
    from monai.data import DataLoader, Dataset

    pipe = Compose(
        [
            CopyItemsd(keys="image", names="target"),
            mt.RandRicianNoised(keys="image", prob=1.0, level_range=(0.01, 0.09)),
        ]
    )
    pipe.set_random_state(0)
    items = [{"image": MetaTensor(torch.rand(1, 16, 16))} for _ in range(4)]
    batch = next(iter(DataLoader(Dataset(items, pipe), batch_size=4)))
    assert batch["image"].shape == (4, 1, 16, 16)
    assert not torch.equal(batch["image"], batch["target"])
    levels = batch["image"].meta["noise"]["level"]
    assert len(levels) == 4
