"""``medden demo``: the demo of ``make demo`` on sample data shipped with the installed packages."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the demo on bundled sample data (no download)",
        description="Show every noise kind at two levels on an MNI152 slice and a natural image, "
        "with the estimated level beside the true one.",
    )
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medden.workflows.demo import run_noise_demo

    result = run_noise_demo(args.out, seed=args.seed)
    print(f"{'image':<20} {'noise':<22} {'true':>7} {'estimated':>9}")
    for row in result["rows"]:
        true = f"{row['true_level']:.4f}" if row["true_level"] is not None else "-"
        est = f"{row['estimated']:.4f}" if row["estimated"] is not None else "-"
        print(f"{row['image']:<20} {row['label']:<22} {true:>7} {est:>9}")
    print(f"figure: {result['figure']}")
    return 0
