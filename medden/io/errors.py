"""Typed I/O errors: one base class, one subclass per failure, each message one line naming the file.

Every error raised on purpose by :mod:`medden.io` is a :class:`MeddenIOError` (a
:class:`medden.errors.MeddenError`, exit code 2 on the command line). ``str(error)`` is
``"<path>: <reason>"`` on a single line; ``error.path`` and ``error.reason`` hold the two parts, so a
folder scan can report a skipped file without parsing the message.

Hierarchy::

    MeddenIOError
    ├── InputNotFoundError            the path does not exist
    ├── UnsupportedFormatError        not a DICOM, NIfTI or image file / variant medden cannot read
    │   ├── UnsupportedTransferSyntaxError   compressed DICOM without an available decoder
    │   └── NonImageObjectError       DICOM SR, RTSTRUCT, RTPLAN, presentation state, ... (no image)
    ├── CorruptFileError              truncated or malformed file
    │   ├── MissingFileMetaError      DICOM without the Part 10 file meta (no ``DICM`` preamble)
    │   ├── MissingTransferSyntaxError   file meta without (0002,0010) Transfer Syntax UID
    │   ├── InvalidHeaderError        a value that breaks its VR or a required attribute missing
    │   └── PixelDataError            pixel data shorter than declared, or undecodable
    ├── SeriesSelectionError          a folder holds no series, or several where one is needed
    ├── DuplicateInstanceError        a DICOM file repeating a SOPInstanceUID already read
    ├── GeometryError                 slices that cannot form one volume
    ├── OutputError                   an output medden refuses to write (would touch the source, ...)
    └── ReaderCrashError              the reading process died (a decoder crash) or was stopped after
                                      its timeout (:func:`medden.io.isolate.load_isolated`)
"""

from __future__ import annotations

import os
from pathlib import Path

from medden.errors import MeddenError


def one_line(text: object, max_len: int = 400) -> str:
    """``text`` as a single line (whitespace runs collapsed), shortened to ``max_len`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= max_len else line[: max_len - 1] + "…"


class MeddenIOError(MeddenError):
    """A file medden cannot read or will not write; ``str()`` is ``"<path>: <reason>"`` on one line.

    Args:
        path: the file or folder concerned (None when there is none).
        reason: why, in a few words (newlines are collapsed).
    """

    exit_code = 2

    def __init__(self, path: str | os.PathLike[str] | None, reason: object) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = one_line(reason)
        super().__init__(f"{self.path}: {self.reason}" if self.path is not None else self.reason)

    def __reduce__(self) -> tuple[type, tuple[Path | None, str]]:
        # rebuilt from (path, reason), so an error crosses a process boundary (medden.io.isolate)
        return type(self), (self.path, self.reason)


class InputNotFoundError(MeddenIOError):
    """The input path does not exist."""


class UnsupportedFormatError(MeddenIOError):
    """Not a DICOM, NIfTI or image file, or a variant of one medden cannot read or write."""


class UnsupportedTransferSyntaxError(UnsupportedFormatError):
    """A compressed DICOM transfer syntax for which no pixel-data decoder is available."""


class NonImageObjectError(UnsupportedFormatError):
    """A DICOM object without an image to denoise (SR, RTSTRUCT, RTPLAN, presentation state, SEG...)."""


class CorruptFileError(MeddenIOError):
    """A truncated or malformed file."""


class MissingFileMetaError(CorruptFileError):
    """A DICOM data set without the Part 10 file meta information (no ``DICM`` preamble)."""


class MissingTransferSyntaxError(CorruptFileError):
    """DICOM file meta without the (0002,0010) Transfer Syntax UID."""


class InvalidHeaderError(CorruptFileError):
    """A header value that breaks its value representation, or a required attribute missing."""


class PixelDataError(CorruptFileError):
    """Pixel data shorter than the header declares, or that the decoder rejects."""


class SeriesSelectionError(MeddenIOError):
    """A folder holds no readable series, or several where exactly one is needed."""


class DuplicateInstanceError(MeddenIOError):
    """A DICOM file repeating the SOPInstanceUID of another file of the scan (the copy is skipped)."""


class GeometryError(MeddenIOError):
    """Slices that cannot be stacked into one volume (inconsistent positions or orientation)."""


class OutputError(MeddenIOError):
    """An output medden refuses to write: it would overwrite or enter the source, or the format
    cannot hold the data."""


class ReaderCrashError(MeddenIOError):
    """The process reading a file died (a decoder that segfaults or aborts) or overran its timeout;
    only :func:`medden.io.isolate.load_isolated` raises it (an in-process crash cannot be caught)."""


__all__ = [
    "CorruptFileError",
    "DuplicateInstanceError",
    "GeometryError",
    "InputNotFoundError",
    "InvalidHeaderError",
    "MeddenIOError",
    "MissingFileMetaError",
    "MissingTransferSyntaxError",
    "NonImageObjectError",
    "OutputError",
    "PixelDataError",
    "ReaderCrashError",
    "SeriesSelectionError",
    "UnsupportedFormatError",
    "UnsupportedTransferSyntaxError",
    "one_line",
]
