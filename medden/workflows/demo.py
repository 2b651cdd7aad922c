"""The demo of ``make demo``: every noise kind at two levels on an MRI slice and a natural image."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

import medden.io as mio
from medden.bundle_format import available_bundles
from medden.data.samples import mni152_slice, natural_image, write_noisy_mr_series
from medden.io.atomic import atomic_path
from medden.loading import load_model
from medden.metrics import foreground_mask, psnr, ssim
from medden.noise import estimate_noise, noise_model

#: (kind, label, keyword arguments) — two levels per kind.
DEMO_LEVELS: tuple[tuple[str, str, dict[str, float]], ...] = (
    ("rician", "Rician 3 %", {"level": 0.03}),
    ("rician", "Rician 9 %", {"level": 0.09}),
    ("salt_pepper", "salt & pepper 10 %", {"amount": 0.10}),
    ("salt_pepper", "salt & pepper 30 %", {"amount": 0.30}),
    ("gaussian", "Gaussian σ 15/255", {"sigma": 15 / 255}),
    ("gaussian", "Gaussian σ 50/255", {"sigma": 50 / 255}),
    ("poisson_gaussian", "Poisson peak 100", {"peak": 100.0}),
    ("poisson_gaussian", "Poisson peak 10", {"peak": 10.0}),
    ("lowlight", "low light gain 0.3", {"gain": 0.3}),
    ("lowlight", "low light gain 0.1", {"gain": 0.1}),
)


def _true_level(kind: str, kwargs: dict[str, float]) -> float | None:
    """The level an estimator should find (None for a kind without one)."""
    model = noise_model(kind)
    if model.estimator is None:
        return None
    if model.level_is_sigma and "sigma" in kwargs:
        return kwargs["sigma"]  # images are in [0, 1] with maximum 1, so σ is also the level
    return kwargs[model.level_argument]


def run_noise_demo(out_dir: str | os.PathLike[str], seed: int = 0) -> dict[str, Any]:
    """Write ``noise_demo.png`` and ``noise_demo.json`` under ``out_dir``; return the table.

    Each noise kind is applied at two levels to the middle axial MNI152 slice (nilearn's bundled
    template) and to ``skimage.data.camera``; where an estimator exists the estimated level is
    shown beside the true one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = {"MNI152 T1 (axial)": mni152_slice(axis=2), "camera (skimage)": natural_image("camera")}
    images = {name: img / img.max() for name, img in images.items()}  # levels are relative to 1.0
    rows: list[dict[str, Any]] = []
    fig, axes = plt.subplots(
        len(DEMO_LEVELS) // 2 + 1, 2 * len(images), figsize=(4 * len(images) * 1.6, 13), squeeze=False
    )
    for col, (name, img) in enumerate(images.items()):
        for k in range(2):
            ax = axes[0, 2 * col + k]
            ax.imshow(np.rot90(img[0]) if "MNI" in name else img[0], cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{name}\nclean", fontsize=8)
        for i, (kind, label, kwargs) in enumerate(DEMO_LEVELS):
            noisy = noise_model(kind).function(img, rng=seed + i, **kwargs)
            truth = _true_level(kind, kwargs)
            est, why = None, "no estimator"
            if kind == "rician" and "MNI" not in name:
                why = "Rician estimator needs an air background"
            elif truth is not None:
                try:
                    est = estimate_noise(noisy, kind, reference=1.0).level
                except ValueError as exc:  # e.g. no air background in a photograph
                    why = str(exc).split(";")[-1].strip()
            rows.append({"image": name, "kind": kind, "label": label, "true_level": truth, "estimated": est})
            ax = axes[1 + i // 2, 2 * col + i % 2]
            shown = np.rot90(noisy[0]) if "MNI" in name else noisy[0]
            ax.imshow(np.clip(shown, 0, 1), cmap="gray", vmin=0, vmax=1)
            caption = f"true {truth:.3f}, estimated {est:.3f}" if est is not None else why[:40]
            ax.set_title(f"{label}\n{caption}", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle("medden noise models (levels relative to the image maximum)", fontsize=11)
    fig.tight_layout()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "noise_demo.png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    with atomic_path(out / "noise_demo.json") as tmp:
        tmp.write_text(json.dumps(rows, indent=2))
    return {"figure": str(out / "noise_demo.png"), "rows": rows}


#: the trained bundle the demo prefers (the best Rician bundle on the real scans: realscans foreground
#: PSNR 33.29/30.50/27.59 dB and SSIM 0.915/0.852/0.745 at 3/5/9 % with its default two copies,
#: against 33.05/30.46/27.60 and 0.905/0.843/0.738 for dran_mri); the classical baseline it falls
#: back to without weights
DEMO_BUNDLE = "hmadnet_mri_rician"
DEMO_FALLBACK = "bm3d"


def run_denoise_demo(
    out_dir: str | os.PathLike[str], model: str | None = None, level: float = 0.05, seed: int = 0
) -> dict[str, Any]:
    """The main job on sample data: a noisy DICOM series in, a derived DICOM series out.

    1. the MNI152 template (nilearn's, 2 mm) with Rician noise (σ = ``level`` × maximum) is written as
       a DICOM MR series under ``out_dir/input_series`` (and the clean volume as a reference series);
    2. ``medden denoise`` runs on it with ``model`` (default: the ``hmadnet_mri_rician`` bundle, the
       best Rician bundle on the real scans, when its weights are present, else BM3D; the noise level is
       estimated), writing the derived series to ``out_dir/denoised``;
    3. the derived series is read back and compared with the clean reference: PSNR and SSIM before and
       after (whole volume and brain foreground), and a figure noisy / denoised / |difference|.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sample = write_noisy_mr_series(
        out / "input" / "series", level=level, seed=seed, clean_folder=out / "reference_series"
    )
    name = model or (DEMO_BUNDLE if DEMO_BUNDLE in available_bundles() else DEMO_FALLBACK)
    derived = _denoise_demo_input(out, name)
    clean = mio.load(out / "reference_series").array
    noisy = mio.load(Path(sample["series"])).array
    denoised = mio.load(derived).array
    scores = _demo_scores(clean, {"noisy": noisy, "denoised": denoised})
    title = (
        f"Rician {100 * level:g} %: PSNR {scores['noisy']['psnr_foreground']:.2f} → "
        f"{scores['denoised']['psnr_foreground']:.2f} dB (brain)"
    )
    _save_denoise_figure(out / "denoise_demo.png", clean, noisy, denoised, name, title)
    report = {
        "model": name,
        "level": level,
        "seed": seed,
        "input_series": sample["series"],
        "derived_series": str(derived),
        "figure": str(out / "denoise_demo.png"),
        "scores": scores,
    }
    with atomic_path(out / "denoise_demo.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return report


def _denoise_demo_input(out: Path, name: str) -> Path:
    """Run ``medden denoise`` with model ``name`` on ``out/input`` into ``out/denoised``; return the
    derived series' folder."""
    from medden.workflows.denoise import run_batch  # defers torch

    result = run_batch(out / "input", out / "denoised", load_model(model=name), overwrite=True, quiet=True)
    if result.failed or not result.done:
        raise RuntimeError(f"the demo series was not denoised (see {result.manifest})")
    done = [json.loads(line) for line in result.manifest.read_text().splitlines()]
    return Path(next(r["output"] for r in done if r["status"] == "done"))


def _demo_scores(clean: np.ndarray, versions: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """PSNR and SSIM of each version against ``clean``, over the whole volume and the foreground."""
    data_range = float(clean.max() - clean.min())
    mask = foreground_mask(clean)
    return {
        label: {
            "psnr": psnr(clean, arr, data_range=data_range),
            "ssim": ssim(clean, arr, data_range=data_range),
            "psnr_foreground": psnr(clean, arr, data_range=data_range, mask=mask),
            "ssim_foreground": ssim(clean, arr, data_range=data_range, mask=mask),
        }
        for label, arr in versions.items()
    }


def _save_denoise_figure(
    path: Path, clean: np.ndarray, noisy: np.ndarray, denoised: np.ndarray, name: str, title: str
) -> None:
    """Noisy, denoised and |denoised − noisy| at three axial slices, written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zs = [clean.shape[2] * f // 8 for f in (3, 4, 5)]
    fig, axes = plt.subplots(len(zs), 3, figsize=(9, 3.2 * len(zs)), squeeze=False)
    diff = np.abs(denoised - noisy)
    for r, z in enumerate(zs):
        for c, (label, img, cmap, vmax) in enumerate(
            (
                ("noisy", noisy, "gray", clean.max()),
                (f"denoised ({name})", denoised, "gray", clean.max()),
                ("|denoised − noisy|", diff, "hot", np.percentile(diff, 99.5)),
            )
        ):
            ax = axes[r, c]
            ax.imshow(np.rot90(img[:, :, z]), cmap=cmap, vmin=0, vmax=vmax)
            ax.set_title(f"{label}, slice {z}", fontsize=9)
            ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
