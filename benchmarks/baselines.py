"""Benchmark: seconds per 256×256 slice of every classical baseline, side by side.

Contiguous axial MNI152 slices (nilearn's bundled template, zero-padded to 256×256 — air around the
head, as in a scan) get the noise each method is meant for: Rician (level 0.05) for ``bm3d``,
``bm4d`` and ``nlm``, salt and pepper (20 %) for ``median`` and ``switching_median``. The 2D methods
are timed on one slice per call; ``bm4d`` on the whole stack at once (its time divided by the number
of slices). σ is given (the true one), so estimation is not timed. Foreground PSNR is reported
beside the time as a sanity check, not as a quality benchmark (``medden evaluate`` is that).

Writes ``benchmarks/results/baselines.{json,md}``. Run::

    .venv/bin/python benchmarks/baselines.py [--slices 8] [--methods bm3d,median]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import date

import numpy as np
from common import RESULTS, write_text

SIDE = 256
NOISE = {
    "bm3d": ("rician", 0.05),
    "bm4d": ("rician", 0.05),
    "nlm": ("rician", 0.05),
    "median": ("salt_pepper", 0.2),
    "switching_median": ("salt_pepper", 0.2),
}


def stack(n: int) -> np.ndarray:
    """``n`` contiguous axial slices around the middle of MNI152, zero-padded to 256², as (1, n, 256, 256)."""
    from medden.data.samples import mni152

    vol, _ = mni152()
    mid = vol.shape[2] // 2
    slab = np.moveaxis(vol[:, :, mid - n // 2 : mid - n // 2 + n], -1, 0)  # (n, X, Y)
    pad = [(0, 0)] + [((SIDE - s) // 2, SIDE - s - (SIDE - s) // 2) for s in slab.shape[1:]]
    return np.ascontiguousarray(np.pad(slab, pad)[None], dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=8, help="slices timed per method")
    parser.add_argument("--methods", default=",".join(NOISE), help="comma-separated baselines")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from medden import baselines
    from medden.metrics import foreground_mask, psnr
    from medden.noise import noise_model
    from medden.workflows.evaluate import versions

    clean = stack(args.slices)
    rows = []
    for name in args.methods.split(","):
        kind, level = NOISE[name]
        model = noise_model(kind)
        extra = {"reference": 1.0} if model.takes_reference else {}
        noisy = model.function(clean, rng=args.seed, **{model.level_argument: level}, **extra)
        sigma = level if model.level_is_sigma else None
        fn = baselines.get(name)
        fn(noisy[:, 0], sigma)  # warm-up (imports, first-call set-up)
        if name == "bm4d":
            t0 = time.perf_counter()
            out = fn(noisy, sigma)
            seconds = [(time.perf_counter() - t0) / args.slices] * args.slices
        else:
            out, seconds = np.empty_like(noisy), []
            for d in range(args.slices):
                t0 = time.perf_counter()
                out[:, d] = fn(noisy[:, d], sigma)
                seconds.append(time.perf_counter() - t0)
        gains = []
        for d in range(args.slices):
            mask = foreground_mask(clean[:, d])
            gains.append(
                psnr(clean[:, d], out[:, d], 1.0, mask=mask) - psnr(clean[:, d], noisy[:, d], 1.0, mask=mask)
            )
        rows.append(
            {
                "method": name,
                "noise": f"{kind} {level:g}",
                "slices": args.slices,
                "seconds_per_slice_median": float(np.median(seconds)),
                "seconds_per_slice_mean": float(np.mean(seconds)),
                "psnr_fg_gain_db": float(np.mean(gains)),
                "config": fn.config(),
            }
        )
        r = rows[-1]
        print(f"{name:<17} {r['seconds_per_slice_median']:8.4f} s/slice  {r['psnr_fg_gain_db']:+.2f} dB")

    info = {
        "date": date.today().isoformat(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "versions": versions(),
        "command": f"benchmarks/baselines.py --slices {args.slices} --methods {args.methods}",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / "baselines.json", json.dumps({"info": info, "rows": rows}, indent=2))
    lines = [
        f"# Classical baselines: seconds per {SIDE}×{SIDE} slice",
        "",
        f"{args.slices} contiguous axial MNI152 slices zero-padded to {SIDE}², {info['date']}, "
        f"{info['cpu_count']} CPU(s) ({info['processor']}), Python {info['versions']['python']}, "
        f"bm3d {info['versions']['bm3d']}, bm4d {info['versions']['bm4d']}, "
        f"scikit-image {info['versions']['scikit-image']}, scipy {info['versions']['scipy']}. "
        "bm4d denoises the stack in one call (time divided by the slices); the others one slice per call. "
        f"Command: `.venv/bin/python {info['command']}`.",
        "",
        "| method | noise | s / slice (median) | s / slice (mean) | foreground PSNR gain (dB) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['noise']} | {r['seconds_per_slice_median']:.4f} "
            f"| {r['seconds_per_slice_mean']:.4f} | {r['psnr_fg_gain_db']:+.2f} |"
        )
    write_text(RESULTS / "baselines.md", "\n".join(lines) + "\n")
    print(f"written: {RESULTS / 'baselines.md'}")


if __name__ == "__main__":
    main()
