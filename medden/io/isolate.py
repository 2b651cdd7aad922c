"""Read inputs in a worker process, so a decoder that crashes fails one input instead of the batch.

Pixel data are decoded by native code (libjpeg, OpenJPEG, CharLS, a Rust RLE decoder). On a hostile
file such code can segfault or abort, which no ``except`` clause catches: in-process, one bad slice
would end the whole batch. :func:`load_isolated` runs :func:`medden.io.load` in a persistent worker
process and returns the same :class:`~medden.io.base.Loaded`; when the worker dies the call raises
:class:`~medden.io.errors.ReaderCrashError` (``"the decoder crashed (signal 11, SIGSEGV)"``) naming the
input, and the next call starts a fresh worker.

- The worker is a fresh interpreter (``sys.executable``, as multiprocessing's ``spawn`` method starts
  one, never ``fork``: safe after torch or BLAS have started threads in the calling process) talking
  over a socket pair with :mod:`multiprocessing.connection`. Unlike ``spawn`` it does not re-import the
  caller's ``__main__``, so a script without an ``if __name__ == "__main__"`` guard works, and its
  stdout and stderr are ``/dev/null`` at the file-descriptor level, so what native code prints (a Rust
  panic message, an abort notice) never reaches the console: the caller reports one line per input.
- Typed errors (:class:`~medden.io.errors.MeddenIOError` and its subclasses) come back as themselves;
  any other exception the reader raises comes back as itself when it can be pickled, else as a
  ``RuntimeError`` with its type and message.
- What the reader logs in the worker (geometry warnings...) is logged again in the calling process
  under the same logger name.
- The worker runs in the caller's current folder at the time of each call, so relative paths mean
  the same thing in both processes.

Example:
    >>> from medden.io.isolate import load_isolated
    >>> loaded = load_isolated("scan.nii.gz", timeout=300)  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import signal
import threading
from pathlib import Path
from typing import Any

import medden.io as mio
from medden.io.base import Loaded
from medden.io.errors import ReaderCrashError


def _source_path(source: Any) -> Path | None:
    """The path to name in an error about ``source`` (a path or a DicomSeries)."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source)
    return getattr(source, "path", None)


def _crash_reason(exitcode: int | None) -> str:
    """Why the worker died, from its exit code (negative: killed by that signal)."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"the decoder crashed (signal {-exitcode}, {name}); the file cannot be read safely"
    return f"the reading process exited unexpectedly (exit code {exitcode}); the file cannot be read safely"


class _LogCollector(logging.Handler):
    """Keeps ``(logger name, level, message)`` of the records logged in the worker during one call."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append((record.name, record.levelno, record.getMessage()))
        except Exception:  # a record whose arguments do not format: keep the rest
            pass


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a ``RuntimeError`` with its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _answer(request: tuple[str, Any, Any, int], collector: _LogCollector) -> tuple[str, Any, list]:
    """Run one request in the worker: ``("ok", loaded, logs)`` or ``("error", exception, logs)``."""
    cwd, source, series, level = request
    collector.records = []
    logging.getLogger().setLevel(level)
    try:
        os.chdir(cwd)
        return "ok", mio.load(source, series=series), collector.records
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a decoder's panic included
        return "error", _portable(exc), collector.records


def worker_main(fd: int) -> None:
    """The worker process: serve :func:`medden.io.load` requests on the socket ``fd`` until the caller
    closes it or sends ``None``. Each request is ``(cwd, source, series, log level)``; each reply
    ``(status, value, logs)`` with ``status`` ``"ok"`` (value: the :class:`Loaded`) or ``"error"``
    (value: the exception)."""
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    conn = Connection(fd)
    collector = _LogCollector()
    logging.getLogger().handlers[:] = [collector]
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the caller is gone
            return
        if request is None:
            return
        try:
            reply = _answer(request, collector)
        except (KeyboardInterrupt, SystemExit):
            return
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except Exception as exc:  # the result does not pickle: say so instead of dying
            conn.send(("error", RuntimeError(f"cannot return the loaded data: {exc}"), reply[2]))
        del request, reply  # the worker keeps no copy of the last volume while it waits


class IsolatedLoader:
    """A persistent worker process running :func:`medden.io.load` (see the module docstring).

    Example:
        >>> with IsolatedLoader() as loader:  # doctest: +SKIP
        ...     loaded = loader.load("series_folder", timeout=600)
    """

    def __init__(self) -> None:
        self._process: Any = None
        self._conn: Any = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The worker's process id (None before the first call or after a crash)."""
        return self._process.pid if self._process is not None else None

    def _start(self) -> None:
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        env = dict(os.environ)  # medden importable in the worker even when not installed
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        env["RUST_BACKTRACE"] = "0"  # a panic's backtrace would go to /dev/null: do not build it
        with theirs:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    f"from medden.io.isolate import worker_main; worker_main({theirs.fileno()})",
                ],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        self._conn = Connection(ours.detach())  # the worker's death closes its end: recv() ends

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _stop(self, kill: bool, grace: float = 0.0) -> int | None:
        """End the worker and return its exit code: asked to finish (``kill`` False), or killed after
        ``grace`` seconds (a worker that is dying gets the time to say of what)."""
        import subprocess

        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is None:
            return None
        if not kill:
            try:
                conn.send(None)
            except (EOFError, OSError):
                pass
        try:
            process.wait(timeout=grace if kill else 5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        conn.close()
        return process.returncode

    def load(self, source: Any, series: int | str | None = None, timeout: float | None = None) -> Loaded:
        """:func:`medden.io.load` ``(source, series)`` in the worker.

        Args:
            source: what :func:`medden.io.load` takes (a path or a DicomSeries).
            series: for a folder holding several series, which one.
            timeout: seconds to wait before stopping the worker (None: no limit).

        Raises:
            ReaderCrashError: the worker died while reading (a decoder crash) or overran ``timeout``.
            MeddenIOError: what :func:`medden.io.load` raises for the input.
        """
        path = _source_path(source)
        with self._lock:
            if not self._alive() or self._conn.poll(0):  # an idle worker has nothing to say: it died
                self._stop(kill=True, grace=1.0)
                self._start()
            level = logging.getLogger("medden").getEffectiveLevel()
            try:
                self._conn.send((os.getcwd(), source, series, level))
                if not self._conn.poll(timeout):
                    self._stop(kill=True)
                    raise ReaderCrashError(path, f"reading did not finish within {timeout:g} s (stopped)")
                status, value, logs = self._conn.recv()
            except (EOFError, OSError):
                raise ReaderCrashError(path, _crash_reason(self._stop(kill=True, grace=5.0))) from None
            except ReaderCrashError:
                raise
            except BaseException:  # interrupted while the worker reads: it cannot be reused
                self._stop(kill=True)
                raise
        for name, levelno, message in logs:
            logging.getLogger(name).log(levelno, "%s", message)
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        """Stop the worker (a later :meth:`load` starts a new one)."""
        with self._lock:
            self._stop(kill=False)

    def __enter__(self) -> IsolatedLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DEFAULT: IsolatedLoader | None = None
_DEFAULT_LOCK = threading.Lock()


def load_isolated(source: Any, timeout: float | None = None, series: int | str | None = None) -> Loaded:
    """:func:`medden.io.load` in the shared worker process (started on first use, restarted after a
    crash, stopped at exit); see :class:`IsolatedLoader.load`.

    Raises:
        ReaderCrashError: the decoder crashed, or reading overran ``timeout`` seconds.
        MeddenIOError: the input's own typed error, as :func:`medden.io.load` raises it.
    """
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = IsolatedLoader()
            atexit.register(_DEFAULT.close)
        loader = _DEFAULT
    return loader.load(source, series=series, timeout=timeout)


__all__ = ["IsolatedLoader", "load_isolated", "worker_main"]
