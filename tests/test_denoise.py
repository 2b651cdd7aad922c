"""`medden denoise` and `medden.denoise`: units, manifest, resume, provenance, errors, shards."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medden.cli import main
from medden.data.samples import mni152, mni152_slice, natural_image
from medden.noise import rician, salt_pepper


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medden", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _final(out: Path) -> dict[str, dict]:
    """The last manifest record of each unit."""
    return {r["key"]: r for r in _manifest(out) if r["status"] != "started"}


def _png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """8-bit gray PNG, 16-bit PNG, RGB JPEG, BMP and a truncated PNG, in nested folders."""
    root = tmp_path / "in"
    cam = (natural_image("camera")[0][::4, ::4] * 255).round().astype(np.uint8)
    _png(root / "a" / "cam.png", salt_pepper(cam, 0.1, rng=0).astype(np.uint8))
    mri = (mni152_slice()[0] * 60000).astype(np.uint16)
    _png(root / "b" / "mri16.png", salt_pepper(mri, 0.1, rng=1).astype(np.uint16))
    rgb = (np.moveaxis(natural_image("astronaut", gray=False)[:, ::4, ::4], 0, -1) * 255).astype(np.uint8)
    _png(root / "c" / "astro.jpg", rgb)
    _png(root / "d.bmp", cam)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    return root


def test_image_folder_mirrors_format_and_bit_depth(image_folder, tmp_path, capsys):
    before = _hashes(image_folder)
    out = tmp_path / "out"
    code = main(["denoise", str(image_folder), str(out), "--model", "switching_median", "--quiet"])
    assert code == 3  # the truncated PNG failed, the rest are done
    assert _hashes(image_folder) == before  # input untouched
    final = _final(out)
    assert {k: r["status"] for k, r in final.items()} == {
        "a/cam.png": "done",
        "b/mri16.png": "done",
        "c/astro.jpg": "done",
        "d.bmp": "done",
        "broken.png": "failed",
    }
    assert "broken.png" in final["broken.png"]["error"] and "\n" not in final["broken.png"]["error"]
    from PIL import Image

    cam_in = np.asarray(Image.open(image_folder / "a" / "cam.png"))
    cam_out = np.asarray(Image.open(out / "a" / "cam.png"))
    assert cam_out.dtype == np.uint8 and cam_out.shape == cam_in.shape
    clean = (natural_image("camera")[0][::4, ::4] * 255).round()
    assert np.abs(cam_out - clean).mean() < np.abs(cam_in - clean).mean() / 3
    assert np.asarray(Image.open(out / "b" / "mri16.png")).dtype == np.uint16
    assert Image.open(out / "c" / "astro.jpg").format == "JPEG"
    assert Image.open(out / "c" / "astro.jpg").mode == "RGB"
    assert Image.open(out / "d.bmp").format == "BMP"
    prov = json.loads((out / "a" / "cam.png.provenance.json").read_text())
    for field in ("model", "weights_sha256", "medden", "torch", "monai", "mode", "noise_level", "command"):
        assert field in prov
    for rec in final.values():
        assert {"input", "output", "status", "error", "seconds"} <= set(rec)


def test_figures_only_on_request_and_inside_the_output_folder(image_folder, tmp_path):
    from PIL import Image

    plain, shown = tmp_path / "plain", tmp_path / "shown"
    assert main(["denoise", str(image_folder), str(plain), "--model", "median", "--quiet"]) == 3
    assert not (plain / "figures").exists()
    assert main(["denoise", str(image_folder), str(shown), "--model", "median", "--figures", "--quiet"]) == 3
    figures = sorted(str(p.relative_to(shown)) for p in (shown / "figures").rglob("*.png"))
    assert figures == [
        "figures/a/cam.figure.png",
        "figures/b/mri16.figure.png",
        "figures/c/astro.figure.png",
        "figures/d.figure.png",
    ]
    for f in figures:
        with Image.open(shown / f) as im:
            assert im.format == "PNG" and im.width > 2 * im.height  # three panels side by side
    assert not list(tmp_path.rglob(".medden-tmp-*"))


def test_rerun_skips_done_units_and_overwrite_redoes_them(image_folder, tmp_path):
    out = tmp_path / "out"
    assert main(["denoise", str(image_folder / "a"), str(out), "--model", "median", "--quiet"]) == 0
    first = (out / "cam.png").stat().st_mtime_ns
    assert main(["denoise", str(image_folder / "a"), str(out), "--model", "median", "--quiet"]) == 0
    assert _manifest(out)[-1]["status"] == "skipped"
    assert (out / "cam.png").stat().st_mtime_ns == first
    assert (
        main(["denoise", str(image_folder / "a"), str(out), "--model", "median", "--quiet", "--overwrite"])
        == 0
    )
    assert _manifest(out)[-1]["status"] == "done"


def test_foreign_output_is_not_replaced_without_overwrite(image_folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "cam.png").write_bytes(b"user's own file")
    assert main(["denoise", str(image_folder / "a"), str(out), "--model", "median", "--quiet"]) == 3
    assert (out / "cam.png").read_bytes() == b"user's own file"
    assert "--overwrite" in _final(out)["cam.png"]["error"]
    # a second run still does not take the user's file for one of its own
    assert main(["denoise", str(image_folder / "a"), str(out), "--model", "median", "--quiet"]) == 3
    assert (out / "cam.png").read_bytes() == b"user's own file"
    assert (
        main(["denoise", str(image_folder / "a"), str(out), "--model", "median", "--quiet", "--overwrite"])
        == 0
    )
    assert (out / "cam.png").read_bytes() != b"user's own file"


def test_manifest_has_one_final_record_per_unit(image_folder, tmp_path):
    out = tmp_path / "out"
    assert main(["denoise", str(image_folder), str(out), "--model", "median", "--quiet"]) == 3
    assert main(["denoise", str(image_folder), str(out), "--model", "median", "--quiet"]) == 3  # a rerun
    rows = _manifest(out)
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == 5  # four images and the truncated PNG
    assert {r["status"] for r in rows} <= {"done", "skipped", "failed"}
    assert sorted(r["key"] for r in rows if r["status"] == "failed") == ["broken.png"]


def _nifti_and_png(root: Path) -> None:
    import nibabel as nib

    vol, affine = mni152()
    root.mkdir(parents=True)
    nib.save(
        nib.Nifti1Image(rician(vol[40:140:3, 50:160:3, 40:100:3], 0.05, rng=0), affine), root / "v.nii.gz"
    )
    _png(root / "flat.png", (natural_image("camera")[0][::16, ::16] * 255).astype(np.uint8))
    _png(root / "z_last.png", (natural_image("camera")[0][::16, ::16] * 200).astype(np.uint8))


def test_a_unit_that_does_not_fit_the_options_fails_and_the_batch_goes_on(tmp_path):
    _nifti_and_png(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["denoise", str(tmp_path / "in"), str(out), "--model", "bm4d", "--quiet"]) == 3
    final = _final(out)
    assert final["v.nii.gz"]["status"] == "done"
    for name in ("flat.png", "z_last.png"):  # both images tried, each failed with the reason
        assert final[name]["status"] == "failed" and "needs a volume" in final[name]["error"]


def test_two_and_a_half_d_takes_its_context_from_the_net(tmp_path):
    from medden import nets
    from medden.checkpoints import save_weights

    kwargs = {"spatial_dims": 2, "in_channels": 3, "out_channels": 1, "features": [4, 8]}
    net = nets.get("hmadnet", **kwargs)  # three neighbouring slices in, the middle one out
    w = tmp_path / "stack3.safetensors"
    save_weights(net, w, net="hmadnet", net_kwargs=kwargs)
    _nifti_and_png(tmp_path / "in")
    out = tmp_path / "out"
    args = ["denoise", str(tmp_path / "in"), str(out), "--checkpoint", str(w), "--mode", "2.5d", "--quiet"]
    assert main(args) == 3
    final = _final(out)
    assert final["v.nii.gz"]["status"] == "done" and final["flat.png"]["status"] == "failed"
    import nibabel as nib

    assert nib.load(out / "v.nii.gz").shape == nib.load(tmp_path / "in" / "v.nii.gz").shape


def test_values_clipped_on_write_are_counted(tmp_path):
    import torch

    from medden import nets
    from medden.checkpoints import save_weights

    kwargs = {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "features": 4, "depth": 3}
    net = nets.get("dncnn", **kwargs)
    with torch.no_grad():  # predicts a noise of -0.5 everywhere: the output is the input + 0.5
        for p in net.body[-1].parameters():
            p.zero_()
        net.body[-1].bias.fill_(-0.5)
    w = tmp_path / "bright.safetensors"
    save_weights(net, w, net="dncnn", net_kwargs=kwargs)
    img = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (16, 1))
    _png(tmp_path / "in" / "ramp.png", img)
    out = tmp_path / "out"
    assert main(["denoise", str(tmp_path / "in"), str(out), "--checkpoint", str(w), "--quiet"]) == 0
    rec = _final(out)["ramp.png"]
    expected = int(np.count_nonzero(img.astype(float) / 255 + 0.5 > 1 + 0.5 / 255))
    assert rec["clipped_on_write"] == expected > 0
    prov = json.loads((out / "ramp.png.provenance.json").read_text())
    assert prov["clipped_on_write"] == expected


def test_nifti_volume_round_trip_keeps_header_and_improves(tmp_path):
    import nibabel as nib

    vol, affine = mni152()
    clean = (vol[40:120:2, 50:150:2, 30:110:2] * 1000).astype(np.float32)
    noisy = rician(clean, 0.05, rng=0).astype(np.float32)
    src = tmp_path / "in" / "t1.nii.gz"
    src.parent.mkdir()
    nib.save(nib.Nifti1Image(noisy, affine), src)
    out = tmp_path / "out"
    code = main(["denoise", str(src.parent), str(out), "--model", "bm3d", "--quiet", "--noise-level", "auto"])
    assert code == 0
    res = nib.load(out / "t1.nii.gz")
    assert np.allclose(res.affine, affine) and res.shape == noisy.shape
    assert res.get_data_dtype() == np.float32
    den = res.get_fdata()
    from medden.metrics import psnr

    assert psnr(clean, den, data_range=1000) > psnr(clean, noisy, data_range=1000) + 2
    assert _final(out)["t1.nii.gz"]["noise_level"] is not None


@pytest.mark.parametrize(
    "args, message",
    [
        (["{missing}", "{out}", "--model", "median"], "not found"),
        (["{src}", "{inside}", "--model", "median"], "inside INPUT"),
        (["{src}", "{out}", "--model", "no_such_model"], "unknown model"),
        (["{src}", "{out}", "--checkpoint", "{missing}"], "checkpoint not found"),
        (["{src}", "{out}", "--model", "median", "--net", "dncnn"], "--net goes with --checkpoint"),
        (["{src}", "{out}", "--model", "median", "--shard", "3/2"], "--shard"),
        (["{src}", "{out}", "--model", "median", "--shard", "x"], "--shard"),
        (["{src}", "{out}", "--model", "median", "--noise-level", "loud"], "--noise-level"),
        (["{src}", "{out}", "--model", "median", "--noise-level", "2"], "--noise-level"),
        (["{src}", "{out}", "--model", "median", "--batch-size", "0"], "--batch-size"),
        (["{src}", "{out}", "--model", "median", "--overlap", "1.5"], "--overlap"),
        (["{src}", "{out}", "--model", "median", "--device", "tpu"], "--device"),
        (["{src}", "{out}", "--model", "median", "--mode", "3d"], "3D model"),
        (["{src}", "{out}", "--model", "bm4d", "--mode", "2d"], "3D model"),
        (["{src}", "{out}", "--model", "median", "--mode", "2.5d"], "--mode 2.5d needs a net trained"),
    ],
)
def test_usage_errors_exit_2_with_one_line(image_folder, tmp_path, args, message):
    fmt = {
        "src": image_folder / "a",
        "out": tmp_path / "out",
        "inside": image_folder / "a" / "out",
        "missing": tmp_path / "nope",
    }
    proc = _run("denoise", *[a.format(**fmt) for a in args], "--quiet")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_argparse_errors_exit_2(image_folder, tmp_path):
    proc = _run("denoise", str(image_folder), str(tmp_path / "o"))  # no model
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = _run("denoise", str(image_folder), str(tmp_path / "o"), "--model", "median", "--bundle", "x")
    assert proc.returncode == 2 and "not allowed with" in proc.stderr
    proc = _run("denoise", "--help")
    assert proc.returncode == 0 and "exit codes" in proc.stdout and "manifest.jsonl" in proc.stdout


def test_dry_run_writes_nothing(image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["denoise", str(image_folder), str(out), "--model", "median", "--dry-run"]) == 0
    assert not out.exists()
    printed = capsys.readouterr().out
    assert "cam.png" in printed and "broken.png" in printed


def test_shards_partition_every_unit_exactly_once(image_folder, tmp_path):
    out = tmp_path / "out"
    codes = [
        main(["denoise", str(image_folder), str(out), "--model", "median", "--quiet", "--shard", f"{i}/3"])
        for i in range(3)
    ]
    assert sorted(codes) == [0, 0, 3]  # one shard holds the broken file
    parts = [
        [
            r["key"]
            for r in map(json.loads, (out / f"manifest.part-{i}-of-3.jsonl").read_text().splitlines())
            if r["status"] in ("done", "failed")
        ]
        for i in range(3)
    ]
    flat = [k for p in parts for k in p]
    assert len(flat) == len(set(flat)) == 5
    merged = _final(out)  # manifest.jsonl merged by the last shard
    assert {k for k in merged if k != "_shard"} == set(flat)


def test_torchrun_environment_selects_the_shard(image_folder, tmp_path):
    from medden.workflows.denoise import parse_shard

    os.environ.update({"RANK": "1", "WORLD_SIZE": "2"})
    try:
        assert parse_shard(None) == (1, 2)
    finally:
        del os.environ["RANK"], os.environ["WORLD_SIZE"]
    assert parse_shard(None) is None


def test_sigkill_mid_batch_then_rerun_completes(tmp_path):
    root = tmp_path / "in"
    cam = (natural_image("camera")[0] * 255).astype(np.uint8)
    for i in range(12):
        _png(root / f"img{i:02d}.png", salt_pepper(cam, 0.05, rng=i).astype(np.uint8))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "medden", "denoise", str(root), str(out), "--model", "nlm", "--quiet"],
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until at least one unit is done, then kill hard
        if (out / "manifest.jsonl").exists() and '"done"' in (out / "manifest.jsonl").read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = sum(r["status"] == "done" for r in _manifest(out))
    assert 1 <= done_before < 12
    proc = _run("denoise", str(root), str(out), "--model", "nlm", "--quiet")
    assert proc.returncode == 0, proc.stderr
    final = _final(out)
    assert len(final) == 12 and all(r["status"] in ("done", "skipped") for r in final.values())
    from PIL import Image

    for i in range(12):
        img = np.asarray(Image.open(out / f"img{i:02d}.png"))  # every output is a whole, valid PNG
        assert img.shape == cam.shape
    assert not [p for p in out.iterdir() if p.name.startswith(".medden-tmp-")]


def test_python_api_on_arrays_tensors_and_paths(tmp_path):
    import torch
    from monai.data import MetaTensor

    import medden

    clean = np.full((40, 40), 0.5)
    noisy = salt_pepper(clean, 0.1, low=0.0, high=1.0, rng=0)
    out = medden.denoise(noisy, model="switching_median")
    assert isinstance(out, np.ndarray) and np.allclose(out, clean)
    vol = np.stack([noisy] * 5, axis=-1)
    assert medden.denoise(vol, model="median").shape == vol.shape
    mt = MetaTensor(torch.as_tensor(noisy[None], dtype=torch.float32), meta={"note": "kept"})
    res = medden.denoise(mt, model="switching_median")
    assert isinstance(res, MetaTensor) and res.meta["note"] == "kept" and res.shape == mt.shape
    p = tmp_path / "x.png"
    _png(p, (noisy * 255).astype(np.uint8))
    assert medden.denoise(p, model="median").shape == (1, 40, 40)


def test_checkpoint_of_identity_like_net_and_3d_mode(tmp_path):
    """A registered net with weights through --checkpoint, in 2d and 3d mode on a NIfTI volume."""
    import nibabel as nib
    import torch

    from medden import nets
    from medden.checkpoints import save_weights

    kwargs = {"spatial_dims": 3, "in_channels": 1, "out_channels": 1, "features": 4, "depth": 3}
    net = nets.get("dncnn", **kwargs)
    with torch.no_grad():  # last conv outputs zero noise: the net is the identity
        for p in net.body[-1].parameters():
            p.zero_()
    w = tmp_path / "id3d.safetensors"
    save_weights(net, w, net="dncnn", net_kwargs=kwargs)
    vol = (np.random.default_rng(0).random((20, 22, 18)) * 1000).astype(np.int16)
    src = tmp_path / "in" / "v.nii"
    src.parent.mkdir()
    nib.save(nib.Nifti1Image(vol, np.diag([2.0, 2.0, 3.0, 1.0])), src)
    out = tmp_path / "out"
    code = main(["denoise", str(src), str(out), "--checkpoint", str(w), "--quiet", "--roi-size", "16"])
    assert code == 0
    res = nib.load(out / "v.nii")
    assert res.get_data_dtype() == np.int16
    assert np.array_equal(np.asarray(res.dataobj), vol)  # identity, exact after rounding
    prov = json.loads((out / "v.nii.provenance.json").read_text())
    from medden.checkpoints import sha256_file

    assert prov["weights_sha256"] == sha256_file(w) and prov["mode"] == "3d"
    proc = _run("denoise", str(src), str(tmp_path / "o2"), "--checkpoint", str(w), "--mode", "2d", "--quiet")
    assert proc.returncode == 2 and "3D model" in proc.stderr


# ------------------------------------------------------------------------------------------------
# DICOM folders
# ------------------------------------------------------------------------------------------------


def _mr_volume(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    vol, affine = mni152()
    clean = vol[50:130:4, 60:160:4, 40:100:6] * 800
    return rician(clean, 0.04, rng=seed).astype(np.float32), affine @ np.diag([4.0, 4.0, 6.0, 1.0])


@pytest.fixture
def dicom_folder(tmp_path) -> Path:
    """Two good series (one with a path-traversal description), pydicom's malformed files and an
    SR object, all in one study folder with shuffled names."""
    import shutil

    from pydicom.data import get_testdata_file

    from medden.io import write_synthetic_series

    root = tmp_path / "export"
    vol, affine = _mr_volume()
    write_synthetic_series(vol, affine, root / "study" / "s1", series_number=3, series_description="T1 axial")
    write_synthetic_series(
        vol[::-1] * 0.5, affine, root / "study" / "s2", series_number=4, series_description="../../escape"
    )
    bad = root / "study" / "junk"
    bad.mkdir(parents=True)
    for name in ("no_meta.dcm", "rtstruct.dcm"):  # no file meta / a non-image object
        src = get_testdata_file(name)
        if src:
            shutil.copy(src, bad / name)
    whole = next((root / "study" / "s1").glob("*")).read_bytes()
    (bad / "truncated").write_bytes(whole[: len(whole) - 500])  # pixel data shorter than declared
    return root


def test_mixed_dicom_folder_done_failed_skipped_and_input_untouched(dicom_folder, tmp_path):
    before = _hashes(dicom_folder)
    out = tmp_path / "out"
    proc = _run("denoise", str(dicom_folder), str(out), "--model", "median", "--quiet")
    assert proc.returncode == 3, proc.stderr  # the truncated file failed
    assert _hashes(dicom_folder) == before
    final = _final(out)
    done = [r for r in final.values() if r["status"] == "done"]
    failed = [r for r in final.values() if r["status"] == "failed"]
    assert len(done) == 2 and failed
    assert all(r["error"] and "\n" not in r["error"] for r in failed)
    assert any("truncated" in r["key"] for r in failed)
    # every file of the junk folder has its own record with a one-line reason
    junk = {Path(r["key"]).name: r for r in final.values() if "junk" in r["key"]}
    assert set(junk) == {"no_meta.dcm", "rtstruct.dcm", "truncated"}, junk
    assert all(r["status"] in ("failed", "skipped") and r["error"] for r in junk.values())
    assert junk["truncated"]["status"] == "failed" and junk["no_meta.dcm"]["status"] == "failed"
    for rec in done:  # every output folder is inside OUTPUT, whatever the SeriesDescription said
        path = Path(rec["output"]).resolve()
        assert out.resolve() in path.parents
        assert ".." not in Path(rec["output"]).parts
    assert not (tmp_path / "escape").exists() and not (dicom_folder / "escape").exists()
    # logs and the manifest never carry the patient's name or ID
    text = (out / "manifest.jsonl").read_text() + proc.stderr
    assert "Synthetic^Phantom" not in text and "MEDDEN-SYNTHETIC" not in text


def test_dicom_identity_round_trip_within_rescale_rounding(tmp_path):
    import pydicom
    import torch

    import medden.io as mio
    from medden import nets
    from medden.checkpoints import save_weights

    kwargs = {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "features": 4, "depth": 3}
    net = nets.get("dncnn", **kwargs)
    with torch.no_grad():
        for p in net.body[-1].parameters():
            p.zero_()
    w = tmp_path / "identity.safetensors"
    save_weights(net, w, net="dncnn", net_kwargs=kwargs)
    vol, affine = _mr_volume(1)
    src = tmp_path / "in" / "series"
    mio.write_synthetic_series(vol, affine, src, series_number=7)
    out = tmp_path / "out"
    assert main(["denoise", str(tmp_path / "in"), str(out), "--checkpoint", str(w), "--quiet"]) == 0
    rec = next(r for r in _final(out).values() if r["status"] == "done")
    a, b = mio.load(src), mio.load(Path(rec["output"]))
    slope = float(pydicom.dcmread(next(Path(rec["output"]).iterdir())).get("RescaleSlope", 1))
    assert a.shape == b.shape and np.allclose(a.affine, b.affine, atol=1e-4)
    assert np.abs(a.array - b.array).max() <= slope / 2 + 1e-3
    first = pydicom.dcmread(sorted(Path(rec["output"]).iterdir())[0])
    assert "DERIVED" in first.ImageType and "dncnn" in str(first.get("DerivationDescription", ""))
    # a rerun with --overwrite gives the same UIDs (a PACS overwrites rather than duplicates)
    uids = {pydicom.dcmread(p).SOPInstanceUID for p in Path(rec["output"]).iterdir()}
    assert (
        main(["denoise", str(tmp_path / "in"), str(out), "--checkpoint", str(w), "--quiet", "--overwrite"])
        == 0
    )
    assert {pydicom.dcmread(p).SOPInstanceUID for p in Path(rec["output"]).iterdir()} == uids
