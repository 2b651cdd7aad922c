"""2D images: PNG 8/16 bit, JPEG, BMP, TIFF (integer and float), gray and color, same bit depth back."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import tifffile
from PIL import Image

import medden.io as mio
from medden.io.images import load_image, save_image


def _rng_image(shape, dtype) -> np.ndarray:
    rng = np.random.default_rng(1)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    return rng.normal(size=shape).astype(dtype)


def _write(path, hwc: np.ndarray) -> None:
    fmt = path.suffix.lower()
    if fmt in (".tif", ".tiff"):
        tifffile.imwrite(path, hwc, photometric="rgb" if hwc.ndim == 3 else "minisblack")
    elif hwc.dtype == np.uint16 and hwc.ndim == 3:
        import SimpleITK as sitk

        sitk.WriteImage(sitk.GetImageFromArray(hwc, isVector=True), str(path))
    else:
        Image.fromarray(hwc).save(path)


LOSSLESS = [
    ("png", np.uint8, (20, 30)),
    ("png", np.uint8, (20, 30, 3)),
    ("png", np.uint8, (20, 30, 4)),
    ("png", np.uint16, (20, 30)),
    ("png", np.uint16, (20, 30, 3)),
    ("bmp", np.uint8, (20, 30)),
    ("bmp", np.uint8, (20, 30, 3)),
    ("tif", np.uint8, (20, 30)),
    ("tif", np.uint16, (20, 30)),
    ("tif", np.uint16, (20, 30, 3)),
    ("tif", np.int16, (20, 30)),
    ("tif", np.float32, (20, 30)),
    ("tif", np.float64, (20, 30, 3)),
]


@pytest.mark.parametrize("suffix, dtype, shape", LOSSLESS)
def test_lossless_round_trip_same_bit_depth(tmp_path, suffix, dtype, shape):
    hwc = _rng_image(shape, dtype)
    src = tmp_path / f"src.{suffix}"
    _write(src, hwc)
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    loaded = mio.load(src)
    chw = hwc[None] if hwc.ndim == 2 else np.moveaxis(hwc, -1, 0)
    assert loaded.kind == "image" and loaded.array.dtype == dtype
    assert np.array_equal(loaded.array, chw)
    out = mio.save(loaded, loaded.array, tmp_path / f"out.{suffix}")
    again = load_image(out)
    assert again.array.dtype == dtype and np.array_equal(again.array, chw)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before


def test_png_16bit_round_trip_with_processing(tmp_path):
    from medden.data.samples import mni152_slice

    clean = (mni152_slice()[0] * 60000).astype(np.uint16)
    src = tmp_path / "mri16.png"
    Image.fromarray(clean).save(src)
    loaded = mio.load(src)
    assert loaded.array.shape == (1, *clean.shape) and loaded.array.dtype == np.uint16
    out = mio.save(loaded, loaded.array.astype(float) * 1.5 - 0.4, tmp_path / "out.png")
    got = np.asarray(Image.open(out))
    expected = np.clip(np.rint(clean * 1.5 - 0.4), 0, 65535).astype(np.uint16)
    assert got.dtype == np.uint16 and np.array_equal(got, expected)


@pytest.mark.parametrize("shape", [(64, 48), (64, 48, 3)])
def test_jpeg_is_rewritten_as_8bit_jpeg_close_to_source(tmp_path, shape):
    from medden.data.samples import natural_image

    img = natural_image("astronaut" if len(shape) == 3 else "camera")
    hwc = (np.moveaxis(img, 0, -1)[: shape[0], : shape[1]] * 255).round().astype(np.uint8)
    hwc = hwc[..., 0] if len(shape) == 2 else hwc
    src = tmp_path / "src.jpg"
    Image.fromarray(hwc).save(src, quality=90)
    loaded = mio.load(src)
    out = mio.save(loaded, loaded.array, tmp_path / "out.jpeg")
    again = mio.load(out)
    assert again.array.dtype == np.uint8 and again.array.shape == loaded.array.shape
    mse = np.mean((again.array.astype(float) - loaded.array) ** 2)
    assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 35  # same quantisation tables: small loss


def test_palette_png_reads_as_rgb(tmp_path):
    rgb = _rng_image((10, 12, 3), np.uint8)
    src = tmp_path / "p.png"
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(src)
    loaded = mio.load(src)
    assert loaded.array.shape == (3, 10, 12) and loaded.array.dtype == np.uint8


def test_integers_rounded_and_clipped(tmp_path):
    src = tmp_path / "g.png"
    Image.fromarray(np.full((4, 4), 100, np.uint8)).save(src)
    loaded = mio.load(src)
    values = loaded.array.astype(float)
    values[0, 0, :4] = [-3.6, 1.4, 254.5, 300.2]
    got = np.asarray(Image.open(mio.save(loaded, values, tmp_path / "o.png")))
    assert list(got[0, :4]) == [0, 1, 254, 255]  # rint rounds half to even


def test_tiff_options_kept(tmp_path):
    data = _rng_image((16, 20), np.float32)
    src = tmp_path / "f.tif"
    tifffile.imwrite(src, data, compression="zlib", resolution=(300, 300), resolutionunit="INCH")
    loaded = mio.load(src)
    out = mio.save(loaded, loaded.array * 2, tmp_path / "o.tif")
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert page.compression.name == "ADOBE_DEFLATE" and page.dtype == np.float32
        assert page.tags["XResolution"].value == (300, 1)
        assert np.array_equal(page.asarray(), data * 2)


def test_bad_images_give_typed_one_line_errors(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(mio.CorruptFileError, match="bad.png") as info:
        mio.load(bad)
    assert "\n" not in str(info.value) and info.value.exit_code == 2
    good = tmp_path / "good.png"
    Image.fromarray(_rng_image((40, 40, 3), np.uint8)).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(mio.CorruptFileError, match="cut.png"):
        mio.load(cut)
    tif = tmp_path / "cut.tif"
    tifffile.imwrite(tmp_path / "full.tif", _rng_image((40, 40), np.uint16))
    tif.write_bytes((tmp_path / "full.tif").read_bytes()[:100])
    with pytest.raises(mio.CorruptFileError, match="cut.tif"):
        mio.load(tif)
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, _rng_image((3, 8, 8), np.uint8), photometric="minisblack")
    with pytest.raises(mio.UnsupportedFormatError, match="stack"):
        mio.load(stack)
    loaded = mio.load(tmp_path / "full.tif")
    with pytest.raises(mio.OutputError, match="JPEG cannot hold uint16"):
        save_image(loaded, loaded.array, tmp_path / "x.jpg")
    with pytest.raises(mio.OutputError, match="not an image suffix"):
        save_image(loaded, loaded.array, tmp_path / "x.nii")


def test_is_supported_and_no_temporaries(tmp_path):
    for name in ("a.png", "b.JPG", "c.jpeg", "d.bmp", "e.tif", "f.TIFF", "g.nii", "h.nii.gz", "i.dcm"):
        assert mio.is_supported(tmp_path / name), name
    for name in ("a.txt", "b.gz", "DICOMDIR", "c.nii.bak"):
        assert not mio.is_supported(tmp_path / name), name
    src = tmp_path / "s.png"
    Image.fromarray(_rng_image((8, 8), np.uint8)).save(src)
    loaded = mio.load(src)
    mio.save(loaded, loaded.array, tmp_path / "o.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png", "s.png"]
