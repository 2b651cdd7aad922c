"""Synthetic training data: seeded, in range, varied for real, lazy, and usable by the trainer."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage, stats

from medden.data import synthetic as syn
from medden.data.synthetic import (
    MR_LABELS,
    ConcatSequence,
    SyntheticImages,
    dead_leaves,
    sample_radii,
    synth_mr,
)
from medden.engine import TrainConfig, build_data, train

GENERATORS = {"deadleaves": dead_leaves, "synthmr": synth_mr}


def _percentiles(images: list[np.ndarray]) -> np.ndarray:
    """Per draw: mean, 10th, 50th and 90th percentile of the intensities."""
    return np.array([[im.mean(), *np.percentile(im, [10, 50, 90])] for im in images])


# ------------------------------------------------------------------------------ seeds, shapes, range


@pytest.mark.parametrize("shape", [(32, 40), (12, 14, 16)])
@pytest.mark.parametrize("channels", [1, 3])
def test_dead_leaves_is_seeded_and_in_range(shape, channels):
    a = dead_leaves(shape, np.random.default_rng(5), channels=channels)
    b = dead_leaves(shape, np.random.default_rng(5), channels=channels)
    c = dead_leaves(shape, np.random.default_rng(6), channels=channels)
    assert a.shape == (channels, *shape) and a.dtype == np.float32 and a.flags.c_contiguous
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.isfinite(a).all() and 0 <= a.min() and a.max() <= 1 and a.std() > 0


@pytest.mark.parametrize("shape", [(40, 36), (16, 18, 20)])
def test_synth_mr_is_seeded_and_min_max_scaled(shape):
    a, labels = synth_mr(shape, 3, return_labels=True)
    b = synth_mr(shape, np.random.default_rng(3))
    c = synth_mr(shape, 4)
    assert a.shape == (1, *shape) and a.dtype == np.float32 and labels.shape == shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() == 0.0 and a.max() == 1.0
    assert set(np.unique(labels)) <= set(MR_LABELS.values())


def test_one_side_and_spatial_dims():
    assert dead_leaves(10, 0, spatial_dims=3).shape == (1, 10, 10, 10)
    assert synth_mr(12, 0, spatial_dims=3).shape == (1, 12, 12, 12)
    with pytest.raises(ValueError, match="channels"):
        dead_leaves(16, 0, channels=2)
    with pytest.raises(ValueError, match="contrast"):
        synth_mr(16, 0, contrast="ct")


# ------------------------------------------------------------------------------------- dead leaves


def _brute_force(leaves: syn._Leaves, shape: tuple[int, ...], first: int = 0) -> np.ndarray:
    """Reference rasterisation: every leaf from ``first`` on tested at every pixel, painted back to front."""
    d, n = len(shape), len(leaves.r)
    grids = np.indices(shape).astype(np.float32)
    front = np.full(shape, n, dtype=np.int32)
    for k in range(n - 1, first - 1, -1):
        delta = [grids[j] - leaves.centre[k, j] for j in range(d)]
        if leaves.facets[k] == 0:
            terms = [(j, j) for j in range(d)] + [(j, m) for j in range(d) for m in range(j + 1, d)]
            inside = sum(leaves.quad[k, q] * delta[a] * delta[b] for q, (a, b) in enumerate(terms)) <= 1
        else:
            inside = sum(x * x for x in delta) <= leaves.r[k] ** 2
            for f in range(leaves.normals.shape[1]):
                inside &= sum(leaves.normals[k, f, j] * delta[j] for j in range(d)) <= leaves.offsets[k, f]
        front[inside] = k
    return front


@pytest.mark.parametrize("shape", [(40, 50), (17, 20, 23)])
def test_scan_conversion_draws_exactly_the_shapes(shape):
    for seed in range(3):
        leaves = syn._draw_leaves(np.random.default_rng(seed), 60, shape, (1.0, 20.0, 2.0), syn.LEAF_SHAPES)
        assert set(leaves.facets.tolist()) > {0}  # ellipses and polygons/rectangles alike
        front, behind = syn._rasterise(leaves, shape, split=10)
        assert np.array_equal(front, _brute_force(leaves, shape))
        assert np.array_equal(behind, _brute_force(leaves, shape, first=10))  # the layers behind


def test_radii_follow_the_power_law():
    rmin, rmax = 1.0, 200.0

    def cdf(r: np.ndarray, exponent: float) -> np.ndarray:
        a = 1 - exponent
        return (r**a - rmin**a) / (rmax**a - rmin**a)

    r = sample_radii(np.random.default_rng(0), 20_000, rmin, rmax, exponent=3.0)
    assert r.min() >= rmin and r.max() <= rmax
    assert stats.kstest(r, lambda x: cdf(x, 3.0)).pvalue > 0.01
    assert stats.kstest(r, lambda x: cdf(x, 2.5)).pvalue < 1e-6  # the test can tell another law
    # every scale is seen in an image: visible leaves from a few pixels to a large part of the image
    leaves = [dead_leaves(128, seed, return_labels=True)[1] for seed in range(3)]
    areas = np.concatenate([np.bincount(v.ravel())[np.unique(v)] for v in leaves])
    counts, _ = np.histogram(areas, bins=[1, 4, 16, 64, 256, 1024, 128 * 128 + 1])
    assert (counts > 0).all(), counts
    # a larger rmin: far fewer (larger) leaves in view
    visible = np.mean([len(np.unique(v)) for v in leaves])
    fewer = np.mean([len(np.unique(dead_leaves(128, s, rmin=6.0, return_labels=True)[1])) for s in range(3)])
    assert fewer < visible / 3, (fewer, visible)


@pytest.mark.parametrize("channels", [1, 3])
def test_dead_leaves_intensity_histograms_vary(channels):
    images = [dead_leaves(64, seed, channels=channels) for seed in range(20)]
    q = _percentiles(images)
    assert (q.std(0) > 0.08).all(), q.std(0)  # mean and percentiles spread across draws
    assert np.ptp(q[:, 2]) > 0.4  # some draws mostly dark, some mostly bright
    assert min(im.std() for im in images) > 0.03  # no flat image
    if channels == 3:  # colour, not gray in three channels
        assert np.mean([np.abs(im[0] - im[1]).mean() for im in images]) > 0.05


# ------------------------------------------------------------------------------------------ synth MR


@pytest.mark.parametrize("spatial_dims, side", [(2, 64), (3, 24)])
def test_synth_mr_intensity_histograms_vary(spatial_dims, side):
    images = [synth_mr(side, seed, spatial_dims=spatial_dims) for seed in range(20)]
    q = _percentiles(images)
    assert (q.std(0) > 0.08).all(), q.std(0)
    assert np.ptp(q[:, 2]) > 0.3


def _label_means(image: np.ndarray, labels: np.ndarray, minimum: int = 20) -> dict[int, float]:
    return {
        int(k): float(image[labels == k].mean()) for k in np.unique(labels) if (labels == k).sum() >= minimum
    }


def test_synth_mr_background_is_not_always_the_darkest():
    above = darkest = 0
    for seed in range(30):  # a wide field of view, so that background is in the view
        image, labels = synth_mr(64, seed, spacing=(2.0, 3.0), return_labels=True)
        means = _label_means(image[0], labels)
        tissue = [
            means[k]
            for k in (MR_LABELS["csf"], MR_LABELS["gray_matter"], MR_LABELS["white_matter"])
            if k in means
        ]
        if MR_LABELS["background"] not in means or not tissue:
            continue
        background = means.pop(MR_LABELS["background"])
        above += background > min(tissue)
        darkest += background < min(means.values())
    assert above >= 3 and darkest >= 3, (above, darkest)  # both happen


def _enclosed_contrasts(image: np.ndarray, labels: np.ndarray) -> tuple[bool, bool]:
    """Whether a connected structure (CSF, lesion, vessel, blob) lies fully inside other tissue, darker
    than everything around it (first) or brighter (second)."""
    dark = bright = False
    for k in (MR_LABELS["csf"], *range(MR_LABELS["lesion"], len(MR_LABELS))):
        parts, n = ndimage.label(labels == k)
        for c in range(1, n + 1):
            region = parts == c
            if region.sum() < 4 or region[[0, -1]].any() or region[:, [0, -1]].any():
                continue
            ring = ndimage.binary_dilation(region, iterations=2) & ~region
            if (labels[ring] == MR_LABELS["background"]).any():
                continue  # inside the head only
            inner, outer = image[region], image[ring]
            dark |= outer.mean() > inner.mean() + 0.15 and (outer > np.median(inner)).mean() > 0.9
            bright |= outer.mean() < inner.mean() - 0.15 and (outer < np.median(inner)).mean() > 0.9
    return dark, bright


def test_synth_mr_has_dark_structures_inside_bright_tissue_and_the_reverse():
    found = []
    for seed in range(30):
        image, labels = synth_mr(64, seed, return_labels=True)
        found.append(_enclosed_contrasts(image[0], labels))
    dark, bright = np.sum(found, axis=0)
    assert dark >= 3 and bright >= 3, (dark, bright)


@pytest.mark.parametrize(
    "contrast, order",
    [("t1", ("white_matter", "gray_matter", "csf")), ("t2", ("csf", "gray_matter", "white_matter"))],
)
def test_synth_mr_contrasts_order_the_tissues(contrast, order):
    checked = 0
    for seed in range(12):
        image, labels = synth_mr(
            64, seed, contrast=contrast, structures=False, spacing=(0.8, 1.2), return_labels=True
        )
        means = {}
        for name in order:
            core = ndimage.binary_erosion(labels == MR_LABELS[name])  # away from partial volume
            if core.sum() >= 10:
                means[name] = image[0][core].mean()
        if len(means) == 3:
            checked += 1
            assert means[order[0]] > means[order[1]] > means[order[2]], (seed, means)
    assert checked >= 6


# --------------------------------------------------------------------------------------- sequences


def test_synthetic_images_are_lazy_and_independent_of_access_order(monkeypatch):
    calls = []

    def counting(shape, rng, **kw):
        calls.append(1)
        return dead_leaves(shape, rng, **kw)

    monkeypatch.setattr(syn, "dead_leaves", counting)
    data = SyntheticImages("deadleaves", length=10**9, seed=7, shape=(24, 20), channels=3)
    assert len(data) == 10**9 and not calls  # nothing generated up front
    forward = [data[i] for i in (0, 1, 2, 3)]
    backward = [data[i] for i in (3, 2, 1, 0)][::-1]
    assert len(calls) == 8
    assert all(np.array_equal(a, b) for a, b in zip(forward, backward))
    assert np.array_equal(data[2], dead_leaves((24, 20), np.random.default_rng([7, 2]), channels=3))
    assert np.array_equal(data[-1], data[10**9 - 1])
    assert not np.array_equal(data[0], data[1])
    assert not np.array_equal(
        data[0], SyntheticImages("deadleaves", 5, seed=8, shape=(24, 20), channels=3)[0]
    )
    assert not np.array_equal(
        data[0], SyntheticImages("deadleaves", 5, seed=(7, 1), shape=(24, 20), channels=3)[0]
    )
    assert np.array_equal(pickle.loads(pickle.dumps(data))[3], forward[3])  # data-loader workers
    with pytest.raises(IndexError):
        data[10**9]
    with pytest.raises(ValueError, match="channels"):
        SyntheticImages("synthmr", 4, channels=3)


def test_data_loader_workers_see_the_same_items():
    import torch

    data = SyntheticImages("deadleaves", length=6, seed=1, shape=16)
    loaded = list(torch.utils.data.DataLoader(data, batch_size=None, num_workers=2))
    assert all(np.array_equal(np.asarray(a), data[i]) for i, a in enumerate(loaded))


def test_concat_sequence_mixes_by_length_or_weight():
    a, b = SyntheticImages("deadleaves", 10**6, seed=0, shape=8), ["x", "y", "z"]
    plain = ConcatSequence([a, b])
    assert len(plain) == 10**6 + 3 and plain[10**6 + 1] == "y" and np.array_equal(plain[5], a[5])
    weighted = ConcatSequence([a, b], weights=[3, 1])
    n = len(weighted)
    assert n >= 4 * 10**6 / 3
    owners = [weighted[j] if isinstance(weighted[j], str) else "a" for j in range(n - 50, n)]
    assert set(owners) == {"x", "y", "z"}  # the small part is cycled through its share
    assert isinstance(weighted[int(0.74 * n)], np.ndarray) and isinstance(weighted[int(0.76 * n)], str)
    finite = ConcatSequence([list("abcd"), ["x"]], weights=[1, 1])
    assert sorted(finite) == sorted("abcdxxxx")  # every item at least once, half of the draws each
    with pytest.raises(ValueError, match="weight"):
        ConcatSequence([a, b], weights=[1, 0])


# ------------------------------------------------------------------------------------------ trainer


def _cfg(tmp_path: Path, name: str, **kw) -> TrainConfig:
    settings = {
        "net": "dncnn",
        "net_kwargs": {"depth": 4, "features": 8},
        "out_dir": str(tmp_path / name),
        "max_iterations": 2,
        "val_interval": 2,
        "log_interval": 1,
        "batch_size": 2,
        "patch_size": 24,
        "max_val_images": 2,
        "progress": False,
    }
    settings.update(kw)
    return TrainConfig(**settings)


@pytest.mark.parametrize(
    "data, spatial_dims, patch_size", [("synthmr", 2, 24), ("deadleaves-gray", 2, 24), ("synthmr", 3, 12)]
)
def test_training_on_a_synthetic_source(tmp_path, data, spatial_dims, patch_size):
    cfg = _cfg(tmp_path, "run", data=data, spatial_dims=spatial_dims, patch_size=patch_size)
    res = train(cfg)
    assert res.iterations == 2 and res.best_ssim is not None and Path(res.best_path).is_file()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"] == data
    items, _, val_items = build_data(cfg)
    assert not isinstance(items, list) and len(items) == 100_000
    assert items[123]["index"] == 123 and items[123]["image"].shape == (1,) + (patch_size,) * spatial_dims
    assert len(val_items) == 2 * 3  # two validation images at three levels


def test_training_on_synthetic_data_is_reproducible(tmp_path):
    runs = [train(_cfg(tmp_path, f"r{seed}", data="deadleaves-gray", seed=seed)) for seed in (0, 0, 1)]
    assert runs[0].best_sha256 == runs[1].best_sha256 != runs[2].best_sha256


def test_synthetic_splits_and_mixes(tmp_path):
    from medden.engine.data import clean_images

    def _clean_sources(cfg, split):
        return clean_images(cfg, cfg.data, split)

    cfg = _cfg(tmp_path, "mix", data="synthmr")
    other = _cfg(tmp_path, "mix", data="synthmr", seed=5)
    assert np.array_equal(_clean_sources(cfg, "val")[0], _clean_sources(other, "val")[0])  # fixed set
    assert not np.array_equal(_clean_sources(cfg, "train")[0], _clean_sources(other, "train")[0])
    assert not np.array_equal(_clean_sources(cfg, "train")[0], _clean_sources(cfg, "val")[0])
    mixed = _cfg(tmp_path, "mix", data="synthmr+mni152+deadleaves-gray")
    mixed.validate()
    items, _, _ = build_data(mixed)
    n = len(items)
    assert n == 300_000  # equal thirds, each synthetic source's 100000 items held once
    third = _clean_sources(mixed, "train")  # the same lazy mix the items are made from
    assert np.array_equal(items[5]["image"], SyntheticImages("synthmr", 10, seed=0, shape=24)[5])
    assert np.array_equal(items[n - 5]["image"], third[n - 5])
    mni = _clean_sources(_cfg(tmp_path, "mix", data="mni152"), "train")
    assert any(np.array_equal(items[n // 2]["image"], s) for s in mni)
    assert items[n - 1]["image"].shape == (1, 24, 24)
    with pytest.raises(Exception, match="weight"):
        _cfg(tmp_path, "mix", data="synthmr*0+mni152").validate()


def test_synthmr_coarse_is_a_coarser_pixel_grid():
    """synthmr-coarse: the same generator with 1.5-4 mm pixels (EPI, thick-slice, small-matrix grids)
    instead of 0.6-2 mm, so the same patch holds more anatomy: more tissue boundaries per pixel."""
    from medden.data.sources import SYNTHETIC_SOURCES, clean_sources

    coarse = clean_sources("synthmr-coarse", "train", patch_size=48, seed=3)
    again = clean_sources("synthmr-coarse", "train", patch_size=48, seed=3)
    fine = clean_sources("synthmr", "train", patch_size=48, seed=3)
    assert np.array_equal(coarse[7], again[7]) and not np.array_equal(coarse[7], fine[7])
    assert coarse[7].shape == (1, 48, 48) and coarse[7].dtype == np.float32
    spacing = SYNTHETIC_SOURCES["synthmr-coarse"][2]["spacing"]
    assert np.array_equal(coarse[7], synth_mr(48, np.random.default_rng([3, 7]), spacing=spacing))

    def boundaries(spacing: tuple[float, float]) -> float:  # label changes per pixel pair
        return float(
            np.mean(
                [
                    np.mean(np.diff(synth_mr(48, seed, spacing=spacing, return_labels=True)[1], axis=-1) != 0)
                    for seed in range(16)
                ]
            )
        )

    # measured 0.181 against 0.143 (16 draws): more anatomy per pixel, though more of the view is air
    assert boundaries(spacing) > 1.2 * boundaries((0.6, 2.0))
