"""How well the noise-level estimators, and ``medden denoise --noise-level auto``, find σ.

Every estimator of :mod:`medden.noise.estimate` side by side, with the one ``medden denoise`` uses for
MR (:func:`medden.workflows.predict._scaled_sigma`, ``auto``) and the one it used before (the
background fit on volumes, else Immerkær's estimator), on

- the four real scans that ship with nibabel and pydicom (validation and testing only: nothing is
  tuned on them), each min–max scaled to [0, 1];
- MNI152 slices (the three middle ones) and the template as a volume (every second voxel);
- synthetic MR-like slices (:func:`medden.data.synthetic.synth_mr`, three seeds);

with Rician and Gaussian noise of σ = 1, 3, 5, 9 and 12 % of the maximum. Each estimate is compared
with the σ added, and with ``sqrt(added² + own²)``, ``own`` being the same estimator on the clean
image: real scans carry noise of their own, which an estimate rightly includes (the MNI152 template,
an average of 152 brains, and the synthetic images have next to none). Writes
``results/estimator.md`` and ``.json``.

    OMP_NUM_THREADS=1 python benchmarks/estimator.py
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, write_text  # noqa: E402

LEVELS = (0.01, 0.03, 0.05, 0.09, 0.12)
KINDS = ("rician", "gaussian")


def _auto(noisy: np.ndarray) -> float:
    """σ as ``medden denoise --noise-level auto`` finds it for an MR unit (scaled to [0, 1] and back)."""
    from medden.workflows.predict import _scaled_sigma

    lo, span = float(np.min(noisy)), float(np.ptp(noisy))
    return _scaled_sigma((noisy - lo)[None] / span, "auto", "MR") * span


def _auto_before(noisy: np.ndarray) -> float:
    """What ``auto`` did before the PCA estimator: the background fit on volumes, else Immerkær."""
    from medden.noise import estimate_gaussian, estimate_rician

    x = noisy[None]
    try:
        return estimate_rician(x, reference=1.0, method="background").sigma
    except ValueError:
        return estimate_gaussian(x, reference=1.0, method="immerkaer").sigma


def estimators() -> dict[str, Callable[[np.ndarray], float]]:
    """Name → σ of an image in [0, 1] (the σ on that scale)."""
    from medden.noise import estimate_gaussian, estimate_rician

    def gaussian_by(method: str) -> Callable[[np.ndarray], float]:
        return lambda x: estimate_gaussian(x, reference=1.0, method=method).sigma

    def rician_by(method: str) -> Callable[[np.ndarray], float]:
        return lambda x: estimate_rician(x, reference=1.0, method=method).sigma

    return {
        "auto (MR)": _auto,
        "auto before": _auto_before,
        "pca": gaussian_by("pca"),
        "pca foreground": rician_by("pca"),
        "background": rician_by("background"),
        "immerkaer": gaussian_by("immerkaer"),
        "wavelet": gaussian_by("wavelet"),
    }


def images() -> list[tuple[str, str, np.ndarray]]:
    """(group, name, clean image in [0, 1]) of every source."""
    from medden.data.samples import mni152
    from medden.data.sources import real_scan_volumes
    from medden.data.synthetic import synth_mr

    out = [("real scans", name, np.asarray(vol, dtype=np.float64)) for name, vol in real_scan_volumes()]
    vol, _ = mni152()
    for axis, label in enumerate(("sagittal", "coronal", "axial")):
        plane = np.take(vol, vol.shape[axis] // 2, axis=axis)
        out.append(("MNI152", f"MNI152 {label} slice", plane / plane.max()))
    out.append(("MNI152", "MNI152 volume (every 2nd voxel)", vol[::2, ::2, ::2] / vol.max()))
    for seed in range(3):
        out.append(("synthetic", f"synth_mr seed {seed}", synth_mr(192, seed)[0].astype(np.float64)))
    return out


def _try(fn: Callable[[np.ndarray], float], x: np.ndarray) -> float:
    """``fn(x)``, NaN where the estimator refuses the image (the background fit without air)."""
    try:
        return float(fn(x))
    except ValueError:
        return math.nan


def measure() -> tuple[list[dict], dict]:
    """Every estimator on every image × kind × level; and the own σ of each clean image."""
    from medden.noise import gaussian, rician

    methods = estimators()
    rows, own, seconds = [], {}, {m: 0.0 for m in methods}
    for group, name, clean in images():
        own[name] = {m: _try(fn, clean) for m, fn in methods.items()}
        for kind in KINDS:
            for i, level in enumerate(LEVELS):
                noisy = (rician if kind == "rician" else gaussian)(clean, sigma=level, rng=100 + i)
                row = {
                    "group": group,
                    "image": name,
                    "shape": list(clean.shape),
                    "kind": kind,
                    "level": level,
                }
                for m, fn in methods.items():
                    t0 = time.process_time()
                    est = _try(fn, noisy)
                    seconds[m] += time.process_time() - t0
                    total = math.hypot(level, 0.0 if math.isnan(own[name][m]) else own[name][m])
                    row[m] = {
                        "sigma": est,
                        "vs_added": 100 * (est / level - 1),
                        "vs_total": 100 * (est / total - 1),
                    }
                rows.append(row)
    return rows, {"own": own, "cpu_seconds": seconds}


def _summary(rows: list[dict], methods: list[str], seconds: dict[str, float]) -> list[str]:
    groups = list(dict.fromkeys(r["group"] for r in rows))
    cols = [(g, k) for g in groups for k in KINDS]
    lines = [
        "| estimator | " + " | ".join(f"{g}, {k}" for g, k in cols) + " | CPU s (all) |",
        "|---|" + "---|" * (len(cols) + 1),
    ]
    for m in methods:
        cells = []
        for g, k in cols:
            errs = np.array([r[m]["vs_total"] for r in rows if r["group"] == g and r["kind"] == k])
            failed = int(np.isnan(errs).sum())
            ok = np.abs(errs[~np.isnan(errs)])
            cell = f"{ok.mean():.1f} ({ok.max():.0f})" if ok.size else "—"
            cells.append(cell + (f", {failed} refused" if failed else ""))
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {seconds[m]:.1f} |")
    return lines


def _detail(rows: list[dict], methods: list[str], group: str) -> list[str]:
    lines = [
        "| image | kind | level | " + " | ".join(methods) + " |",
        "|---|---|---|" + "---|" * len(methods),
    ]
    for r in rows:
        if r["group"] != group:
            continue
        cells = [
            "refused" if math.isnan(r[m]["sigma"]) else f"{r[m]['vs_added']:+.0f} / {r[m]['vs_total']:+.0f}"
            for m in methods
        ]
        lines.append(f"| {r['image']} | {r['kind']} | {100 * r['level']:.0f} % | " + " | ".join(cells) + " |")
    return lines


def report(rows: list[dict], extra: dict) -> str:
    methods = list(estimators())
    own = [
        "| image | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for name, by in extra["own"].items():
        own.append(
            f"| {name} | "
            + " | ".join("refused" if math.isnan(v) else f"{100 * v:.2f} %" for v in by.values())
            + " |"
        )
    parts = [
        "Signed error of each estimator in percent. Summary: mean |error| against sqrt(added² + own²) "
        "(own: the same estimator on the clean image), the largest in parentheses; `refused`: the "
        "estimator raised (the background fit on an image without air). `auto (MR)` is what "
        "`medden denoise --noise-level auto` uses for MR, `pca` what it uses for other images; "
        "`auto before` is what `auto` did before the PCA estimator.",
        "",
        *_summary(rows, methods, extra["cpu_seconds"]),
        "",
        "Own noise of the clean images (σ in % of the maximum, as each estimator measures it):",
        "",
        *own,
    ]
    for group in dict.fromkeys(r["group"] for r in rows):
        parts += ["", f"{group}: error against the σ added / against sqrt(added² + own²), in %:", ""]
        parts += _detail(rows, methods, group)
    return "\n".join(parts) + "\n"


def main() -> None:
    rows, extra = measure()
    text = report(rows, extra)
    write_text(RESULTS / "estimator.md", text)
    write_text(RESULTS / "estimator.json", json.dumps({"rows": rows, **extra}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
