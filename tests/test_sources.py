"""Data sources (medden.data.sources): names, splits, mixes, levels, and the real scans (never trained on)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest

import medden.io as mio
from medden.cli import main
from medden.data import datasets, sources
from medden.data.synthetic import ConcatSequence, SyntheticImages
from medden.errors import UsageError


def test_named_sources_give_the_dataset_splits():
    for split in ("train", "val", "test"):
        got = sources.clean_sources("mni152", split, axis=1)
        want = datasets.mni152_slices(split, axis=1)
        assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    slabs = sources.clean_sources("mni152-wm", "val", spatial_dims=3)
    assert all(
        np.array_equal(a, b) for a, b in zip(slabs, datasets.mni152_slabs("val", kind="wm"), strict=True)
    )
    half = sources.clean_sources("mni152-2mm", "test")
    assert half[0].shape[1:] == tuple((s + 1) // 2 for s in datasets.mni152_slices("test")[0].shape[1:])
    with pytest.raises(UsageError, match="2D"):
        sources.clean_sources("skimage-gray", "val", spatial_dims=3)


def test_synthetic_sets_and_mixes():
    val = sources.clean_sources("synthmr", "val", patch_size=16, seed=3)
    assert isinstance(val, SyntheticImages) and len(val) == sources.SYNTHETIC_LENGTHS["val"]
    assert np.array_equal(val[0], sources.clean_sources("synthmr", "val", patch_size=16, seed=9)[0])  # fixed
    train = sources.clean_sources("synthmr", "train", patch_size=16, seed=3)
    assert not np.array_equal(train[0], sources.clean_sources("synthmr", "train", patch_size=16, seed=4)[0])
    mix = sources.clean_sources("synthmr*3+mni152", "train", patch_size=16)
    assert isinstance(mix, ConcatSequence) and mix.weights == pytest.approx([0.75, 0.25])
    finite = sources.clean_sources("mni152+skimage-gray", "val")
    assert isinstance(finite, ConcatSequence) and finite.weights is None  # plain concatenation
    assert sources.parse_mix("synthmr*3+mni152") == [("synthmr", 3.0), ("mni152", None)]
    with pytest.raises(UsageError, match="positive number"):
        sources.parse_mix("synthmr*0+mni152")


@pytest.mark.parametrize(
    "data, training, message",
    [
        ("no-such-source", False, "is neither one of"),
        ("mni152+nope", False, "is neither one of"),
        ("realscans", True, "never training"),
        ("synthmr+realscans", True, "never training"),
        ("synthmr*-1", False, "positive number"),
    ],
)
def test_check_data(data, training, message):
    with pytest.raises(UsageError, match=message):
        sources.check_data(data, training=training)


def test_check_data_accepts_sources_folders_and_realscans_outside_training(tmp_path):
    for data in ("mni152", "synthmr*2+mni152+deadleaves-gray", str(tmp_path)):
        sources.check_data(data, training=True)
    sources.check_data("realscans")
    sources.check_data("realscans+mni152")


def test_splits_and_pairs(tmp_path):
    assert sources.available_splits("mni152") == ("train", "val", "test")
    assert sources.available_splits("realscans") == ("val", "test", "all")
    assert sources.available_splits(str(tmp_path)) == ("train", "val", "test", "all")
    with pytest.raises(UsageError, match="'all' is for folders and realscans"):
        sources.check_split("mni152", "all")
    with pytest.raises(UsageError, match="never training"):
        sources.check_split("mni152+realscans", "train")
    assert not sources.is_paired(str(tmp_path)) and not sources.is_paired("mni152")
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    assert sources.is_paired(str(tmp_path))


def test_levels():
    assert sources.default_level_range("rician") == (0.01, 0.09)
    assert sources.default_level_range("rician", (0.02, 0.2)) == (0.02, 0.2)
    assert sources.default_level_range("rician+gaussian") is None  # each kind its own default
    assert sources.default_level_range(None) is None
    assert sources.validation_levels("rician") == pytest.approx([0.01, 0.05, 0.09])
    assert sources.validation_levels("salt_pepper") == pytest.approx([0.05, 0.225, 0.4])
    assert sources.validation_levels("gaussian", (0.0, 0.2)) == pytest.approx([0.02, 0.11, 0.2])  # no zero
    assert sources.validation_levels("rician", None, (0.03,)) == [0.03]


# ------------------------------------------------------------------------------------------ realscans


def test_real_scans_are_read_through_medden_io_and_normalised(monkeypatch):
    read = []
    load = mio.load

    def counting_load(src, *args, **kwargs):
        read.append(str(src))
        return load(src, *args, **kwargs)

    monkeypatch.setattr(mio, "load", counting_load)
    sources.real_scan_volumes.cache_clear()
    try:
        volumes = sources.real_scan_volumes()
    finally:
        sources.real_scan_volumes.cache_clear()  # not cached with the counting reader
    names = [name for name, _ in volumes]
    assert names == [
        "nibabel/anatomical.nii",
        "nibabel/example4d.nii.gz",
        "pydicom/MR_small.dcm",
        "pydicom/CT_small.dcm",
    ]
    assert [p.rsplit("/", 1)[-1] for p in read] == [
        "anatomical.nii",
        "example4d.nii.gz",
        "MR_small.dcm",
        "CT_small.dcm",
    ]
    for _, vol in volumes:
        assert vol.ndim == 3 and vol.dtype == np.float32
        assert vol.min() == 0.0 and vol.max() == 1.0  # min-max per scan
    assert volumes[1][1].shape == (128, 96, 24)  # the first volume of the 4D series
    assert [v.shape[2] for _, v in volumes[2:]] == [1, 1]


def test_realscans_splits_slices_and_volumes():
    with pytest.raises(UsageError, match="never training"):
        sources.realscans("train")
    val = sources.clean_sources("realscans", "val")
    for split in ("test", "all"):
        other = sources.clean_sources("realscans", split)
        assert len(other) == len(val) and all(np.array_equal(a, b) for a, b in zip(val, other, strict=True))
    assert len(val.labels) == len(val) and all(im.ndim == 3 and im.shape[0] == 1 for im in val)
    # the first four images are one of each scan, so a validation cap sees all of them
    assert [label.split(" ")[0] for label in val.labels[:4]] == [
        name for name, _ in sources.real_scan_volumes()
    ]
    assert val.labels.count("pydicom/MR_small.dcm") == val.labels.count("pydicom/CT_small.dcm") == 1
    assert all(
        (im > 0.1).mean() >= 0.15 for im, label in zip(val, val.labels, strict=True) if "slice" in label
    )
    sagittal = sources.realscans("val", axis=0)
    assert (1, 64, 64) in [im.shape for im in sagittal]  # the single-slice scan, whatever the axis
    assert {
        im.shape[1] for im, lab in zip(sagittal, sagittal.labels, strict=True) if "anatomical" in lab
    } == {41}
    volumes = sources.realscans("test", spatial_dims=3)
    assert volumes.labels == [
        "nibabel/anatomical.nii",
        "nibabel/example4d.nii.gz",
    ]  # the thin DICOMs left out
    assert [v.shape for v in volumes] == [(1, 33, 41, 25), (1, 128, 96, 24)]


def test_evaluate_on_realscans(tmp_path):
    """A two-image evaluation of the real scans against the noisy input; the scans are named."""
    out = tmp_path / "eval"
    args = ["evaluate", "--methods", "noisy", "median", "--data", "realscans", "--max-images", "2"]
    args += ["--levels", "0.05", "--no-figures", "--out", str(out), "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    info = results["data"]
    assert info["source"] == "realscans" and info["split"] == "test" and len(info["scans"]) == 2
    assert info["available"] == len(sources.realscans("test"))
    summary = {r["method"]: r for r in results["summary"]}
    assert summary["noisy"]["n"] == summary["median"]["n"] == 2
    assert summary["median"]["psnr_mean"] > summary["noisy"]["psnr_mean"]
    # no training split of the real scans, one line
    proc = subprocess.run(
        [sys.executable, "-m", "medden", "evaluate", "--methods", "noisy", "--data", "realscans",
         "--split", "train", "--out", str(tmp_path / "bad")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "medden evaluate: error: realscans are for validation and testing only, never training"
    ]
