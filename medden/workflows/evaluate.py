"""Compare denoisers on a fixed, seeded evaluation set (``medden evaluate``).

For one dataset, one noise kind and a few levels, every method — a classical baseline
(:mod:`medden.baselines`), a trained net (``NAME=path/to/best.safetensors``) or ``noisy`` (the input
itself) — denoises the same noisy images. Per image it records PSNR and SSIM on the whole image and
on the foreground (:func:`medden.metrics.foreground_mask`) and the seconds taken; per level it
compares each method with a reference method on the same images (:func:`medden.metrics.paired_stats`:
mean difference, 95 % confidence interval, paired t-test and Wilcoxon signed-rank p-values, as in
Table 3 of the HMAD-Net paper).

Data come from the training data code (:mod:`medden.engine.trainer`, :mod:`medden.data.datasets`):
the offline sources' held-out split (``test`` by default) or a user folder (all of it by default), at
most ``max_images`` images chosen evenly through the split; a folder of noisy/clean pairs
(``low/`` + ``high/``, ``noisy/`` + ``clean/``) is evaluated as it is (``noise="none"``). The noise is
drawn with :func:`medden.data.datasets.validation_items` from a fixed seed per image and level, so
the same configuration always gives the same noisy images.

Noise level given to the methods (``sigma``): with ``"true"`` (default) the baselines and the
noise-level-aware nets get the true σ where the noise kind has one (Rician and Gaussian: the level on
[0, 1] data, as the trainer gives it to the nets) and estimate it otherwise (a photon count or a
fraction of voxels is not a σ). With ``"estimate"`` every method estimates it from the noisy image.

Files written to ``out_dir`` (each atomically): ``per_image.csv``, ``summary.csv``, ``summary.md`` (a
markdown table, one row per level × method), ``results.json`` (configuration, software versions, date,
summary, statistics and per-image rows) and ``figures/<kind>_<level>.png`` (clean, noisy and every
method's output, with their absolute difference from the clean image below in the ``hot`` colormap).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medden.errors import UsageError
from medden.workflows.models import available_bundles

METRICS = ("psnr", "ssim", "psnr_fg", "ssim_fg")
SIGMA_MODES = ("true", "estimate")
NOISY = "noisy"
#: noise kinds whose level on [0, 1] data is the σ the Gaussian denoisers take
SIGMA_KINDS = ("rician", "gaussian")
_VERSIONED = ("medden", "numpy", "scipy", "scikit-image", "torch", "monai", "bm3d", "bm4d", "matplotlib")


@dataclass
class EvalConfig:
    """Everything an evaluation needs (saved in ``results.json``).

    Attributes:
        methods: baseline names (``medden.baselines.available()``), ``noisy``, or ``NAME=WEIGHTS`` for a
            registered net and its weights file (``.safetensors`` from ``medden train``, or a state-dict
            ``.pt``).
        out_dir: output folder.
        data: ``mni152``, ``mni152-gm``, ``mni152-wm``, ``skimage-gray``, ``skimage-color``, or a folder.
        noise: a medden noise kind, or ``none`` for a folder of noisy/clean pairs.
        levels: noise levels (the kind's ``--level`` meaning); three levels across the kind's default
            training range when None.
        absolute: the levels are absolute σ on [0, 1] data (rician, gaussian).
        split: ``train``, ``val``, ``test`` or ``all``; ``test`` for offline sources, ``all`` for a
            folder when None.
        axis: slicing axis of volumes.
        spatial_dims: 2 (slices, images) or 3 (volumes; slow for the block-matching methods).
        max_images: at most this many clean images, chosen evenly through the split (None: all).
        reference: the method (label) the others are compared with; the first when None.
        seed: seed of the noise (image ``i`` at level ``j`` uses ``seed + 1000 i + j``).
        sigma: ``true`` or ``estimate`` (see the module docstring).
        method_kwargs: per method label, keyword arguments of the baseline (or of the net's constructor).
        foreground_threshold: foreground = clean image above this fraction of its maximum.
        figures: write the figures.
        device: torch device of the nets (``cpu`` when None).
        progress: show a progress bar.
    """

    methods: tuple[str, ...]
    out_dir: str
    data: str = "mni152"
    noise: str = "rician"
    levels: tuple[float, ...] | None = None
    absolute: bool = False
    split: str | None = None
    axis: int = 2
    spatial_dims: int = 2
    max_images: int | None = 8
    reference: str | None = None
    seed: int = 1234
    sigma: str = "true"
    method_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    foreground_threshold: float = 0.1
    figures: bool = True
    device: str | None = None
    progress: bool = True

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Method:
    """One method under evaluation: its label, how it is called, and what it is (for the report)."""

    label: str
    kind: str  # "noisy", "baseline" or "net"
    name: str
    weights: str | None = None
    fn: Any = None
    noise_aware: bool = False
    spec: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ checks


def parse_levels(text: str) -> tuple[float, ...]:
    """``"0.01,0.05"`` → ``(0.01, 0.05)``; a :class:`UsageError` for anything else."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"--levels: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise UsageError("--levels: no level given")
    return values


def parse_methods(specs: Sequence[str]) -> list[Method]:
    """Methods from ``name`` / ``NAME=WEIGHTS`` strings (checked, nothing loaded yet)."""
    from medden import baselines

    methods: list[Method] = []
    labels: set[str] = set()
    for raw in specs:
        text = raw.strip()
        if not text:
            continue
        if "=" in text:
            name, path = (p.strip() for p in text.split("=", 1))
            if not Path(path).is_file():
                raise UsageError(f"weights file not found: {path}")
            method = Method(label=name, kind="net", name=name, weights=path)
        elif text == NOISY:
            method = Method(label=NOISY, kind="noisy", name=NOISY)
        elif text in baselines.available():
            method = Method(label=text, kind="baseline", name=text)
        elif text in (bundles := available_bundles()):
            method = bundle_method(text, bundles[text])
        else:
            raise UsageError(
                f"unknown method {text!r}: use a baseline ({', '.join(baselines.available())}), "
                f"'{NOISY}', a bundle with weights ({', '.join(sorted(bundles)) or 'none found'}), "
                "or NAME=WEIGHTS for a trained net"
            )
        label, k = method.label, 2
        while label in labels:  # the same net twice (e.g. before and after fine-tuning)
            label, k = f"{method.label}#{k}", k + 1
        method.label = label
        labels.add(label)
        methods.append(method)
    if not methods:
        raise UsageError("no method given")
    return methods


def bundle_method(name: str, root: Path) -> Method:
    """A bundle as a method: its net and its checksummed weights, labelled by the bundle's name."""
    from medden import checkpoints
    from medden.bundle import WEIGHTS, read_metadata

    weights = root / WEIGHTS
    if not weights.is_file():
        raise UsageError(f"bundle {name} has no weights ({weights} is missing)")
    checkpoints.verify_sha256(weights, read_metadata(root).get("medden", {}).get("weights_sha256"))
    net = checkpoints.read_metadata(weights).get("net")
    if not net:
        raise UsageError(f"bundle {name}: {weights} does not name its net")
    return Method(label=name, kind="net", name=str(net), weights=str(weights))


def _net_names() -> list[str]:
    try:
        from medden import nets
    except ImportError as exc:  # pragma: no cover - the package is part of medden
        raise UsageError(f"the nets cannot be imported ({exc})") from None
    return nets.available()


def _train_config(cfg: EvalConfig) -> Any:
    """The training configuration whose data code gives this evaluation's images and levels."""
    from medden.engine.trainer import TrainConfig

    return TrainConfig(
        net="",
        out_dir=cfg.out_dir,
        data=cfg.data,
        axis=cfg.axis,
        spatial_dims=cfg.spatial_dims,
        noise=None if cfg.noise == "none" else cfg.noise,
        absolute=cfg.absolute,
        val_levels=cfg.levels,
    )


def check_config(cfg: EvalConfig) -> list[Method]:
    """Validate everything before any work; return the parsed methods (:class:`UsageError` if bad)."""
    from medden.data.datasets import SPLITS
    from medden.engine.trainer import DATA_SOURCES
    from medden.workflows.noise import KINDS, check_level

    methods = parse_methods(cfg.methods)
    nets = [m for m in methods if m.kind == "net"]
    if nets:
        available = _net_names()
        for m in nets:
            if m.name not in available:
                raise UsageError(
                    f"unknown net {m.name!r} in {m.name}={m.weights}; available: {', '.join(available)}"
                )
    labels = [m.label for m in methods]
    for label in cfg.method_kwargs:
        if label not in labels:
            raise UsageError(f"--method-kwargs names {label!r}, which is not one of the methods")
    for m in methods:
        if m.kind != "net":  # cheap to build: bad arguments are found before any work
            _load_method(m, cfg, channels=0)
    if cfg.reference is not None and cfg.reference not in labels:
        raise UsageError(f"--reference {cfg.reference!r} is not one of the methods ({', '.join(labels)})")
    if cfg.data not in DATA_SOURCES and not Path(cfg.data).exists():
        raise UsageError(
            f"data {cfg.data!r} is neither one of {', '.join(DATA_SOURCES)} nor an existing path"
        )
    if cfg.noise != "none" and cfg.noise not in KINDS:
        raise UsageError(f"unknown noise kind {cfg.noise!r}; choose from {', '.join(KINDS)}, or none")
    if cfg.absolute and cfg.noise not in SIGMA_KINDS:
        raise UsageError("--absolute applies to rician and gaussian noise only")
    for level in cfg.levels or ():
        if cfg.noise == "none":
            raise UsageError("--levels has no meaning with --noise none (the data hold their own noise)")
        if cfg.absolute:
            if not (math.isfinite(level) and 0 < level <= 1):
                raise UsageError(f"--levels: an absolute σ must be in (0, 1], got {level:g}")
        else:
            check_level(cfg.noise, level)
    if cfg.split is not None and cfg.split not in (*SPLITS, "all"):
        raise UsageError(f"--split must be one of {', '.join((*SPLITS, 'all'))}")
    if cfg.split == "all" and cfg.data in DATA_SOURCES:
        raise UsageError("--split all is for folders; the offline sources have train, val and test")
    if cfg.spatial_dims not in (2, 3):
        raise UsageError(f"--dims must be 2 or 3, not {cfg.spatial_dims}")
    if cfg.max_images is not None and cfg.max_images < 1:
        raise UsageError(f"--max-images must be >= 1, got {cfg.max_images}")
    if cfg.sigma not in SIGMA_MODES:
        raise UsageError(f"--sigma must be one of {', '.join(SIGMA_MODES)}")
    if not 0 <= cfg.foreground_threshold < 1:
        raise UsageError(f"the foreground threshold must be in [0, 1), got {cfg.foreground_threshold}")
    return methods


# -------------------------------------------------------------------------------------------- data


def _spread(n: int, k: int | None) -> list[int]:
    """``k`` of ``range(n)``, the centres of ``k`` equal parts (all of them when ``k`` is None or >= n).

    Example:
        >>> _spread(10, 2), _spread(10, 1), _spread(3, 5)
        ([2, 7], [5], [0, 1, 2])
    """
    if k is None or k >= n:
        return list(range(n))
    return [int((j + 0.5) * n / k) for j in range(k)]


#: smallest side of a volume in a 3D evaluation (the 7-voxel SSIM window)
MIN_SIDE_3D = 7


def evaluation_items(cfg: EvalConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The fixed noisy/clean items (``image``, ``target``, ``sigma``, ``level``, ``index``) and a description.

    Offline sources and folders go through the training data code (``medden.engine.trainer``); the
    noise through :func:`medden.data.datasets.validation_items` with ``cfg.seed``.
    """
    from medden.data import datasets as ds
    from medden.engine import trainer

    tcfg = _train_config(cfg)
    if trainer._is_paired(tcfg):
        if cfg.noise != "none":
            raise UsageError(f"{cfg.data} holds noisy/clean pairs: use --noise none")
        pairs = ds.paired_folder(cfg.data)
        chosen = _spread(len(pairs), cfg.max_images)
        items = [{**pairs[i], "sigma": None, "level": "paired", "index": i, "image_id": i} for i in chosen]
        return items, {"source": cfg.data, "split": "pairs", "available": len(pairs), "images": chosen}
    if cfg.noise == "none":
        raise UsageError(f"--noise none needs a folder of noisy/clean pairs; {cfg.data} is not one")
    split = cfg.split or ("test" if cfg.data in trainer.DATA_SOURCES else "all")
    if split == "all":
        images = ds.folder_images(cfg.data, axis=cfg.axis, spatial_dims=cfg.spatial_dims)
    else:
        images = trainer._clean_sources(tcfg, split)
    skipped = []
    if cfg.spatial_dims == 3:  # a single slice (pydicom's MR_small) is no volume: SSIM needs a 7^3 window
        thin = [min(im.shape[1:]) < MIN_SIDE_3D for im in images]
        skipped = [
            {"shape": list(im.shape[1:]), "reason": f"thinner than {MIN_SIDE_3D} voxels: evaluate it in 2D"}
            for im, t in zip(images, thin, strict=True)
            if t
        ]
        images = [im for im, t in zip(images, thin, strict=True) if not t]
    if not images:
        raise UsageError(
            f"no images in the {split} split of {cfg.data}"
            + (f" ({len(skipped)} too thin for 3D evaluation)" if skipped else "")
        )
    chosen = _spread(len(images), cfg.max_images)
    levels = trainer._val_levels(tcfg)
    items = ds.validation_items([images[i] for i in chosen], cfg.noise, levels, cfg.absolute, seed=cfg.seed)
    for k, item in enumerate(items):
        i, j = divmod(k, len(levels))
        item.update(level=_level_label(levels[j]), level_value=float(levels[j]), index=chosen[i], image_id=i)
    return items, {
        "source": cfg.data,
        "split": split,
        "available": len(images),
        "images": chosen,
        "levels": levels,
        **({"skipped": skipped} if skipped else {}),
    }


def _level_label(level: float) -> str:
    return f"{level:g}"


# ----------------------------------------------------------------------------------------- methods


def _load_method(m: Method, cfg: EvalConfig, channels: int) -> None:
    """Build the callable of ``m`` (a baseline, or a net with its weights)."""
    kwargs = dict(cfg.method_kwargs.get(m.label, {}))
    if m.kind == "noisy":
        m.spec = {"label": m.label, "kind": "noisy"}
        return
    if m.kind == "baseline":
        from medden import baselines

        try:
            m.fn = baselines.get(m.name, **kwargs)
        except ValueError as exc:
            raise UsageError(f"{m.label}: {exc}") from None
        m.noise_aware = bool(getattr(m.fn, "noise_aware", False))
        m.spec = {"label": m.label, "kind": "baseline", **m.fn.config()}
        return
    import torch

    from medden import checkpoints

    meta = checkpoints.read_metadata(m.weights)
    if meta.get("net") and meta["net"] != m.name:
        raise UsageError(f"{m.weights} holds weights of {meta['net']!r}, not {m.name!r}")
    if not meta.get("net_kwargs"):  # a bare state dict: build the net for these data
        kwargs = {
            "spatial_dims": cfg.spatial_dims,
            "in_channels": channels,
            "out_channels": channels,
            **kwargs,
        }
    try:
        net = checkpoints.load_net(m.weights, net=m.name, **kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{m.label}: cannot build the net ({exc})") from None
    net = net.to(torch.device(cfg.device or "cpu"))
    if getattr(net, "in_channels", channels) != channels:
        raise UsageError(
            f"{m.label} takes {net.in_channels}-channel images; the data have {channels} channels"
        )
    if getattr(net, "spatial_dims", 2) == 3 and cfg.spatial_dims == 2:
        raise UsageError(f"{m.label} is a 3D net: evaluate it with --dims 3")
    m.fn = net
    m.noise_aware = bool(getattr(net, "noise_aware", False))
    m.spec = {
        "label": m.label,
        "kind": "net",
        "name": m.name,
        "weights": str(m.weights),
        "sha256": checkpoints.sha256_file(m.weights),
        "net_kwargs": meta.get("net_kwargs") or kwargs,
        "noise_aware": m.noise_aware,
    }


def _sigma_for(m: Method, item: dict[str, Any], cfg: EvalConfig) -> float | None:
    """The noise level handed to method ``m`` for ``item`` (None: the method estimates it)."""
    if cfg.sigma == "estimate" or item.get("sigma") is None or not m.noise_aware:
        return None
    if cfg.noise not in SIGMA_KINDS:
        return None  # a peak count or a fraction of voxels is no σ: the method estimates it
    return float(item.get("level_value", item["sigma"]))  # for nets, the level as the trainer gave it


def _run_method(m: Method, noisy: np.ndarray, sigma: float | None, cfg: EvalConfig) -> np.ndarray:
    if m.kind == "noisy":
        return noisy
    if m.kind == "baseline":
        try:
            return np.asarray(m.fn(noisy, sigma))
        except ValueError as exc:
            raise UsageError(f"{m.label}: {exc}") from None
    from medden.inferers import infer

    mode = "2d" if getattr(m.fn, "spatial_dims", 2) == 2 else "3d"
    out = infer(m.fn, noisy, mode=mode, axis=cfg.axis, sigma=sigma)
    return out.numpy()


# ------------------------------------------------------------------------------------------- report


def _metrics(clean: np.ndarray, out: np.ndarray, threshold: float) -> dict[str, float]:
    from medden.metrics import foreground_mask, psnr, ssim

    row = {"psnr": psnr(clean, out, 1.0), "ssim": ssim(clean, out, 1.0)}
    try:
        fg = foreground_mask(clean, threshold)
        row.update(psnr_fg=psnr(clean, out, 1.0, mask=fg), ssim_fg=ssim(clean, out, 1.0, mask=fg))
    except ValueError:  # no foreground (an empty slice)
        fg = np.zeros(np.shape(clean), dtype=bool)
        row.update(psnr_fg=float("nan"), ssim_fg=float("nan"))
    bg = ~np.broadcast_to(fg, np.shape(clean))
    err = (np.asarray(out, np.float64) - np.asarray(clean, np.float64))[bg]
    row["rmse_bg"] = float(np.sqrt(np.mean(err**2))) if err.size else float("nan")  # air / background
    return row


def paired_comparisons(
    rows: Sequence[dict[str, Any]], reference: str, metrics: Sequence[str] = METRICS
) -> list[dict[str, Any]]:
    """Paired statistics of every method against ``reference``, per level and metric.

    ``rows`` are per-image rows (``image``, ``level``, ``method`` and the metrics). Differences are
    ``method − reference`` over the images both have a finite score for.
    """
    from medden.metrics import paired_stats

    out: list[dict[str, Any]] = []
    levels = list(dict.fromkeys(r["level"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for level in levels:
        ref = {r["image"]: r for r in rows if r["level"] == level and r["method"] == reference}
        for method in methods:
            if method == reference:
                continue
            mine = {r["image"]: r for r in rows if r["level"] == level and r["method"] == method}
            for metric in metrics:
                keys = [
                    k
                    for k in sorted(mine)
                    if k in ref and math.isfinite(mine[k][metric]) and math.isfinite(ref[k][metric])
                ]
                a = [mine[k][metric] for k in keys]
                b = [ref[k][metric] for k in keys]
                record = {"level": level, "method": method, "reference": reference, "metric": metric}
                if len(keys) >= 2:
                    record.update(paired_stats(a, b).to_dict())
                else:
                    record.update(n=len(keys))
                out.append(record)
    return out


def summarize(
    rows: Sequence[dict[str, Any]], stats: Sequence[dict[str, Any]], reference: str
) -> list[dict[str, Any]]:
    """One row per level × method: means and standard deviations, seconds, and the comparison."""
    summary = []
    levels = list(dict.fromkeys(r["level"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for level in levels:
        for method in methods:
            mine = [r for r in rows if r["level"] == level and r["method"] == method]
            rec: dict[str, Any] = {"level": level, "method": method, "n": len(mine)}
            for metric in (*METRICS, "rmse_bg", "seconds"):
                vals = np.array([r[metric] for r in mine], dtype=np.float64)
                vals = vals[np.isfinite(vals)]
                rec[f"{metric}_mean"] = float(vals.mean()) if vals.size else float("nan")
                rec[f"{metric}_sd"] = float(vals.std(ddof=1)) if vals.size > 1 else float("nan")
            for s in stats:
                if s["level"] == level and s["method"] == method:
                    m = s["metric"]
                    for key in ("mean_diff", "ci_low", "ci_high", "t_pvalue", "wilcoxon_pvalue"):
                        rec[f"{m}_{key}"] = s.get(key, float("nan"))
            rec["reference"] = reference
            summary.append(rec)
    return summary


def fmt_value(v: Any, digits: int) -> str:
    """``v`` with ``digits`` decimals, or ``–`` for a missing or non-finite value (the report's cells)."""
    return "–" if v is None or not math.isfinite(float(v)) else f"{float(v):.{digits}f}"


def fmt_p(v: Any) -> str:
    """A p-value for the report: ``<0.001``, three decimals, or ``–`` when missing."""
    if v is None or not math.isfinite(float(v)):
        return "–"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def markdown_table(summary: Sequence[dict[str, Any]], caption: str = "") -> str:
    """The summary as a markdown table (one row per level × method)."""
    head = (
        "| level | method | n | PSNR (dB) | SSIM | PSNR fg | SSIM fg | RMSE bg | s / image "
        "| ΔPSNR [95 % CI] | p (t) | p (Wilcoxon) | ΔSSIM [95 % CI] | p (t) | p (Wilcoxon) |"
    )
    lines = [caption, ""] if caption else []
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in summary:
        cells = [
            str(r["level"]),
            r["method"],
            str(r["n"]),
            f"{fmt_value(r['psnr_mean'], 2)} ± {fmt_value(r['psnr_sd'], 2)}",
            f"{fmt_value(r['ssim_mean'], 4)} ± {fmt_value(r['ssim_sd'], 4)}",
            fmt_value(r["psnr_fg_mean"], 2),
            fmt_value(r["ssim_fg_mean"], 4),
            fmt_value(r.get("rmse_bg_mean"), 4),
            fmt_value(r["seconds_mean"], 3),
        ]
        if r["method"] == r["reference"]:
            cells += ["reference", "", "", "reference", "", ""]
        else:
            for m, d in (("psnr", 2), ("ssim", 4)):
                diff = r.get(f"{m}_mean_diff")
                ci = f"{fmt_value(r.get(f'{m}_ci_low'), d)}, {fmt_value(r.get(f'{m}_ci_high'), d)}"
                cells += [
                    f"{fmt_value(diff, d)} [{ci}]",
                    fmt_p(r.get(f"{m}_t_pvalue")),
                    fmt_p(r.get(f"{m}_wilcoxon_pvalue")),
                ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def display_plane(img: np.ndarray, rotate: bool, axis: int = 2) -> np.ndarray:
    """A displayable 2D plane of a channel-first image: gray (H, W) or RGB (H, W, 3), in [0, 1].

    A volume ``(C, X, Y, Z)`` shows its middle slice along spatial ``axis``.
    """
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 4:
        a = np.take(a, a.shape[1 + axis] // 2, axis=1 + axis)
    a = np.moveaxis(a, 0, -1) if a.shape[0] == 3 else a[0]
    return np.rot90(a) if rotate else a


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

    from medden.io.atomic import atomic_path
    from medden.metrics import foreground_mask

    panels = {NOISY: noisy, **{k: v for k, v in outputs.items() if k != NOISY}}
    if NOISY not in scores:
        scores = {**scores, NOISY: _metrics(clean, np.clip(noisy, 0.0, 1.0), threshold)}
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


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` (dicts; columns in first-seen order) as CSV, atomically."""
    from medden.io.atomic import atomic_path

    columns = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _write_text(path: Path, text: str) -> None:
    from medden.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_ready(obj: Any) -> Any:
    """NaN and infinity as None (strict JSON), numpy scalars as numbers."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def versions() -> dict[str, str | None]:
    """Versions of Python, the platform and the packages that shape the numbers."""
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@dataclass
class EvalResult:
    """What :func:`evaluate` measured and wrote."""

    out_dir: str
    per_image: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    statistics: list[dict[str, Any]]
    markdown: str
    files: list[str]


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Run every method on the evaluation set of ``cfg`` and write the report (see the module docstring).

    Example::

        from medden.workflows.evaluate import EvalConfig, evaluate
        result = evaluate(EvalConfig(methods=("median", "bm3d"), out_dir="eval", noise="rician",
                                     levels=(0.03, 0.09), max_images=4))
        print(result.markdown)
    """
    from tqdm.auto import tqdm

    methods = check_config(cfg)
    reference = cfg.reference or methods[0].label
    items, data_info = evaluation_items(cfg)
    channels = int(np.asarray(items[0]["target"]).shape[0])
    for m in methods:
        if m.kind == "net":
            _load_method(m, cfg, channels)
            # one untimed call, so the first image's seconds are not torch's one-off initialisation
            _run_method(m, np.asarray(items[0]["image"], dtype=np.float32), _sigma_for(m, items[0], cfg), cfg)
    kind = cfg.noise
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_images = len({it["image_id"] for it in items})
    figure_image = sorted({it["image_id"] for it in items})[n_images // 2]
    rotate = cfg.data.startswith("mni152")
    rows: list[dict[str, Any]] = []
    figures: list[str] = []
    bar = tqdm(total=len(items) * len(methods), desc="evaluate", disable=not cfg.progress, leave=False)
    for item in items:
        clean = np.asarray(item["target"], dtype=np.float32)
        noisy = np.asarray(item["image"], dtype=np.float32)
        outputs: dict[str, np.ndarray] = {}
        scores: dict[str, dict[str, float]] = {}
        for m in methods:
            sigma = _sigma_for(m, item, cfg)
            t0 = time.perf_counter()
            den = _run_method(m, noisy, sigma, cfg)
            seconds = time.perf_counter() - t0 if m.kind != "noisy" else 0.0
            den = np.clip(np.asarray(den, dtype=np.float32), 0.0, 1.0)
            if den.shape != clean.shape:
                raise RuntimeError(
                    f"{m.label} returned shape {den.shape} for an image of shape {clean.shape}"
                )
            score = _metrics(clean, den, cfg.foreground_threshold)
            rows.append(
                {
                    "image": item["image_id"],
                    "source_index": item["index"],
                    "kind": kind,
                    "level": item["level"],
                    "method": m.label,
                    **score,
                    "seconds": seconds,
                    "sigma": sigma,
                }
            )
            scores[m.label] = score
            if cfg.figures and item["image_id"] == figure_image:
                outputs[m.label] = den
            bar.update(1)
        if cfg.figures and item["image_id"] == figure_image:
            path = out / "figures" / f"{kind}_{item['level']}.png"
            title = (
                f"{cfg.data}, image {item['index']} of the {data_info['split']} split, {kind} {item['level']}"
            )
            save_figure(
                path, clean, noisy, outputs, scores, title, rotate, cfg.foreground_threshold, cfg.axis
            )
            figures.append(str(path))
    bar.close()

    stats = paired_comparisons(rows, reference)
    summary = summarize(rows, stats, reference)
    levels = ", ".join(dict.fromkeys(r["level"] for r in rows))
    what = (
        f"{n_images} noisy/clean pair(s)"
        if kind == "none"
        else f"{kind} noise at {levels} on {n_images} image(s)"
    )
    caption = (
        f"{what} of {cfg.data} ({data_info['split']}); "
        f"differences are method − {reference}, paired over images."
    )
    markdown = markdown_table(summary, caption)
    write_csv(out / "per_image.csv", rows)
    write_csv(out / "summary.csv", summary)
    _write_text(out / "summary.md", markdown)
    results = {
        "config": cfg.to_json(),
        "methods": [m.spec for m in methods],
        "reference": reference,
        "data": data_info,
        "versions": versions(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "summary": summary,
        "statistics": stats,
        "per_image": rows,
        "figures": figures,
    }
    _write_text(out / "results.json", json.dumps(_json_ready(results), indent=2))
    files = [str(out / n) for n in ("per_image.csv", "summary.csv", "summary.md", "results.json")] + figures
    return EvalResult(str(out), rows, summary, stats, markdown, files)
