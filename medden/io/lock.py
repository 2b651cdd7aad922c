"""One writer per output folder: an exclusive lock file holding the owner's pid and host.

Two ``medden denoise`` runs on one OUTPUT would each process every unit and mark the other's
outputs as foreign. :func:`output_lock` takes an exclusive ``flock`` on a lock file in OUTPUT for the
whole batch. The kernel releases it when the process ends, however it ends, so a lock left by a dead
process (``kill -9``, a crash, a reboot) is simply taken over; a live one is a one-line usage error
naming its pid and host. Sharded runs (``--shard i/N``) lock one file per shard by design.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from medden.errors import UsageError


class OutputLockedError(UsageError):
    """Another live process holds the output folder's lock (exit code 2)."""


@contextlib.contextmanager
def output_lock(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (created if needed) for the duration of the block.

    The file records ``{"pid", "host"}`` of the holder; it is left in place afterwards (deleting a
    lock file races with the next taker), and an unheld one means nothing.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with output_lock(d / ".medden.lock"):
        ...     try:
        ...         with output_lock(d / ".medden.lock"):
        ...             pass
        ...     except OutputLockedError as exc:
        ...         print("locked")
        locked
    """
    import fcntl

    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(path)
            raise OutputLockedError(
                f"{path.parent} is in use by another medden run ({holder}); wait for it to finish "
                "or use another output folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        os.fsync(fd)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"pid {int(info['pid'])} on {str(info['host'])[:64]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"
