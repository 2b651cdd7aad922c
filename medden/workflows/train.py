"""Training and self-supervised fine-tuning as called by ``medden train`` / ``medden finetune``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from medden.checkpoints import read_metadata
from medden.engine import TrainConfig
from medden.errors import UsageError


def summarize(result: Any) -> dict[str, Any]:
    """The JSON summary printed at the end of a run."""
    return {
        "out_dir": result.out_dir,
        "iterations": result.iterations,
        "best_iteration": result.best_iteration,
        "best_val_ssim": result.best_ssim,
        "best_val_psnr": result.best_psnr,
        "best_val": result.best_val,
        "weights": result.best_path,
        "sha256": result.best_sha256,
        "stopped_early": result.stopped_early,
        "seconds": round(result.seconds, 1),
    }


def finetune_config(
    checkpoint: str | os.PathLike[str],
    data: str,
    out_dir: str,
    method: str = "neighbor2neighbor",
    noise: str | None = None,
    **overrides: Any,
) -> Any:
    """A :class:`~medden.engine.TrainConfig` that fine-tunes the net in ``checkpoint`` self-supervised.

    The net and its constructor arguments are read from the weights file's metadata. ``data`` holds
    the user's noisy images (``noise=None``), or clean data to which ``noise`` is added once per image
    (a stand-in for a noisy scan collection, used by the benchmark); clean validation pairs, when the
    data have them, report PSNR/SSIM, otherwise the latest weights are kept.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}")
    meta = read_metadata(path)
    if not meta.get("net"):
        raise UsageError(
            f"{path}: not a medden weights file with its net recorded (train it with medden train)"
        )
    net_kwargs = dict(meta.get("net_kwargs", {}))
    spatial_dims = int(net_kwargs.get("spatial_dims", 2))
    settings: dict[str, Any] = {
        "net": meta["net"],
        "net_kwargs": net_kwargs,
        "spatial_dims": spatial_dims,
        "data": data,
        "out_dir": out_dir,
        "noise": noise,
        "init_weights": str(path),
        "self_supervised": method,
        "scheduler": "cosine",
        "lr": 5e-5,
    }
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**settings)
