"""Benchmark (not a test): `medden denoise` throughput, I/O share, peak memory, and speed against BM3D.

1. A DICOM MR series of the full 1 mm MNI152 template with Rician noise (189 axial slices of 197×233) is
   denoised by ``run_batch`` — the code ``medden denoise`` runs — with a net (HMAD-Net compact; the
   weights do not matter for speed) slice-wise: slices per second end to end.
2. The I/O share: the read and write times ``run_batch`` records in the manifest for that run (and
   the folder scan: the end-to-end time not spent in the unit), as a fraction of the end-to-end time.
3. BM3D (``medden.baselines``) on the same slices, side by side: seconds per slice and the ratio.
4. Peak memory of ``medden denoise --mode 3d`` (``run_batch``: read, scale, sliding window, inverse,
   write) on a 512×512×300 int16 NIfTI with HMAD-Net compact 3D, in a child process (``ru_maxrss``).

Writes ``benchmarks/results/inference.{json,md}``. Run::

    .venv/bin/python benchmarks/inference.py [--bm3d-slices 8] [--skip-memory] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from common import RESULTS, write_text


def _net_model(name: str, dims: int):
    from medden import nets
    from medden.denoiser import LoadedModel

    return LoadedModel.wrap(nets.get(name, spatial_dims=dims).eval(), name, "net")


def throughput(tmp: Path, net: str) -> dict:
    import medden.io as mio
    from medden.data.samples import write_noisy_mr_series
    from medden.workflows.denoise import Options, run_batch

    write_noisy_mr_series(tmp / "in" / "series", level=0.05, step=1)
    model = _net_model(net, 2)
    t0 = time.perf_counter()
    result = run_batch(tmp / "in", tmp / "out", model, Options(batch_size=8), quiet=True)
    total = time.perf_counter() - t0
    assert result.done == 1, result
    # the phases run_batch timed itself (manifest), and the rest: the folder scan, versions, manifest
    rec = json.loads((tmp / "out" / "manifest.jsonl").read_text().splitlines()[-1])
    loaded = mio.load(tmp / "in" / "series")
    n = loaded.shape[2]
    io = rec["seconds_read"] + rec["seconds_write"]
    return {
        "net": net,
        "slices": n,
        "slice_shape": list(loaded.shape[:2]),
        "seconds_end_to_end": round(total, 2),
        "slices_per_second": round(n / total, 2),
        "seconds_read": rec["seconds_read"],
        "seconds_denoise": rec["seconds_denoise"],
        "seconds_write": rec["seconds_write"],
        "seconds_other": round(total - rec["seconds"], 2),
        "io_share": round(io / total, 3),
        "io_share_with_scan": round((io + total - rec["seconds"]) / total, 3),
        "volume": loaded.array,
    }


def bm3d_side_by_side(volume: np.ndarray, net: str, n: int) -> dict:
    import torch

    from medden import baselines, nets

    z = np.linspace(volume.shape[2] * 0.3, volume.shape[2] * 0.7, n).astype(int)
    sl = volume[:, :, z].astype(np.float32)
    sl = (sl - sl.min()) / (sl.max() - sl.min())
    batch = torch.as_tensor(np.moveaxis(sl, 2, 0)[:, None])
    bm3d = baselines.get("bm3d")
    t0 = time.perf_counter()
    bm3d(batch, sigma=0.05)
    t_bm3d = (time.perf_counter() - t0) / n
    model = nets.get(net).eval()
    with torch.inference_mode():
        model(batch[:1])
        t0 = time.perf_counter()
        for i in range(n):
            model(batch[i : i + 1])
    t_net = (time.perf_counter() - t0) / n
    return {
        "slices": n,
        "bm3d_seconds_per_slice": round(t_bm3d, 3),
        "net_seconds_per_slice": round(t_net, 4),
        "net_speedup_over_bm3d": round(t_bm3d / t_net, 1),
    }


MEMORY_CHILD = """
import sys, resource, time, tempfile, json
from pathlib import Path
import numpy as np, nibabel as nib, torch
torch.set_num_threads(int(sys.argv[1]))
from medden import nets
from medden.workflows.denoise import Options, run_batch
from medden.denoiser import LoadedModel
model = LoadedModel.wrap(nets.get("hmadnet-compact", spatial_dims=3).eval(), "hmadnet-compact", "net")
with tempfile.TemporaryDirectory() as tmp:
    vol = (np.random.default_rng(0).random((512, 512, 300), dtype=np.float32) * 2000 - 1000).astype(np.int16)
    (Path(tmp) / "in").mkdir()
    nib.save(nib.Nifti1Image(vol, np.diag([0.7, 0.7, 1.0, 1.0])), Path(tmp) / "in" / "ct.nii.gz")
    del vol
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    options = Options(mode="3d", roi_size=64)
    result = run_batch(Path(tmp) / "in", Path(tmp) / "out", model, options, quiet=True)
    assert result.done == 1, result
    print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - t)
"""


def peak_memory(threads: int) -> dict:
    """Peak resident memory of ``run_batch`` (read, scale, 3D sliding window, inverse, write) on a
    512×512×300 int16 NIfTI volume, in a child process of its own."""
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(threads)], capture_output=True, text=True, check=True
    )
    base_kb, peak_kb, seconds = proc.stdout.split()[-3:]
    return {
        "volume": "512x512x300 int16 NIfTI (150 MiB of voxels)",
        "mode": "medden denoise --mode 3d: read, 64^3 sliding window (overlap 0.25), write",
        "peak_rss_gib": round(int(peak_kb) / 2**20, 2),
        "rss_before_denoising_gib": round(int(base_kb) / 2**20, 2),
        "seconds": round(float(seconds), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", default="hmadnet-compact")
    ap.add_argument("--bm3d-slices", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tp = throughput(Path(tmp), args.net)
    volume = tp.pop("volume")
    side = bm3d_side_by_side(volume, args.net, args.bm3d_slices)
    mem = None if args.skip_memory else peak_memory(args.threads)
    report = {
        "date": str(date.today()),
        "machine": f"{platform.machine()}, {args.threads} threads",
        "command": "python benchmarks/inference.py " + " ".join(sys.argv[1:]),
        "throughput": tp,
        "against_bm3d": side,
        "memory_3d": mem,
        "rss_self_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    print(json.dumps(report, indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / "inference.json", json.dumps(report, indent=1))
    lines = [
        f"Measured {report['date']} on {report['machine']} with `{report['command'].strip()}`.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| series | {tp['slices']} slices of {tp['slice_shape'][0]}×{tp['slice_shape'][1]} (DICOM MR) |",
        f"| end to end (read, denoise with {tp['net']}, write derived series) | "
        f"{tp['seconds_end_to_end']} s, "
        f"{tp['slices_per_second']} slices/s |",
        f"| read / denoise / write inside that run | {tp['seconds_read']} / {tp['seconds_denoise']} / "
        f"{tp['seconds_write']} s (folder scan and the rest: {tp['seconds_other']} s) |",
        f"| I/O share of the end-to-end time (read + write; with the scan) | {tp['io_share']:.1%} "
        f"({tp['io_share_with_scan']:.1%}) |",
        f"| BM3D per slice (same slices, side by side) | {side['bm3d_seconds_per_slice']} s |",
        f"| {tp['net']} per slice | {side['net_seconds_per_slice']} s |",
        f"| net speed-up over BM3D | {side['net_speedup_over_bm3d']}× |",
    ]
    if mem:
        lines.append(
            f"| peak memory, {mem['volume']}, {mem['mode']} | {mem['peak_rss_gib']} GiB "
            f"({mem['seconds']} s) |"
        )
    write_text(RESULTS / "inference.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
