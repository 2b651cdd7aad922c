"""The benchmark suite runs and its reports say what it measured (a reduced run, in a temporary folder)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, results: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEDDEN_BENCH_RESULTS": str(results)}
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def quality(tmp_path_factory):
    results = tmp_path_factory.mktemp("bench")
    proc = _run("quality.py", "--images", "2", "--kinds", "salt_pepper", "--threads", "1", results=results)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return results


def test_quality_suite_writes_every_method_and_level(quality):
    rows = list(csv.DictReader(open(quality / "quality.csv", encoding="utf-8")))
    from medden.bundle_format import available_bundles

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from quality import SUITE
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    spec = SUITE["salt_pepper"]
    expected = [m for m in spec["methods"] if not m.startswith("hmadnet") or m in available_bundles()]
    for level in spec["levels"]:
        assert [r["method"] for r in rows if float(r["level"]) == level] == expected
    report = json.loads((quality / "quality.json").read_text())
    assert report["command"].startswith("python benchmarks/quality.py --images 2")
    # the paired difference over the same slices is the difference of the means
    by = {(r["level"], r["method"]): r for r in rows}
    for (level, method), r in by.items():
        ref = by[(level, spec["reference"])]
        if method != spec["reference"]:
            diff = float(r["psnr_fg_mean"]) - float(ref["psnr_fg_mean"])
            assert abs(float(r["psnr_fg_mean_diff"]) - diff) < 1e-6
    # the switching median beats the plain median on impulse noise at every level
    for level in spec["levels"]:
        sm, med = by[(str(level), "switching_median")], by[(str(level), "median")]
        assert float(sm["psnr_fg_mean"]) > float(med["psnr_fg_mean"])
    md = (quality / "quality.md").read_text()
    assert "(reference: switching_median)" in md and md.count("| reference |") == len(spec["levels"])
    assert (quality / "quality.png").stat().st_size > 10_000
    assert (quality / "quality" / "salt_pepper" / "per_image.csv").is_file()


def test_speed_plot_from_the_speed_results(tmp_path):
    """speed.png is drawn from nets.json and inference.json (the committed ones, copied)."""
    import shutil

    for name in ("nets.json", "inference.json"):
        shutil.copy(ROOT / "benchmarks" / "results" / name, tmp_path / name)
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import suite; "
        f"from pathlib import Path; print(suite.speed_plot(Path({str(tmp_path)!r})))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "speed.png").stat().st_size > 10_000


def test_suite_refuses_an_unknown_step(tmp_path):
    proc = _run("suite.py", "--only", "quality,nope", "--no-readme", results=tmp_path)
    assert proc.returncode == 2 and "unknown step(s): nope" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing was run


def test_ensemble_benchmark_reports_each_setup(tmp_path):
    """A reduced run (one slice / one volume): every method's row, against the stated references."""
    proc = _run("ensemble.py", "--max-images", "1", results=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "ensemble.json").read_text())
    two, three = data["tables"]["2d"], data["tables"]["3d"]
    assert {r["method"] for r in two} == {
        "noisy",
        "bm3d",
        *(f"hmadnet_mri_rician x{n}" for n in (1, 2, 4, 8)),
    }
    assert "hmadnet_mri_rician triplanar x4" in {r["method"] for r in three}
    assert all(r["n"] == 1 for r in two + three)
    md = (tmp_path / "ensemble.md").read_text()
    assert md.count("| reference |") == 6  # the net's one pass, per level, in both setups
    net = {r["level"]: r for r in two if r["method"] == "hmadnet_mri_rician x1"}
    noisy = {r["level"]: r for r in two if r["method"] == "noisy"}
    assert all(net[k]["psnr_fg_mean"] > noisy[k]["psnr_fg_mean"] for k in net)
