"""BM3D on Rician noise: as it is, with the Rician bias correction, or through Foi's VST.

BM3D (``bm3d`` package, profile ``np``) given the true σ, three ways:

- ``bm3d``: the Gaussian denoiser on the magnitude data as they are;
- ``bm3d + bias correction``: ``rician_bias_correction=True``, ``sqrt(max(x² − σ², 0))`` first
  (Gudbjartsson & Patz 1995);
- ``bm3d + VST``: ``rician_vst=True``, Foi's variance-stabilising transform and its exact unbiased
  inverse (ISBI 2011; :mod:`medden.noise.vst`);

on the real-scan validation set (``realscans``, split ``val``: the 2D slices of the scans that ship
with nibabel and pydicom, min–max scaled to [0, 1]; nothing is tuned on them) with Rician noise of
σ = 3, 5 and 9 % of the maximum, drawn as ``medden evaluate`` draws it
(:func:`medden.data.datasets.validation_items`, seed 1234). Outputs are clipped to [0, 1] and scored
as ``medden evaluate`` scores them (:func:`medden.metrics.image_scores`): PSNR and SSIM on the
foreground (the clean image above 10 % of its maximum), whole-image PSNR and the RMSE over the
background (the air, where the Rician bias shows). Per level: the means, and the paired differences
of the VST against the other two (foreground PSNR, 95 % CI, Wilcoxon p). Writes
``results/rician_vst.md`` and ``.json``.

    OMP_NUM_THREADS=1 python benchmarks/rician_vst.py [--max-images N] [--levels 0.03,0.05,0.09]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, json_ready, write_text  # noqa: E402

LEVELS = (0.03, 0.05, 0.09)
SEED = 1234  # medden evaluate's default
#: label -> BM3D settings
METHODS = {
    "bm3d": {},
    "bm3d + bias correction": {"rician_bias_correction": True},
    "bm3d + VST": {"rician_vst": True},
}
VST = "bm3d + VST"
SCORES = ("psnr_fg", "ssim_fg", "psnr", "rmse_bg")


def items(max_images: int | None, levels: tuple[float, ...], seed: int) -> tuple[list[dict], list[str]]:
    """The noisy/clean items of the first ``max_images`` validation slices (every scan among the first
    four), each at every level; and the slices' labels."""
    from medden.data.datasets import validation_items
    from medden.data.sources import clean_sources

    images = clean_sources("realscans", "val")
    n = len(images) if max_images is None else min(max_images, len(images))
    chosen = [np.asarray(images[i], dtype=np.float32) for i in range(n)]
    out = validation_items(chosen, "rician", levels, seed=seed)
    for k, item in enumerate(out):
        item["image_id"], j = divmod(k, len(levels))
        item["level"] = levels[j]
    return out, list(images.labels[:n])


def measure(max_images: int | None, levels: tuple[float, ...], seed: int) -> tuple[list[dict], list[str]]:
    """Per-image scores of the noisy input and of every method (rows), and the slices' labels."""
    from medden import baselines
    from medden.metrics import FOREGROUND_THRESHOLD, image_scores

    data, labels = items(max_images, levels, seed)
    fns = {label: baselines.get("bm3d", **kw) for label, kw in METHODS.items()}
    rows = []
    for k, item in enumerate(data):
        clean, noisy, sigma = item["target"], item["image"], float(item["level"])
        common = {"image": item["image_id"], "scan": labels[item["image_id"]], "level": item["level"]}
        rows.append({**common, "method": "noisy", **image_scores(clean, noisy, FOREGROUND_THRESHOLD)})
        for label, fn in fns.items():
            t0 = time.process_time()
            out = np.clip(np.asarray(fn(noisy, sigma), dtype=np.float32), 0.0, 1.0)
            seconds = time.process_time() - t0
            scores = image_scores(clean, out, FOREGROUND_THRESHOLD)
            rows.append({**common, "method": label, **scores, "cpu_seconds": seconds})
        print(f"{k + 1}/{len(data)} {common['scan']} at {100 * sigma:g} %", file=sys.stderr, flush=True)
    return rows, labels


def summarize(rows: list[dict], levels: tuple[float, ...]) -> tuple[list[dict], list[dict]]:
    """Mean scores per level and method; paired differences of the VST against the others."""
    from medden.metrics import paired_stats

    summary, paired = [], []
    for level in levels:
        at = [r for r in rows if r["level"] == level]
        for method in ("noisy", *METHODS):
            mine = [r for r in at if r["method"] == method]
            rec = {"level": level, "method": method, "n": len(mine)}
            rec.update({s: float(np.nanmean([r[s] for r in mine])) for s in SCORES})
            if method != "noisy":
                rec["cpu_seconds"] = float(np.mean([r["cpu_seconds"] for r in mine]))
            summary.append(rec)
        vst = {r["image"]: r["psnr_fg"] for r in at if r["method"] == VST}
        for other in ("bm3d", "bm3d + bias correction"):
            ref = {r["image"]: r["psnr_fg"] for r in at if r["method"] == other}
            keys = [i for i in vst if math.isfinite(vst[i]) and math.isfinite(ref.get(i, math.nan))]
            if len(keys) < 2:
                continue
            st = paired_stats([vst[i] for i in keys], [ref[i] for i in keys])
            paired.append(
                {"level": level, "method": VST, "reference": other, "metric": "psnr_fg", **st.to_dict()}
            )
    return summary, paired


def report(summary: list[dict], paired: list[dict], info: dict) -> str:
    lines = [
        "# BM3D on Rician noise: no correction, bias correction, VST",
        "",
        f"{info['images']} slices of the real-scan validation set ({', '.join(info['scans'])}), Rician noise "
        f"seed {info['seed']}, BM3D given the true σ, {info['date']}, bm3d {info['versions'].get('bm3d')}. "
        "Foreground: the clean image above 10 % of its maximum; RMSE bg: over the rest (the air). "
        f"Command: `{info['command']}`.",
        "",
        "| σ | method | PSNR fg (dB) | SSIM fg | PSNR (dB) | RMSE bg | CPU s / image |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        secs = f"{r['cpu_seconds']:.2f}" if "cpu_seconds" in r else "—"
        lines.append(
            f"| {100 * r['level']:g} % | {r['method']} | {r['psnr_fg']:.2f} | {r['ssim_fg']:.4f} "
            f"| {r['psnr']:.2f} | {r['rmse_bg']:.4f} | {secs} |"
        )
    if paired:
        lines += [
            "",
            "Paired differences of the foreground PSNR, VST − reference, over the same slices:",
            "",
            "| σ | reference | mean diff (dB) | 95 % CI | Wilcoxon p | n |",
            "|---|---|---|---|---|---|",
        ]
        for p in paired:
            lines.append(
                f"| {100 * p['level']:g} % | {p['reference']} | {p['mean_diff']:+.2f} "
                f"| [{p['ci_low']:+.2f}, {p['ci_high']:+.2f}] | {p['wilcoxon_pvalue']:.2g} | {p['n']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max-images", type=int, default=None, help="first N validation slices (default: all)"
    )
    parser.add_argument(
        "--levels", default=",".join(f"{v:g}" for v in LEVELS), help="σ / maximum, comma-separated"
    )
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    levels = tuple(float(v) for v in args.levels.split(","))
    if args.max_images is not None and args.max_images < 1:
        parser.error("--max-images must be >= 1")

    from medden import baselines
    from medden.workflows.evaluate import versions

    rows, labels = measure(args.max_images, levels, args.seed)
    summary, paired = summarize(rows, levels)
    command = (
        "python benchmarks/rician_vst.py"
        + (f" --max-images {args.max_images}" if args.max_images else "")
        + f" --levels {args.levels}"
        + (f" --seed {args.seed}" if args.seed != SEED else "")
    )
    info = {
        "date": date.today().isoformat(),
        "command": command,
        "images": len(labels),
        "scans": sorted({label.split(" slice ")[0] for label in labels}),
        "slices": labels,
        "levels": list(levels),
        "seed": args.seed,
        "methods": {label: baselines.get("bm3d", **kw).config() for label, kw in METHODS.items()},
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "versions": versions(),
    }
    text = report(summary, paired, info)
    write_text(RESULTS / "rician_vst.md", text)
    payload = {"info": info, "summary": summary, "paired": paired, "rows": rows}
    write_text(RESULTS / "rician_vst.json", json.dumps(json_ready(payload), indent=1))
    print(text)


if __name__ == "__main__":
    main()
