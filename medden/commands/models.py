"""``medden models``: list the registered nets with their parameter counts."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "models",
        help="list the registered nets with parameter counts",
        description="One line per registered net: name, parameters, spatial dims, channels, summary.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per net instead")
    p.set_defaults(func=run)


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
    rows = list_models()
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"{'name':<18} {'parameters':>12}  {'dims':<5} {'channels':<8} summary")
    for r in rows:
        dims = "/".join(f"{d}D" for d in r["spatial_dims"])
        chans = ",".join(str(c) for c in r["channels"])
        print(f"{r['name']:<18} {r['parameters']:>12,}  {dims:<5} {chans:<8} {r['summary']}")
    return 0
