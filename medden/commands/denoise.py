"""``medden denoise``: denoise a DICOM folder, NIfTI files or images into a mirrored output folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from medden.denoiser import ENSEMBLE_SIZES, INTENSITIES
from medden.errors import UsageError
from medden.loading import load_model

EPILOG = """\
INPUT is a DICOM folder (searched recursively; any number of studies and series), a NIfTI file
or folder, or an image file or folder (.png .jpg .jpeg .bmp .tif .tiff). OUTPUT mirrors it: each
DICOM series becomes a derived series in its own folder, each NIfTI a NIfTI and each image an image
of the same format and bit depth, at the same relative path, with a provenance JSON beside it.
OUTPUT/manifest.jsonl gets one JSON object per unit (input, output, status, error, seconds); a
rerun skips what is done unless --overwrite. The input is never modified. Sidecars and other files
that are not images (.json .tsv .bval .bvec .txt, README...) are skipped, not failed.

BIDS: with --bids, INPUT is a BIDS dataset (it holds dataset_description.json) and OUTPUT gets a
BIDS derivative dataset, derivatives/medden/: sub-*/[ses-*/]<datatype>/..._desc-denoised_<suffix>.nii.gz,
each with a sidecar JSON (the source's fields, Sources, GeneratedBy: medden, model, weights sha256)
and a dataset_description.json (DatasetType derivative).

modality: a bundle made for one modality (its metadata's input modality, e.g. MR) refuses DICOM
series of another (e.g. CT) with exit code 2, unless --any-modality; NIfTI and image files name
no modality and are run (noted in the manifest).

exit codes:
  0  every unit done or skipped
  2  usage error (bad arguments, missing input, unknown model, OUTPUT inside INPUT)
  3  some units failed (each with its reason in the manifest); the others are done
  1  internal error (a bug; MEDDEN_DEBUG=1 shows the traceback)

scale-out: torchrun --nproc_per_node=N -m medden denoise ... (or --shard i/N on N machines)
splits the units; each process writes its own manifest part, merged by the last to finish.
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "denoise",
        help="denoise a DICOM folder, NIfTI files or images",
        description="Denoise every DICOM series, NIfTI file and image under INPUT into OUTPUT.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="DICOM folder, NIfTI file/folder, or image file/folder")
    p.add_argument("output", help="output folder (created; must not be inside INPUT)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--model", help="a model with weights (bundle name) or a baseline: bm3d, bm4d, median, ..."
    )
    src.add_argument("--bundle", help="a medden/MONAI bundle folder")
    src.add_argument("--checkpoint", help="a weights file (.safetensors or state-dict .pt); with --net")
    p.add_argument("--net", help="registered net name of --checkpoint (read from the file when it says)")
    p.add_argument("--sha256", help="expected sha256 of --checkpoint")
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="load a bundle whose metadata records no weights sha256 (refused by default)",
    )
    p.add_argument(
        "--mode",
        choices=("2d", "2.5d", "triplanar", "3d"),
        help="inference mode (default: the model's); triplanar: a 2D model along each of a volume's three "
        "axes, the results averaged",
    )
    p.add_argument("--axis", type=int, default=-1, choices=(0, 1, 2, -1), help="slicing axis for 2d modes")
    p.add_argument(
        "--noise-level",
        default="auto",
        help="noise σ for noise-level-aware models, on the scaled [0, 1] data (relative to the intensity "
        "span), or 'auto' (default): estimated per unit (Rician background fit for MR, else Gaussian)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--batch-size", type=int, default=8, help="slices per call (2d modes)")
    p.add_argument("--roi-size", type=int, default=64, help="window side in 3d mode")
    p.add_argument("--overlap", type=float, default=0.25, help="window overlap in 3d mode")
    p.add_argument(
        "--intensity",
        choices=INTENSITIES,
        default=None,
        help="per-unit scaling into [0, 1]: minmax, percentile (0.5-99.5 %%, outliers passed through), "
        "dtype (0-255 for 8-bit images) or unit (data already on [0, 1], passed as they are, values "
        "outside included); default: what the model was trained with, else minmax",
    )
    p.add_argument(
        "--ensemble",
        type=int,
        choices=ENSEMBLE_SIZES,
        default=None,
        help="average the model over this many flipped/rotated copies of each input (1: off; a few "
        "tenths of a dB at that many times the cost); default: the model's own (a bundle's metadata)",
    )
    p.add_argument(
        "--figures",
        action="store_true",
        help="also write OUTPUT/figures/<name>.figure.png: input, denoised and |input - denoised|",
    )
    p.add_argument(
        "--bids",
        action="store_true",
        help="INPUT is a BIDS dataset: write a BIDS derivative dataset under OUTPUT/derivatives/medden",
    )
    p.add_argument(
        "--any-modality",
        action="store_true",
        help="run a model made for one modality (e.g. MR) on DICOM series of another (e.g. CT)",
    )
    p.add_argument("--shard", help="i/N: process every N-th unit starting at i")
    p.add_argument("--overwrite", action="store_true", help="redo units that are done and replace outputs")
    p.add_argument("--dry-run", action="store_true", help="list the units and their outputs, write nothing")
    p.add_argument("--quiet", action="store_true", help="no progress or per-unit lines")
    p.set_defaults(func=run)


def _noise_level(text: str | None) -> str | float | None:
    if text is None or text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--noise-level must be 'auto' or a number, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from medden.workflows.denoise import (  # defers torch
        Options,
        check_bids_input,
        check_paths,
        parse_shard,
        run_batch,
    )

    options = Options(
        mode=args.mode,
        axis=args.axis,
        noise_level=_noise_level(args.noise_level),
        batch_size=args.batch_size,
        overlap=args.overlap,
        roi_size=args.roi_size,
        intensity=args.intensity,
        ensemble=args.ensemble,
        figures=args.figures,
    ).validate()
    shard = parse_shard(args.shard)
    check_paths(Path(args.input), Path(args.output))  # before loading any model
    if args.bids:
        check_bids_input(Path(args.input))
    model = load_model(
        args.model, args.bundle, args.checkpoint, args.net, args.device, args.sha256, args.allow_unverified
    )
    result = run_batch(
        args.input,
        args.output,
        model,
        options,
        overwrite=args.overwrite,
        dry_run=args.dry_run,
        shard=shard,
        quiet=args.quiet,
        command=" ".join(["medden", *sys.argv[1:]]),
        bids_mode=args.bids,
        any_modality=args.any_modality,
    )
    if not args.dry_run and not args.quiet:
        print(
            f"medden denoise: {result.done} done, {result.skipped} skipped, {result.failed} failed "
            f"(manifest: {result.manifest})",
            file=sys.stderr,
        )
    return result.exit_code
