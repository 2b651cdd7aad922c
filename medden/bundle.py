"""What medden's MONAI bundles are made of: the pieces their configs name, and the work behind them.

A medden bundle (``bundles/<name>/``) follows the MONAI model-zoo layout: ``configs/metadata.json``,
``inference.json``, ``train.json``, ``evaluate.json``, ``multi_gpu_train.json``, ``logging.conf``,
``models/model.safetensors``, ``large_files.yml``, ``docs/README.md``, ``docs/data_license.txt`` and
``LICENSE``. The configs are standard MONAI workflows: ``bundle_root`` is ``"."`` and the caller overrides
it (``--bundle_root PATH``; nothing is guessed from the command line), and they are built from MONAI's
classes and these:

- ``inference.json``: ``dataset`` over :func:`datalist`, ``preprocessing`` :class:`LoadUnitd`,
  ``inferer`` :class:`DenoiseInferer`, ``postprocessing`` :class:`SaveUnitd`, ``handlers``
  :class:`UnitLog` and the ``evaluator`` :class:`DenoiseEvaluator`, ``medden denoise``'s batch as a MONAI
  ``SupervisedEvaluator`` (:mod:`medden.workflows.bundle_workflow`); the ``network`` is the bundle's
  checksummed weights (:func:`load_network`); with no ``dataset_dir``, :func:`sample_data`;
- ``train.json``: MONAI's ``SupervisedTrainer`` spelled out, on the data, net, optimiser, loss and
  handlers of ``medden train`` (:func:`training_run`, :func:`training_handler`, :func:`run_training`;
  ``install=True`` makes the result the bundle's weights: :func:`install_weights`), data-parallel
  under ``torchrun`` (:func:`init_distributed`);
- ``evaluate.json``: :func:`evaluate`, ``medden evaluate`` of the bundle's weights against the classical
  baselines, which records :func:`eval_metrics` in ``metadata.json``.

The weights' sha256 is recorded in ``metadata.json`` under ``medden.weights_sha256`` and checked at
every load. :func:`inference` is ``medden denoise --bundle`` from Python.
"""

from __future__ import annotations

import json
import math
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
from medden.engine.handlers import TrainEvents
from medden.engine.trainer import TrainingRun, build_run, run_trainer
from medden.errors import UsageError
from medden.io import write_synthetic_series
from medden.io.atomic import atomic_path
from medden.io.images import save_image
from medden.noise import gaussian, lowlight, rician, salt_pepper
from medden.workflows.bundle_workflow import (
    DenoiseEvaluator,
    DenoiseInferer,
    LoadUnitd,
    SaveUnitd,
    UnitLog,
    datalist,
)
from medden.workflows.denoise import Options, run_batch
from medden.workflows.evaluate import EvalConfig
from medden.workflows.evaluate import evaluate as run_evaluation

#: sample data of each bundle task: what :func:`sample_data` writes
TASKS = ("mri_rician", "mri_saltpepper", "mri_gaussian", "gray", "color", "lowlight")


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


def bundle_network(network_def: Any, bundle_root: str | os.PathLike[str], device: Any = "cpu") -> Any:
    """``inference.json``'s ``network``: :func:`load_network` of the bundle's checksummed weights into
    ``network_def``, with ``bundle_root`` resolved first, so ``"."`` (the default) names the model after
    the bundle's folder, as ``medden denoise --bundle`` does."""
    return load_network(network_def, Path(bundle_root).resolve(), device)


def init_distributed(device: Any = "cpu") -> bool:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE`` > 1), as ``medden train``
    does (gloo on the CPU, NCCL on a GPU): ``train.json``'s ``initialize``. True when this call made it."""
    import ignite.distributed as idist  # defers torch
    import torch

    global _DISTRIBUTED
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and idist.get_world_size() == 1:
        idist.initialize("nccl" if torch.cuda.is_available() and str(device) != "cpu" else "gloo")
        _DISTRIBUTED = True
    return _DISTRIBUTED


def finalize_distributed() -> None:
    """Leave the process group :func:`init_distributed` made (``train.json``'s ``finalize``)."""
    import ignite.distributed as idist  # defers torch

    global _DISTRIBUTED
    if _DISTRIBUTED:
        idist.finalize()
        _DISTRIBUTED = False


_DISTRIBUTED = False


def training_run(
    train_config: dict[str, Any], out_dir: str | os.PathLike[str], data: str, device: Any = "cpu"
) -> TrainingRun:
    """The pieces of a training run (:func:`medden.engine.trainer.build_run`) of the bundle's
    ``train_config`` (:class:`medden.engine.TrainConfig` fields), on ``data`` (``dataset_dir``: an
    offline source such as ``mni152+skimage-gray``, or a folder), writing under ``out_dir``."""
    cfg = TrainConfig(**{**train_config, "out_dir": str(out_dir), "data": str(data), "device": str(device)})
    return build_run(cfg)


#: the trainer handlers of ``medden train`` (:func:`medden.engine.trainer.build_run`), in attach order
TRAIN_HANDLERS = (
    "sampler_epoch",
    "lr_schedule",
    "loss_log",
    "validation",
    "best_weights",
    "validation_log",
    "resume_state",
    "progress",
    "data_audit",
)


class _NoHandler:
    """A handler the run's configuration does not ask for (no cosine schedule, no progress bar...)."""

    def attach(self, engine: Any) -> None:
        pass


def training_handler(run: TrainingRun, name: str) -> Any:
    """The trainer handler ``name`` (one of :data:`TRAIN_HANDLERS`) of ``run``, or one that does nothing
    when the run's configuration does not ask for it (``progress`` false, no ``audit_data``...)."""
    if name not in TRAIN_HANDLERS:
        raise UsageError(f"unknown training handler {name!r}; known: {', '.join(TRAIN_HANDLERS)}")
    return run.handlers.get(name, _NoHandler())


def epochs(run: TrainingRun) -> int:
    """``max_epochs`` of the trainer: enough epochs for ``max_iterations`` (which ends the run)."""
    return math.ceil(run.cfg.max_iterations / len(run.loader))


def run_training(
    trainer: Any, run: TrainingRun, bundle_root: str | os.PathLike[str], install: bool = False
) -> dict[str, Any]:
    """Run ``trainer`` (``train.json``'s ``train#trainer``, built from ``run``) to ``max_iterations``;
    with ``install`` the best weights become the bundle's (:func:`install_weights`, rank 0 only).
    Prints and returns the summary."""
    result = run_trainer(run, trainer)
    summary = {
        "weights": str(result.best_path),
        "best_val_ssim": result.best_ssim,
        "iterations": result.iterations,
    }
    if install and run.rank == 0:
        summary["installed"] = install_weights(bundle_root, result.best_path, training=run.cfg.to_json())
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
    if out.resolve() == (root / "eval" / "evaluate").resolve():  # the bundle's own evaluation
        summary["eval_metrics"] = record_eval_metrics(root, json.loads((out / "results.json").read_text()))
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


#: what an evaluation without ``ssim_window`` in its results used (before the Gaussian window)
LEGACY_SSIM_WINDOW = "uniform-7 (scikit-image's default, before medden reported the 11x11 Gaussian window)"


def eval_metrics(results: dict[str, Any], label: str) -> dict[str, Any]:
    """``metadata.json``'s ``eval_metrics`` from an evaluation's ``results.json``: for the method
    ``label`` (the bundle) at each level, mean PSNR/SSIM (and over the foreground where measured) with
    the reference method's alongside; the data, noise, SSIM window and date of the evaluation."""
    cfg, reference = results["config"], results.get("reference")
    rows = {(r["method"], str(r["level"])): r for r in results["summary"]}
    metrics: dict[str, Any] = {
        "source": f"eval/evaluate/results.json of {results['date'][:10]} (configs/evaluate.json)",
        "data": f"{cfg['data']} ({cfg.get('split', 'test')} split), {cfg['noise']} noise",
        "ssim_window": results.get("ssim_window", LEGACY_SSIM_WINDOW),
        "reference": reference,
    }
    for (method, level), row in rows.items():
        if method != label:
            continue
        entry: dict[str, Any] = {}
        for key in ("psnr", "ssim", "psnr_fg", "ssim_fg"):
            value = row.get(f"{key}_mean")
            if isinstance(value, (int, float)) and math.isfinite(value):
                entry[key] = round(float(value), 4)
                ref = rows.get((reference, level), {}).get(f"{key}_mean")
                if isinstance(ref, (int, float)) and math.isfinite(ref):
                    entry[f"reference_{key}"] = round(float(ref), 4)
        metrics[f"level_{level}"] = entry
    return metrics


def record_eval_metrics(bundle_root: str | os.PathLike[str], results: dict[str, Any]) -> dict[str, Any]:
    """Write :func:`eval_metrics` of ``results`` (the bundle's own evaluation) into its
    ``metadata.json`` (atomically); return them."""
    root = Path(bundle_root)
    meta = read_metadata(root)
    meta["eval_metrics"] = eval_metrics(results, root.name)
    with atomic_path(root / "configs" / "metadata.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=4) + "\n")
    return meta["eval_metrics"]


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


__all__ = [
    "TASKS",
    "TRAIN_HANDLERS",
    "WEIGHTS",
    "DenoiseEvaluator",
    "DenoiseInferer",
    "LoadUnitd",
    "SaveUnitd",
    "TrainEvents",
    "UnitLog",
    "bundle_network",
    "datalist",
    "epochs",
    "eval_metrics",
    "evaluate",
    "finalize_distributed",
    "find_bundle",
    "inference",
    "init_distributed",
    "install_weights",
    "load_network",
    "record_eval_metrics",
    "run_training",
    "sample_data",
    "sample_pair",
    "training_handler",
    "training_run",
    "verify",
]
