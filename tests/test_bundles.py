"""Every bundle in bundles/: configs parse and verify offline, inference and training run through
`python -m monai.bundle run`, weights match their checksum, and the shipped weights denoise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1] / "bundles"
BUNDLES = sorted(p.parents[1].name for p in ROOT.glob("*/configs/inference.json"))
CONFIGS = ("metadata", "inference", "train", "evaluate", "multi_gpu_train")


def _monai_run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=cwd,
        env=env,
    )


def _meta(name: str) -> dict:
    return json.loads((ROOT / name / "configs" / "metadata.json").read_text())


def test_bundles_exist():
    assert BUNDLES, "no bundle in bundles/"


def _generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location("medden_bundles_generate", ROOT / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_configs_match_their_generator():
    """The committed configs are what ``bundles/generate.py`` writes from its one table (no hand edits,
    no drift), and the table knows every bundle folder and how long its weights trained."""
    gen = _generator()
    assert sorted(gen.BUNDLES) == BUNDLES
    assert sorted(gen.TRAIN_TIMES) == BUNDLES
    for name, spec in gen.BUNDLES.items():
        cfg_dir = ROOT / name / "configs"
        old = json.loads((cfg_dir / "metadata.json").read_text())
        expected = {**gen.configs(name, spec), "metadata": gen.metadata(name, spec, old)}
        for stem, content in expected.items():
            on_disk = json.loads((cfg_dir / f"{stem}.json").read_text())
            assert on_disk == json.loads(json.dumps(content)), f"{name}/configs/{stem}.json"
        assert (cfg_dir / "logging.conf").read_text() == gen.LOGGING_CONF, name


def test_learning_curves_are_read_from_the_run_and_rendered_in_the_docs(tmp_path):
    """A run's validation points reach docs/learning_curves.json and the docs' section, which names the
    best point (by SSIM, as the trainer keeps it) and its difference from the shipped weights."""
    gen = _generator()
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps(
            {
                "net": "dncnn",
                "data": "deadleaves-gray",
                "noise": "gaussian",
                "lr": 1e-4,
                "init_weights": "/x/m.safetensors",
            }
        )
    )
    records = [
        {"iteration": 10, "loss": 0.1},
        {"iteration": 250, "val_psnr": 30.5, "val_ssim": 0.80},
        {"iteration": 500, "val_psnr": 31.25, "val_ssim": 0.85},
        {"iteration": 750, "val_psnr": 31.5, "val_ssim": 0.84},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    rec = gen._run_record("synthetic only", run)
    assert rec["points"] == [[250, 30.5, 0.8], [500, 31.25, 0.85], [750, 31.5, 0.84]]
    assert rec["settings"]["init_weights"] == "m.safetensors"
    root = tmp_path / "bundle"
    (root / "docs").mkdir(parents=True)
    assert gen.learning_curves_section(root) == []
    data = {"validation": "v", "shipped": {"sha256": "0", "psnr": 31.0, "ssim": 0.83}, "runs": [rec]}
    (root / "docs" / gen.CURVES_JSON).write_text(json.dumps(data))
    text = "\n".join(gen.learning_curves_section(root))
    assert "best (by SSIM) at iteration 500, 31.25 dB / 0.8500, +0.25 dB against those weights" in text
    assert "| PSNR | 30.50 | 31.25 | 31.50 |" in text
    # a run that kept its weights by PSNR (--val-metric psnr) names its best point by PSNR
    psnr_rec = {**rec, "settings": {**rec["settings"], "val_metric": "psnr"}}
    (root / "docs" / gen.CURVES_JSON).write_text(json.dumps({**data, "runs": [psnr_rec]}))
    text = "\n".join(gen.learning_curves_section(root))
    assert "best (by PSNR) at iteration 750, 31.50 dB / 0.8400, +0.50 dB against those weights" in text


def test_worst_real_case_is_the_largest_gap_below_the_reference_with_its_figure(tmp_path):
    """The docs' worst case is the (level, image) where the net is furthest below the reference in
    foreground PSNR, named by its scan, and links the evaluation's figure of that level."""
    gen = _generator()
    real = tmp_path / "real_scans"
    (real / "figures").mkdir(parents=True)
    psnr = {  # (level, image) -> (noisy, bm3d, net): gaps 0.03: +0.5, -0.2; 0.09: -1.5 (image 0), +0.1
        ("0.03", 0): (30.0, 33.0, 33.5),
        ("0.03", 1): (30.0, 33.0, 32.8),
        ("0.09", 0): (21.0, 28.0, 26.5),
        ("0.09", 1): (21.0, 28.0, 28.1),
    }
    rows = [
        {"level": lv, "image": im, "method": m, "psnr_fg": p, "psnr": p}
        for (lv, im), ps in psnr.items()
        for m, p in zip(("noisy", "bm3d", "net"), ps)
    ]
    results = {
        "reference": "bm3d",
        "config": {"noise": "rician"},
        "data": {"images": [0, 1], "scans": ["a.nii slice 3", "b.dcm"]},
        "per_image": rows,
    }
    (real / "results.json").write_text(json.dumps(results))
    assert gen.worst_real_case(real, "net") is None  # no figure drawn: nothing to link
    (real / "figures" / "rician_0.09_worst.png").write_bytes(b"png")
    case = gen.worst_real_case(real, "net")
    assert (case["level"], case["image"], case["scan"]) == ("0.09", 0, "a.nii slice 3")
    assert case["gap"] == pytest.approx(-1.5) and case["noisy"] == 21.0
    assert case["figure"] == real / "figures" / "rician_0.09_worst.png"
    text = "\n".join(gen._worst_case_lines(case))
    assert "a.nii slice 3 at level 0.09, foreground PSNR 26.50 dB against bm3d 28.00 (-1.50 dB)" in text
    assert f"]({gen.WORST_PNG})" in text


def test_real_scan_verdicts_follow_the_issue_targets():
    """Per level: PSNR against the reference (≥ 0 dB for Rician, +1 dB for salt and pepper), SSIM not
    lower, the smallest gain over the noisy input on any image, the speed against BM3D."""
    gen = _generator()
    summary = [
        {"level": "0.05", "method": m, "psnr_fg_mean": p, "ssim_fg_mean": q, "seconds_mean": t}
        for m, p, q, t in (("noisy", 26.0, 0.7, 0.0), ("bm3d", 30.0, 0.85, 1.0), ("net", 30.2, 0.86, 0.05))
    ]
    per_image = [
        {"level": "0.05", "image": i, "method": m, "psnr_fg": p}
        for i, ps in enumerate(((26.0, 30.5), (26.5, 29.9)))
        for m, p in zip(("noisy", "net"), ps)
    ]
    results = {"reference": "bm3d", "summary": summary, "per_image": per_image}
    (line,) = gen._real_verdicts("hmadnet_mri_rician", results, "net")
    assert "(+0.20 dB, target ≥ +0 dB: reached)" in line and "(not lower: reached)" in line
    assert "above the noisy input on every image by at least 3.40 dB (reached)" in line
    assert "20× faster than bm3d (target 10×: reached)" in line
    (line,) = gen._real_verdicts("hmadnet_saltpepper", results, "net")
    assert "target ≥ +1 dB: NOT reached" in line


@pytest.mark.parametrize("name", BUNDLES)
def test_layout_and_configs_parse(name):
    from monai.bundle import ConfigParser

    root = ROOT / name
    for stem in CONFIGS:
        assert (root / "configs" / f"{stem}.json").is_file(), stem
    for extra in ("configs/logging.conf", "docs/README.md", "LICENSE", "models/model.safetensors"):
        assert (root / extra).is_file(), extra
    for stem in ("inference", "train", "evaluate"):
        parser = ConfigParser()
        parser.read_config(str(root / "configs" / f"{stem}.json"))
        parser["bundle_root"] = str(root)
        parser.parse()
        assert "run" in parser and "network_def" in parser
        net = parser.get_parsed_content("network_def")
        assert type(net).__module__.startswith("medden.nets")  # the package's net, no copied code
    docs = (root / "docs" / "README.md").read_text()
    assert "trained on" in docs.lower()  # what data
    baselines = json.loads((root / "configs" / "evaluate.json").read_text())["baselines"]
    for b in baselines:  # the side-by-side comparison with each baseline
        assert f"| {b} |" in docs, b


@pytest.mark.parametrize("name", BUNDLES)
def test_verify_metadata_net_in_out_and_checksum(name):
    import medden.bundle
    from medden.checkpoints import sha256_file

    medden.bundle.verify(ROOT / name)  # offline: vendored schema, no download
    weights = ROOT / name / "models" / "model.safetensors"
    assert sha256_file(weights) == _meta(name)["medden"]["weights_sha256"]
    assert weights.stat().st_size < 20 * 2**20


def test_checksum_mismatch_is_refused(tmp_path):
    import shutil

    import medden.bundle
    from medden.checkpoints import CheckpointError

    name = BUNDLES[0]
    copy = tmp_path / name
    shutil.copytree(ROOT / name, copy, ignore=shutil.ignore_patterns("eval"))
    weights = copy / "models" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(copy / "configs" / "inference.json"))
    parser["bundle_root"] = str(copy)
    with pytest.raises(CheckpointError, match="sha256"):
        medden.bundle.load_network(parser.get_parsed_content("network_def"), copy)


def _tiny_inputs(folder: Path, dims: int) -> None:
    """A small NIfTI volume and a small DICOM MR series with Rician noise."""
    import nibabel as nib

    from medden.data.samples import mni152_phantom
    from medden.io import write_synthetic_series
    from medden.noise import rician

    vol, affine = mni152_phantom(step=4)
    vol = rician(vol[5:37, 8:45, 14:24], 0.05, rng=0).astype(np.float32)
    folder.mkdir(parents=True)
    nib.save(nib.Nifti1Image(vol, affine), folder / "t1.nii.gz")
    write_synthetic_series(vol, affine, folder / "dicom" / "series")


MEDICAL = [n for n in BUNDLES if _meta(n)["network_data_format"]["inputs"]["image"]["modality"] == "MR"]
NATURAL = [n for n in BUNDLES if n not in MEDICAL]


def _by_default(names: list[str], *keep: str) -> list:
    """``names`` as parameters, those not in ``keep`` marked slow: a ``python -m monai.bundle run``
    subprocess costs 15-40 s on two CPU cores, so the default run takes each path once (``keep``) and
    ``make test-slow`` takes every bundle."""
    return [n if n in keep else pytest.param(n, marks=pytest.mark.slow) for n in names]


@pytest.mark.parametrize("name", _by_default(NATURAL, "gimsanet_color", "mirnet_lowlight"))
def test_inference_config_runs_on_a_users_image_folder(name, tmp_path):
    """PNG and JPEG photographs in, the same formats, bit depth and size out; brightness is kept (AWGN)
    or raised (low light), which needs the type's range, not the image's, as the [0, 1] scale."""
    from PIL import Image

    import medden.bundle

    task = json.loads((ROOT / name / "configs" / "inference.json").read_text())["task"]
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    noisy = [medden.bundle.sample_pair(task, index=i)[1][:, :96, :128] for i in range(2)]
    as8 = [
        np.rint(np.moveaxis(n, 0, -1).squeeze(-1 if n.shape[0] == 1 else None) * 255).astype(np.uint8)
        for n in noisy
    ]
    Image.fromarray(as8[0]).save(src / "a.png")
    Image.fromarray(as8[1]).save(src / "sub" / "b.jpg", quality=95)
    out = tmp_path / "out"
    proc = _monai_run(
        "--config_file",
        str(ROOT / name / "configs" / "inference.json"),
        "--bundle_root",
        str(ROOT / name),
        "--dataset_dir",
        str(src),
        "--output_dir",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rel, fmt, arr in (("a.png", "PNG", as8[0]), ("sub/b.jpg", "JPEG", as8[1])):
        img = Image.open(out / rel)
        got = np.asarray(img)
        assert img.format == fmt and got.dtype == np.uint8 and got.shape == arr.shape, rel
        if task == "lowlight":
            assert got.mean() > arr.mean() + 20, rel
        else:
            assert abs(got.mean() - arr.mean()) < 6, rel


@pytest.mark.parametrize("name", _by_default(MEDICAL, "hmadnet_mri_rician", "hmadnet_mri_rician_3d"))
def test_inference_config_runs_on_a_users_folder(name, tmp_path):
    _tiny_inputs(tmp_path / "in", 2)
    out = tmp_path / "out"
    cfg = ROOT / name / "configs" / "inference.json"
    proc = _monai_run(
        "--config_file", str(cfg), "--bundle_root", str(ROOT / name), "--dataset_dir", str(tmp_path / "in"),
        "--output_dir", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    done = {r["kind"] for r in records if r["status"] == "done"}
    assert done == {"nifti", "dicom"}, records
    import medden.io as mio

    assert mio.load(out / "t1.nii.gz").shape == mio.load(tmp_path / "in" / "t1.nii.gz").shape
    derived = next(Path(r["output"]) for r in records if r["status"] == "done" and r["kind"] == "dicom")
    assert mio.load(derived).shape == mio.load(tmp_path / "in" / "dicom" / "series").shape


@pytest.mark.parametrize("name", _by_default(BUNDLES, "dran_mri", "hmadnet_saltpepper", "dncnn_gray"))
def test_inference_config_runs_on_its_own_sample_data(name, tmp_path):
    """No dataset: the bundle makes its sample input (deterministic, nothing downloaded)."""
    out = tmp_path / "out"
    proc = _monai_run(
        "--config_file", str(ROOT / name / "configs" / "inference.json"), "--bundle_root", str(ROOT / name),
        "--output_dir", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert records and all(r["status"] == "done" for r in records), records


@pytest.mark.parametrize("name", _by_default(BUNDLES, "hmadnet_mri_rician_3d", "mirnet_lowlight"))
def test_train_config_runs_two_iterations(name, tmp_path):
    cfg = ROOT / name / "configs" / "train.json"
    meta = json.loads((ROOT / name / "configs" / "train.json").read_text())
    small = 32 if meta["train_config"].get("spatial_dims", 2) == 3 else 48
    proc = _monai_run(
        "--config_file",
        str(cfg),
        "--bundle_root",
        str(ROOT / name),
        "--output_dir",
        str(tmp_path / "train"),
        "--train_config#max_iterations",
        "2",
        "--train_config#val_interval",
        "1",
        "--train_config#patch_size",
        str(small),
        "--train_config#batch_size",
        "2",
        "--train_config#max_val_images",
        "1",
        "--train_config#progress",
        "False",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "train" / "best.safetensors").is_file()
    assert (ROOT / name / "models" / "model.safetensors").is_file()  # not replaced without install=True


@pytest.mark.parametrize("name", BUNDLES)
def test_shipped_weights_beat_the_noisy_sample(name):
    """A real check of the shipped weights on the bundle's own (held-out, generated) sample."""
    from monai.bundle import ConfigParser

    import medden.bundle
    from medden.metrics import psnr
    from medden.workflows.predict import Options, layout_of, predict

    root = ROOT / name
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser["bundle_root"] = str(root)
    model = medden.bundle.load_network(parser.get_parsed_content("network_def"), root)
    task = parser.get_parsed_content("task")
    clean, noisy = medden.bundle.sample_pair(task, index=0)
    layout = "volume" if task.startswith("mri_") else "image"
    mode = parser.get_parsed_content("mode")
    crop = (slice(None), slice(None), slice(30, 46)) if layout == "volume" else (slice(None),)
    out, _ = predict(
        model,
        noisy[crop],
        layout_of("nifti" if layout == "volume" else "image", noisy),
        Options(mode=mode, roi_size=32),
        modality="MR" if layout == "volume" else None,
    )
    rng = float(clean.max() - clean.min())
    assert psnr(clean[crop], out, data_range=rng) > psnr(clean[crop], noisy[crop], data_range=rng) + 1.0


def test_saltpepper_bundle_changes_only_impulses_and_beats_the_switching_median():
    """The shipped switching net, through the path users run: every pixel that is not an extreme value
    comes back bit-identical, and the slices are closer to the clean ones than the switching median's."""
    from monai.bundle import ConfigParser

    import medden.bundle
    from medden import baselines
    from medden.metrics import psnr
    from medden.workflows.predict import Options, layout_of, predict

    root = ROOT / "hmadnet_saltpepper"
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser["bundle_root"] = str(root)
    model = medden.bundle.load_network(parser.get_parsed_content("network_def"), root)
    clean, noisy = medden.bundle.sample_pair("mri_saltpepper", index=0)
    crop = (slice(None), slice(None), slice(30, 46))
    noisy, clean = noisy[crop], clean[crop]
    out, _ = predict(model, noisy, layout_of("nifti", noisy), Options(mode="2d"), modality="MR")
    kept = (noisy > noisy.min()) & (noisy < noisy.max())
    assert kept.mean() > 0.2
    assert np.array_equal(out[kept], noisy[kept])
    switching = baselines.get("switching_median")
    sm = np.stack([switching(noisy[None, :, :, k])[0] for k in range(noisy.shape[2])], axis=-1)
    rng = float(clean.max() - clean.min())
    assert psnr(clean, out, data_range=rng) > psnr(clean, sm, data_range=rng)


@pytest.mark.parametrize("name", BUNDLES)
def test_denoise_command_with_bundle_and_model_name_use_the_same_weights(name, tmp_path):
    from medden.cli import main
    from medden.data.samples import natural_image

    meta = json.loads((ROOT / name / "configs" / "inference.json").read_text())
    src = tmp_path / "in"
    src.mkdir()
    if meta["mode"] == "3d":
        import nibabel as nib

        nib.save(
            nib.Nifti1Image(np.random.default_rng(0).random((24, 20, 18), dtype=np.float32), np.eye(4)),
            src / "v.nii.gz",
        )
        name_out = "v.nii.gz"
    else:
        from PIL import Image

        channels = json.loads((ROOT / name / "configs" / "metadata.json").read_text())
        c = channels["network_data_format"]["inputs"]["image"]["num_channels"]
        img = natural_image("camera" if c == 1 else "astronaut", gray=c == 1)[:, ::8, ::8]
        arr = (np.moveaxis(img, 0, -1) if c == 3 else img[0]) * 255
        Image.fromarray(arr.astype(np.uint8)).save(src / "x.png")
        name_out = "x.png"
    assert main(["denoise", str(src), str(tmp_path / "a"), "--bundle", str(ROOT / name), "--quiet"]) == 0
    assert main(["denoise", str(src), str(tmp_path / "b"), "--model", name, "--quiet"]) == 0
    prov = [json.loads((tmp_path / d / f"{name_out}.provenance.json").read_text()) for d in ("a", "b")]
    assert prov[0]["weights_sha256"] == prov[1]["weights_sha256"] == _meta(name)["medden"]["weights_sha256"]
    assert (tmp_path / "a" / name_out).read_bytes() == (tmp_path / "b" / name_out).read_bytes()


@pytest.mark.slow  # two torchrun processes with gloo: about 45 s
def test_multi_gpu_train_config_runs_under_torchrun(tmp_path):
    """``multi_gpu_train.json`` on top of ``train.json``: two gloo processes on the CPU, as the docs show."""
    import shutil

    name = "dncnn_gray" if "dncnn_gray" in BUNDLES else BUNDLES[0]
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun, "torchrun is installed with torch"
    configs = [str(ROOT / name / "configs" / f"{stem}.json") for stem in ("train", "multi_gpu_train")]
    overrides = {"max_iterations": 2, "val_interval": 2, "patch_size": 32, "batch_size": 2}
    overrides |= {"max_val_images": 1, "progress": False, "audit_data": True}
    args = [arg for k, v in overrides.items() for arg in (f"--train_config#{k}", str(v))]
    out = tmp_path / "train_multi"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "monai.bundle", "run", "--config_file",
         json.dumps(configs), "--bundle_root", str(ROOT / name), "--output_dir", str(out), *args],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    audits = [json.loads((out / "audit" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [a["world"] for a in audits] == [2, 2] and audits[0]["indices"] != audits[1]["indices"]
    assert (out / "best.safetensors").is_file()
