"""``medden noise``: add a noise kind to an image, NIfTI or DICOM series."""

from __future__ import annotations

import argparse
import json
from typing import Any

from medden.workflows.noise import KINDS


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "noise",
        help="add noise to an image, NIfTI or DICOM series",
        description=(
            "Add noise to INPUT and write OUTPUT in the same format and value range. --level means: "
            "rician/gaussian σ relative to the image maximum (e.g. 0.05); salt_pepper the corrupted "
            "fraction (0-1); poisson_gaussian the photon count at the maximum (e.g. 100); lowlight the "
            "brightness gain (0-1). Prints one JSON object describing what was applied (with the seed)."
        ),
    )
    p.add_argument("input", help="image (png/jpg/bmp/tif), NIfTI (.nii/.nii.gz) or DICOM series folder")
    p.add_argument("output", help="output path, same format as the input")
    p.add_argument("--kind", required=True, choices=KINDS)
    level = p.add_mutually_exclusive_group(required=True)
    level.add_argument("--level", type=float, help="noise level (meaning depends on --kind, see above)")
    level.add_argument("--sigma", type=float, help="absolute σ in the image's units (rician, gaussian)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, printed)")
    p.add_argument("--salt-vs-pepper", type=float, default=None, help="salt fraction of the impulses")
    p.add_argument("--read-sigma", type=float, default=None, help="read-out σ (poisson_gaussian, lowlight)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medden.errors import UsageError
    from medden.workflows.noise import add_noise_to_file

    extra: dict[str, float] = {}
    if args.salt_vs_pepper is not None:
        if args.kind != "salt_pepper":
            raise UsageError("--salt-vs-pepper applies to --kind salt_pepper only")
        extra["salt_vs_pepper"] = args.salt_vs_pepper
    if args.read_sigma is not None:
        if args.kind not in ("poisson_gaussian", "lowlight"):
            raise UsageError("--read-sigma applies to --kind poisson_gaussian or lowlight only")
        extra["read_sigma"] = args.read_sigma
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
