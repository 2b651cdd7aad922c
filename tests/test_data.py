"""Training data: splits that never leak, natural images split by image, user folders and pairs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from medden.data import datasets
from medden.data.samples import NATURAL_SPLITS, mni152, natural_image
from medden.errors import UsageError


def _digests(arrays: list[np.ndarray]) -> set[str]:
    return {hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() for a in arrays}


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_mni152_slices_of_the_splits_are_disjoint_and_apart(axis):
    vol, _ = mni152()
    n = vol.shape[axis]
    idx = datasets.slab_split(n, 8, datasets.SLAB_PATTERN_2D, gap=2)
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        gaps = np.abs(np.subtract.outer(idx[a], idx[b]))
        assert gaps.min() > 2, (a, b)  # no slice of one split within the gap of another's
    slices = {s: datasets.mni152_slices(s, axis=axis) for s in ("train", "val", "test")}
    assert all(slices.values())
    digests = {s: _digests(v) for s, v in slices.items()}
    assert not digests["train"] & digests["val"] and not digests["train"] & digests["test"]
    # the slices returned are the template's planes at the split's indices
    planes = _digests([np.take(vol, i, axis=axis)[None].astype(np.float32) for i in idx["val"]])
    assert digests["val"] <= planes


def test_mni152_slabs_stay_inside_their_split():
    vol, _ = mni152()
    idx = datasets.slab_split(vol.shape[2], 40, datasets.SLAB_PATTERN_3D, gap=4)
    for split in ("train", "val", "test"):
        kept = datasets.mni152_slabs(split)
        every = datasets.mni152_slabs(split, min_foreground=0.0)
        assert sum(s.shape[-1] for s in every) == len(idx[split])
        # empty slabs (all air) are dropped, the others kept whole
        assert all((s > 0.1).mean() >= 0.02 for s in kept)
        assert len(kept) == sum((s > 0.1).mean() >= 0.02 for s in every) >= 1
    # the axial template's top slab holds no brain: training would otherwise draw half its patches there
    assert len(datasets.mni152_slabs("train")) < len(datasets.mni152_slabs("train", min_foreground=0.0))


def test_foreground_crop_centres_patches_on_the_brain():
    """With ``foreground=1`` every patch centre is a foreground voxel; uniform patches often are not."""
    vol = np.zeros((1, 64, 64, 64), np.float32)
    vol[0, 40:48, 40:48, 40:48] = 1.0  # a small bright cube in a volume of air
    rates = {}
    for fg in (None, 1.0):
        t = datasets.train_transforms(3, 16, noise=None, augment=False, foreground=fg)
        t.set_random_state(0)
        hits = 0
        for _ in range(40):
            out = t({"image": vol})
            item = out[0] if isinstance(out, list) else out
            assert tuple(item["image"].shape) == (1, 16, 16, 16) and "_foreground" not in item
            hits += int(item["target"][0, 8, 8, 8] > 0.5 or item["target"].max() > 0.5)
        rates[fg] = hits / 40
    assert rates[1.0] == 1.0
    assert rates[None] < 0.5
    with pytest.raises(ValueError):
        datasets.train_transforms(3, 16, noise=None, foreground=1.5)


def test_target_noise_gives_targets_their_own_noise():
    """target_noise: 3 in 4 targets carry Rician noise up to the level; sigma is the noise added on top."""
    img = np.full((1, 40, 40), 0.5, np.float32)
    t = datasets.train_transforms(2, 32, "rician", level_range=(0.05, 0.05), target_noise=0.04)
    t.set_random_state(0)
    own, added = [], []
    for _ in range(60):
        d = t({"image": img})
        own.append(float(d["target"].std()))
        added.append(float((d["image"] - d["target"]).std()))
        assert d["sigma"] == np.float32(0.05)
    own_arr = np.asarray(own)
    carrying = own_arr > 1e-4
    assert 0.55 < carrying.mean() < 0.95  # TARGET_NOISE_PROB of 0.75
    assert own_arr.max() < 0.04 * 1.15 and own_arr[carrying].std() > 0.005  # levels drawn up to 0.04
    assert np.mean(added) == pytest.approx(0.05, rel=0.1)  # what the net is told of is what was added
    plain = datasets.train_transforms(2, 32, "rician", level_range=(0.05, 0.05))
    plain.set_random_state(0)
    assert float(plain({"image": img})["target"].std()) == 0.0
    with pytest.raises(ValueError, match="target noise"):
        datasets.train_transforms(2, 32, "salt_pepper", target_noise=0.02)


def test_natural_images_are_split_by_image():
    names = {s: set(NATURAL_SPLITS[s]) for s in ("train", "val", "test")}
    assert not names["train"] & names["val"] and not names["train"] & names["test"]
    assert not names["val"] & names["test"]
    imgs = {s: datasets.natural_images(s) for s in ("train", "test")}
    assert imgs["train"] and imgs["test"]
    assert not _digests(imgs["train"]) & _digests(imgs["test"])
    color = datasets.natural_images("train", gray=False)
    assert color and all(c.shape[0] == 3 for c in color)


def _png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_folder_of_nifti_dicom_and_images_skips_the_bad_file(tmp_path):
    import nibabel as nib

    from medden.io import write_synthetic_series

    vol, affine = mni152()
    small = (vol[40:140:4, 50:160:4, 40:100:10] * 1000).astype(np.float32)  # 25 x 28 x 6
    nib.save(nib.Nifti1Image(small, affine), tmp_path / "t1.nii.gz")
    write_synthetic_series(small, affine, tmp_path / "dicom")
    _png(tmp_path / "img.png", (natural_image("camera")[0][::8, ::8] * 255).astype(np.uint8))
    (tmp_path / "broken.nii").write_bytes(b"not a nifti")
    items = datasets.folder_images(tmp_path, axis=2)
    shapes = sorted(i.shape for i in items)
    # 6 axial slices from the NIfTI, 6 from the DICOM series, and the image
    assert shapes.count((1, 25, 28)) == 12 and (1, 64, 64) in shapes and len(items) == 13
    assert all(0.0 <= i.min() and i.max() <= 1.0 for i in items)
    vols = datasets.folder_images(tmp_path / "t1.nii.gz", spatial_dims=3)
    assert [v.shape for v in vols] == [(1, 25, 28, 6)]
    with pytest.raises(UsageError, match="no readable images"):
        datasets.folder_images(tmp_path / "broken.nii")


def test_paired_folder_keeps_relative_brightness_and_refuses_unmatched(tmp_path):
    clean = (natural_image("camera")[0][::8, ::8] * 255).astype(np.uint8)
    dark = (clean * 0.2).astype(np.uint8)
    _png(tmp_path / "lol" / "high" / "a.png", clean)
    _png(tmp_path / "lol" / "low" / "a.png", dark)
    items = datasets.paired_folder(tmp_path / "lol")
    assert len(items) == 1
    np.testing.assert_allclose(items[0]["target"][0], clean / 255.0, atol=1e-6)
    np.testing.assert_allclose(items[0]["image"][0], dark / 255.0, atol=1e-6)
    _png(tmp_path / "lol" / "low" / "b.png", dark)  # no clean twin
    with pytest.raises(UsageError, match="do not hold the same files"):
        datasets.paired_folder(tmp_path / "lol")
    with pytest.raises(UsageError, match="no paired layout"):
        datasets.paired_folder(tmp_path / "lol" / "high")


def test_training_on_a_paired_folder_runs(tmp_path):
    from medden.engine import TrainConfig, train

    rng = np.random.default_rng(0)
    for i in range(3):
        clean = (natural_image("camera")[0][i * 64 : i * 64 + 64, :64] * 255).astype(np.uint8)
        noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
        _png(tmp_path / "pairs" / "clean" / f"{i}.png", clean)
        _png(tmp_path / "pairs" / "noisy" / f"{i}.png", noisy)
    cfg = TrainConfig(
        net="dncnn",
        net_kwargs={"depth": 3, "features": 4},
        out_dir=str(tmp_path / "run"),
        data=str(tmp_path / "pairs"),
        noise=None,
        max_iterations=2,
        val_interval=1,
        batch_size=2,
        patch_size=32,
        max_val_images=1,
        progress=False,
    )
    result = train(cfg)
    assert result.iterations == 2 and Path(result.best_path).is_file()
