"""``medden evaluate``: the outputs, the statistics against scipy, the error paths, a net from its weights."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from medden.cli import main
from medden.workflows.evaluate import paired_comparisons

LEVELS = ("0.03", "0.09")
METHODS = ("median", "bm3d")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One evaluation: 3 MNI152 test slices × 2 Rician levels × (median, BM3D)."""
    out = tmp_path_factory.mktemp("eval") / "out"
    args = ["evaluate", "--methods", ",".join(METHODS), "--data", "mni152", "--noise", "rician"]
    args += ["--levels", ",".join(LEVELS), "--max-images", "3", "--out", str(out), "--quiet"]
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(args)
    return code, buf.getvalue(), out


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_writes_every_output(run):
    code, printed, out = run
    assert code == 0
    for name in ("per_image.csv", "summary.csv", "summary.md", "results.json"):
        assert (out / name).stat().st_size > 0, name
    for level in LEVELS:
        assert (out / "figures" / f"rician_{level}.png").stat().st_size > 10_000
    assert not [p for p in out.rglob("*") if p.name.startswith(".medden-tmp")]
    per_image = _read_csv(out / "per_image.csv")
    assert len(per_image) == 3 * len(LEVELS) * len(METHODS)
    assert {r["method"] for r in per_image} == set(METHODS)
    for r in per_image:
        assert float(r["psnr"]) > 15 and 0 < float(r["ssim_fg"]) <= 1 and float(r["seconds"]) >= 0
    # the table: printed as written, one row per method × level, BM3D better on the foreground
    table = (out / "summary.md").read_text()
    assert printed == table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(METHODS) * len(LEVELS)
    assert [(r.split("|")[1].strip(), r.split("|")[2].strip()) for r in rows] == [
        (lv, m) for lv in LEVELS for m in METHODS
    ]
    summary = _read_csv(out / "summary.csv")
    assert len(summary) == len(METHODS) * len(LEVELS)
    for r in summary:
        if r["method"] == "bm3d":
            assert float(r["psnr_fg_mean_diff"]) > 1.0  # BM3D beats the median on brain tissue
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["methods"] == list(METHODS) and results["reference"] == "median"
    assert results["versions"]["bm3d"] and results["versions"]["numpy"] and results["date"].startswith("20")
    assert results["data"]["split"] == "test" and len(results["data"]["images"]) == 3
    assert [m["label"] for m in results["methods"]] == list(METHODS)
    # the SSIM window is stated with the numbers: in results.json and under the table
    from medden.metrics import SSIM_WINDOW

    assert results["ssim_window"] == SSIM_WINDOW == "gaussian-11-1.5"
    assert f"SSIM window: {SSIM_WINDOW}" in table


def test_noise_is_seeded(run, tmp_path):
    """The same configuration gives the same noisy images, hence the same scores."""
    _, _, out = run
    again = tmp_path / "again"
    assert main(["evaluate", "--methods", "median", "--levels", "0.03", "--max-images", "3"]
                + ["--out", str(again), "--quiet", "--no-figures"]) == 0  # fmt: skip
    first = [r for r in _read_csv(out / "per_image.csv") if r["method"] == "median" and r["level"] == "0.03"]
    second = _read_csv(again / "per_image.csv")
    assert [r["psnr"] for r in first] == [r["psnr"] for r in second]
    assert not (again / "figures").exists()


def test_statistics_match_scipy(run):
    _, _, out = run
    per_image = _read_csv(out / "per_image.csv")
    results = json.loads((out / "results.json").read_text())
    for level in LEVELS:
        for metric in ("psnr", "ssim", "psnr_fg", "ssim_fg"):

            def scores(method, level=level, metric=metric):
                rows = [r for r in per_image if r["level"] == level and r["method"] == method]
                return np.array([float(r[metric]) for r in sorted(rows, key=lambda r: int(r["image"]))])

            a, b = scores("bm3d"), scores("median")
            (rec,) = [
                s
                for s in results["statistics"]
                if s["level"] == level and s["metric"] == metric and s["method"] == "bm3d"
            ]
            d = a - b
            lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
            assert rec["n"] == 3 and rec["reference"] == "median"
            assert rec["mean_diff"] == pytest.approx(d.mean(), rel=1e-12)
            assert (rec["ci_low"], rec["ci_high"]) == pytest.approx((lo, hi), rel=1e-9)
            assert rec["t_pvalue"] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
            assert rec["wilcoxon_pvalue"] == pytest.approx(stats.wilcoxon(a, b).pvalue, rel=1e-9)
    summary = {(r["level"], r["method"]): r for r in _read_csv(out / "summary.csv")}
    rec = next(s for s in results["statistics"] if s["metric"] == "psnr" and s["level"] == "0.09")
    assert float(summary[("0.09", "bm3d")]["psnr_t_pvalue"]) == pytest.approx(rec["t_pvalue"])


def test_paired_comparisons_pairs_by_image():
    """Pairs are matched by image, in any row order; non-finite scores are left out."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(30, 1, 6), rng.normal(29, 1, 6)
    rows = [{"image": i, "level": "x", "method": "A", "psnr": a[i]} for i in range(6)]
    rows += [{"image": i, "level": "x", "method": "B", "psnr": b[i]} for i in reversed(range(6))]
    rows.append({"image": 6, "level": "x", "method": "A", "psnr": float("nan")})
    (rec,) = paired_comparisons(rows, reference="B", metrics=("psnr",))
    assert rec["n"] == 6 and rec["t_pvalue"] == pytest.approx(stats.ttest_rel(a, b).pvalue)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medden", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "median,wiener"], "unknown method 'wiener'"),
        (["--methods", "dncnn={missing}"], "weights file not found"),
        (["--methods", "median", "--levels", "0.05,2"], "must be in (0, 1]"),
        (["--methods", "median", "--levels", "0.05,high"], "comma-separated numbers"),
        (["--methods", "median", "--reference", "bm3d"], "--reference 'bm3d' is not one of"),
        (["--methods", "median", "--method-kwargs", '{"median": {"radius": 2}}'], "bad arguments"),
        (["--methods", "median", "--method-kwargs", "{size: 5}"], "not valid JSON"),
        (["--methods", "median", "--noise", "speckle"], "unknown noise kind"),
        (["--methods", "median", "--data", "{missing}"], "neither one of"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, message, capsys):
    """In this process (``main``, as the console script calls it); the first case also as a process."""
    missing = str(tmp_path / "nope.safetensors")
    argv = ["evaluate", *[a.replace("{missing}", missing) for a in args], "--out", str(tmp_path / "o")]
    if "wiener" in message:
        proc = _cli(*argv)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    else:
        code = main(argv)
        out, err = capsys.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "o").exists()


def _dncnn_registered() -> bool:
    try:
        from medden import nets
    except ImportError:
        return False
    return "dncnn" in nets.available()


@pytest.mark.skipif(not _dncnn_registered(), reason="medden.nets has no dncnn")
def test_net_from_its_weights(tmp_path, capsys):
    """A randomly initialised DnCNN saved with medden.checkpoints runs and is reported (nothing trained)."""
    from medden import checkpoints, nets

    kwargs = {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "features": 8, "depth": 3}
    weights = tmp_path / "best.safetensors"
    digest = checkpoints.save_weights(nets.get("dncnn", **kwargs), weights, net="dncnn", net_kwargs=kwargs)
    out = tmp_path / "out"
    args = ["evaluate", "--methods", "median", f"dncnn={weights}", "--levels", "0.05", "--max-images", "2"]
    assert main([*args, "--out", str(out), "--quiet", "--reference", "dncnn"]) == 0
    table = capsys.readouterr().out
    assert "| 0.05 | dncnn | 2 |" in table and "| 0.05 | median | 2 |" in table
    results = json.loads((out / "results.json").read_text())
    (spec,) = [m for m in results["methods"] if m["kind"] == "net"]
    assert spec["sha256"] == digest and spec["net_kwargs"] == kwargs and spec["name"] == "dncnn"
    assert results["reference"] == "dncnn"
    assert (out / "figures" / "rician_0.05.png").is_file()
    # the weights of one net under another's name: one line, exit 2
    proc = _cli("evaluate", "--methods", f"hmadnet={weights}", "--out", str(tmp_path / "o2"))
    assert proc.returncode == 2 and "holds weights of 'dncnn'" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bundle_by_name(tmp_path, capsys):
    """A bundle's name is a method: its checksummed weights, labelled by the bundle, above the noisy input."""
    from medden.bundle_format import available_bundles

    if "hmadnet_mri_rician" not in available_bundles():
        pytest.skip("the hmadnet_mri_rician bundle is not in this checkout")
    out = tmp_path / "out"
    args = ["evaluate", "--methods", "noisy", "hmadnet_mri_rician", "--levels", "0.05", "--max-images", "2"]
    assert main([*args, "--out", str(out), "--quiet", "--no-figures"]) == 0
    results = json.loads((out / "results.json").read_text())
    (spec,) = [m for m in results["methods"] if m["kind"] == "net"]
    assert spec["label"] == "hmadnet_mri_rician" and spec["name"] == "hmadnet-compact"
    psnr = {r["method"]: r["psnr_fg_mean"] for r in results["summary"]}
    assert psnr["hmadnet_mri_rician"] > psnr["noisy"] + 3
    # an unknown name lists the bundles that can be used
    proc = _cli("evaluate", "--methods", "no_such_bundle", "--out", str(tmp_path / "o2"))
    assert proc.returncode == 2 and "hmadnet_mri_rician" in proc.stderr, proc.stderr


def test_3d_evaluation_skips_single_slices_and_says_so(tmp_path):
    """A 3D evaluation of a folder scores the volumes and lists a single-slice scan it cannot score."""
    import nibabel as nib

    from medden.errors import UsageError
    from medden.workflows.evaluate import EvalConfig, evaluate

    rng = np.random.default_rng(0)
    data = tmp_path / "scans"
    data.mkdir()
    nib.save(nib.Nifti1Image(rng.random((16, 16, 12)).astype(np.float32), np.eye(4)), data / "volume.nii")
    nib.save(nib.Nifti1Image(rng.random((16, 16, 1)).astype(np.float32), np.eye(4)), data / "slice.nii")
    cfg = {"methods": ("noisy", "median"), "noise": "rician", "levels": (0.05,), "spatial_dims": 3}
    result = evaluate(EvalConfig(out_dir=str(tmp_path / "out"), data=str(data), split="all", **cfg))
    info = json.loads((tmp_path / "out" / "results.json").read_text())["data"]
    assert info["available"] == 1 and [s["shape"] for s in info["skipped"]] == [[16, 16, 1]]
    assert {r["n"] for r in result.summary} == {1}
    # only thin scans: a clear error, not a traceback from the SSIM window
    (data / "volume.nii").unlink()
    with pytest.raises(UsageError, match="too thin for 3D"):
        evaluate(EvalConfig(out_dir=str(tmp_path / "out2"), data=str(data), split="all", **cfg))
