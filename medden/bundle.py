"""What medden's MONAI bundles call: their configs stay declarative, the work is done here.

A medden bundle (``bundles/<name>/``) follows the MONAI model-zoo layout: ``configs/metadata.json``,
``inference.json``, ``train.json``, ``evaluate.json``, ``multi_gpu_train.json``, ``logging.conf``,
``models/model.safetensors``, ``docs/README.md`` and ``LICENSE``. Every config builds its network
from ``network_def`` (``medden.nets.get``: no copied code) and runs one expression of this module:

- :func:`inference` — load the checksummed weights and run the batch denoiser of ``medden denoise``
  (:func:`medden.workflows.denoise.run_batch`) on ``dataset_dir`` (a DICOM folder, NIfTI files or
  images), or on sample data made by :func:`sample_data` when none is given;
- :func:`train` — the engine of ``medden train`` (:func:`medden.engine.train`) with the bundle's
  settings; ``install=True`` makes the result the bundle's weights (:func:`install_weights`);
- :func:`evaluate` — ``medden evaluate`` of the bundle's weights against the classical baselines.

The weights' sha256 is recorded in ``metadata.json`` under ``medden.weights_sha256`` and checked at
every load.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from medden import checkpoints
from medden.bundle_format import SCHEMA, WEIGHTS, find_bundle, load_network, read_metadata
from medden.data import datasets
from medden.data.samples import mni152_phantom
from medden.engine import TrainConfig
from medden.engine import train as run_training
from medden.errors import UsageError
from medden.io import write_synthetic_series
from medden.io.atomic import atomic_path
from medden.io.images import save_image
from medden.noise import gaussian, lowlight, rician, salt_pepper
from medden.workflows.denoise import Options, run_batch
from medden.workflows.evaluate import EvalConfig
from medden.workflows.evaluate import evaluate as run_evaluation

#: sample data of each bundle task: what :func:`sample_data` writes
TASKS = ("mri_rician", "mri_saltpepper", "mri_gaussian", "gray", "color", "lowlight")


def locate(name: str) -> str:
    """The bundle's folder for its configs: the folder of the ``--config_file`` being run (``python -m
    monai.bundle run --config_file <bundle>/configs/x.json``), else :func:`find_bundle`. Override with
    ``--bundle_root PATH``."""
    import re

    argv = " ".join(sys.argv)
    match = re.search(r"--config_file[= ]+\[?['\"]?([^'\",\]\s]+)", argv)
    if match:
        cfg = Path(match.group(1)).resolve()
        if cfg.parent.name == "configs" and (cfg.parent / "metadata.json").is_file():
            return str(cfg.parent.parent)
    return str(find_bundle(name))


# ------------------------------------------------------------------------------------------------
# sample data
# ------------------------------------------------------------------------------------------------


def sample_data(bundle_root: str | os.PathLike[str], task: str, seed: int = 0) -> str:
    """Deterministic sample input for ``task`` under ``bundle_root/eval/sample_input`` (made once).

    ``mri_*``: the MNI152 template (nilearn's, 2 mm) as a DICOM MR series with Rician (5 %), salt and
    pepper (20 %) or Gaussian (5 %) noise, plus one axial slice as a 16-bit PNG (salt and pepper); ``gray``
    / ``color``: photographs from ``skimage.data`` held out of training, with AWGN σ = 25/255, as PNG;
    ``lowlight``: the same photographs darkened by the low-light model. Nothing is downloaded.
    """
    if task not in TASKS:
        raise UsageError(f"unknown sample task {task!r}; choose from {', '.join(TASKS)}")
    out = Path(bundle_root) / "eval" / "sample_input"
    marker = out / f".complete-{task}-{seed}"
    if marker.is_file():
        return str(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _write_sample(out, task, seed)
    marker.write_text("sample data written by medden.bundle.sample_data\n")
    return str(out)


def sample_pair(task: str, index: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The clean and noisy versions of sample ``index`` of ``task`` (deterministic).

    ``mri_*``: the 2 mm MNI152 phantom ``(X, Y, Z)`` in [0, 1000] (one sample); ``gray``/``color``/
    ``lowlight``: the held-out (``test`` split) photographs of ``skimage.data`` ``(C, H, W)`` in [0, 1].
    """
    if task not in TASKS:
        raise UsageError(f"unknown sample task {task!r}; choose from {', '.join(TASKS)}")
    if task.startswith("mri_"):
        clean, _ = mni152_phantom(step=2)
        noisy = {
            "mri_rician": lambda v: rician(v, 0.05, rng=seed),
            "mri_saltpepper": lambda v: salt_pepper(v, 0.2, rng=seed),
            "mri_gaussian": lambda v: np.clip(gaussian(v, 0.05, rng=seed), 0, None),
        }[task](clean)
        return clean, noisy.astype(np.float32)
    photos = datasets.natural_images("test", gray=task == "gray", max_side=256)
    clean = photos[index % len(photos)]
    if task == "lowlight":
        noisy = lowlight(clean, 0.15, rng=seed + index, reference=1.0)
    else:
        noisy = gaussian(clean, sigma=25 / 255, rng=seed + index, clip=(0.0, 1.0))
    return clean, np.clip(noisy, 0, 1).astype(np.float32)


def _write_sample(out: Path, task: str, seed: int) -> None:
    if task.startswith("mri_"):
        clean, noisy = sample_pair(task, seed=seed)
        _, affine = mni152_phantom(step=2)
        write_synthetic_series(noisy, affine, out / "series", series_description=f"MNI152 sample {task}")
        if task == "mri_saltpepper":
            z = clean.shape[2] // 2
            img = np.rint(np.rot90(noisy[:, :, z]) / clean.max() * 65535).astype(np.uint16)
            save_image(None, img[None], out / "slice.png")
        return
    for i in range(len(datasets.natural_images("test", gray=task == "gray", max_side=256))):
        _, noisy = sample_pair(task, index=i, seed=seed)
        save_image(None, np.rint(noisy * 255).astype(np.uint8), out / f"image{i:02d}.png")


# ------------------------------------------------------------------------------------------------
# inference, training, evaluation
# ------------------------------------------------------------------------------------------------


def inference(
    network: Any,
    bundle_root: str | os.PathLike[str],
    dataset_dir: str | os.PathLike[str] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    task: str = "mri_rician",
    mode: str | None = None,
    axis: int = -1,
    noise_level: str | float | None = "auto",
    roi_size: int = 64,
    overlap: float = 0.25,
    batch_size: int = 8,
    device: Any = "cpu",
    overwrite: bool = True,
    quiet: bool = False,
) -> dict[str, Any]:
    """Denoise ``dataset_dir`` (sample data when None) into ``output_dir`` (``eval/inference``).

    The input may be a DICOM folder (series written back as derived series), NIfTI files or images;
    outputs mirror it with a manifest and provenance, exactly as ``medden denoise --bundle``.
    """
    root = Path(bundle_root)
    model = load_network(network, root, device)
    src = Path(dataset_dir) if dataset_dir else Path(sample_data(root, task))
    out = Path(output_dir) if output_dir else root / "eval" / "inference"
    options = Options(
        mode=mode,
        axis=axis,
        noise_level=noise_level,
        batch_size=batch_size,
        roi_size=roi_size,
        overlap=overlap,
    )
    result = run_batch(src, out, model, options, overwrite=overwrite, quiet=quiet)
    summary = {
        "bundle": root.name,
        "input": str(src),
        "output": str(out),
        "done": result.done,
        "skipped": result.skipped,
        "failed": result.failed,
        "manifest": str(result.manifest),
    }
    print(json.dumps(summary))
    if result.failed:
        print(f"{result.failed} unit(s) failed; see {result.manifest}", file=sys.stderr)
    return summary


def train(
    bundle_root: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None = None,
    install: bool = False,
    **config: Any,
) -> dict[str, Any]:
    """Train with the bundle's settings (``config``: :class:`medden.engine.TrainConfig` fields).

    Writes under ``output_dir`` (default ``eval/train``); with ``install`` the best weights become
    the bundle's (:func:`install_weights`, rank 0 only).
    """
    root = Path(bundle_root)
    out = Path(output_dir) if output_dir else root / "eval" / "train"
    cfg = TrainConfig(out_dir=str(out), **config)
    result = run_training(cfg)
    summary = {
        "weights": str(result.best_path),
        "best_val_ssim": result.best_ssim,
        "iterations": result.iterations,
    }
    if install and int(os.environ.get("RANK", "0")) == 0:
        summary["installed"] = install_weights(root, result.best_path, training=cfg.to_json())
    print(json.dumps(summary, default=str))
    return summary


def install_weights(
    bundle_root: str | os.PathLike[str],
    weights: str | os.PathLike[str],
    training: dict[str, Any] | None = None,
) -> str:
    """Make ``weights`` the bundle's: copied to ``models/model.safetensors`` and the sha256 recorded in
    ``metadata.json`` (both written atomically). Returns the sha256."""
    root = Path(bundle_root)
    meta = read_metadata(root)
    digest = checkpoints.sha256_file(weights)
    (root / "models").mkdir(exist_ok=True)
    with atomic_path(root / WEIGHTS) as tmp:
        shutil.copyfile(weights, tmp)
    meta.setdefault("medden", {})["weights_sha256"] = digest
    if training is not None:
        meta["medden"]["training"] = {k: training[k] for k in sorted(training) if k != "out_dir"}
    with atomic_path(root / "configs" / "metadata.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=4) + "\n")
    return digest


def evaluate(
    bundle_root: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None = None,
    baselines: tuple[str, ...] = ("bm3d",),
    method_kwargs: dict[str, dict[str, Any]] | None = None,
    real: bool = False,
    **config: Any,
) -> dict[str, Any]:
    """PSNR/SSIM of the bundle's weights side by side with classical baselines (``medden evaluate``).

    ``config``: :class:`medden.workflows.evaluate.EvalConfig` fields (data, noise, levels, ...); the
    first baseline is the reference of the paired statistics. With ``real``, the same comparison is
    also run on the real scans that ship with the installed packages (the ``realscans`` source of
    :mod:`medden.data.sources`, every slice, or every volume thick enough in 3D; the scan as it is is the
    reference, so this is semi-synthetic), written to ``output_dir/real_scans``. Markdown tables are
    printed and written with the CSV, JSON and figures.
    """
    root = Path(bundle_root)
    load_network(None, root)  # the config and checksum are checked before any work
    out = Path(output_dir) if output_dir else root / "eval" / "evaluate"
    methods = ("noisy", *baselines, f"{root.name}={root}")
    common = {"methods": methods, "method_kwargs": method_kwargs or {}, "reference": baselines[0]}
    result = run_evaluation(EvalConfig(out_dir=str(out), **common, **config))
    print(result.markdown)
    summary = {"output": str(out), "summary": result.summary}
    if real:
        real_cfg = {
            **config,
            "data": "realscans",
            "split": "all",
            "max_images": None,
        }
        real_result = run_evaluation(EvalConfig(out_dir=str(out / "real_scans"), **common, **real_cfg))
        print(real_result.markdown)
        summary["real_scans"] = real_result.summary
    return summary


def verify(bundle_root: str | os.PathLike[str]) -> None:
    """Offline checks: ``verify_metadata`` against the vendored schema, ``verify_net_in_out`` on the
    inference config, and the weights' checksum."""
    from monai.bundle import verify_metadata, verify_net_in_out

    root = Path(bundle_root)
    verify_metadata(meta_file=str(root / "configs" / "metadata.json"), filepath=str(SCHEMA))
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(root / "configs" / "metadata.json"),
        config_file=str(root / "configs" / "inference.json"),
        device="cpu",
        n=4,
        bundle_root=str(root),
    )
    meta = read_metadata(root)
    checkpoints.verify_sha256(root / WEIGHTS, meta["medden"]["weights_sha256"])
