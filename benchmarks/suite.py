"""The benchmark suite in one command: quality, then speed, then the plots and the README's tables.

1. ``benchmarks/quality.py`` — every method × noise kind × level on held-out MNI152 slices: PSNR/SSIM
   (whole slice and brain), seconds per slice, paired statistics against BM3D (the switching median
   for salt and pepper);
2. ``benchmarks/nets.py`` — every net's parameters, FLOPs, ms per 256² slice (64³ volume) and GFLOP/s
   against the conv peak measured in the same run;
3. ``benchmarks/inference.py`` — ``medden denoise`` end to end on a DICOM series: slices per second,
   I/O share, BM3D side by side, peak memory of a 3D sliding-window run;
4. ``benchmarks/baselines.py`` — seconds per slice of every classical baseline;
5. ``benchmarks/results/speed.png`` (ms per slice and fraction of the conv peak per net, net against
   BM3D per slice) from the results of 2 and 3, and ``benchmarks/readme.py`` copies every
   ``benchmarks/results/*.md`` table into README.md.

Each step runs in its own process, one after the other (they would disturb each other's timings), and
writes its CSV/JSON/markdown to ``benchmarks/results/`` (or ``MEDDEN_BENCH_RESULTS``). ``--quick`` runs
a reduced version (fewer slices, one timing repeat, three nets, no 3D memory run) to check that
everything works, into ``runs/benchmarks_quick/`` and without touching README.md. Run::

    make benchmark            # = .venv/bin/python benchmarks/suite.py
    .venv/bin/python benchmarks/suite.py [--quick] [--only quality,nets,inference,baselines]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, save_figure

HERE = Path(__file__).parent

#: step → (arguments of a full run, arguments of a quick run)
STEPS: dict[str, tuple[list[str], list[str]]] = {
    "quality": ([], ["--images", "2"]),
    "nets": ([], ["--repeats", "1", "--only", "hmadnet-compact,dran-compact,dncnn"]),
    "inference": ([], ["--bm3d-slices", "2", "--skip-memory"]),
    "baselines": (["--slices", "4"], ["--slices", "1"]),
}


def speed_plot(results: Path = RESULTS) -> Path | None:
    """``speed.png``: per 2D net, ms per 256² slice with its fraction of the conv peak; BM3D beside."""
    nets_json, inference_json = results / "nets.json", results / "inference.json"
    if not nets_json.is_file():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(nets_json.read_text())
    rows = sorted((r for r in data["rows"] if r["dims"] == 2), key=lambda r: r["ms"])
    labels = [r["net"] for r in rows]
    ms = [r["ms"] for r in rows]
    if inference_json.is_file():
        side = json.loads(inference_json.read_text())["against_bm3d"]
        labels.append("BM3D (one 197×233 slice)")
        ms.append(1000 * side["bm3d_seconds_per_slice"])
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(labels) + 1.5))
    bars = ax.barh(labels, ms, color=["C0"] * len(rows) + ["C3"] * (len(labels) - len(rows)))
    for bar, r in zip(bars, rows):
        ax.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {r['fraction_of_peak']:.0%} of peak",
            va="center",
            fontsize=7,
        )
    ax.set_xscale("log")
    ax.set_xlabel("ms per 256² slice (batch 1, CPU; log scale)")
    ax.set_title(
        f"CPU speed, conv peak {data['conv_peak_gflops']:.0f} GFLOP/s (benchmarks/nets.py)", fontsize=10
    )
    fig.tight_layout()
    path = results / "speed.png"
    save_figure(fig, path)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a reduced run (fewer slices and repeats)")
    ap.add_argument("--only", default=",".join(STEPS), help="comma-separated steps")
    ap.add_argument("--no-readme", action="store_true", help="do not update README.md")
    args = ap.parse_args()
    steps = [s for s in args.only.split(",") if s]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        print(f"unknown step(s): {', '.join(unknown)}; steps: {', '.join(STEPS)}", file=sys.stderr)
        return 2
    results = RESULTS
    if args.quick and not os.environ.get("MEDDEN_BENCH_RESULTS"):
        results = Path("runs") / "benchmarks_quick"  # a reduced run never replaces the committed figures
    env = {**os.environ, "MEDDEN_BENCH_RESULTS": str(results)}
    failed = []
    for step in steps:
        extra = STEPS[step][1 if args.quick else 0]
        cmd = [sys.executable, str(HERE / f"{step}.py"), *extra]
        print(f"== {step}: {' '.join(cmd[1:])} -> {results}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call(cmd, env=env)
        print(f"== {step}: exit {code} after {time.perf_counter() - t0:.0f} s", flush=True)
        if code:
            failed.append(step)
    plot = speed_plot(results)
    if plot:
        print(f"wrote {plot}")
    if not args.no_readme and results == RESULTS:
        subprocess.check_call([sys.executable, str(HERE / "readme.py")])
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
