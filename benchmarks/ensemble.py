"""Self-ensemble and tri-planar inference of the HMAD-Net Rician bundles on the real scans.

What running a net over flipped/rotated copies of its input and averaging
(:class:`medden.inferers.SelfEnsemble`, ``medden denoise --ensemble N``) and running a 2D net along
each axis of a volume (``--mode triplanar``) gain over one pass, on the real-scan set
(``realscans``, every slice / both volumes) with Rician noise of σ = 3, 5 and 9 % of the maximum,
given the true σ, through ``medden evaluate`` (:func:`medden.workflows.evaluate.evaluate`, the path
users run):

- 2D, the 51 slices: noisy, BM3D with the Rician bias correction, ``hmadnet_mri_rician`` with 1, 2, 4
  and 8 copies;
- 3D, the two volumes: noisy, ``hmadnet_mri_rician_3d`` with 1, 4 and 8 copies, ``hmadnet_mri_rician``
  slice-wise along Z and tri-planar (1 and 4 copies); ``--bm4d`` adds BM4D with the bias correction
  (about 35 minutes on one core).

Per level: foreground PSNR/SSIM (the clean image above 10 % of its maximum), seconds per image and
the time against the reference (BM3D in 2D; the 3D net's one pass in 3D), and the paired difference
of the foreground PSNR against the net's one pass (95 % CI). Writes ``results/ensemble.md`` and
``.json``.

    OMP_NUM_THREADS=1 python benchmarks/ensemble.py [--max-images N] [--bm4d]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, json_ready, write_text  # noqa: E402

LEVELS = (0.03, 0.05, 0.09)
SEED = 1234
BIAS = {"rician_bias_correction": True}
NET2D, NET3D = "hmadnet_mri_rician", "hmadnet_mri_rician_3d"


def setups(bm4d: bool) -> dict[str, dict]:
    """Per evaluation: its dims, methods (label -> spec), method kwargs, and the reference methods."""
    from medden.bundle_format import available_bundles

    b2, b3 = (str(available_bundles()[n]) for n in (NET2D, NET3D))
    two = {f"{NET2D} x{n}": {"ensemble": n, "mode": "2d"} for n in (1, 2, 4, 8)}
    three = {f"{NET3D} x{n}": {"ensemble": n} for n in (1, 4, 8)}
    three.update(
        {
            f"{NET2D} 2d x1": {"ensemble": 1, "mode": "2d"},
            f"{NET2D} triplanar x1": {"ensemble": 1, "mode": "triplanar"},
            f"{NET2D} triplanar x4": {"ensemble": 4, "mode": "triplanar"},
        }
    )
    return {
        "2d": {
            "dims": 2,
            "methods": {"noisy": None, "bm3d": BIAS, **{k: (b2, v) for k, v in two.items()}},
            "speed_reference": "bm3d",
            "gain_reference": f"{NET2D} x1",
        },
        "3d": {
            "dims": 3,
            "methods": {
                "noisy": None,
                **({"bm4d": BIAS} if bm4d else {}),
                **{k: (b3 if k.startswith(NET3D) else b2, v) for k, v in three.items()},
            },
            "speed_reference": "bm4d" if bm4d else f"{NET3D} x1",
            "gain_reference": f"{NET3D} x1",
        },
    }


def run(setup: dict, max_images: int | None, out: Path) -> list[dict]:
    """One ``medden evaluate`` of the setup's methods; its summary rows, labelled as in the setup."""
    from medden.workflows.evaluate import EvalConfig, evaluate

    specs, kwargs, names = [], {}, {}
    for label, spec in setup["methods"].items():
        safe = label.replace(" ", "_")  # an evaluation label is one word
        names[safe] = label
        if spec is None:  # noisy
            specs.append(label)
        elif isinstance(spec, dict):  # a baseline and its settings
            specs.append(label)
            kwargs[label] = spec
        else:  # a bundle folder and how it is run
            path, options = spec
            specs.append(f"{safe}={path}")
            kwargs[safe] = options
    cfg = EvalConfig(
        methods=tuple(specs),
        out_dir=str(out),
        data="realscans",
        noise="rician",
        levels=LEVELS,
        split="all",
        spatial_dims=setup["dims"],
        max_images=max_images,
        reference=setup["gain_reference"].replace(" ", "_"),
        seed=SEED,
        method_kwargs=kwargs,
        figures=False,
        progress=False,
    )
    rows = evaluate(cfg).summary
    for row in rows:
        row["method"] = names[row["method"]]
    return rows


def report(tables: dict[str, list[dict]], info: dict) -> str:
    lines = [
        "# Self-ensemble and tri-planar inference on the real scans",
        "",
        f"{info['date']}, Rician noise at σ 3/5/9 % of the maximum (seed {SEED}), the true σ given to every "
        "method, foreground = the clean image above 10 % of its maximum; seconds are wall time per image "
        "on one thread"
        + (f" ({info['note']})" if info.get("note") else "")
        + f". Command: `{info['command']}`.",
    ]
    titles = {
        "2d": "2D: the 51 real-scan slices (anatomical.nii, example4d.nii.gz volume 0, MR_small, CT_small)",
        "3d": "3D: the two real volumes (anatomical.nii, example4d.nii.gz volume 0)",
    }
    for key, rows in tables.items():
        setup = info["setups"][key]
        ref, gain = setup["speed_reference"], setup["gain_reference"]
        lines += [
            "",
            f"## {titles[key]}",
            "",
            f"| σ | method | PSNR fg (dB) | SSIM fg | PSNR (dB) | s / image | time vs {ref} "
            f"| Δ PSNR fg vs {gain} [95 % CI] |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            base = next(x for x in rows if x["level"] == r["level"] and x["method"] == ref)
            ratio = r["seconds_mean"] / base["seconds_mean"] if base["seconds_mean"] > 0 else math.nan
            timing = "—" if r["method"] == "noisy" else f"{ratio:.2f}×"
            diff = "reference" if r["method"] == gain else ""
            if not diff and math.isfinite(r.get("psnr_fg_mean_diff", math.nan)):
                diff = (
                    f"{r['psnr_fg_mean_diff']:+.2f} [{r['psnr_fg_ci_low']:+.2f}, {r['psnr_fg_ci_high']:+.2f}]"
                )
            lines.append(
                f"| {100 * float(r['level']):g} % | {r['method']} | {r['psnr_fg_mean']:.2f} "
                f"| {r['ssim_fg_mean']:.4f} | {r['psnr_mean']:.2f} | {r['seconds_mean']:.3f} "
                f"| {timing} | {diff} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max-images", type=int, default=None, help="N spread images per setup (default: all)"
    )
    parser.add_argument("--bm4d", action="store_true", help="add BM4D to the 3D setup (about 35 min)")
    parser.add_argument("--only", choices=("2d", "3d"), default=None, help="run one setup")
    parser.add_argument("--note", default="", help="a remark on the conditions, written into the report")
    args = parser.parse_args()
    if args.max_images is not None and args.max_images < 1:
        parser.error("--max-images must be >= 1")

    from medden.workflows.evaluate import versions

    chosen = {k: v for k, v in setups(args.bm4d).items() if args.only in (None, k)}
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, setup in chosen.items():
            print(f"{key} ...", file=sys.stderr, flush=True)
            tables[key] = run(setup, args.max_images, Path(tmp) / key)
    command = (
        "OMP_NUM_THREADS=1 python benchmarks/ensemble.py"
        + (f" --max-images {args.max_images}" if args.max_images else "")
        + (" --bm4d" if args.bm4d else "")
        + (f" --only {args.only}" if args.only else "")
    )
    info = {
        "date": date.today().isoformat(),
        "command": command,
        "note": args.note,
        "levels": list(LEVELS),
        "seed": SEED,
        "setups": {
            k: {
                "dims": v["dims"],
                "speed_reference": v["speed_reference"],
                "gain_reference": v["gain_reference"],
            }
            for k, v in chosen.items()
        },
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "versions": versions(),
    }
    write_text(RESULTS / "ensemble.json", json.dumps(json_ready({"info": info, "tables": tables}), indent=1))
    text = report(tables, info)
    write_text(RESULTS / "ensemble.md", text)
    print(text)


if __name__ == "__main__":
    main()
