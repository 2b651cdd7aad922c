"""Benchmark (not a test): every registered net's size, FLOPs and CPU speed, against a conv peak
measured in the same run.

For each net: trainable parameters, FLOPs per 256² slice (and per 64³ volume for 3D nets), the best
of N timings in milliseconds per slice (batch 1, inference mode) and the achieved GFLOP/s as a fraction of the
"conv peak": the best GFLOP/s of single C→C 3×3 convolutions of a few shapes (the best case for this
CPU's conv kernels) timed the same way. FLOPs are counted by ``torch.utils.flop_counter`` (2 per
multiply-add; convolutions and matrix products only).

Writes ``benchmarks/results/nets.{csv,md,json}``. Run::

    .venv/bin/python benchmarks/nets.py [--repeats 5] [--threads 2] [--only hmadnet-compact,dncnn]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date

import torch
from common import RESULTS, write_text
from torch.utils.flop_counter import FlopCounterMode

from medden import __version__, nets
from medden.workflows.evaluate import write_csv


def flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return int(counter.get_total_flops())


def best_seconds(fn, repeats: int) -> float:
    """Best of ``repeats`` timed calls after two warm-up calls (the least disturbed by other load)."""
    with torch.inference_mode():
        fn()
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return min(times)


#: (channels, side) of the 3×3 convolutions whose best GFLOP/s is the conv peak
PEAK_SHAPES = ((32, 256), (64, 256), (64, 128), (128, 128), (256, 64))


def conv_peak(repeats: int) -> tuple[float, str]:
    """The best GFLOP/s of single C→C 3×3 convolutions over :data:`PEAK_SHAPES` (batch 1), and which."""
    best, which = 0.0, ""
    for c, side in PEAK_SHAPES:
        conv = torch.nn.Conv2d(c, c, 3, padding=1).eval()
        x = torch.rand(1, c, side, side)
        rate = flops(conv, x) / best_seconds(lambda conv=conv, x=x: conv(x), repeats) / 1e9
        if rate > best:
            best, which = rate, f"{c}→{c} 3×3 conv on {side}²"
    return best, which


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated net names (default: all)")
    ap.add_argument("--size", type=int, default=256, help="side of the 2D slice")
    ap.add_argument("--volume", type=int, default=64, help="side of the 3D volume")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = [n for n in args.only.split(",") if n] or nets.available()
    peak, peak_shape = conv_peak(args.repeats)
    print(f"conv peak: {peak:.1f} GFLOP/s ({peak_shape}, {args.threads} threads)")
    rows = []
    for name in names:
        spec = nets.spec(name)
        c = spec.channels[0]
        for dims in spec.spatial_dims:
            model = nets.get(name, spatial_dims=dims, in_channels=c, out_channels=c).eval()
            side = args.size if dims == 2 else args.volume
            x = torch.rand((1, c) + (side,) * dims)
            f = flops(model, x)
            sec = best_seconds(lambda m=model, t=x: m(t), args.repeats)
            row = {
                "net": name,
                "dims": dims,
                "input": "x".join([str(side)] * dims) + f"x{c}ch",
                "parameters": nets.count_parameters(model),
                "gflops": round(f / 1e9, 2),
                "ms": round(sec * 1e3, 1),
                "gflop_per_s": round(f / sec / 1e9, 1),
                "fraction_of_peak": round(f / sec / 1e9 / peak, 2),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_csv(RESULTS / "nets.csv", rows)
    header = (
        f"Measured {date.today()} on {platform.machine()} ({torch.get_num_threads()} threads, torch "
        f"{torch.__version__}, medden {__version__}) with `.venv/bin/python benchmarks/nets.py`; conv peak "
        f"{peak:.1f} GFLOP/s (the best single 3×3 conv of the same run: {peak_shape}). ms: best of "
        f"{args.repeats}, batch 1, inference mode.\n\n"
        "| net | dims | input | parameters | GFLOPs | ms | GFLOP/s | of peak |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['net']} | {r['dims']}D | {r['input']} | {r['parameters']:,} | {r['gflops']} | {r['ms']} | "
        f"{r['gflop_per_s']} | {r['fraction_of_peak']:.0%} |"
        for r in rows
    ]
    goal = next((r for r in rows if r["net"] == "hmadnet-compact" and r["dims"] == 2), None)
    if goal:  # the speed goal of the compact configuration CPU training uses
        lines += [
            "",
            f"Goal for HMAD-Net compact 2D (under 150 ms per 256² slice, over half of the conv peak): "
            f"{goal['ms']} ms ({'reached' if goal['ms'] < 150 else 'not reached'}), "
            f"{goal['fraction_of_peak']:.0%} of the peak "
            f"({'reached' if goal['fraction_of_peak'] > 0.5 else 'not reached'}).",
        ]
    write_text(RESULTS / "nets.md", header + "\n".join(lines) + "\n")
    write_text(
        RESULTS / "nets.json",
        json.dumps({"conv_peak_gflops": peak, "conv_peak_shape": peak_shape, "rows": rows}, indent=1),
    )


if __name__ == "__main__":
    main()
