"""``medden evaluate``: compare baselines and trained nets on a fixed, seeded evaluation set."""

from __future__ import annotations

import argparse
import json
from typing import Any

from medden.errors import UsageError


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="compare baselines and trained nets (PSNR/SSIM, paired statistics, figures)",
        description=(
            "Denoise a fixed, seeded evaluation set with every method and write per_image.csv, summary.csv, "
            "summary.md, results.json and figures/<kind>_<level>.png to OUT; print the markdown table. "
            "Methods: a baseline (bm3d, bm4d, nlm, median, switching_median), 'noisy' (the input), or "
            "NAME=WEIGHTS for a registered net and its weights (e.g. dncnn=runs/dncnn/best.safetensors)."
        ),
    )
    p.add_argument(
        "--methods",
        nargs="+",
        required=True,
        help="methods, space- or comma-separated: baselines, bundle names, noisy, NET=WEIGHTS",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--data",
        default="mni152",
        help="mni152, mni152-gm, mni152-wm, skimage-gray, skimage-color, deadleaves-gray, deadleaves-color, "
        "synthmr, realscans (the real scans shipped with nibabel and pydicom), sources joined by '+', or a "
        "folder (default: mni152)",
    )
    p.add_argument(
        "--noise", default="rician", help="noise kind, or 'none' for a folder of noisy/clean pairs"
    )
    p.add_argument("--levels", default=None, help="comma-separated noise levels (default: three levels)")
    p.add_argument("--absolute", action="store_true", help="levels are absolute σ on [0, 1] data")
    p.add_argument(
        "--split", default=None, help="train, val, test (default for offline data) or all (folders)"
    )
    p.add_argument("--max-images", type=int, default=8, help="at most N clean images (default: 8; 0: all)")
    p.add_argument(
        "--reference", default=None, help="method the others are compared with (default: the first)"
    )
    p.add_argument(
        "--sigma",
        choices=("true", "estimate"),
        default="true",
        help="give the methods the true noise σ where known (default) or let them estimate it",
    )
    p.add_argument(
        "--method-kwargs",
        default=None,
        help='JSON per method, e.g. \'{"median": {"size": 5}}\'; "ensemble": N runs a method over N '
        "flipped/rotated copies, as medden denoise --ensemble",
    )
    p.add_argument("--dims", type=int, choices=(2, 3), default=2, help="2D slices/images or 3D volumes")
    p.add_argument("--axis", type=int, choices=(0, 1, 2), default=2, help="slicing axis of volumes")
    p.add_argument("--seed", type=int, default=1234, help="noise seed")
    p.add_argument("--no-figures", action="store_true", help="do not draw the figures")
    p.add_argument(
        "--save-outputs",
        action="store_true",
        help="also write every noisy input and method output as outputs/<method>/<level>/<image>.npy",
    )
    p.add_argument("--device", default=None, help="torch device of the nets (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medden.workflows.evaluate import EvalConfig, evaluate, parse_levels  # defers torch

    method_kwargs: dict[str, Any] = {}
    if args.method_kwargs:
        try:
            method_kwargs = json.loads(args.method_kwargs)
        except ValueError:
            raise UsageError(f"--method-kwargs is not valid JSON: {args.method_kwargs!r}") from None
        if not isinstance(method_kwargs, dict) or not all(
            isinstance(v, dict) for v in method_kwargs.values()
        ):
            raise UsageError(
                '--method-kwargs must map method labels to objects, e.g. {"median": {"size": 5}}'
            )
    if args.max_images is not None and args.max_images < 0:
        raise UsageError(f"--max-images must be >= 0, got {args.max_images}")
    cfg = EvalConfig(
        methods=tuple(m for text in args.methods for m in text.split(",") if m.strip()),
        out_dir=args.out,
        data=args.data,
        noise=args.noise,
        levels=parse_levels(args.levels) if args.levels is not None else None,
        absolute=args.absolute,
        split=args.split,
        axis=args.axis,
        spatial_dims=args.dims,
        max_images=args.max_images or None,
        reference=args.reference,
        seed=args.seed,
        sigma=args.sigma,
        method_kwargs=method_kwargs,
        figures=not args.no_figures,
        save_outputs=args.save_outputs,
        device=args.device,
        progress=not args.quiet,
    )
    result = evaluate(cfg)
    print(result.markdown, end="")
    return 0
