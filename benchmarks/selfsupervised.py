"""Benchmark: does self-supervised fine-tuning on noisy MRI help a net trained on natural images?

1. Train a net (DnCNN by default) supervised on ``skimage.data`` photographs with Gaussian noise.
2. Score it on held-out MNI152 test slices with Rician noise (clean reference known).
3. Fine-tune it with ``medden finetune``'s method (Neighbor2Neighbor) on MNI152 *training* slices
   carrying Rician noise drawn once — noisy data only, as a clinical user has.
4. Score the fine-tuned net on the same test slices; paired statistics over the slices.

Writes ``benchmarks/results/selfsupervised.{json,md}``. Run::

    .venv/bin/python benchmarks/selfsupervised.py [--net dncnn] [--iterations 600] [--finetune-iterations 400]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
from common import RESULTS, write_text


def score(weights: Path, items: list[dict]) -> tuple[list[float], list[float]]:
    import torch

    from medden.checkpoints import load_net
    from medden.metrics import foreground_mask, psnr, ssim

    net = load_net(weights)
    p, s = [], []
    with torch.inference_mode():
        for it in items:
            pred = net(torch.as_tensor(it["image"])[None]).clamp(0, 1)[0].numpy()
            mask = foreground_mask(it["target"])
            p.append(psnr(it["target"], pred, 1.0, mask=mask))
            s.append(ssim(it["target"], pred, 1.0, mask=mask))
    return p, s


def verdict(mean_diff: float, ci_low: float) -> str:
    """Whether fine-tuning beat the natural-image model (the lower end of the 95 % CI above 0)."""
    if ci_low > 0:
        return f"Fine-tuning beats the natural-image model: {mean_diff:+.2f} dB, the whole 95 % CI above 0."
    return (
        f"Fine-tuning does NOT beat the natural-image model here ({mean_diff:+.2f} dB; the 95 % CI "
        "reaches 0 or below)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="dncnn")
    parser.add_argument("--net-kwargs", type=json.loads, default={})
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--finetune-iterations", type=int, default=400)
    parser.add_argument("--level", type=float, default=0.05, help="Rician level of the MRI data")
    parser.add_argument("--work", default="runs/bench_selfsupervised")
    parser.add_argument(
        "--natural",
        default=None,
        help="weights of a net already trained on natural images (e.g. the dncnn_gray bundle's "
        "models/model.safetensors) instead of training one here (step 1)",
    )
    args = parser.parse_args()

    import torch

    from medden.data.datasets import mni152_slices, validation_items
    from medden.engine import TrainConfig, train
    from medden.metrics import foreground_mask, paired_stats, psnr
    from medden.workflows.train import finetune_config

    work = Path(args.work)
    t0 = time.perf_counter()
    natural_path = Path(args.natural) if args.natural else None
    if natural_path is None:
        natural = train(
            TrainConfig(
                net=args.net,
                net_kwargs=args.net_kwargs,
                out_dir=str(work / "natural"),
                data="skimage-gray",
                noise="gaussian",
                absolute=True,
                level_range=(0.0, 0.12),
                val_levels=(0.05,),
                max_iterations=args.iterations,
                val_interval=max(1, args.iterations // 5),
                batch_size=8,
                patch_size=64,
                lr=1e-3,
                loss="mse",
                scheduler="cosine",
                progress=False,
            )
        )
        natural_path = Path(natural.best_path)
    test_items = validation_items(mni152_slices("test"), "rician", [args.level], seed=99)
    noisy_p = [psnr(it["target"], it["image"], 1.0, mask=foreground_mask(it["target"])) for it in test_items]
    before_p, before_s = score(natural_path, test_items)
    cfg = finetune_config(
        natural_path,
        "mni152",
        str(work / "finetuned"),
        method="neighbor2neighbor",
        noise="rician",
        level_range=(args.level, args.level),
        val_levels=(args.level,),
        max_iterations=args.finetune_iterations,
        # validated once, at the end: the weights scored are the last ones, chosen with no clean data
        val_interval=args.finetune_iterations,
        batch_size=8,
        patch_size=64,
        progress=False,
    )
    tuned = train(cfg)
    after_p, after_s = score(Path(tuned.best_path), test_items)
    stats_p = paired_stats(after_p, before_p)
    stats_s = paired_stats(after_s, before_s)
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s)",
        "command": "python benchmarks/selfsupervised.py "
        + (
            f"--natural {args.natural}"
            if args.natural
            else f"--net {args.net} --iterations {args.iterations}"
        )
        + f" --finetune-iterations {args.finetune_iterations}",
        "natural_weights": str(natural_path),
        "net": args.net,
        "rician_level": args.level,
        "test_slices": len(test_items),
        "noisy_psnr_fg": float(np.mean(noisy_p)),
        "natural_only": {"psnr_fg": float(np.mean(before_p)), "ssim_fg": float(np.mean(before_s))},
        "finetuned": {"psnr_fg": float(np.mean(after_p)), "ssim_fg": float(np.mean(after_s))},
        "paired_psnr": stats_p.to_dict(),
        "paired_ssim": stats_s.to_dict(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / "selfsupervised.json", json.dumps(result, indent=2))
    md = [
        f"# Self-supervised fine-tuning on noisy MRI ({result['date']})",
        "",
        f"Machine: {result['machine']}. Command: `{result['command']}`.",
        "",
        (
            f"The net in `{args.natural}` (trained on natural images)"
            if args.natural
            else f"{args.net} trained {args.iterations} iterations on skimage photographs (Gaussian σ 0–0.12)"
        )
        + f", then fine-tuned {args.finetune_iterations} iterations with Neighbor2Neighbor on MNI152 "
        f"training slices carrying Rician {args.level:.0%} noise (no clean data). Test: "
        f"{len(test_items)} held-out MNI152 slices (other slabs), foreground PSNR/SSIM.",
        "",
        "| model | PSNR fg (dB) | SSIM fg |",
        "|---|---|---|",
        f"| noisy input | {result['noisy_psnr_fg']:.2f} | |",
        f"| natural images only | {np.mean(before_p):.2f} | {np.mean(before_s):.4f} |",
        f"| + self-supervised fine-tuning | {np.mean(after_p):.2f} | {np.mean(after_s):.4f} |",
        "",
        f"Paired over slices (fine-tuned − natural only): PSNR {stats_p.mean_diff:+.2f} dB "
        f"(95 % CI {stats_p.ci_low:+.2f} to {stats_p.ci_high:+.2f}, t-test p = {stats_p.t_pvalue:.2g}, "
        f"Wilcoxon p = {stats_p.wilcoxon_pvalue:.2g}); SSIM {stats_s.mean_diff:+.4f} "
        f"(p = {stats_s.t_pvalue:.2g}).",
        "",
        verdict(stats_p.mean_diff, stats_p.ci_low),
    ]
    write_text(RESULTS / "selfsupervised.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
