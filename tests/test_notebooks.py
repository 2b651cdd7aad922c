"""The committed notebooks are exactly what notebooks/build.py writes: cells only, no outputs.

(The notebooks themselves are executed by nbmake as part of the same pytest run.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = (
    "01_dicom_folder_denoising",
    "02_noise_models",
    "03_train_and_compare",
    "04_self_supervised_finetuning",
    "05_natural_images",
)


def test_every_notebook_is_there_and_stripped():
    for name in NAMES:
        nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8"))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code, name
        assert all(c["outputs"] == [] and c["execution_count"] is None for c in code), name
        assert any("SMALL" in "".join(c["source"]) for c in code), f"{name} has no small-work setting"


def test_notebooks_match_their_build_script():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "notebooks" / "build.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
