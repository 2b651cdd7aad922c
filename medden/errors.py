"""Exception hierarchy shared by every part of medden.

The command line turns a :class:`MeddenError` into one line on stderr and an exit code; any
other exception is a bug and is reported as such (with the traceback only under ``MEDDEN_DEBUG=1``).
"""

from __future__ import annotations


class MeddenError(Exception):
    """Base class of every error medden raises on purpose."""

    exit_code = 2


class UsageError(MeddenError, ValueError):
    """Bad arguments: unknown kind, level out of range, missing input, ... (exit code 2)."""

    exit_code = 2
