"""Figures of denoised images: the three-panel figure of a batch unit and the evaluation figure.

Both are drawn on an Agg canvas (no pyplot state, safe in threads and without a display) and written
atomically. matplotlib is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from medden.inferers import IntensityScaler
from medden.io.atomic import atomic_path
from medden.metrics import foreground_mask, image_scores
from medden.workflows.predict import channel_first

NOISY = "noisy"


def display_plane(img: np.ndarray, rotate: bool, axis: int = 2) -> np.ndarray:
    """A displayable 2D plane of a channel-first image: gray (H, W) or RGB (H, W, 3), in [0, 1].

    A volume ``(C, X, Y, Z)`` shows its middle slice along spatial ``axis``.
    """
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 4:
        a = np.take(a, a.shape[1 + axis] // 2, axis=1 + axis)
    a = np.moveaxis(a, 0, -1) if a.shape[0] == 3 else a[0]
    return np.rot90(a) if rotate else a


def save_panels(
    path: Path, noisy: np.ndarray, denoised: np.ndarray, layout: str, title: str, intensity: str = "minmax"
) -> None:
    """The three-panel figure of a denoised unit: input, output and ``|input − output|`` (``hot``: what
    was removed), both images on the input's [0, 1] scale; volumes show their middle axial slice.
    Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x, y = channel_first(noisy, layout), channel_first(denoised, layout)
    scaler = IntensityScaler.fit(x, mode=intensity)
    xs, ys = (np.asarray(scaler.forward(a.astype(np.float64)), dtype=np.float32) for a in (x, y))
    rotate = layout != "image"
    diff = display_plane(np.abs(xs - ys), rotate)
    diff = diff.max(axis=-1) if diff.ndim == 3 else diff
    fig = Figure(figsize=(9.0, 3.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    gray = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}
    axes[0].imshow(display_plane(xs, rotate), **gray)
    axes[0].set_title("input", fontsize=9)
    axes[1].imshow(display_plane(ys, rotate), **gray)
    axes[1].set_title("denoised", fontsize=9)
    im = axes[2].imshow(diff, cmap="hot", vmin=0.0, vmax=max(float(np.percentile(diff, 99.5)), 1e-3))
    axes[2].set_title("|input − denoised|", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.02)
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")


def save_figure(
    path: str | os.PathLike[str],
    clean: np.ndarray,
    noisy: np.ndarray,
    outputs: dict[str, np.ndarray],
    scores: dict[str, dict[str, float]],
    title: str,
    rotate: bool = False,
    threshold: float = 0.1,
    axis: int = 2,
) -> None:
    """Clean, noisy and each method's output on top; below, ``|x − clean|`` in the ``hot`` colormap.

    ``scores`` holds each panel's PSNR/SSIM (the noisy image's are computed when missing); volumes
    show their middle slice along ``axis``. The difference maps share one scale (the 99.5th
    percentile of the noisy image's error), so a darker map is a smaller error. Written atomically
    (Agg canvas, no pyplot state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = {NOISY: noisy, **{k: v for k, v in outputs.items() if k != NOISY}}
    if NOISY not in scores:
        scores = {**scores, NOISY: image_scores(clean, np.clip(noisy, 0.0, 1.0), threshold)}
    ncol = 1 + len(panels)
    fig = Figure(figsize=(2.4 * ncol, 5.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, ncol, squeeze=False)
    gray = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}
    vmax = max(float(np.percentile(np.abs(noisy - clean), 99.5)), 1e-3)
    axes[0, 0].imshow(display_plane(np.clip(clean, 0, 1), rotate, axis), **gray)
    axes[0, 0].set_title("clean", fontsize=8)
    mask = foreground_mask(clean, threshold).astype(np.float32)
    axes[1, 0].imshow(display_plane(mask, rotate, axis), **gray)
    axes[1, 0].set_title("foreground mask", fontsize=8)
    im = None
    for col, (label, img) in enumerate(panels.items(), start=1):
        s = scores.get(label, {})
        axes[0, col].imshow(display_plane(np.clip(img, 0, 1), rotate, axis), **gray)
        axes[0, col].set_title(
            f"{label}\n{s.get('psnr', float('nan')):.2f} dB, SSIM {s.get('ssim', float('nan')):.3f}",
            fontsize=8,
        )
        diff = np.abs(np.asarray(img, dtype=np.float32) - clean)
        d = display_plane(diff, rotate, axis)
        im = axes[1, col].imshow(d.max(axis=-1) if d.ndim == 3 else d, cmap="hot", vmin=0.0, vmax=vmax)
        axes[1, col].set_title(f"|{label} − clean|", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=list(axes[1]), fraction=0.015, pad=0.01)
    fig.suptitle(title, fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
