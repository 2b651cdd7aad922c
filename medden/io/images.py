"""2D images: PNG (8 and 16 bit), JPEG, BMP and TIFF (8/16 bit integer and float), gray or color.

Arrays are channel-first ``(C, H, W)`` in the file's native dtype (``uint8``, ``uint16``, ``float32``…),
row 0 at the top of the picture, so an 8 or 16-bit image keeps its integer values (divide by
``np.iinfo(dtype).max`` to get [0, 1]). :func:`save_image` writes the same bit depth and channels
back: integers are rounded and clipped to their type, floats cast.

Libraries: Pillow for PNG/JPEG/BMP (16-bit color PNG, which Pillow would reduce to 8 bits, goes
through SimpleITK), tifffile for TIFF (Pillow as fallback for TIFF compressions tifffile cannot decode
without ``imagecodecs``). Lossy JPEG is re-encoded with the source's quantisation tables and chroma
subsampling. Palette images are read as gray or RGB and written as such; 1/2/4-bit images are read and
written as 8 bit; multi-page TIFF stacks are refused. EXIF orientation is not applied (the pixels are
kept as stored).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from medden.io.atomic import atomic_path
from medden.io.base import Loaded, report_clipped, to_stored
from medden.io.errors import CorruptFileError, InputNotFoundError, OutputError, UnsupportedFormatError

#: suffix -> format name
IMAGE_SUFFIXES: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
#: dtypes each format can hold
FORMAT_DTYPES: dict[str, tuple[str, ...]] = {
    "PNG": ("uint8", "uint16"),
    "JPEG": ("uint8",),
    "BMP": ("uint8",),
    "TIFF": ("uint8", "uint16", "int8", "int16", "uint32", "int32", "float32", "float64"),
}
_PIL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_TIFF_LOSSLESS = {"NONE": None, "ADOBE_DEFLATE": "zlib", "DEFLATE": "zlib", "LZW": "zlib", "PACKBITS": None}


def image_format(path: str | os.PathLike[str]) -> str | None:
    """The image format of ``path`` by its suffix (``PNG``, ``JPEG``, ``BMP``, ``TIFF``) or None."""
    return IMAGE_SUFFIXES.get(Path(path).suffix.lower())


def _png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, color type) from a PNG's IHDR chunk, or None when it is not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def load_image(path: str | os.PathLike[str]) -> Loaded:
    """Read a PNG, JPEG, BMP or TIFF file into a :class:`Loaded` with a ``(C, H, W)`` array.

    Raises:
        InputNotFoundError: no such file.
        UnsupportedFormatError: not an image suffix, or a multi-page TIFF.
        CorruptFileError: the file cannot be decoded (truncated, not what its suffix says...).
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(path, "not found")
    fmt = image_format(path)
    if fmt is None:
        raise UnsupportedFormatError(path, f"not an image suffix ({', '.join(sorted(IMAGE_SUFFIXES))})")
    try:
        if fmt == "TIFF":
            array, options = _read_tiff(path)
        else:
            array, options = _read_pillow(path, fmt)
    except (UnsupportedFormatError, CorruptFileError):
        raise
    except Exception as exc:  # OSError, SyntaxError, ValueError, struct.error, zlib.error, a bomb...
        raise CorruptFileError(path, f"cannot read {fmt} image: {exc}") from None
    array = np.ascontiguousarray(array)
    meta = {
        "format": fmt,
        "dtype": str(array.dtype),
        "channels": int(array.shape[0]),
        "height": int(array.shape[1]),
        "width": int(array.shape[2]),
        "mode": options.get("mode"),
    }
    return Loaded(array=array, kind="image", path=path, affine=None, meta=meta, source=options)


def _read_pillow(path: Path, fmt: str) -> tuple[np.ndarray, dict[str, Any]]:
    from PIL import Image

    png = _png_header(path) if fmt == "PNG" else None
    if png is not None and png[0] == 16 and png[1] in (2, 4, 6):  # 16-bit color: Pillow keeps 8 bits only
        return _read_sitk_png(path)
    with Image.open(path) as im:
        im.load()
        fmt = im.format if im.format in FORMAT_DTYPES else fmt  # the content decides, not the suffix
        options: dict[str, Any] = {"format": fmt, "mode": im.mode, "info": _pillow_info(im)}
        if fmt == "JPEG":
            from PIL import JpegImagePlugin

            options["qtables"] = getattr(im, "quantization", None)
            options["subsampling"] = JpegImagePlugin.get_sampling(im)
        mode = im.mode
        if mode == "P" or mode == "PA":
            im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
            rgb = np.asarray(im)
            if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
                rgb = rgb[..., [0, 3]] if rgb.shape[-1] == 4 else rgb[..., :1]
            arr = rgb
        elif mode == "1":
            arr = np.asarray(im.convert("L"))
        elif mode in ("I;16", "I;16B", "I;16L"):
            arr = np.asarray(im).astype(np.uint16)
        elif mode == "I":  # 32-bit container: 16-bit PNGs on some Pillow versions
            data = np.asarray(im)
            arr = data.astype(np.uint16) if png is not None and png[0] == 16 else data
        elif mode == "CMYK" or mode == "YCbCr":
            arr = np.asarray(im.convert("RGB"))
        else:
            arr = np.asarray(im)
    arr = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    return arr, options


def _pillow_info(im: Any) -> dict[str, Any]:
    """The Pillow info worth writing back (resolution, ICC profile)."""
    keep = {}
    for key in ("dpi", "icc_profile"):
        if key in im.info:
            keep[key] = im.info[key]
    return keep


def _read_sitk_png(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise CorruptFileError(path, f"cannot read 16-bit color PNG: {exc}") from None
    arr = sitk.GetArrayFromImage(img)  # (H, W, C)
    options = {"format": "PNG", "mode": f"{'RGBA' if arr.shape[-1] == 4 else 'RGB'};16", "info": {}}
    return np.moveaxis(arr, -1, 0).astype(np.uint16), options


def _read_tiff(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            page = tif.pages[0]
            axes = series.axes
            data = series.asarray()
            tags = page.tags
            options: dict[str, Any] = {
                "format": "TIFF",
                "mode": f"{page.photometric.name.lower()} {data.dtype}",
                "photometric": page.photometric.name.lower(),
                "compression": page.compression.name,
                "resolution": None,
                "resolutionunit": None,
            }
            if "XResolution" in tags and "YResolution" in tags:
                options["resolution"] = (tags["XResolution"].value, tags["YResolution"].value)
                if "ResolutionUnit" in tags:
                    options["resolutionunit"] = int(tags["ResolutionUnit"].value)
    except ValueError as exc:
        if "imagecodecs" not in str(exc):
            raise
        return _read_tiff_pillow(path)
    if axes not in ("YX", "YXS", "SYX"):
        raise UnsupportedFormatError(path, f"a TIFF stack with axes {axes} {data.shape}: only 2D images")
    if axes == "YX":
        arr = data[None]
    elif axes == "YXS":
        arr = np.moveaxis(data, -1, 0)
    else:
        arr = data
    return arr, options


def _read_tiff_pillow(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    from PIL import Image

    with Image.open(path) as im:
        if getattr(im, "n_frames", 1) > 1:
            raise UnsupportedFormatError(path, f"a TIFF stack of {im.n_frames} pages: only 2D images")
        im.load()
        arr = np.asarray(im)
        mode = im.mode
    if mode in ("I;16", "I;16B"):
        arr = arr.astype(np.uint16)
    options = {
        "format": "TIFF",
        "mode": mode,
        "photometric": "rgb" if arr.ndim == 3 else "minisblack",
        "compression": "ZLIB",
        "resolution": None,
        "resolutionunit": None,
    }
    return (arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)), options


def save_image(
    loaded: Loaded | None,
    array: Any,
    dst: str | os.PathLike[str],
    dtype: Any = None,
) -> Path:
    """Write a ``(C, H, W)`` (or ``(H, W)``) array as an image, atomically.

    The format comes from ``dst``'s suffix; the dtype and the format options (JPEG quantisation,
    TIFF photometric/compression/resolution, PNG resolution and ICC profile) from ``loaded`` when
    given. Integers are rounded and clipped to the dtype (the count is logged when not zero).

    Args:
        loaded: the image the array came from (None: write ``array`` as it is).
        array: the pixel values, channel-first.
        dst: output file (``.png``, ``.jpg``/``.jpeg``, ``.bmp``, ``.tif``/``.tiff``).
        dtype: output dtype (default: the source's, else the array's).

    Returns:
        the written path.

    Raises:
        OutputError: a suffix that is not an image format, a dtype or channel count the format
            cannot hold.
    """
    dst = Path(dst)
    fmt = image_format(dst)
    if fmt is None:
        raise OutputError(dst, f"not an image suffix ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] not in (1, 2, 3, 4):
        raise OutputError(dst, f"expected a (C, H, W) array with 1-4 channels, got shape {arr.shape}")
    out_dtype = np.dtype(dtype if dtype is not None else (loaded.array.dtype if loaded else arr.dtype))
    if str(out_dtype) not in FORMAT_DTYPES[fmt]:
        raise OutputError(
            dst, f"{fmt} cannot hold {out_dtype} data (it holds {', '.join(FORMAT_DTYPES[fmt])})"
        )
    if fmt in ("JPEG", "BMP") and arr.shape[0] in (2, 4) and not (fmt == "BMP" and arr.shape[0] == 4):
        raise OutputError(dst, f"{fmt} cannot hold {arr.shape[0]} channels")
    stored, clipped = to_stored(arr, out_dtype)
    options = dict(loaded.source) if loaded is not None and isinstance(loaded.source, dict) else {}
    if options.get("format") != fmt:
        options = {"format": fmt}
    with atomic_path(dst) as tmp:
        if fmt == "TIFF":
            _write_tiff(tmp, stored, options)
        elif fmt == "PNG" and stored.dtype == np.uint16 and stored.shape[0] > 1:
            _write_sitk_png(tmp, stored)
        else:
            _write_pillow(tmp, stored, fmt, options)
    report_clipped(dst, clipped, stored.size)
    return dst


def _write_pillow(path: Path, stored: np.ndarray, fmt: str, options: dict[str, Any]) -> None:
    from PIL import Image

    c = stored.shape[0]
    if stored.dtype == np.uint16:
        if c != 1:
            raise OutputError(path, "16-bit images with several channels are written as PNG or TIFF")
        im = Image.fromarray(stored[0])  # mode I;16
    else:
        im = Image.fromarray(stored[0] if c == 1 else np.moveaxis(stored, 0, -1), mode=None)
        if im.mode != _PIL_MODES[c]:
            im = im.convert(_PIL_MODES[c])
    kwargs: dict[str, Any] = dict(options.get("info") or {})
    if fmt == "JPEG":
        kwargs["quality"] = 95
        if options.get("qtables"):
            kwargs["qtables"] = options["qtables"]
            kwargs.pop("quality")
        if options.get("subsampling") is not None and options["subsampling"] >= 0 and c == 3:
            kwargs["subsampling"] = options["subsampling"]
    im.save(path, format=fmt, **kwargs)


def _write_sitk_png(path: Path, stored: np.ndarray) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.moveaxis(stored, 0, -1), isVector=True)
    sitk.WriteImage(img, str(path))


def _write_tiff(path: Path, stored: np.ndarray, options: dict[str, Any]) -> None:
    import tifffile

    c = stored.shape[0]
    photometric = options.get("photometric") or ("rgb" if c in (3, 4) else "minisblack")
    if photometric == "rgb" and c not in (3, 4) or photometric in ("minisblack", "miniswhite") and c > 2:
        photometric = "rgb" if c in (3, 4) else "minisblack"
    if photometric not in ("rgb", "minisblack", "miniswhite"):
        photometric = "rgb" if c in (3, 4) else "minisblack"
    data = stored[0] if c == 1 else np.moveaxis(stored, 0, -1)
    kwargs: dict[str, Any] = {"photometric": photometric, "metadata": None}
    if c > 1:
        kwargs["planarconfig"] = "contig"
        if (photometric == "rgb" and c == 4) or (photometric != "rgb" and c == 2):
            kwargs["extrasamples"] = ("unassalpha",)
    compression = _TIFF_LOSSLESS.get(str(options.get("compression", "NONE")), "zlib")
    if compression:
        kwargs["compression"] = compression
    if options.get("resolution"):
        kwargs["resolution"] = tuple(options["resolution"])
        if options.get("resolutionunit"):
            kwargs["resolutionunit"] = options["resolutionunit"]
    tifffile.imwrite(path, data, **kwargs)
