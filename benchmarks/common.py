"""What the benchmark scripts share: where results go, and writing them atomically."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

#: the committed results (what README.md shows); ``MEDDEN_BENCH_RESULTS`` sends a run elsewhere
#: (``suite.py --quick`` and the tests use it, so a reduced run never replaces the committed figures)
RESULTS = Path(os.environ.get("MEDDEN_BENCH_RESULTS") or Path(__file__).parent / "results")


def json_ready(obj: Any) -> Any:
    """``obj`` with every NaN/inf float as None (strict JSON)."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_ready(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`medden.io.atomic.atomic_path`)."""
    from medden.io.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_figure(fig, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically (:func:`medden.io.atomic.atomic_path`), and close it."""
    import matplotlib.pyplot as plt

    from medden.io.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
