"""Compare denoisers on a fixed, seeded evaluation set (``medden evaluate``).

For one dataset, one noise kind and a few levels, every method — a classical baseline
(:mod:`medden.baselines`), a trained net (``NAME=path/to/best.safetensors``) or ``noisy`` (the input
itself) — denoises the same noisy images. Per image it records PSNR and SSIM on the whole image and
on the foreground (:func:`medden.metrics.foreground_mask`) and the seconds taken; per level it
compares each method with a reference method on the same images (:func:`medden.metrics.paired_stats`:
mean difference, 95 % confidence interval, paired t-test and Wilcoxon signed-rank p-values, as in
Table 3 of the HMAD-Net paper).

Data come from the data sources (:mod:`medden.data.sources`, :mod:`medden.data.datasets`):
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
markdown table, one row per level × method, the SSIM window stated below it), ``results.json``
(configuration, software versions, date, ``ssim_window``, summary, statistics and per-image rows) and
``figures/<kind>_<level>.png`` (clean, noisy and every method's output, with their absolute
difference from the clean image below in the ``hot`` colormap).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medden import baselines, checkpoints, nets
from medden.bundle_format import available_bundles
from medden.data import datasets as ds
from medden.data import sources
from medden.data.sources import MIN_SIDE_3D
from medden.denoiser import LoadedModel
from medden.errors import UsageError
from medden.io.atomic import atomic_path
from medden.loading import load_model
from medden.metrics import SSIM_WINDOW, image_scores, paired_stats
from medden.noise import SIGMA_KINDS
from medden.workflows.figures import NOISY, save_figure
from medden.workflows.noise import KINDS, check_level
from medden.workflows.predict import Options, check_mode, predict

METRICS = ("psnr", "ssim", "psnr_fg", "ssim_fg")
#: how every report states the SSIM window (:data:`medden.metrics.SSIM_WINDOW`)
SSIM_NOTE = f"SSIM window: {SSIM_WINDOW} (11×11 Gaussian, σ 1.5, population covariances; Wang et al. 2004)."
SIGMA_MODES = ("true", "estimate")
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
        method_kwargs: per method label, keyword arguments of the baseline (or of the net's constructor),
            and how it is run: ``ensemble`` (the self-ensemble size, as ``medden denoise --ensemble``) and
            ``mode`` (e.g. ``triplanar`` for a 2D net on volumes, as ``medden denoise --mode``).
        foreground_threshold: foreground = clean image above this fraction of its maximum.
        figures: write the figures.
        save_outputs: also write each noisy input and each method's output as
            ``outputs/<method>/<level>/<image>.npy`` (``noisy`` is the input).
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
    save_outputs: bool = False
    device: str | None = None
    progress: bool = True

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Method:
    """One method under evaluation: its label, what it is, and the loaded model (for the report).

    ``model`` is what :func:`medden.loading.load_model` gives (the same loading as ``medden denoise``),
    run through :func:`medden.workflows.predict.predict` (the same path).
    """

    label: str
    kind: str  # "noisy", "baseline", "bundle" or "net"
    name: str
    weights: str | None = None
    model: LoadedModel | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    ensemble: int | None = None  # None: the model's own
    mode: str | None = None  # once loaded: the mode it runs in

    @property
    def noise_aware(self) -> bool:
        return bool(self.model and self.model.noise_aware)


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
    """Methods from ``name`` / ``NAME=WEIGHTS`` / ``NAME=BUNDLE_FOLDER`` strings (checked, nothing loaded
    yet): a baseline, ``noisy``, a bundle by name or folder, or a registered net and its weights file."""
    methods: list[Method] = []
    labels: set[str] = set()
    for raw in specs:
        text = raw.strip()
        if not text:
            continue
        if "=" in text:
            name, path = (p.strip() for p in text.split("=", 1))
            if (Path(path) / "configs" / "inference.json").is_file():
                method = bundle_method(name, Path(path))
            elif not Path(path).is_file():
                raise UsageError(f"weights file not found: {path}")
            else:
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
    """A bundle as a method, labelled by the bundle's name (loaded, checksum checked, by :meth:`load`)."""
    return Method(label=name, kind="bundle", name=name, weights=str(root))


def check_config(cfg: EvalConfig) -> list[Method]:
    """Validate everything before any work; return the parsed methods (:class:`UsageError` if bad)."""
    methods = parse_methods(cfg.methods)
    available = nets.available()
    for m in methods:  # bundles are checked when loaded
        if m.kind == "net" and m.name not in available:
            raise UsageError(
                f"unknown net {m.name!r} in {m.name}={m.weights}; available: {', '.join(available)}"
            )
    labels = [m.label for m in methods]
    for label, kwargs in cfg.method_kwargs.items():
        if label not in labels:
            raise UsageError(f"--method-kwargs names {label!r}, which is not one of the methods")
        Options(ensemble=kwargs.get("ensemble"), mode=kwargs.get("mode")).validate()
    for m in methods:
        if m.kind in ("noisy", "baseline"):  # cheap to build: bad arguments are found before any work
            _load_method(m, cfg, channels=0)
    if cfg.reference is not None and cfg.reference not in labels:
        raise UsageError(f"--reference {cfg.reference!r} is not one of the methods ({', '.join(labels)})")
    sources.check_data(cfg.data)
    if cfg.noise != "none" and cfg.noise not in KINDS:
        raise UsageError(f"unknown noise kind {cfg.noise!r}; choose from {', '.join(KINDS)}, or none")
    if cfg.absolute and cfg.noise not in SIGMA_KINDS:
        raise UsageError(f"--absolute applies to {' and '.join(SIGMA_KINDS)} noise only")
    for level in cfg.levels or ():
        if cfg.noise == "none":
            raise UsageError("--levels has no meaning with --noise none (the data hold their own noise)")
        if cfg.absolute:
            if not (math.isfinite(level) and 0 < level <= 1):
                raise UsageError(f"--levels: an absolute σ must be in (0, 1], got {level:g}")
        else:
            check_level(cfg.noise, level)
    if cfg.split is not None and cfg.split not in sources.SPLITS:
        raise UsageError(f"--split must be one of {', '.join(sources.SPLITS)}")
    if cfg.split is not None:
        sources.check_split(cfg.data, cfg.split)
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


def evaluation_items(cfg: EvalConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The fixed noisy/clean items (``image``, ``target``, ``sigma``, ``level``, ``index``) and a description.

    The clean images are those the trainer uses (:func:`medden.data.sources.clean_sources`: offline
    sources, ``realscans``, folders), the levels :func:`medden.data.sources.validation_levels`, the
    noise :func:`medden.data.datasets.validation_items` with ``cfg.seed``. Sources that name their
    images (``realscans``) list the chosen ones in the description's ``scans``.
    """
    if sources.is_paired(cfg.data):
        if cfg.noise != "none":
            raise UsageError(f"{cfg.data} holds noisy/clean pairs: use --noise none")
        pairs = ds.paired_folder(cfg.data)
        chosen = _spread(len(pairs), cfg.max_images)
        items = [{**pairs[i], "sigma": None, "level": "paired", "index": i, "image_id": i} for i in chosen]
        return items, {"source": cfg.data, "split": "pairs", "available": len(pairs), "images": chosen}
    if cfg.noise == "none":
        raise UsageError(f"--noise none needs a folder of noisy/clean pairs; {cfg.data} is not one")
    split = cfg.split or ("all" if Path(cfg.data).exists() else "test")
    images = sources.clean_sources(cfg.data, split, axis=cfg.axis, spatial_dims=cfg.spatial_dims)
    labels = getattr(images, "labels", None)
    skipped = []
    if cfg.spatial_dims == 3:  # a single slice (pydicom's MR_small) is no volume: SSIM needs an 11^3 window
        thin = [min(im.shape[1:]) < MIN_SIDE_3D for im in images]
        skipped = [
            {"shape": list(im.shape[1:]), "reason": f"thinner than {MIN_SIDE_3D} voxels: evaluate it in 2D"}
            for im, t in zip(images, thin, strict=True)
            if t
        ]
        images = [im for im, t in zip(images, thin, strict=True) if not t]
        labels = [x for x, t in zip(labels, thin, strict=True) if not t] if labels is not None else None
    if not images:
        raise UsageError(
            f"no images in the {split} split of {cfg.data}"
            + (f" ({len(skipped)} too thin for 3D evaluation)" if skipped else "")
        )
    chosen = _spread(len(images), cfg.max_images)
    levels = sources.validation_levels(cfg.noise, None, cfg.levels)
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
        **({"scans": [labels[i] for i in chosen]} if labels is not None else {}),
        **({"skipped": skipped} if skipped else {}),
    }


def _level_label(level: float) -> str:
    return f"{level:g}"


# ----------------------------------------------------------------------------------------- methods


def _load_method(m: Method, cfg: EvalConfig, channels: int) -> None:
    """Load ``m`` through :func:`medden.loading.load_model` (a baseline with its ``method_kwargs``)."""
    kwargs = dict(cfg.method_kwargs.get(m.label, {}))
    # how it is run (the self-ensemble, the inference mode), not what it is; the requested mode is
    # replaced by the one it runs in once the model is loaded (:func:`_mode_run`)
    m.ensemble, m.mode = kwargs.pop("ensemble", None), kwargs.pop("mode", None)
    if m.kind == "noisy":
        m.spec = {"label": m.label, "kind": "noisy"}
        return
    if m.kind == "baseline":
        try:
            fn = baselines.get(m.name, **kwargs)
        except ValueError as exc:
            raise UsageError(f"{m.label}: {exc}") from None
        m.model = LoadedModel.wrap(fn, m.name, "baseline", extra={"baseline_config": fn.config()})
        m.mode = _mode_run(m, cfg)
        m.spec = {
            "label": m.label,
            "kind": "baseline",
            **fn.config(),
            "ensemble": m.ensemble or 1,
            "mode": m.mode,
        }
        return
    device = cfg.device or "cpu"
    if m.kind == "bundle":
        m.model = load_model(bundle=m.weights, device=device)
        m.model.name = m.label
    else:
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
        m.model = load_model(checkpoint=m.weights, net=m.name, device=device, net_kwargs=kwargs)
    if m.model.in_channels not in (None, channels):
        raise UsageError(
            f"{m.label} takes {m.model.in_channels}-channel images; the data have {channels} channels"
        )
    if m.model.spatial_dims == 3 and cfg.spatial_dims == 2:
        raise UsageError(f"{m.label} is a 3D net: evaluate it with --dims 3")
    m.mode = _mode_run(m, cfg)
    m.spec = {
        "label": m.label,
        "kind": "net",
        "name": m.model.extra.get("net", m.name),
        **({"bundle": m.model.extra["bundle"]} if m.kind == "bundle" else {}),
        "weights": str(m.model.weights),
        "sha256": m.model.sha256,
        "net_kwargs": m.model.extra.get("net_kwargs", kwargs),
        "noise_aware": m.noise_aware,
        "ensemble": m.model.ensemble if m.ensemble is None else m.ensemble,
        "mode": m.mode,
    }


def _mode_run(m: Method, cfg: EvalConfig) -> str:
    """The inference mode ``m`` runs in on these data, checked against its model before any item is
    made (a 3D mode for a 2D model is a usage error now, not after the first method has run); a
    tri-planar request on 2D images runs (and is recorded as) 2D, as :func:`predict` does."""
    assert m.model is not None
    mode = check_mode(m.model, m.mode or ("3d" if m.model.spatial_dims == 3 else "2d"))
    return "2d" if mode == "triplanar" and cfg.spatial_dims == 2 else mode


def _sigma_for(m: Method, item: dict[str, Any], cfg: EvalConfig) -> float | None:
    """The noise level handed to method ``m`` for ``item`` (None: the method estimates it)."""
    if cfg.sigma == "estimate" or item.get("sigma") is None or not m.noise_aware:
        return None
    if cfg.noise not in SIGMA_KINDS:
        return None  # a peak count or a fraction of voxels is no σ: the method estimates it
    return float(item.get("level_value", item["sigma"]))  # for nets, the level as the trainer gave it


def run_method(m: Method, noisy: np.ndarray, sigma: float | None, cfg: EvalConfig) -> np.ndarray:
    """``m`` on one noisy item, through :func:`medden.workflows.predict.predict` as ``medden denoise``
    runs it (per-image intensity scaling, σ estimated unless the true one is given, in the σ's units).

    A model scaled by its input's type (``dtype``: 0-255 of an 8-bit photograph) gets the evaluation's
    data as they are (``unit``): they are on [0, 1] by construction, the equivalent of the 8-bit range,
    while the unclipped noise would otherwise make them a float image outside [0, 1], min-max scaled
    (which shrinks the contrast and the noise a blind net sees: 0.5-1.4 dB lost on the photographs)."""
    if m.kind == "noisy":
        return noisy
    assert m.model is not None
    volume = noisy.ndim == 4  # (1, X, Y, Z) in a 3D evaluation
    layout, array = ("volume", noisy[0]) if volume else ("image", noisy)
    intensity = "unit" if m.model.intensity == "dtype" else None
    options = Options(mode=m.mode, axis=cfg.axis, noise_sigma=sigma, intensity=intensity, ensemble=m.ensemble)
    try:
        out, _ = predict(m.model, array, layout, options.validate())
    except ValueError as exc:
        raise UsageError(f"{m.label}: {exc}") from None
    return out[None] if volume else out


# ------------------------------------------------------------------------------------------- report


def paired_comparisons(
    rows: Sequence[dict[str, Any]], reference: str, metrics: Sequence[str] = METRICS
) -> list[dict[str, Any]]:
    """Paired statistics of every method against ``reference``, per level and metric.

    ``rows`` are per-image rows (``image``, ``level``, ``method`` and the metrics). Differences are
    ``method − reference`` over the images both have a finite score for.
    """
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
    """The summary as a markdown table (one row per level × method), the SSIM window stated below it."""
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
    lines += ["", SSIM_NOTE]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` (dicts; columns in first-seen order) as CSV, atomically."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _save_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(array))


def _write_text(path: Path, text: str) -> None:
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
    _load_models(methods, items, cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(items) * len(methods), desc="evaluate", disable=not cfg.progress, leave=False) as bar:
        for item in items:
            rows += score_item(item, methods, cfg, out, bar.update)[0]
    figures = draw_figures(items, methods, rows, reference, cfg, data_info) if cfg.figures else []
    return _report(cfg, methods, reference, data_info, rows, figures)


def _load_models(methods: Sequence[Method], items: Sequence[dict[str, Any]], cfg: EvalConfig) -> None:
    """Load the nets and bundles for the data's channel count, each with one untimed warm-up call."""
    channels = int(np.asarray(items[0]["target"]).shape[0])
    for m in methods:
        if m.kind in ("net", "bundle"):
            _load_method(m, cfg, channels)
            # one untimed call, so the first image's seconds are not torch's one-off initialisation
            run_method(m, np.asarray(items[0]["image"], dtype=np.float32), _sigma_for(m, items[0], cfg), cfg)


def score_item(
    item: dict[str, Any],
    methods: Sequence[Method],
    cfg: EvalConfig,
    out: Path,
    progress: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], dict[str, dict[str, float]]]:
    """Every method on one noisy item: the per-image rows, the outputs (clipped to [0, 1]) and scores."""
    clean = np.asarray(item["target"], dtype=np.float32)
    noisy = np.asarray(item["image"], dtype=np.float32)
    rows, outputs, scores = [], {}, {}
    for m in methods:
        sigma = _sigma_for(m, item, cfg)
        t0 = time.perf_counter()
        den = run_method(m, noisy, sigma, cfg)
        seconds = time.perf_counter() - t0 if m.kind != "noisy" else 0.0
        if cfg.save_outputs:
            _save_array(out / "outputs" / m.label / str(item["level"]) / f"{item['image_id']}.npy", den)
        den = np.clip(np.asarray(den, dtype=np.float32), 0.0, 1.0)
        if den.shape != clean.shape:
            raise RuntimeError(f"{m.label} returned shape {den.shape} for an image of shape {clean.shape}")
        score = image_scores(clean, den, cfg.foreground_threshold)
        rows.append(
            {
                "image": item["image_id"],
                "source_index": item["index"],
                "kind": cfg.noise,
                "level": item["level"],
                "method": m.label,
                **score,
                "seconds": seconds,
                "sigma": sigma,
            }
        )
        outputs[m.label], scores[m.label] = den, score
        if progress is not None:
            progress(1)
    return rows, outputs, scores


def worst_images(rows: Sequence[dict[str, Any]], reference: str, method: str) -> dict[str, Any]:
    """Per level, the image where ``method`` is furthest below ``reference`` in foreground PSNR (whole-image
    PSNR where an image has no foreground).

    Example:
        >>> rows = [{"image": i, "level": "0.1", "method": m, "psnr_fg": p, "psnr": p}
        ...         for i, (a, b) in enumerate([(30, 31), (30, 28)]) for m, p in (("ref", a), ("net", b))]
        >>> worst_images(rows, "ref", "net")
        {'0.1': 1}
    """

    def score(r: dict[str, Any]) -> float:
        return r["psnr_fg"] if math.isfinite(r["psnr_fg"]) else r["psnr"]

    ref = {(r["level"], r["image"]): score(r) for r in rows if r["method"] == reference}
    worst: dict[str, tuple[float, Any]] = {}
    for r in rows:
        key = (r["level"], r["image"])
        if r["method"] != method or key not in ref:
            continue
        gap = score(r) - ref[key]
        if r["level"] not in worst or gap < worst[r["level"]][0]:
            worst[r["level"]] = (gap, r["image"])
    return {level: image for level, (_, image) in worst.items()}


def draw_figures(
    items: Sequence[dict[str, Any]],
    methods: Sequence[Method],
    rows: Sequence[dict[str, Any]],
    reference: str,
    cfg: EvalConfig,
    data_info: dict[str, Any],
) -> list[str]:
    """Per level, the figure of the middle image (``figures/<kind>_<level>.png``) and of the worst case of
    the last method against the reference (``figures/<kind>_<level>_worst.png``; the methods are run
    again on that image)."""
    out = Path(cfg.out_dir)
    ids = sorted({it["image_id"] for it in items})
    middle = ids[len(ids) // 2]
    tested = [m.label for m in methods if m.label != reference and m.kind != "noisy"]
    worst = worst_images(rows, reference, tested[-1]) if tested else {}
    figures = []
    for item in items:
        for suffix, wanted in (("", middle), ("_worst", worst.get(item["level"]))):
            if item["image_id"] != wanted or (suffix and wanted == middle):
                continue
            _, outputs, scores = score_item(item, methods, dataclasses.replace(cfg, save_outputs=False), out)
            path = out / "figures" / f"{cfg.noise}_{item['level']}{suffix}.png"
            what = "worst case of " + tested[-1] + ", " if suffix else ""
            where = f"image {item['index']} of the {data_info['split']} split"
            title = f"{what}{cfg.data}, {where}, {cfg.noise} {item['level']}"
            rotate = cfg.data.startswith("mni152")
            clean, noisy = np.asarray(item["target"], np.float32), np.asarray(item["image"], np.float32)
            save_figure(
                path, clean, noisy, outputs, scores, title, rotate, cfg.foreground_threshold, cfg.axis
            )
            figures.append(str(path))
    return figures


def _report(
    cfg: EvalConfig,
    methods: Sequence[Method],
    reference: str,
    data_info: dict[str, Any],
    rows: list[dict[str, Any]],
    figures: list[str],
) -> EvalResult:
    """The statistics, the summary and every file of the report."""
    kind, out = cfg.noise, Path(cfg.out_dir)
    n_images = len({r["image"] for r in rows})
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
        "ssim_window": SSIM_WINDOW,
        "summary": summary,
        "statistics": stats,
        "per_image": rows,
        "figures": figures,
    }
    _write_text(out / "results.json", json.dumps(_json_ready(results), indent=2))
    files = [str(out / n) for n in ("per_image.csv", "summary.csv", "summary.md", "results.json")] + figures
    return EvalResult(str(out), rows, summary, stats, markdown, files)
