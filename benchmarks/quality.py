"""Benchmark (not a test): quality of every method × noise kind × level on held-out MNI152 slices.

For each noise kind, every method — the noisy input, the classical baselines (``medden.baselines``) and
the shipped bundles whose weights are in this checkout — denoises the same seeded noisy copies of the
MNI152 *test* slices (slabs training never saw) through ``medden.workflows.evaluate``: PSNR/SSIM on the
whole slice and on the brain (foreground), seconds per slice, and paired statistics of each method
against the reference (mean difference with 95 % CI, paired t-test and Wilcoxon p-values). The
reference is BM3D (with the Rician bias correction for Rician noise) for Rician and Gaussian noise, and
the switching median filter for salt and pepper, where BM3D's Gaussian model does not apply. Poisson-Gaussian
levels are photons at the image maximum (the methods estimate σ).

Writes ``benchmarks/results/quality.{csv,json,md}`` and ``quality.png`` (brain PSNR against level,
one panel per noise kind), and each kind's full report under ``benchmarks/results/quality/<kind>/``.
Run::

    .venv/bin/python benchmarks/quality.py [--images 8] [--kinds rician,gaussian,salt_pepper]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import time
from datetime import date
from pathlib import Path

from common import RESULTS, save_figure, write_text

#: noise kind → levels, methods (bundles are skipped when absent), reference and baseline options
SUITE: dict[str, dict] = {
    "rician": {
        "levels": (0.03, 0.05, 0.09),
        "methods": ("noisy", "median", "nlm", "bm3d", "hmadnet_mri_rician", "dran_mri"),
        "reference": "bm3d",
        "method_kwargs": {"bm3d": {"rician_bias_correction": True}},
    },
    "gaussian": {
        "levels": (0.03, 0.05, 0.09),
        "methods": ("noisy", "median", "nlm", "bm3d", "dran_mri", "dncnn_gray"),
        "reference": "bm3d",
        "method_kwargs": {},
    },
    "poisson_gaussian": {  # photons at the maximum: fewer is noisier; σ estimated by the methods
        "levels": (100.0, 30.0, 10.0),
        "methods": ("noisy", "median", "nlm", "bm3d", "dran_mri", "dncnn_gray"),
        "reference": "bm3d",
        "method_kwargs": {},
        "note": "BM3D, NLM and the noise-aware nets estimate σ from the image "
        "(`medden.noise.estimate_noise`, the PCA of weakly textured patches). The photon-free air "
        "of the template is exactly 0; until "
        "2026-12-05 those constant patches counted as noise-free and the estimate was 0, so every "
        "σ-driven method left the image as it was (BM3D = noisy, dran_mri +0.5 dB at 100 photons). The "
        "estimator now leaves padding out. Photon noise grows with the signal, so one σ fits part of "
        "the image only: a variance-stabilising (Anscombe) transform would suit it better; it is not "
        "applied here.",
    },
    "salt_pepper": {
        "levels": (0.1, 0.2, 0.3),
        "methods": ("noisy", "median", "switching_median", "hmadnet_saltpepper"),
        "reference": "switching_median",
        "method_kwargs": {},
    },
}
COLUMNS = (
    "kind",
    "level",
    "method",
    "n",
    "psnr_mean",
    "ssim_mean",
    "psnr_fg_mean",
    "ssim_fg_mean",
    "seconds_mean",
    "reference",
    "psnr_fg_mean_diff",
    "psnr_fg_ci_low",
    "psnr_fg_ci_high",
    "psnr_fg_t_pvalue",
    "psnr_fg_wilcoxon_pvalue",
    "ssim_fg_mean_diff",
)


def table(rows: list[dict], kind: str) -> list[str]:
    """The markdown table of one noise kind (cells formatted as in ``medden evaluate``'s report)."""
    from medden.workflows.evaluate import fmt_p as _p
    from medden.workflows.evaluate import fmt_value as _f

    lines = [
        "| level | method | PSNR | SSIM | PSNR brain | SSIM brain | s / slice "
        "| Δ PSNR brain vs reference [95 % CI] | p (t) | p (Wilcoxon) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["kind"] != kind:
            continue
        is_ref = r["method"] == r["reference"]
        delta = (
            "reference"
            if is_ref
            else f"{_f(r['psnr_fg_mean_diff'], 2)} "
            f"[{_f(r['psnr_fg_ci_low'], 2)}, {_f(r['psnr_fg_ci_high'], 2)}]"
        )
        lines.append(
            f"| {r['level']} | {r['method']} | {_f(r['psnr_mean'], 2)} | {_f(r['ssim_mean'], 4)} "
            f"| {_f(r['psnr_fg_mean'], 2)} | {_f(r['ssim_fg_mean'], 4)} | {_f(r['seconds_mean'], 3)} "
            f"| {delta} | {'' if is_ref else _p(r['psnr_fg_t_pvalue'])} "
            f"| {'' if is_ref else _p(r['psnr_fg_wilcoxon_pvalue'])} |"
        )
    return lines


def plot(rows: list[dict], kinds: list[str], path: Path) -> None:
    """Brain PSNR against noise level, one panel per noise kind, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False)
    colors = {m: f"C{i % 10}" for i, m in enumerate(dict.fromkeys(r["method"] for r in rows))}
    for ax, kind in zip(axes[0], kinds):
        mine = [r for r in rows if r["kind"] == kind]
        for method in dict.fromkeys(r["method"] for r in mine):
            pts = [(float(r["level"]), r["psnr_fg_mean"]) for r in mine if r["method"] == method]
            style = "--" if method == "noisy" else "-"
            ax.plot(*zip(*pts), marker="o", label=method, linestyle=style, color=colors[method])
        ax.set_title(kind.replace("_", " "))
        ax.set_xlabel(
            {"salt_pepper": "fraction of voxels", "poisson_gaussian": "photons at the maximum"}.get(kind, "σ")
        )
        if kind == "poisson_gaussian":
            ax.set_xscale("log")
            ax.invert_xaxis()  # noisier to the right, as in the other panels
        ax.set_ylabel("PSNR brain (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Held-out MNI152 slices: brain PSNR by method (benchmarks/quality.py)")
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8, help="held-out slices per level")
    ap.add_argument("--kinds", default=",".join(SUITE), help="comma-separated noise kinds")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from medden import baselines
    from medden.bundle_format import available_bundles
    from medden.workflows.evaluate import EvalConfig, evaluate

    torch.set_num_threads(args.threads)
    bundles = available_bundles()
    kinds = [k for k in args.kinds.split(",") if k]
    rows: list[dict] = []
    missing: set[str] = set()
    t0 = time.perf_counter()
    for kind in kinds:
        spec = SUITE[kind]
        methods = []
        for m in spec["methods"]:
            if m == "noisy" or m in baselines.available() or m in bundles:
                methods.append(m)
            else:
                missing.add(m)  # a bundle not trained yet
        result = evaluate(
            EvalConfig(
                methods=tuple(methods),
                out_dir=str(RESULTS / "quality" / kind),
                data="mni152",
                noise=kind,
                levels=spec["levels"],
                max_images=args.images,
                reference=spec["reference"],
                method_kwargs=spec["method_kwargs"],
                progress=False,
            )
        )
        rows += [{"kind": kind, **{c: r.get(c) for c in COLUMNS if c != "kind"}} for r in result.summary]
    seconds = time.perf_counter() - t0
    command = f"python benchmarks/quality.py --images {args.images} --kinds {','.join(kinds)}"
    threads = f"{args.threads} torch thread(s), torch {torch.__version__}"
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {threads}"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(RESULTS / "quality.csv", buf.getvalue())
    meta = {
        "date": date.today().isoformat(),
        "machine": machine,
        "command": command,
        "seconds": round(seconds),
    }
    write_text(
        RESULTS / "quality.json",
        json.dumps({**meta, "missing_bundles": sorted(missing), "rows": rows}, indent=2),
    )
    plot(rows, kinds, RESULTS / "quality.png")
    md = [
        f"# Quality suite ({meta['date']})",
        "",
        f"Measured {meta['date']} on {machine} with `{command}` ({meta['seconds']} s): "
        f"{args.images} held-out MNI152 axial test slices (197×233, slabs no training saw) per level, the "
        "same seeded noise for every method; brain = template above 10 % of its maximum. Paired "
        "differences are method − reference over the slices. Plot: `benchmarks/results/quality.png`; "
        "per-slice rows and figures: "
        "`benchmarks/results/quality/<kind>/`.",
    ]
    if missing:
        md += ["", f"Bundles without weights in this checkout, left out: {', '.join(sorted(missing))}."]
    for kind in kinds:
        ref = SUITE[kind]["reference"]
        note = " with the Rician bias correction" if SUITE[kind]["method_kwargs"].get(ref) else ""
        md += ["", f"**{kind.replace('_', ' ')}** (reference: {ref}{note})", "", *table(rows, kind)]
        if SUITE[kind].get("note"):
            md += ["", SUITE[kind]["note"]]
    write_text(RESULTS / "quality.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
