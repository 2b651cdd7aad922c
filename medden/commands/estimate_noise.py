"""``medden estimate-noise``: estimate the noise level of an image, NIfTI or DICOM series."""

from __future__ import annotations

import argparse
import json
from typing import Any

from medden.workflows.noise import ESTIMABLE_KINDS, estimate_noise_of_file


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "estimate-noise",
        help="estimate the noise level of a file",
        description=(
            "Print one JSON object with the estimated level (relative to the image maximum), the "
            "absolute σ where it applies, the reference intensity and the method."
        ),
    )
    p.add_argument("input", help="image, NIfTI or DICOM series folder")
    p.add_argument("--kind", required=True, choices=ESTIMABLE_KINDS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(json.dumps(estimate_noise_of_file(args.input, args.kind)))
    return 0
