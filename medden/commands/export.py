"""``medden export``: a net's weights or a bundle to TorchScript or ONNX, checked against the eager net."""

from __future__ import annotations

import argparse
import json
from typing import Any

from medden.workflows.export import FORMATS, TOLERANCE, export_model


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a net (weights file or bundle) to TorchScript or ONNX",
        description=(
            "Write the net of a weights file (medden train's .safetensors, or a state-dict .pt with "
            "--net), a bundle folder or a bundle name as TorchScript (.ts: torch.jit.load, "
            "forward(image, sigma=None)) or ONNX (.onnx: inputs 'image' (B, C, [D,] H, W) in [0, 1] and, "
            "for noise-aware nets, 'sigma' (B,); output 'pred'), with dynamic spatial sizes and batch "
            "(ONNX of DRAN: one image at a time). The file is read back and "
            f"compared with the eager net at three sizes (max |difference| <= {TOLERANCE:g}) before it is "
            "put in place."
        ),
    )
    p.add_argument("source", metavar="WEIGHTS|BUNDLE", help="weights file, bundle folder or bundle name")
    p.add_argument("--format", default="torchscript", choices=FORMATS, help="default: torchscript")
    p.add_argument("--out", help="output file (default: ./<name>.ts or ./<name>.onnx)")
    p.add_argument("--net", help="registered net name, for a weights file that does not record it")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--allow-unverified", action="store_true", help="a bundle without a recorded sha256")
    p.add_argument(
        "--check-sizes",
        type=_sizes,
        help="spatial sizes to check the export at, e.g. 32x32,70x70,45x83 (default: those three; "
        "16x16x16,13x18x21,9x11x10 in 3D)",
    )
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(func=run)


def _sizes(text: str) -> list[tuple[int, ...]]:
    try:
        return [tuple(int(n) for n in size.split("x")) for size in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not sizes like 32x32,70x70: {text!r}") from None


def run(args: argparse.Namespace) -> int:
    record = export_model(
        args.source,
        args.format,
        output=args.out,
        net=args.net,
        overwrite=args.overwrite,
        allow_unverified=args.allow_unverified,
        sizes=args.check_sizes,
    )
    if args.json:
        print(json.dumps(record))
        return 0
    sizes = ", ".join("x".join(str(n) for n in s) for s in record["checked_sizes"])
    inputs = "; ".join(f"{k} {v}" for k, v in record["inputs"].items())
    print(
        f"wrote {record['output']} ({record['format']}, {record['bytes'] / 1e6:.1f} MB, sha256 "
        f"{record['sha256'][:12]}…); max |exported − eager| {record['max_abs_diff']:.2g} at {sizes}; "
        f"inputs: {inputs}"
    )
    return 0
