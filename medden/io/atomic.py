"""Atomic outputs and safe output paths.

Every file medden writes goes to a temporary name in the destination folder and is renamed into
place only when complete, so an interrupted run never leaves a half-written output. Folders (a
DICOM series) are built under a temporary name and renamed as a whole.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from medden.errors import UsageError

_TMP_PREFIX = ".medden-tmp-"


def _umask() -> int:
    """The process umask as it is now.

    Read from ``/proc/self/status`` where the kernel gives it (Linux 4.7+): ``os.umask`` can only be read
    by setting it, which is process-wide and would briefly change the mode of files other threads
    create meanwhile. Elsewhere, set and put back.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, directory: bool) -> None:
    """Give a finished temporary file or folder the mode a plain ``open``/``mkdir`` would have.

    ``mkstemp``/``mkdtemp`` create 0600/0700 entries; an output (a derived DICOM series for a PACS
    service account, a NIfTI for a colleague) must get the usual 0666/0777 minus the umask.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    The temporary name keeps the suffix(es) of ``path`` so writers that look at the extension
    (nibabel, Pillow, tifffile) still pick the right format. On error the temporary file is removed
    and ``path`` is left as it was.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_path(d / "x.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> (d / "x.txt").read_text()
        'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _publish_mode(tmp, directory=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; move it to ``path`` as a whole on success.

    An existing ``path`` is replaced only after the new folder is complete (when ``overwrite``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=path.parent))
    try:
        yield tmp
        _publish_mode(tmp, directory=True)
        if path.exists():
            if not overwrite:
                raise FileExistsError(f"{path} exists")
            old = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX + "old-", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def sanitize_name(name: str, fallback: str = "unnamed", max_len: int = 64) -> str:
    """A file or folder name safe on every OS, made from untrusted text (e.g. a DICOM header).

    Separators, ``..`` and control characters cannot survive, so the result never leaves the
    folder it is joined to.

    Example:
        >>> sanitize_name("../../etc/passwd")
        'etc_passwd'
    """
    cleaned = _UNSAFE.sub("_", name).strip("._-")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)[:max_len].strip("._-")
    return cleaned or fallback


def safe_join(root: str | os.PathLike[str], *parts: str) -> Path:
    """Join ``parts`` under ``root`` and refuse any result that escapes ``root``."""
    root_resolved = Path(root).resolve()
    candidate = root_resolved.joinpath(*parts).resolve()
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise UsageError(f"output path {candidate} would escape the output folder {root_resolved}")
    return candidate


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """True for medden's own temporary files and folders (left over by a killed run)."""
    return Path(path).name.startswith(_TMP_PREFIX)
