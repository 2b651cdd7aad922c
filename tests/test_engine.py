"""The training engine: loss goes down, best checkpoint, resume, reproducibility, DDP, self-supervised."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medden.checkpoints import load_net, read_metadata, sha256_file
from medden.engine import TrainConfig, evaluate_items, train

# a small registered net keeps these tests in seconds on 2 CPU cores
NET = "dncnn"
NET_KWARGS = {"depth": 4, "features": 8}


def _cfg(tmp_path: Path, name: str, **kw) -> TrainConfig:
    settings = {
        "net": NET,
        "net_kwargs": dict(NET_KWARGS),
        "out_dir": str(tmp_path / name),
        "max_iterations": 12,
        "val_interval": 4,
        "log_interval": 2,
        "batch_size": 4,
        "patch_size": 24,
        "lr": 2e-3,
        "max_val_images": 2,
        "progress": False,
    }
    settings.update(kw)
    return TrainConfig(**settings)


def test_overfit_lowers_the_loss(tmp_path):
    res = train(_cfg(tmp_path, "overfit", overfit=2, max_iterations=40, val_interval=20, loss="mse"))
    losses = [h["loss"] for h in res.history if "loss" in h]
    assert len(losses) == 20
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:2])
    assert res.iterations == 40


def test_best_checkpoint_keeps_best_validation_ssim(tmp_path):
    res = train(_cfg(tmp_path, "best", max_iterations=16, val_interval=4))
    vals = [h for h in res.history if "val_ssim" in h]
    assert len(vals) == 4
    best = max(vals, key=lambda h: h["val_ssim"])
    assert res.best_ssim == pytest.approx(best["val_ssim"]) and res.best_iteration == best["iteration"]
    meta = json.loads((tmp_path / "best" / "best.json").read_text())
    assert meta["sha256"] == sha256_file(tmp_path / "best" / "best.safetensors") == res.best_sha256
    # the saved weights reproduce the recorded validation SSIM
    from medden.engine import build_data

    _, _, val_items = build_data(_cfg(tmp_path, "best"))
    net = load_net(res.best_path)
    assert evaluate_items(net, val_items, torch.device("cpu"), False)["ssim"] == pytest.approx(
        res.best_ssim, abs=1e-6
    )
    assert read_metadata(res.best_path)["net"] == NET
    log = [json.loads(line) for line in (tmp_path / "best" / "metrics.jsonl").read_text().splitlines()]
    assert any("val_psnr" in r for r in log) and any("loss" in r for r in log)


def test_resume_continues_from_saved_iteration(tmp_path):
    first = train(_cfg(tmp_path, "a", max_iterations=8, val_interval=4))
    state = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    assert state["iteration"] == 8
    resumed = train(
        _cfg(tmp_path, "b", max_iterations=16, val_interval=4, resume=str(tmp_path / "a" / "last.pt"))
    )
    its = [h["iteration"] for h in resumed.history]
    assert min(its) > 8 and resumed.iterations == 16
    # the optimiser and the scheduler went on from their saved state, not from scratch
    after = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    steps = {float(v["step"]) for v in after["optimizer"]["state"].values()}
    assert steps == {16.0}, steps
    # ReduceLROnPlateau steps once per validation: twice in each half of the run
    assert state["scheduler"]["last_epoch"] == 2 and after["scheduler"]["last_epoch"] == 4
    assert first.best_ssim is not None and resumed.best_ssim >= first.best_ssim
    with pytest.raises(Exception, match="already at iteration"):
        train(_cfg(tmp_path, "c", max_iterations=8, resume=str(tmp_path / "a" / "last.pt")))


def test_same_seed_same_weights(tmp_path):
    a = train(_cfg(tmp_path, "s1", max_iterations=6, val_interval=6))
    b = train(_cfg(tmp_path, "s2", max_iterations=6, val_interval=6))
    c = train(_cfg(tmp_path, "s3", max_iterations=6, val_interval=6, seed=1))
    assert a.best_sha256 == b.best_sha256
    assert a.best_sha256 != c.best_sha256


def test_schedulers_and_early_stopping(tmp_path):
    res = train(_cfg(tmp_path, "cos", scheduler="cosine", max_iterations=8, val_interval=4, log_interval=1))
    lrs = [h["lr"] for h in res.history if "lr" in h]
    assert lrs[-1] < lrs[0]
    # a learning rate far too small gives no improvement, and early stopping ends the run
    stop = train(_cfg(tmp_path, "stop", lr=1e-12, early_stopping=1, max_iterations=40, val_interval=2))
    assert stop.stopped_early and stop.iterations < 40


def test_finetune_from_weights_and_3d(tmp_path):
    base = train(_cfg(tmp_path, "base", max_iterations=4, val_interval=4))
    tuned = train(_cfg(tmp_path, "tuned", max_iterations=4, val_interval=4, init_weights=base.best_path))
    assert tuned.best_path and tuned.best_sha256 != base.best_sha256
    res3d = train(
        _cfg(tmp_path, "vol", spatial_dims=3, patch_size=12, batch_size=2, max_iterations=2, val_interval=2)
    )
    assert read_metadata(res3d.best_path)["net_kwargs"]["spatial_dims"] == 3


def test_self_supervised_finetune_needs_no_clean_data(tmp_path):
    from PIL import Image

    from medden.data.samples import natural_image
    from medden.noise import gaussian

    noisy_dir = tmp_path / "noisy_only"
    noisy_dir.mkdir()
    for name in ("moon", "brick", "clock"):
        img = gaussian(natural_image(name)[0][:96, :96], sigma=0.08, clip=(0, 1), rng=0)
        Image.fromarray((img * 255).round().astype(np.uint8)).save(noisy_dir / f"{name}.png")
    base = train(
        _cfg(tmp_path, "base", data="skimage-gray", noise="gaussian", max_iterations=4, val_interval=4)
    )
    from medden.cli import main

    out = tmp_path / "ssl"
    code = main(
        ["finetune", base.best_path, "--data", str(noisy_dir), "--out", str(out), "--iterations", "4",
         "--val-interval", "2", "--batch-size", "2", "--patch-size", "32", "--quiet"]
    )  # fmt: skip
    assert code == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["self_supervised"] == "neighbor2neighbor" and cfg["noise"] is None
    assert (out / "best.safetensors").is_file()
    for method in ("noise2self",):
        res = train(_cfg(tmp_path, method, self_supervised=method, noise="rician", max_iterations=4))
        assert res.best_ssim is not None  # MNI data have clean references for validation


def test_tracking_writes_tensorboard_and_mlflow(tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    train(_cfg(tmp_path, "track", max_iterations=4, val_interval=2, tracking=("tensorboard", "mlflow")))
    assert any((tmp_path / "track" / "tb").glob("events.out.tfevents.*"))
    assert any((tmp_path / "track" / "mlruns").rglob("val_ssim*"))


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"net": "no_such_net"}, "unknown net"),
        ({"noise": "speckle"}, "unknown noise"),
        ({"data": "/no/such/folder"}, "neither"),
        ({"loss": "ssim3"}, "unknown loss"),
        ({"patch_size": 4}, "patch_size"),
        ({"resume": "/no/last.pt"}, "file not found"),
        ({"val_metric": "dice"}, "unknown val_metric"),
        ({"noise": "salt_pepper", "target_noise": 0.02}, "target_noise"),
        ({"target_noise": -0.1}, "target_noise"),
        ({"level_weighted": True}, "level_weighted"),  # the default hybrid loss holds SSIM
        ({"level_weighted": True, "loss": "l1", "noise": None}, "level_weighted"),
    ],
)
def test_bad_configuration_is_a_usage_error(tmp_path, kw, message):
    from medden.errors import UsageError

    with pytest.raises(UsageError, match=message):
        train(_cfg(tmp_path, "bad", **kw))


def test_train_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "medden", "train", "--net", NET, "--net-kwargs", json.dumps(NET_KWARGS),
         "--out", str(out), "--iterations", "4", "--val-interval", "2", "--batch-size", "2",
         "--patch-size", "16", "--noise", "salt_pepper", "--levels", "0.1,0.3", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["iterations"] == 4 and Path(summary["weights"]).is_file()
    from medden.cli import main

    assert main(["train", "--net", "nope", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown net" in err and "Traceback" not in err


@pytest.mark.slow  # two torchrun processes with gloo: about 40 s
def test_two_process_gloo_run_sees_different_data(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun, "torchrun is installed with torch"
    out = tmp_path / "ddp"
    code = (
        "import json, sys\n"
        "from medden.engine import TrainConfig, train\n"
        f"cfg = TrainConfig(net={NET!r}, net_kwargs={NET_KWARGS!r}, out_dir={str(out)!r}, max_iterations=6,\n"
        "    val_interval=3, batch_size=4, patch_size=16, max_val_images=1, progress=False,\n"
        "    audit_data=True)\n"
        "train(cfg)\n"
    )
    script = tmp_path / "ddp_train.py"
    script.write_text(code)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", str(script)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    audits = [json.loads((out / "audit" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(a["world"] == 2 for a in audits)
    seen0, seen1 = audits[0]["indices"], audits[1]["indices"]
    assert len(seen0) == len(seen1) == 6 * 2  # 6 iterations × (batch 4 / 2 processes)
    assert seen0 != seen1
    assert (out / "best.safetensors").is_file() and (out / "last.pt").is_file()
    # only rank 0 writes the log: one record per logged event, not two
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len([r for r in log if "val_ssim" in r]) == 2


def test_self_supervised_finetuning_keeps_batchnorm_statistics(tmp_path):
    """Sub-sampled inputs must not overwrite the running statistics the net is later used with."""
    from medden.checkpoints import load_state_dict

    kw = {"net": "dncnn", "net_kwargs": {"features": 8, "depth": 4}, "max_iterations": 2, "val_interval": 2}
    base = train(_cfg(tmp_path, "base", **kw))
    ssl = {**kw, "init_weights": base.best_path, "self_supervised": "neighbor2neighbor", "lr": 1e-3}
    kept = train(_cfg(tmp_path, "kept", **ssl))
    moved = train(_cfg(tmp_path, "moved", **ssl, freeze_norm_stats=False))
    before, after, updated = (load_state_dict(r.best_path) for r in (base, kept, moved))
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    weights = [k for k in before if k.endswith("weight")]
    assert stats and all(np.array_equal(before[k], after[k]) for k in stats)
    assert any(not np.array_equal(before[k], after[k]) for k in weights)  # the rest did train
    assert any(not np.array_equal(before[k], updated[k]) for k in stats)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    """last.pt holds the random states and the epoch position too: stopping and resuming changes nothing."""
    kw = {"val_interval": 4, "log_interval": 3}
    whole = train(_cfg(tmp_path, "whole", max_iterations=12, **kw))
    train(_cfg(tmp_path, "half", max_iterations=8, **kw))
    rest = train(_cfg(tmp_path, "rest", max_iterations=12, resume=str(tmp_path / "half" / "last.pt"), **kw))
    a, b = (torch.load(tmp_path / name / "last.pt", weights_only=True) for name in ("whole", "rest"))
    assert a["iteration"] == b["iteration"] == 12
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert rest.history == [h for h in whole.history if h["iteration"] > 8]  # losses, lr, validation
    assert (rest.best_iteration, rest.best_ssim) == (whole.best_iteration, whole.best_ssim)


def test_a_run_ending_off_the_interval_is_validated_at_its_end(tmp_path):
    res = train(_cfg(tmp_path, "end", max_iterations=6, val_interval=4))
    assert [h["iteration"] for h in res.history if "val_ssim" in h] == [4, 6]
    assert torch.load(tmp_path / "end" / "last.pt", weights_only=True)["iteration"] == 6


def test_train_refuses_realscans_for_training(tmp_path):
    from medden.errors import UsageError

    out = tmp_path / "refused"
    proc = subprocess.run(
        [sys.executable, "-m", "medden", "train", "--net", NET, "--data", "realscans", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "medden train: error: realscans are for validation and testing only, never training"
    ]
    assert not out.exists()
    with pytest.raises(UsageError, match="never training"):
        train(_cfg(tmp_path, "mix", data="synthmr+realscans"))
    with pytest.raises(UsageError, match="neither"):
        train(_cfg(tmp_path, "val", val_data="no-such-source"))


def test_validation_on_realscans(tmp_path):
    """--val-data realscans: trained on other data, validated (and selected) on the real scans."""
    from medden.cli import main
    from medden.data.sources import realscans
    from medden.engine import build_data

    cfg = _cfg(tmp_path, "rs", data="synthmr+mni152", val_data="realscans", max_val_images=4)
    _, _, val_items = build_data(cfg)
    scans = realscans("val")
    assert len(val_items) == 4 * 3  # four images at three levels
    for k, item in enumerate(val_items):
        assert np.array_equal(item["target"], scans[k // 3]) and item["source"] == scans.labels[k // 3]
    assert {item["source"].split(" ")[0] for item in val_items} == {
        "nibabel/anatomical.nii", "nibabel/example4d.nii.gz", "pydicom/MR_small.dcm", "pydicom/CT_small.dcm"
    }  # fmt: skip
    out = tmp_path / "cli"
    code = main(
        ["train", "--net", NET, "--net-kwargs", json.dumps(NET_KWARGS), "--data", "synthmr+mni152",
         "--val-data", "realscans", "--out", str(out), "--iterations", "2", "--val-interval", "2",
         "--batch-size", "2", "--patch-size", "24", "--quiet"]
    )  # fmt: skip
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["val_data"] == "realscans" and config["data"] == "synthmr+mni152"
    best = json.loads((out / "best.json").read_text())
    items = build_data(TrainConfig(**config))[2]  # the default cap of 8 images
    assert {item["source"] for item in items} <= set(scans.labels) and len(items) == 8 * 3
    assert evaluate_items(load_net(out / "best.safetensors"), items, torch.device("cpu"), False)[
        "ssim"
    ] == pytest.approx(best["ssim"], abs=1e-6)


def test_selection_on_foreground_psnr(tmp_path):
    """val_metric psnr_fg: every score is logged, the kept weights are those of the best foreground
    PSNR (which need not be the iteration of the best whole-image SSIM), and reproduce it."""
    from medden.engine import build_data

    cfg = _cfg(tmp_path, "fg", max_iterations=16, val_interval=4, val_metric="psnr_fg", target_noise=0.03)
    res = train(cfg)
    vals = [h for h in res.history if "val_ssim" in h]
    assert len(vals) == 4 and all({"val_psnr", "val_ssim_fg", "val_psnr_fg"} <= set(h) for h in vals)
    best = max(vals, key=lambda h: h["val_psnr_fg"])
    assert res.best_iteration == best["iteration"] == vals[-1]["best_iteration"]
    assert res.best_val["psnr_fg"] == pytest.approx(best["val_psnr_fg"])
    assert res.best_ssim == pytest.approx(best["val_ssim"])  # the kept weights' whole-image SSIM
    meta = json.loads((tmp_path / "fg" / "best.json").read_text())
    assert meta["selected_on"] == "psnr_fg" and meta["iteration"] == best["iteration"]
    _, _, val_items = build_data(cfg)
    scores = evaluate_items(load_net(res.best_path), val_items, torch.device("cpu"), False)
    assert scores["psnr_fg"] == pytest.approx(best["val_psnr_fg"], abs=1e-6)
    # the foreground scores leave the air out: on MNI152 slices (mostly air) they differ from the whole
    assert scores["psnr_fg"] != pytest.approx(scores["psnr"], abs=1e-3)


def test_foreground_score_leaves_out_images_with_no_foreground():
    from medden.engine.steps import ItemScore
    from medden.metrics import psnr

    score = ItemScore(psnr, foreground=True)
    clean = torch.zeros(2, 1, 16, 16)
    clean[0, 0, 4:12, 4:12] = 0.5  # the second image is empty
    pred = clean + 0.1
    score.reset()
    score.update((pred, clean))
    # the first image only: an error of 0.1 inside its square (float32)
    assert score.compute() == pytest.approx(20.0, abs=1e-4)
    score.reset()
    score.update((pred[1:], clean[1:]))
    assert np.isnan(score.compute())


def test_level_weighted_loss_counts_errors_in_units_of_the_noise(tmp_path):
    """level_weighted: the trainer's loss is each item's L1 error divided by its level (at least
    LEVEL_FLOOR), for blind and noise-aware nets; the validation path is left unscaled."""
    from medden.engine.steps import LEVEL_FLOOR, NetCall, PrepareBatch
    from medden.losses import get_loss

    x = torch.rand(3, 1, 8, 8)
    y = torch.rand(3, 1, 8, 8)
    sigma = torch.tensor([0.002, 0.05, 0.1])
    batch = {"image": x, "target": y, "sigma": sigma}
    scale = sigma.clamp_min(LEVEL_FLOOR)
    expected = torch.stack([(x[i] - y[i]).abs().mean() / scale[i] for i in range(3)]).mean()
    for aware in (False, True):
        seen = {}

        def net(t, *args, aware=aware, seen=seen):
            seen["args"] = args
            return t  # the prediction is the input, so the error is x - y

        inputs, target, args, kwargs = PrepareBatch(aware, level_weighted=True)(batch)
        pred = NetCall()(inputs, net, *args, **kwargs)
        assert len(seen["args"]) == int(aware)  # sigma reaches a noise-aware net only
        assert float(get_loss("l1")(pred, target)) == pytest.approx(float(expected), rel=1e-5)
    inputs, target, args, _ = PrepareBatch(True)(batch)  # unweighted: as before
    assert torch.equal(target, y) and torch.equal(args[0], sigma)
    from medden.errors import UsageError

    with pytest.raises(UsageError, match="noise level"):
        PrepareBatch(False, level_weighted=True)({"image": x, "target": y})
    small_aware = {"features": 8, "num_blocks": 1, "noise_level_input": True}
    res = train(
        _cfg(tmp_path, "lw", net="dran", net_kwargs=small_aware, loss="l1", level_weighted=True,
             max_iterations=4, val_interval=4)
    )  # fmt: skip
    assert res.best_val["psnr"] > 0 and all(np.isfinite(h["loss"]) for h in res.history if "loss" in h)


@pytest.mark.slow  # inductor compiles the net: about a minute on 2 CPU cores
def test_compiled_training_follows_eager_training(tmp_path):
    """compile: the trainer runs torch.compile's net; the losses follow the eager run's and the saved
    weights are the plain net's (loadable without torch.compile)."""
    eager = train(_cfg(tmp_path, "eager", max_iterations=4, val_interval=4, loss="mse"))
    compiled = train(_cfg(tmp_path, "compiled", max_iterations=4, val_interval=4, loss="mse", compile=True))
    losses = [[h["loss"] for h in r.history if "loss" in h] for r in (eager, compiled)]
    assert len(losses[0]) == len(losses[1]) == 2
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)
    state = load_net(compiled.best_path).state_dict()
    assert not any(k.startswith("_orig_mod") for k in state)
    assert compiled.best_val["psnr"] == pytest.approx(eager.best_val["psnr"], abs=0.01)


def test_2d_weights_start_a_3d_run_by_inflation(tmp_path):
    kw = {
        "net": "hmadnet-compact",
        "net_kwargs": {"features": [8, 16]},
        "max_iterations": 2,
        "val_interval": 2,
    }
    flat = train(_cfg(tmp_path, "flat", **kw))
    vol = train(
        _cfg(tmp_path, "vol", spatial_dims=3, patch_size=16, batch_size=2, init_weights=flat.best_path, **kw)
    )
    assert read_metadata(vol.best_path)["net_kwargs"]["spatial_dims"] == 3
    # adaptation inflates and adds σ channels only: 2D weights of another width still do not fit
    with pytest.raises(Exception, match="do not fit"):
        train(
            _cfg(
                tmp_path, "bad", spatial_dims=3, patch_size=16, batch_size=2, init_weights=flat.best_path,
                **{**kw, "net_kwargs": {"features": [4, 8]}},
            )
        )  # fmt: skip
