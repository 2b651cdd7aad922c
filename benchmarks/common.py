"""What the benchmark scripts share: where results go, and writing them atomically."""

from __future__ import annotations

import os
from pathlib import Path

#: the committed results (what README.md shows); ``MEDDEN_BENCH_RESULTS`` sends a run elsewhere
#: (``suite.py --quick`` and the tests use it, so a reduced run never replaces the committed figures)
RESULTS = Path(os.environ.get("MEDDEN_BENCH_RESULTS") or Path(__file__).parent / "results")


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_figure(fig, path: Path) -> None:
    """Save a matplotlib figure as PNG through a temporary file and a rename, and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    os.replace(tmp, path)
