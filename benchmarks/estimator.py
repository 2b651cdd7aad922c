"""How well ``medden denoise --noise-level auto`` estimates the Rician level on real scans.

The real scans that ship with nibabel and pydicom (validation and testing only), each min–max scaled
to [0, 1], get Rician noise of 3, 5 and 9 % of their maximum; the level is then estimated as
``medden denoise`` does for MR (:func:`medden.workflows.predict._scaled_sigma`: the background fit,
else Immerkær's Gaussian estimator) and compared with the level added. The scans carry noise of their
own, which the estimate includes. Writes ``results/estimator.md`` and ``.json``.

    python benchmarks/estimator.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, write_text  # noqa: E402

LEVELS = (0.03, 0.05, 0.09)


def real_scans() -> dict[str, np.ndarray]:
    """The four real scans, in [0, 1], read through ``medden.io``."""
    import pydicom.data
    from nibabel.testing import data_path

    import medden.io as mio

    arrays = {
        "anatomical.nii": mio.load(os.path.join(data_path, "anatomical.nii")).array,
        "example4d.nii.gz (volume 0)": mio.load(os.path.join(data_path, "example4d.nii.gz")).array[..., 0],
        "MR_small.dcm": mio.load(pydicom.data.get_testdata_file("MR_small.dcm")).array,
        "CT_small.dcm": mio.load(pydicom.data.get_testdata_file("CT_small.dcm")).array,
    }
    return {
        k: (a - a.min()) / (a.max() - a.min())
        for k, a in ((k, v.astype(np.float64)) for k, v in arrays.items())
    }


def main() -> None:
    from medden.noise import rician
    from medden.workflows.predict import _scaled_sigma

    rows = []
    for name, vol in real_scans().items():
        for level in LEVELS:
            noisy = rician(vol, level, rng=0)
            span = float(noisy.max() - noisy.min())
            estimate = _scaled_sigma((noisy - noisy.min())[None] / span, "auto", "MR") * span
            rows.append(
                {
                    "scan": name,
                    "shape": list(vol.shape),
                    "level": level,
                    "estimate": estimate,
                    "error_percent": 100 * (estimate / level - 1),
                }
            )
    lines = ["| scan | shape | level | estimated | error |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['scan']} | {'×'.join(map(str, r['shape']))} | {r['level']:.2f} | {r['estimate']:.4f} "
        f"| {r['error_percent']:+.0f} % |"
        for r in rows
    ]
    write_text(RESULTS / "estimator.md", "\n".join(lines) + "\n")
    write_text(RESULTS / "estimator.json", json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
