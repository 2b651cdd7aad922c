"""The ``medden`` command line.

Each subcommand lives in its own module under :mod:`medden.commands`, which exposes
``add_parser(subparsers)`` (argparse only, no heavy imports) and sets ``func`` on its parser to a
``run(args) -> int`` function, which imports the workflows that need torch or MONAI itself. Adding a
subcommand means adding a module and one line to :data:`COMMANDS`.

Exit codes: 0 success, 2 usage error or bad input, 3 some units of a batch failed,
1 an internal error (a bug: please report it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from medden.errors import MeddenError
from medden.version import __version__

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "medden.commands.noise",
    "medden.commands.estimate_noise",
    "medden.commands.info",
    "medden.commands.denoise",
    "medden.commands.train",
    "medden.commands.models",
    "medden.commands.evaluate",
    "medden.commands.demo",
    "medden.commands.export",
)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit code 2): the usage block is for ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="medden",
        description="Medical image denoising: noise models, networks, DICOM/NIfTI I/O, MONAI bundles.",
        epilog="Exit codes: 0 success; 2 usage error or bad input; 3 some units failed; 1 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"medden {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (never raises for a user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MeddenError as exc:
        print(f"medden {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"medden {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (medden info --json | head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit cannot fail again
        return 128 + 13  # as a process killed by SIGPIPE
    except Exception as exc:  # a bug: one line unless asked for the traceback
        if os.environ.get("MEDDEN_DEBUG"):
            raise
        print(
            f"medden {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(set MEDDEN_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
