"""Hostile inputs (issue 19): no input may crash a batch, run code, or lose a slice silently.

Each probe runs the real command line on an input folder holding the hostile file(s) next to a good
series, and checks what a user relies on: the exit code (3 when a unit failed, 0 when every unit is
done or skipped), no traceback or native panic text on stderr and one line per failed unit, the good
series ``done`` in ``OUTPUT/manifest.jsonl``, a complete manifest (no unit left ``started``), and the
input tree byte-identical afterwards. The corpus (``hostile_corpus.py``) is built once per module
from pydicom's test files and synthetic data. The isolated reader (:mod:`medden.io.isolate`) is
tested here too: a decoder that segfaults or aborts fails one input with a typed error.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hostile_corpus import (
    MUTATIONS,
    PHI,
    PHI_PARTS,
    TRANSFER_SYNTAX_FILES,
    corrupt_rle,
    good_series,
    mutated_files,
    noisy_mni_slice,
    pydicom_file,
    tree_hashes,
    truncate_before_rows,
    with_header_values,
)

import medden.io as mio
from medden.cli import main
from medden.io import write_synthetic_series
from medden.io.isolate import IsolatedLoader

# ----------------------------------------------------------------------------------------- the corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Every hostile file of the module, built once: ``good/`` (a 4-slice series), ``rle/`` (the
    corrupt RLE file) and ``<mutation>/<syntax>/<syntax>.dcm`` for each mutation and transfer syntax."""
    root = tmp_path_factory.mktemp("corpus")
    good_series(root / "good")
    corrupt_rle(root / "rle" / "MR_small_RLE_corrupt.dcm")
    for mutation in MUTATIONS:
        mutated_files(root / mutation, mutation)
    return root


def _input_with(tmp_path: Path, corpus: Path, *parts: str) -> Path:
    """``tmp_path/in`` holding the good series and the corpus folders ``parts``."""
    src = tmp_path / "in"
    shutil.copytree(corpus / "good", src / "good")
    for part in parts:
        shutil.copytree(corpus / part, src / part)
    return src


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _denoise(capfd, src: Path, out: Path | str, *extra: str) -> tuple[int, str, str]:
    """The real ``medden denoise`` in-process; (exit code, stdout, stderr), captured at the file
    descriptors so what native code prints is seen too."""
    capfd.readouterr()
    rc = main(["denoise", str(src), str(out), "--model", "median", *extra])
    captured = capfd.readouterr()
    return rc, captured.out, captured.err


def _assert_clean_stderr(err: str) -> None:
    assert "Traceback" not in err, err
    assert "panicked" not in err and "stack backtrace" not in err, err  # a Rust decoder's panic text
    assert not any(line.startswith("  File ") for line in err.splitlines()), err


def _check_batch(rc: int, err: str, src: Path, out: Path, before: dict[str, str]) -> dict[str, dict]:
    """The contract every probe shares; returns the manifest rows by input path."""
    _assert_clean_stderr(err)
    assert tree_hashes(src) == before, "the input tree changed"
    rows = _manifest(out)
    assert len({r["key"] for r in rows}) == len(rows), "one record per unit"
    assert all(r["status"] in ("done", "skipped", "failed") for r in rows), rows  # none left "started"
    failed = [r for r in rows if r["status"] == "failed"]
    assert rc == (3 if failed else 0), (rc, rows)
    lines = err.splitlines()
    for r in failed:
        assert r["error"] and "\n" not in r["error"], r
        mine = [line for line in lines if line.startswith(f"failed: {r['label']}: ")]
        assert len(mine) == 1, (r, err)
    by_input = {r["input"]: r for r in rows}
    assert by_input[str(src / "good")]["status"] == "done", rows
    return by_input


# ------------------------------------------------------------------------------ (1) corrupt RLE data


def test_corrupt_rle_fails_its_unit_not_the_batch(tmp_path, corpus, capfd):
    src = _input_with(tmp_path, corpus, "rle")
    before = tree_hashes(src)
    rc, _, err = _denoise(capfd, src, tmp_path / "out")
    by_input = _check_batch(rc, err, src, tmp_path / "out", before)
    record = by_input[str(src / "rle")]  # the file alone is a one-slice series: read, then refused
    assert rc == 3 and record["status"] == "failed", record
    assert "PixelDataError" in record["error"] and "RLE" in record["error"], record


# ---------------------------------------------------- (2) byte flips and truncations, every syntax


def test_corpus_has_one_file_per_transfer_syntax():
    for name, syntax in TRANSFER_SYNTAX_FILES.values():
        ds = pydicom.dcmread(pydicom_file(name), stop_before_pixels=True)
        assert str(ds.file_meta.TransferSyntaxUID) == syntax, name


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_mutated_files_of_every_transfer_syntax(tmp_path, corpus, capfd, mutation):
    src = _input_with(tmp_path, corpus, mutation)
    before = tree_hashes(src)
    rc, _, err = _denoise(capfd, src, tmp_path / "out")
    by_input = _check_batch(rc, err, src, tmp_path / "out", before)
    for folder in sorted((src / mutation).iterdir()):
        hostile = folder / f"{folder.name}.dcm"
        record = by_input.get(str(hostile)) or by_input.get(str(folder))  # refused file, or read series
        assert record is not None, (folder.name, sorted(by_input))
        if mutation.startswith("truncate"):
            # a cut image is never "not an image" (skipped): that would drop it without a word
            assert record["status"] == "failed", (folder.name, record)
        elif record["status"] == "skipped":
            assert record["error"].startswith("NonImageObjectError"), (folder.name, record)


# --------------------------------------------------------------- (3) a slice cut before its Rows


def test_slice_truncated_before_rows_fails_and_is_recorded(tmp_path, capfd):
    src = tmp_path / "in"
    good_series(src / "good", seed=1)
    files = good_series(src / "five", n_slices=5, seed=2, series_description="five slices")
    truncate_before_rows(files[2])
    before = tree_hashes(src)
    rc, _, err = _denoise(capfd, src, tmp_path / "out")
    by_input = _check_batch(rc, err, src, tmp_path / "out", before)
    bad = by_input[str(files[2])]
    assert rc == 3 and bad["status"] == "failed", bad
    assert bad["error"].startswith("PixelDataError") and "truncated" in bad["error"], bad
    series = by_input[str(src / "five")]
    assert series["status"] == "done", series  # the other four slices are written...
    assert series["missing_files"] == 1, series  # ...and the record says one file is missing


# ------------------------------------------------------------ (4) patient data in code strings


def test_phi_in_code_string_fields_is_never_echoed(tmp_path, capfd):
    src = tmp_path / "in"
    good_series(src / "good", seed=1)
    for f in good_series(src / "phi_modality", seed=3):
        with_header_values(f, Modality=PHI)
    (one,) = good_series(src / "phi_photometric", n_slices=1, seed=4)
    with_header_values(one, PhotometricInterpretation=PHI)
    (both,) = good_series(src / "phi_both", n_slices=1, seed=5)
    with_header_values(both, Modality=PHI, PhotometricInterpretation=PHI)
    before = tree_hashes(src)
    out = tmp_path / "out"
    rc, stdout, err = _denoise(capfd, src, out)
    by_input = _check_batch(rc, err, src, out, before)
    assert by_input[str(src / "phi_modality")]["status"] == "done"
    assert by_input[str(one)]["status"] == "failed" and by_input[str(both)]["status"] == "failed"
    assert main(["info", str(src)]) == 0
    assert main(["info", str(src), "--json"]) == 0
    info = capfd.readouterr()
    texts = [stdout, err, info.out, info.err]
    texts += [p.read_text() for p in out.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl")]
    texts += [str(p.relative_to(out)) for p in out.rglob("*")]
    for text in texts:
        for part in PHI_PARTS:
            assert part not in text, (part, text[:300])


# ------------------------------------------------------------- (5) 2D images stored as volumes


def _estimate(capfd, path: Path, kind: str) -> dict:
    capfd.readouterr()
    assert main(["estimate-noise", str(path), "--kind", kind]) == 0
    captured = capfd.readouterr()
    _assert_clean_stderr(captured.err)
    return json.loads(captured.out)


@pytest.mark.parametrize("kind", ["rician", "gaussian"])
def test_noise_of_a_single_slice_volume(tmp_path, capfd, kind):
    """A 256×256×1-like NIfTI and a one-slice DICOM series: the estimate is the σ that was added."""
    noisy, sigma = noisy_mni_slice(0.05, seed=2, kind=kind)
    nifti = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(noisy[:, :, None].astype(np.float32), np.eye(4)), nifti)
    (dicom,) = write_synthetic_series(noisy[:, :, None], np.diag([-1.0, 1, 1, 1]), tmp_path / "one").files
    for path in (nifti, dicom):
        est = _estimate(capfd, path, kind)
        assert abs(est["sigma"] - sigma) / sigma < 0.15, (path.name, est)


# ----------------------------------------------------- probes of the workflow side (the lead's fix)


def test_one_nan_voxel_stays_one_nan_voxel(tmp_path, capfd):
    noisy, _ = noisy_mni_slice(0.05)
    vol = np.stack([noisy, noisy[::-1], noisy[:, ::-1]], axis=-1).astype(np.float32)
    vol[60, 70, 1] = np.nan
    src = tmp_path / "in"
    good_series(src / "good")
    nib.save(nib.Nifti1Image(vol, np.eye(4)), src / "nan.nii.gz")
    before = tree_hashes(src)
    out = tmp_path / "out"
    rc, _, err = _denoise(capfd, src, out)
    by_input = _check_batch(rc, err, src, out, before)
    record = by_input[str(src / "nan.nii.gz")]
    assert rc == 0 and record["status"] == "done", record
    result = np.asanyarray(nib.load(out / "nan.nii.gz").dataobj)
    assert np.array_equal(np.argwhere(np.isnan(result)), [[60, 70, 1]])  # not a whole NaN slice
    assert record["nonfinite"] == 1, record


def test_relative_output_path_with_figures(tmp_path, capfd, monkeypatch):
    src = tmp_path / "in"
    good_series(src / "good")
    monkeypatch.chdir(tmp_path)
    rc, _, err = _denoise(capfd, Path("in"), "out_rel", "--figures")
    _assert_clean_stderr(err)
    assert rc == 0, err
    assert list((tmp_path / "out_rel" / "figures").rglob("*.figure.png")), err


def test_info_json_into_a_closed_pipe(tmp_path):
    for i in range(1500):  # a report far larger than a pipe's buffer
        (tmp_path / f"note{i:04d}.txt").write_text("not an image")
    good_series(tmp_path / "good")
    info = subprocess.Popen(
        [sys.executable, "-m", "medden", "info", "--json", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = subprocess.run(["head", "-c", "1"], stdin=info.stdout, capture_output=True, timeout=300)
    info.stdout.close()
    err = info.stderr.read().decode()
    rc = info.wait(timeout=300)
    assert head.stdout == b"{"
    assert rc in (0, 141, -13), (rc, err)  # done, or ended by SIGPIPE as `cat` would be
    assert err == "", err


def test_bad_usage_exits_2_with_one_line(tmp_path, capfd):
    rc, _, err = _denoise(capfd, tmp_path / "missing", tmp_path / "out")
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    _assert_clean_stderr(err)


# ------------------------------------------------------------------ the isolated reader (A)


class _CrashOnArrival:
    """Unpickling it in the reader process runs ``crash``: a stand-in for a decoder that segfaults
    or aborts on a hostile file."""

    def __init__(self, crash: tuple, path: str = "hostile.dcm") -> None:
        self.crash, self.path = crash, Path(path)

    def __reduce__(self) -> tuple:
        return self.crash


@pytest.fixture(scope="module")
def loader():
    with IsolatedLoader() as reader:
        yield reader


def test_isolated_load_returns_what_load_returns(tmp_path, corpus, loader):
    nifti = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(8 * 9 * 10, dtype=np.int16).reshape(8, 9, 10), np.eye(4)), nifti)
    scan = mio.scan(corpus / "good")
    for source in (corpus / "good", scan.series[0], nifti, pydicom_file("CT_small.dcm")):
        plain, isolated = mio.load(source), loader.load(source)
        assert isolated.kind == plain.kind and isolated.path == plain.path
        assert isolated.array.dtype == plain.array.dtype and np.array_equal(isolated.array, plain.array)
        assert isolated.meta == plain.meta and np.array_equal(isolated.affine, plain.affine)
    series = loader.load(corpus / "good").source
    assert isinstance(series, mio.DicomSeries) and series.files == scan.series[0].files


def test_isolated_load_passes_typed_errors_through(tmp_path, corpus, loader):
    with pytest.raises(mio.PixelDataError, match="RLE") as info:
        loader.load(corpus / "rle" / "MR_small_RLE_corrupt.dcm")
    assert info.value.path == corpus / "rle" / "MR_small_RLE_corrupt.dcm" and "\n" not in str(info.value)
    with pytest.raises(mio.InputNotFoundError):
        loader.load(tmp_path / "missing.dcm")


@pytest.mark.parametrize(
    "crash, signal_name",
    [((ctypes.string_at, (0,)), "SIGSEGV"), ((os.abort, ()), "SIGABRT")],
    ids=["segfault", "abort"],
)
def test_isolated_load_survives_a_decoder_crash(corpus, loader, crash, signal_name):
    with pytest.raises(mio.ReaderCrashError, match=f"the decoder crashed .*{signal_name}") as info:
        loader.load(_CrashOnArrival(crash))
    assert info.value.path == Path("hostile.dcm") and isinstance(info.value, mio.MeddenIOError)
    assert loader.load(corpus / "good").shape == (32, 28, 4)  # a fresh worker takes the next input


def test_isolated_load_timeout_stops_the_reader(corpus, loader):
    t0 = time.perf_counter()
    with pytest.raises(mio.ReaderCrashError, match="did not finish within 0.5 s"):
        loader.load(_CrashOnArrival((time.sleep, (60,))), timeout=0.5)
    assert time.perf_counter() - t0 < 30
    assert loader.load(corpus / "good").shape == (32, 28, 4)


def test_isolated_load_forwards_the_readers_warnings(tmp_path, loader, caplog):
    files = good_series(tmp_path / "five", n_slices=5)
    truncate_before_rows(files[1])
    with caplog.at_level(logging.WARNING, logger="medden"):
        loaded = loader.load(tmp_path / "five")
    assert loaded.meta["missing_files"] == 1
    assert any("could not be read" in r.getMessage() for r in caplog.records), caplog.records


def test_isolated_load_in_a_script_without_main_guard(tmp_path, corpus):
    script = tmp_path / "script.py"
    script.write_text(f"import medden.io as mio\nprint(mio.load_isolated({str(corpus / 'good')!r}).shape)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "(32, 28, 4)", proc.stderr
