"""NIfTI: header-exact round trips, dtype and scaling kept, float only when asked, bad files."""

from __future__ import annotations

import hashlib
import logging
import os
import stat

import nibabel as nib
import numpy as np
import pytest
from nibabel.openers import ImageOpener

import medden.io as mio
from medden.io.nifti import load_nifti, save_nifti, write_nifti


def _raw_header(path) -> bytes:
    img = nib.load(path)
    with ImageOpener(path) as fh:
        return type(img.header).from_fileobj(fh).binaryblock


def _raw_data(path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj.get_unscaled())


def _oblique(zooms=(1.5, 0.9, 2.0)) -> np.ndarray:
    aff = np.eye(4)
    c, s = np.cos(0.3), np.sin(0.3)
    aff[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag(zooms)
    aff[:3, 3] = [-40.0, 12.0, 7.5]
    return aff


def _make(path, kind: str) -> None:
    rng = np.random.default_rng(0)
    if kind == "int16_scaled":
        data = rng.integers(-3000, 3000, (9, 8, 7)).astype(np.int16)
        img = nib.Nifti1Image(data, _oblique())
        img.header["scl_slope"], img.header["scl_inter"] = 2.5, -3.0
    elif kind == "uint8":
        img = nib.Nifti1Image(rng.integers(0, 255, (9, 8, 7)).astype(np.uint8), _oblique())
    elif kind == "float32_4d":
        img = nib.Nifti1Image(rng.normal(size=(6, 5, 4, 3)).astype(np.float32), _oblique())
        img.header.set_xyzt_units("mm", "msec")
        img.header.set_zooms((1.5, 0.9, 2.0, 2500.0))
    elif kind == "codes":
        img = nib.Nifti1Image(rng.integers(0, 1000, (9, 8, 7)).astype(np.uint16), _oblique())
        img.header.set_qform(_oblique((1.5, 0.9, 2.0)), code=1)
        shifted = _oblique()
        shifted[:3, 3] += 5
        img.header.set_sform(shifted, code=4)
        img.header["descrip"] = b"scanner output"
        img.header["intent_code"] = 0
        img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment extension"))
    elif kind == "nifti2":
        img = nib.Nifti2Image(rng.integers(0, 1000, (9, 8, 7)).astype(np.int32), _oblique())
    else:
        raise ValueError(kind)
    nib.save(img, path)


@pytest.mark.parametrize("kind", ["int16_scaled", "uint8", "float32_4d", "codes", "nifti2"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_round_trip_is_header_exact(tmp_path, kind, suffix):
    src = tmp_path / f"src{suffix}"
    _make(src, kind)
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    loaded = mio.load(src)
    assert loaded.kind == "nifti" and np.allclose(loaded.affine, nib.load(src).affine)
    out = mio.save(loaded, loaded.array, tmp_path / f"out{suffix}")
    assert _raw_header(out) == _raw_header(src)
    assert np.array_equal(_raw_data(out), _raw_data(src))
    assert type(nib.load(out)) is type(nib.load(src))
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before  # input untouched


def test_scaled_values_and_dtype_kept(tmp_path):
    src = tmp_path / "s.nii.gz"
    _make(src, "int16_scaled")
    loaded = load_nifti(src)
    raw = _raw_data(src)
    assert np.allclose(loaded.array, raw * 2.5 - 3.0)
    assert loaded.meta["dtype"] == "int16" and loaded.meta["scaling"] == [2.5, -3.0]
    out = save_nifti(loaded, loaded.array + 5.0, tmp_path / "o.nii.gz")  # 5 = two steps of 2.5
    img = nib.load(out)
    assert img.get_data_dtype() == np.int16 and np.array_equal(_raw_data(out), raw + 2)


def test_float_output_only_when_asked(tmp_path):
    src = tmp_path / "u8.nii"
    _make(src, "uint8")
    loaded = mio.load(src)
    assert loaded.array.dtype == np.uint8
    noisy = loaded.array + 0.3
    out_int = mio.save(loaded, noisy, tmp_path / "i.nii")
    assert nib.load(out_int).get_data_dtype() == np.uint8
    assert np.array_equal(np.asanyarray(nib.load(out_int).dataobj), loaded.array)  # rounded
    out_float = mio.save(loaded, noisy, tmp_path / "f.nii", dtype=np.float32)
    img = nib.load(out_float)
    assert img.get_data_dtype() == np.float32 and np.allclose(img.get_fdata(), noisy)
    assert (
        np.allclose(img.affine, loaded.affine) and list(img.header.get_xyzt_units()) == loaded.meta["units"]
    )


def test_integers_clipped_and_counted(tmp_path, caplog):
    src = tmp_path / "u8.nii"
    _make(src, "uint8")
    loaded = mio.load(src)
    values = loaded.array.astype(float)
    values[0, 0, :3] = [-20.0, 300.0, np.nan]
    with caplog.at_level(logging.WARNING, logger="medden.io"):
        out = mio.save(loaded, values, tmp_path / "c.nii")
    data = np.asanyarray(nib.load(out).dataobj)
    assert list(data[0, 0, :3]) == [0, 255, 0]
    assert "3 of" in caplog.text and "clipped" in caplog.text


def test_tr_units_and_4d_kept(tmp_path):
    src = tmp_path / "f4.nii.gz"
    _make(src, "float32_4d")
    loaded = mio.load(src)
    assert loaded.array.shape == (6, 5, 4, 3) and loaded.meta["tr"] == 2500.0
    assert loaded.meta["units"] == ["mm", "msec"]
    out = mio.save(loaded, loaded.array * 2, tmp_path / "o.nii.gz", description="doubled")
    hdr = nib.load(out).header
    assert hdr.get_zooms()[3] == 2500.0 and hdr.get_xyzt_units() == ("mm", "msec")
    assert hdr["descrip"].tobytes().rstrip(b"\0") == b"doubled"


def test_mni152_volume(tmp_path):
    from medden.data.samples import mni152

    vol, affine = mni152()
    out = write_nifti(vol, tmp_path / "mni.nii.gz", affine=affine)
    loaded = mio.load(out)
    assert np.array_equal(loaded.array, vol) and np.allclose(loaded.affine, affine)


def test_bad_files_give_typed_errors(tmp_path):
    src = tmp_path / "good.nii.gz"
    _make(src, "int16_scaled")
    truncated = tmp_path / "truncated.nii"
    _make(tmp_path / "full.nii", "int16_scaled")
    truncated.write_bytes((tmp_path / "full.nii").read_bytes()[:600])
    with pytest.raises(mio.CorruptFileError, match="truncated.nii") as info:
        mio.load(truncated)
    assert "\n" not in str(info.value)
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"not gzip at all")
    with pytest.raises(mio.CorruptFileError, match="garbage.nii.gz"):
        mio.load(garbage)
    loaded = mio.load(src)
    with pytest.raises(mio.OutputError, match="png"):
        save_nifti(loaded, loaded.array, tmp_path / "x.png")
    with pytest.raises(mio.InputNotFoundError, match="missing.nii"):
        mio.load(tmp_path / "missing.nii")


def test_atomic_write_leaves_no_temporary(tmp_path):
    src = tmp_path / "u8.nii"
    _make(src, "uint8")
    loaded = mio.load(src)
    mio.save(loaded, loaded.array, tmp_path / "o.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.nii.gz", "u8.nii"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_outputs_get_the_umask_mode_not_the_temporary_files_0600(tmp_path, umask):
    from medden.io.atomic import atomic_dir

    src = tmp_path / "u8.nii"
    _make(src, "uint8")
    loaded = mio.load(src)
    old = os.umask(umask)
    try:
        mio.save(loaded, loaded.array, tmp_path / "o.nii.gz")
        with atomic_dir(tmp_path / "series") as folder:
            (folder / "f.dcm").write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "o.nii.gz").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "series").stat().st_mode) == 0o777 & ~umask
