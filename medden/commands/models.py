"""``medden models``: what ``--model`` accepts (bundles, baselines), apart from what ``--net`` accepts.

Three lists: the **bundles** found by name (:func:`medden.bundle_format.available_bundles`: the ones
shipped with medden, in a checkout or in the installed package, and those of ``MEDDEN_BUNDLES``), with
their task, dimensions, input modality and whether their weights verify; the classical **baselines**;
and the registered **architectures** (nets without shipped weights: ``--checkpoint FILE --net NAME``,
``medden train --net NAME``) with their parameter counts. ``--json`` prints one JSON object per line,
each with a ``kind``: ``bundle``, ``baseline`` or ``architecture``.
"""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any

KINDS = ("bundle", "baseline", "architecture")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "models",
        help="list the models --model accepts (bundles, baselines) and the nets --net accepts",
        description="Bundles (trained weights, with task, dims, modality and whether the weights verify) and "
        "classical baselines, both for --model NAME; then the registered architectures for --net NAME "
        "(with --checkpoint, or medden train) with their parameter counts.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per model, each with a 'kind'")
    p.set_defaults(func=run)


def list_bundles() -> list[dict[str, Any]]:
    """One row per bundle found by name (:func:`medden.bundle_format.describe`), sorted by name."""
    from medden import bundle_format  # defers numpy, off the CLI start-up path

    found = bundle_format.available_bundles()
    return [{"kind": "bundle", **bundle_format.describe(found[name])} for name in sorted(found)]


def list_baselines() -> list[dict[str, Any]]:
    """One row per classical denoiser: name, native spatial dims (2: a volume goes slice by slice),
    whether it uses the noise level, summary."""
    from medden import baselines  # defers numpy

    rows = []
    for name in baselines.available():
        cls = baselines.BASELINES[name]
        rows.append(
            {
                "kind": "baseline",
                "name": name,
                "spatial_dims": cls.spatial_dims,
                "noise_aware": bool(cls.noise_aware),
                "summary": (inspect.getdoc(cls) or "").splitlines()[0].replace("``", ""),
            }
        )
    return rows


def list_models() -> list[dict[str, Any]]:
    """Name, parameter count (default configuration), supported dims and channels of every net."""
    from medden import nets  # defers torch and MONAI

    rows = []
    for name in nets.available():
        s = nets.spec(name)
        c = s.channels[0]
        model = nets.get(name, in_channels=c, out_channels=c)
        rows.append(
            {
                "kind": "architecture",
                "name": name,
                "parameters": nets.count_parameters(model),
                "spatial_dims": list(s.spatial_dims),
                "channels": list(s.channels),
                "noise_aware": bool(model.noise_aware),
                "summary": s.summary,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    bundles, baselines, nets = list_bundles(), list_baselines(), list_models()
    if args.json:
        for row in bundles + baselines + nets:
            print(json.dumps(row))
        return 0
    _print_bundles(bundles)
    print("\nBaselines (--model NAME): classical methods, no weights")
    print(f"{'name':<18} {'dims':<5} {'sigma':<5} summary")
    for r in baselines:
        sigma = "yes" if r["noise_aware"] else "no"
        print(f"{r['name']:<18} {r['spatial_dims']}D{'':<3} {sigma:<5} {r['summary']}")
    print("\nArchitectures (--net NAME, with --checkpoint FILE or in medden train)")
    print(f"{'name':<18} {'parameters':>12}  {'dims':<5} {'channels':<8} summary")
    for r in nets:
        dims = "/".join(f"{d}D" for d in r["spatial_dims"])
        chans = ",".join(str(c) for c in r["channels"])
        print(f"{r['name']:<18} {r['parameters']:>12,}  {dims:<5} {chans:<8} {r['summary']}")
    return 0


def _print_bundles(rows: list[dict[str, Any]]) -> None:
    from medden import bundle_format  # defers numpy

    where = ", ".join(str(p) for p in bundle_format.bundle_search_path()) or "nowhere"
    print(f"Bundles (--model NAME): trained weights, from {where}")
    if not rows:
        print("(none found: set MEDDEN_BUNDLES to a folder of bundles)")
        return
    print(f"{'name':<24} {'dims':<4} {'modality':<8} {'noise':<15} {'weights':<10} task")
    for r in rows:
        if r["weights"] == "invalid":
            print(f"{r['name']:<24} {'':<4} {'':<8} {'':<15} {'invalid':<10} {r['error']}")
            continue
        dims = f"{r['spatial_dims']}D" if r["spatial_dims"] else "?"
        cols = f"{dims:<4} {r['modality'] or '?':<8} {r['noise'] or '?':<15} {r['weights']:<10}"
        print(f"{r['name']:<24} {cols} {r['task']}")
