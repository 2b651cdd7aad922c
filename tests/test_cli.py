"""The command line: start-up cost, help, version, `medden noise` and `medden estimate-noise`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medden.cli import main
from medden.data.samples import mni152_slice, natural_image
from medden.noise import rician


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medden", *args], capture_output=True, text=True, timeout=300
    )


def test_import_and_help_are_light():
    code = (
        "import sys, io, contextlib\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    import medden, medden.cli\n"
        "assert buf.getvalue() == '', 'importing medden printed'\n"
        "try:\n"
        "    medden.cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('torch', 'monai', 'pydicom', 'SimpleITK', 'nibabel', 'skimage')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_version_and_help():
    from medden import __version__

    proc = _run("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout
    proc = _run("--help")
    assert proc.returncode == 0
    for command in ("noise", "estimate-noise", "demo"):
        assert command in proc.stdout
    assert "Exit codes" in proc.stdout


def _write_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(img).save(path)


def test_noise_png_8bit_roundtrip_and_estimate(tmp_path, capsys):
    clean = (natural_image("moon")[0] * 255).round().astype(np.uint8)
    src = tmp_path / "moon.png"
    _write_png(src, clean)
    before = src.read_bytes()
    out = tmp_path / "noisy.png"
    assert main(["noise", str(src), str(out), "--kind", "gaussian", "--sigma", "12.75", "--seed", "3"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["seed"] == 3 and record["sigma"] == 12.75
    assert src.read_bytes() == before  # input untouched
    from PIL import Image

    noisy = np.asarray(Image.open(out))
    assert noisy.dtype == np.uint8 and noisy.shape == clean.shape
    diff = noisy.astype(float) - clean
    assert 11.5 < diff.std() < 13.5  # σ 12.75 (slightly less where clipped at 0/255)
    assert main(["estimate-noise", str(out), "--kind", "gaussian"]) == 0
    est = json.loads(capsys.readouterr().out)
    assert abs(est["sigma"] - 12.75) / 12.75 < 0.15
    # same seed, same output
    out2 = tmp_path / "noisy2.png"
    assert main(["noise", str(src), str(out2), "--kind", "gaussian", "--sigma", "12.75", "--seed", "3"]) == 0
    assert np.array_equal(np.asarray(Image.open(out2)), noisy)


def test_noise_png_16bit_salt_pepper(tmp_path, capsys):
    clean = (mni152_slice()[0] * 60000).astype(np.uint16)
    src = tmp_path / "mri16.png"
    _write_png(src, clean)
    out = tmp_path / "sp.png"
    assert main(["noise", str(src), str(out), "--kind", "salt_pepper", "--level", "0.2", "--seed", "1"]) == 0
    capsys.readouterr()
    from PIL import Image

    noisy = np.asarray(Image.open(out))
    assert noisy.dtype == np.uint16
    changed = noisy != clean
    assert set(np.unique(noisy[changed])) <= {int(clean.min()), int(clean.max())}
    assert main(["estimate-noise", str(out), "--kind", "salt_pepper"]) == 0
    assert abs(json.loads(capsys.readouterr().out)["level"] - 0.2) < 0.03


def test_noise_nifti_rician(tmp_path, capsys):
    import nibabel as nib

    from medden.data.samples import mni152

    vol, affine = mni152()
    vol = (vol[::3, ::3, ::3] * 1000).astype(np.float32)
    src = tmp_path / "t1.nii.gz"
    nib.save(nib.Nifti1Image(vol, affine), src)
    out = tmp_path / "t1_noisy.nii.gz"
    assert main(["noise", str(src), str(out), "--kind", "rician", "--level", "0.05", "--seed", "0"]) == 0
    capsys.readouterr()
    img = nib.load(out)
    assert np.allclose(img.affine, affine) and img.shape == vol.shape
    assert main(["estimate-noise", str(out), "--kind", "rician"]) == 0
    est = json.loads(capsys.readouterr().out)
    assert abs(est["sigma"] - 0.05 * vol.max()) / (0.05 * vol.max()) < 0.15


@pytest.mark.parametrize(
    "args, message",
    [
        (["noise", "{missing}", "{out}", "--kind", "rician", "--level", "0.05"], "not found"),
        (["noise", "{src}", "{out}", "--kind", "rician", "--level", "1.5"], "must be in (0, 1]"),
        (["noise", "{src}", "{out}", "--kind", "rician", "--level", "-0.1"], "must be in (0, 1]"),
        (["noise", "{src}", "{out}", "--kind", "poisson_gaussian", "--level", "0"], "must be in (0, inf]"),
        (["noise", "{src}", "{out}", "--kind", "salt_pepper", "--sigma", "3"], "--sigma applies"),
        (
            ["noise", "{src}", "{src}", "--kind", "gaussian", "--level", "0.1", "--overwrite"],
            "replace the input",
        ),
        (["noise", "{src}", "{exists}", "--kind", "gaussian", "--level", "0.1"], "output exists"),
        (
            ["noise", "{src}", "{out}", "--kind", "gaussian", "--level", "0.1", "--salt-vs-pepper", "0.5"],
            "salt",
        ),
        (["estimate-noise", "{missing}", "--kind", "gaussian"], "not found"),
        (["noise", "{bad}", "{out}", "--kind", "gaussian", "--level", "0.1"], "bad.png"),
    ],
)
def test_error_paths_exit_2_with_one_line(tmp_path, args, message):
    src = tmp_path / "in.png"
    _write_png(src, np.zeros((16, 16), np.uint8))
    exists = tmp_path / "exists.png"
    exists.write_bytes(b"x")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    fmt = {
        "src": src,
        "out": tmp_path / "o.png",
        "missing": tmp_path / "nope.png",
        "exists": exists,
        "bad": bad,
    }
    proc = _run(*[a.format(**fmt) for a in args])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert exists.read_bytes() == b"x"


def test_argparse_errors_exit_2(tmp_path):
    proc = _run("noise", "a.png", "b.png", "--kind", "speckle", "--level", "0.1")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr  # one clear line, no usage block
    proc = _run("noise", "a.png", "b.png", "--kind", "rician")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = _run("estimate-noise", "a.png", "--kind", "lowlight")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_estimate_noise_rician_on_png_prints_json(tmp_path):
    clean = mni152_slice()[0]
    noisy = rician(clean / clean.max(), 0.04, rng=0)
    src = tmp_path / "n.tif"
    import tifffile

    tifffile.imwrite(src, noisy.astype(np.float32))
    proc = _run("estimate-noise", str(src), "--kind", "rician")
    assert proc.returncode == 0, proc.stderr
    est = json.loads(proc.stdout)
    assert est["kind"] == "rician" and abs(est["sigma"] - 0.04) / 0.04 < 0.15


def test_noise_models_demo_writes_figure(tmp_path):
    proc = _run("demo", "--noise-models", "--out", str(tmp_path / "demo"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "demo" / "noise_demo.png").stat().st_size > 10_000
    rows = json.loads((tmp_path / "demo" / "noise_demo.json").read_text())
    rician_mri = [r for r in rows if r["kind"] == "rician" and "MNI" in r["image"]]
    assert all(abs(r["estimated"] - r["true_level"]) / r["true_level"] < 0.15 for r in rician_mri)


def test_denoise_demo_round_trips_a_dicom_series(tmp_path):
    import medden.io as mio

    proc = _run("demo", "--model", "median", "--out", str(tmp_path / "demo"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "demo" / "denoise_demo.json").read_text())
    assert report["model"] == "median"
    assert report["scores"]["denoised"]["psnr_foreground"] > report["scores"]["noisy"]["psnr_foreground"]
    assert (tmp_path / "demo" / "denoise_demo.png").stat().st_size > 10_000
    derived = mio.load(report["derived_series"])
    source = mio.load(report["input_series"])
    assert derived.shape == source.shape and np.allclose(derived.affine, source.affine, atol=1e-4)
    assert "PSNR" in proc.stdout and "denoised" in proc.stdout


def test_default_demo_uses_the_shipped_rician_bundle(tmp_path):
    """`make demo`'s path: no --model, so the demo bundle's weights denoise the series and the report
    names it; the denoised volume is closer to the clean one than the noisy input (whole and brain)."""
    from medden.workflows.demo import DEMO_BUNDLE

    proc = _run("demo", "--out", str(tmp_path / "demo"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "demo" / "denoise_demo.json").read_text())
    assert report["model"] == DEMO_BUNDLE
    scores = report["scores"]
    assert scores["denoised"]["psnr_foreground"] > scores["noisy"]["psnr_foreground"] + 3
    assert scores["denoised"]["ssim"] > scores["noisy"]["ssim"]
