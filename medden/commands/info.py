"""``medden info``: list the DICOM series, NIfTI volumes and images in a file or folder."""

from __future__ import annotations

import argparse
import json
from typing import Any

from medden.io.discover import describe, format_report


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "info",
        help="list the DICOM series, NIfTI volumes and images in a file or folder",
        description=(
            "One line per DICOM series (modality, dimensions, spacing, slices, series number and "
            "description, a short id) or NIfTI/image file, then the skipped files with their reasons. "
            "Reads headers only; prints no patient name, ID, birth date or UID."
        ),
    )
    p.add_argument("path", help="a file or a folder (searched recursively)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    p.add_argument("--no-recursive", action="store_true", help="do not look into sub-folders")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = describe(args.path, recursive=not args.no_recursive)
    if args.json:
        print(json.dumps(report))
    else:
        print("\n".join(format_report(report)))
    return 0
