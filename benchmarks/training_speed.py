"""Does ``channels_last`` or ``torch.compile`` speed up training on this machine (CPU)?

One training step (forward, loss, backward, Adam step) of the medical bundles' nets on a batch of
8 one-channel 96×96 patches, timed for the eager net (the reference), the same net and batch in
``torch.channels_last`` memory format, and the net compiled by ``torch.compile`` (inductor, the
default backend). The variants run in interleaved rounds (eager, channels_last, compiled, eager, ...)
so that load from other processes falls on all of them alike; the figure is the median step time
and its ratio to eager's. The compile time (the first compiled steps) is reported apart.

    python benchmarks/training_speed.py [--nets hmadnet-compact,dran-compact] [--rounds 5] [--steps 4]

Writes ``results/training_speed.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, write_text  # noqa: E402

from medden import nets  # noqa: E402

BATCH, SIZE = 8, 96


def _step_fn(net: torch.nn.Module, channels_last: bool, noise_aware: bool) -> Callable[[], float]:
    """A closure running one training step of ``net``; returns its seconds."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    clean = torch.rand(BATCH, 1, SIZE, SIZE, generator=gen)
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=gen)
    if channels_last:
        clean, noisy = (t.contiguous(memory_format=torch.channels_last) for t in (clean, noisy))
    sigma = torch.full((BATCH,), 0.05) if noise_aware else None

    def step() -> float:
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.l1_loss(net(noisy, sigma), clean)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    return step


def _to_channels_last(net: torch.nn.Module) -> None:
    """``net.to(memory_format=torch.channels_last)`` for the 4D parameters only: ``Module.to`` refuses
    a net holding any parameter of another rank (DRAN's dynamic convolution keeps a 5D kernel bank)."""
    for param in net.parameters():
        if param.dim() == 4:
            param.data = param.data.contiguous(memory_format=torch.channels_last)


def _variants(name: str) -> dict[str, tuple[Callable[[], float], float]]:
    """Each variant's step closure and its set-up seconds (compilation for ``torch.compile``)."""
    out: dict[str, tuple[Callable[[], float], float]] = {}
    for variant in ("eager", "channels_last", "compile"):
        torch.manual_seed(0)
        net = nets.get(name, spatial_dims=2, in_channels=1, out_channels=1).train()
        noise_aware = bool(getattr(net, "noise_aware", False))
        if variant == "channels_last":
            _to_channels_last(net)
        start = time.perf_counter()
        if variant == "compile":
            net = torch.compile(net)
        step = _step_fn(net, variant == "channels_last", noise_aware)
        step()  # warm-up (compiles the compiled variant)
        step()
        out[variant] = (step, time.perf_counter() - start)
    return out


def measure(name: str, rounds: int, steps: int) -> dict[str, object]:
    """Median step seconds per variant, ratios to eager, set-up seconds."""
    variants = _variants(name)
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for v, (step, _setup) in variants.items():
            times[v] += [step() for _ in range(steps)]
    median = {v: statistics.median(t) for v, t in times.items()}
    return {
        "net": name,
        "median_step_s": median,
        "speed_vs_eager": {v: median["eager"] / m for v, m in median.items()},
        "setup_s": {v: s for v, (_step, s) in variants.items()},
        "steps_timed": rounds * steps,
    }


def _markdown(rows: list[dict[str, object]]) -> str:
    lines = [
        f"One training step (forward, L1 loss, backward, Adam) on {BATCH}×1×{SIZE}×{SIZE}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}; "
        "median of interleaved rounds. Speed is eager's step time divided by the variant's (> 1: faster).",
        "",
        "| net | variant | s / step | speed vs eager | set-up s (incl. 2 warm-up steps) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        med, speed, setup = r["median_step_s"], r["speed_vs_eager"], r["setup_s"]
        assert isinstance(med, dict) and isinstance(speed, dict) and isinstance(setup, dict)
        for v in med:
            lines.append(f"| {r['net']} | {v} | {med[v]:.3f} | {speed[v]:.2f}× | {setup[v]:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="hmadnet-compact,dran-compact")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=4)
    args = p.parse_args(argv)
    rows = [measure(n, args.rounds, args.steps) for n in args.nets.split(",")]
    text = _markdown(rows)
    write_text(RESULTS / "training_speed.md", text)
    write_text(RESULTS / "training_speed.json", json.dumps(rows, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
