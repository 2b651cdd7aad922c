"""``medden train`` and ``medden finetune``: the training engine on the command line."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _levels(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _range(text: str) -> tuple[float, float]:
    values = _levels(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}")
    return values[0], values[1]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (weights, metrics.jsonl, config.json)")
    p.add_argument("--iterations", type=int, default=None, help="training iterations")
    p.add_argument(
        "--val-interval", type=int, default=None, help="validate and checkpoint every N iterations"
    )
    p.add_argument("--batch-size", type=int, default=None, help="total batch size (split across processes)")
    p.add_argument("--patch-size", type=int, default=None, help="patch side")
    p.add_argument(
        "--foreground-crop",
        type=float,
        default=None,
        help="probability that a patch is centred on foreground rather than drawn uniformly (volumes)",
    )
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--axis", type=int, default=None, choices=(0, 1, 2), help="slicing axis for 2D training")
    p.add_argument("--workers", type=int, default=None, help="data-loader workers")
    p.add_argument("--tracking", action="append", choices=("tensorboard", "mlflow"), default=None)
    p.add_argument("--device", default=None, help="cpu or cuda (default: what is available)")
    p.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="train the net compiled by torch.compile (1.3-1.4x for hmadnet and mgmsdnet compact on 2 "
        "CPU cores, none for dran: see benchmarks/training_speed.py)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a registered net (supervised; data-parallel under torchrun)",
        description=(
            "Train a net on offline data (mni152, mni152-2mm, mni152-gm, mni152-wm, skimage-gray, "
            "skimage-color, deadleaves-gray, deadleaves-color, synthmr, synthmr-coarse) or a folder "
            "(clean images, or noisy/clean pairs in low/+high/ or noisy/+clean/), with noise added on "
            "the fly. Keeps the weights with the best validation score (--val-metric, SSIM by "
            "default; on --val-data when given, e.g. realscans) in OUT/best.safetensors. Run under "
            "`torchrun --nproc_per_node=N -m medden train ...` for data-parallel training."
        ),
    )
    p.add_argument("--net", required=True, help="registered net (see `medden models`)")
    p.add_argument(
        "--data",
        default="mni152",
        help="data source, folder, or sources joined by '+' (default: mni152; realscans is refused: "
        "it is for validation and testing only)",
    )
    p.add_argument(
        "--val-data",
        default=None,
        help="validate and select the best weights on this source instead of the training data's "
        "validation split, e.g. realscans (the real scans shipped with nibabel and pydicom) or a folder",
    )
    p.add_argument("--noise", default="rician", help="noise kind added on the fly, or 'none' for paired data")
    p.add_argument("--levels", type=_range, default=None, help="LOW,HIGH range of the drawn noise level")
    p.add_argument("--absolute", action="store_true", help="levels are absolute σ on [0, 1] data")
    p.add_argument("--val-levels", type=_levels, default=None, help="comma-separated validation noise levels")
    p.add_argument("--dims", type=int, choices=(2, 3), default=2, help="2D slices/images or 3D patches")
    p.add_argument(
        "--net-kwargs", type=json.loads, default=None, help="net arguments as JSON, e.g. '{\"features\": 16}'"
    )
    p.add_argument("--loss", choices=("hybrid", "charbonnier", "l1", "mse"), default=None)
    p.add_argument(
        "--level-weighted",
        action="store_true",
        default=None,
        help="loss in units of each item's noise level, so low-noise items weigh as much as noisy ones",
    )
    p.add_argument(
        "--val-metric",
        choices=("ssim", "psnr", "ssim_fg", "psnr_fg"),
        default=None,
        help="validation score that selects the kept weights (default ssim; _fg: over the clean "
        "image's foreground, for scans that are mostly air)",
    )
    p.add_argument(
        "--target-noise",
        type=float,
        default=None,
        help="the clean targets carry rician/gaussian noise of their own up to this level, as real "
        "scans do; the net is told only the noise added on top",
    )
    p.add_argument("--scheduler", choices=("plateau", "cosine", "none"), default=None)
    p.add_argument(
        "--early-stopping", type=int, default=None, help="stop after N validations without progress"
    )
    p.add_argument("--resume", default=None, help="OUT/last.pt of an interrupted run")
    p.add_argument("--init-weights", default=None, help="start from these weights (fine-tuning)")
    p.add_argument("--overfit", type=int, default=None, help="smoke test: overfit this many images")
    _common(p)
    p.set_defaults(func=run_train)

    f = subparsers.add_parser(
        "finetune",
        help="fine-tune a trained net on noisy data without clean references (self-supervised)",
        description=(
            "Fine-tune the net stored in CHECKPOINT (a medden .safetensors) on the user's noisy images with "
            "a "
            "blind-spot method (Neighbor2Neighbor sub-sampling or Noise2Self masking). No clean data needed."
        ),
    )
    f.add_argument("checkpoint", help="weights written by medden train (best.safetensors)")
    f.add_argument(
        "--data", required=True, help="folder of noisy images/volumes, or an offline source with --noise"
    )
    f.add_argument("--method", choices=("neighbor2neighbor", "noise2self"), default="neighbor2neighbor")
    f.add_argument("--noise", default=None, help="for clean data only: add this noise once per image")
    f.add_argument("--levels", type=_range, default=None, help="LOW,HIGH noise level range (with --noise)")
    _common(f)
    f.set_defaults(func=run_finetune)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    mapping = {
        "iterations": "max_iterations",
        "val_interval": "val_interval",
        "batch_size": "batch_size",
        "patch_size": "patch_size",
        "foreground_crop": "foreground_crop",
        "target_noise": "target_noise",
        "lr": "lr",
        "seed": "seed",
        "axis": "axis",
        "workers": "num_workers",
        "device": "device",
        "levels": "level_range",
        "compile": "compile",
    }
    out = {cfg: getattr(args, arg) for arg, cfg in mapping.items() if getattr(args, arg, None) is not None}
    if args.tracking:
        out["tracking"] = tuple(args.tracking)
    out["progress"] = not args.quiet
    return out


def run_train(args: argparse.Namespace) -> int:
    from medden.engine import TrainConfig, train  # defers torch and MONAI
    from medden.workflows.train import summarize  # defers torch

    settings: dict[str, Any] = {
        "net": args.net,
        "out_dir": args.out,
        "data": args.data,
        "noise": None if args.noise == "none" else args.noise,
        "spatial_dims": args.dims,
        "absolute": args.absolute,
        **_overrides(args),
    }
    for arg, key in (
        ("net_kwargs", "net_kwargs"),
        ("val_data", "val_data"),
        ("val_levels", "val_levels"),
        ("loss", "loss"),
        ("val_metric", "val_metric"),
        ("level_weighted", "level_weighted"),
        ("scheduler", "scheduler"),
        ("early_stopping", "early_stopping"),
        ("resume", "resume"),
        ("init_weights", "init_weights"),
        ("overfit", "overfit"),
    ):
        if getattr(args, arg) is not None:
            settings[key] = getattr(args, arg)
    result = train(TrainConfig(**settings))
    print(json.dumps(summarize(result)))
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from medden.engine import train  # defers torch and MONAI
    from medden.workflows.train import finetune_config, summarize  # defers torch

    cfg = finetune_config(
        args.checkpoint, args.data, args.out, method=args.method, noise=args.noise, **_overrides(args)
    )
    result = train(cfg)
    print(json.dumps(summarize(result)))
    return 0
