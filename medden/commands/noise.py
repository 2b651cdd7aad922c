"""``medden noise``: add a noise kind to an image, NIfTI or DICOM series."""

from __future__ import annotations

import argparse
import json
from typing import Any

from medden.errors import UsageError
from medden.noise import NOISE_MODELS, SIGMA_KINDS, kinds_where, noise_model
from medden.workflows.noise import add_noise_to_file

#: options passed to the noise function as they are: (option, the function's argument, help); each
#: applies to the kinds whose function takes that argument
_EXTRA_OPTIONS = (
    ("--salt-vs-pepper", "salt_vs_pepper", "salt fraction of the impulses"),
    ("--read-sigma", "read_sigma", "read-out σ"),
)


def _takers(name: str) -> tuple[str, ...]:
    """The kinds whose noise function takes the argument ``name``."""
    return kinds_where(lambda m: m.accepts(name))


def add_parser(subparsers: Any) -> None:
    levels = "; ".join(f"{kind} {m.level_help}" for kind, m in NOISE_MODELS.items())
    p = subparsers.add_parser(
        "noise",
        help="add noise to an image, NIfTI or DICOM series",
        description=(
            f"Add noise to INPUT and write OUTPUT in the same format and value range. --level means: "
            f"{levels}. Prints one JSON object describing what was applied (with the seed)."
        ),
    )
    p.add_argument("input", help="image (png/jpg/bmp/tif), NIfTI (.nii/.nii.gz) or DICOM series folder")
    p.add_argument("output", help="output path, same format as the input")
    kinds = "; ".join(f"{kind}: {m.description}" for kind, m in NOISE_MODELS.items())
    p.add_argument("--kind", required=True, choices=tuple(NOISE_MODELS), help=kinds)
    level = p.add_mutually_exclusive_group(required=True)
    level.add_argument("--level", type=float, help="noise level (meaning depends on --kind, see above)")
    level.add_argument(
        "--sigma", type=float, help=f"absolute σ in the image's units ({', '.join(SIGMA_KINDS)})"
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, printed)")
    for option, name, meaning in _EXTRA_OPTIONS:
        p.add_argument(option, type=float, default=None, help=f"{meaning} ({', '.join(_takers(name))})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    extra: dict[str, float] = {}
    for option, name, _ in _EXTRA_OPTIONS:
        value = getattr(args, name)
        if value is None:
            continue
        if not noise_model(args.kind).accepts(name):
            raise UsageError(f"{option} applies to --kind {' or '.join(_takers(name))} only")
        extra[name] = value
    record = add_noise_to_file(
        args.input,
        args.output,
        args.kind,
        level=args.level,
        sigma=args.sigma,
        seed=args.seed,
        overwrite=args.overwrite,
        **extra,
    )
    print(json.dumps(record))
    return 0
