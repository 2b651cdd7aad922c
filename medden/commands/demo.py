"""``medden demo``: the demo of ``make demo`` on sample data shipped with the installed packages."""

from __future__ import annotations

import argparse
from typing import Any

from medden.errors import UsageError
from medden.workflows.demo import run_denoise_demo, run_noise_demo


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the demo on bundled sample data (no download)",
        description=(
            "Denoise a DICOM series built from the MNI152 template (nilearn's) with Rician noise, write "
            "the derived series and a figure, and print PSNR/SSIM before and after. With --noise-models, "
            "show every noise kind at two levels with the estimated level beside the true one instead."
        ),
    )
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--model", help="model to use (default: the hmadnet_mri_rician bundle, else bm3d)")
    p.add_argument(
        "--level", type=float, default=0.05, help="Rician σ relative to the maximum (default 0.05)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise-models", action="store_true", help="the noise-model figure instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.noise_models:
        result = run_noise_demo(args.out, seed=args.seed)
        print(f"{'image':<20} {'noise':<22} {'true':>7} {'estimated':>9}")
        for row in result["rows"]:
            true = f"{row['true_level']:.4f}" if row["true_level"] is not None else "-"
            est = f"{row['estimated']:.4f}" if row["estimated"] is not None else "-"
            print(f"{row['image']:<20} {row['label']:<22} {true:>7} {est:>9}")
        print(f"figure: {result['figure']}")
        return 0
    if not 0.0 < args.level < 0.5:
        raise UsageError(f"--level must be in (0, 0.5), got {args.level:g}")
    report = run_denoise_demo(args.out, model=args.model, level=args.level, seed=args.seed)
    print(
        f"model: {report['model']}   Rician {100 * report['level']:g} % on the MNI152 phantom (DICOM series)"
    )
    print(f"{'':10} {'PSNR':>8} {'SSIM':>7} {'PSNR brain':>11} {'SSIM brain':>11}")
    for label, s in report["scores"].items():
        whole = f"{s['psnr']:8.2f} {s['ssim']:7.4f}"
        print(f"{label:10} {whole} {s['psnr_foreground']:11.2f} {s['ssim_foreground']:11.4f}")
    print(f"derived series: {report['derived_series']}")
    print(f"figure: {report['figure']}")
    return 0
