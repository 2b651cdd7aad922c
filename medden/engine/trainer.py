"""One training engine for every registered net: supervised, fine-tuning and self-supervised.

Built on pytorch-ignite: an ignite ``Engine`` runs the step, ``ignite.distributed`` (``idist``) makes
the same code data-parallel under ``torchrun`` (gloo on CPU, NCCL on GPU), ignite's ``ProgressBar``
shows progress. Everything the run needs is in a :class:`TrainConfig`; :func:`train` returns a
:class:`TrainResult`.

Files written under ``out_dir`` (by rank 0 only, each atomically):

- ``best.safetensors`` + ``best.json`` — the weights with the best validation SSIM so far, with the
  net name and constructor arguments in the safetensors metadata, and the sha256, iteration and
  metrics in the JSON;
- ``last.pt`` — the resumable state (model, optimiser, scheduler, iteration, best score), a plain
  dict of tensors and numbers loaded back with ``weights_only=True``;
- ``metrics.jsonl`` — one JSON object per logged training interval and per validation;
- ``config.json`` — the configuration of the run; ``tb/`` and ``mlruns/`` when tracking is asked.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medden.errors import UsageError

DATA_SOURCES = ("mni152", "mni152-2mm", "mni152-gm", "mni152-wm", "skimage-gray", "skimage-color")
SCHEDULERS = ("plateau", "cosine", "none")
TRACKERS = ("tensorboard", "mlflow")


@dataclass
class TrainConfig:
    """Everything a training run needs (saved as ``config.json`` beside the weights).

    Attributes:
        net: registered net name (``medden.nets.available()``).
        out_dir: output folder.
        net_kwargs: constructor arguments of the net (``spatial_dims`` and channels are filled in).
        spatial_dims: 2 (slices/images) or 3 (volumes).
        data: ``mni152`` (T1), ``mni152-2mm`` (T1 slices subsampled in-plane by 2), ``mni152-gm``,
            ``mni152-wm``, ``skimage-gray``, ``skimage-color``, several
            of them joined by ``+`` (``mni152+skimage-gray``: MRI slices and photographs), or a path
            to a folder of NIfTI/DICOM/images (clean data, noise added on the fly) or of noisy/clean pairs
            (``low/`` + ``high/``, ``noisy/`` + ``clean/``).
        axis: slicing axis of volumes for 2D training.
        noise: medden noise kind added on the fly (None for paired data or self-supervised training).
        level_range: range of the drawn noise level (the kind's default when None).
        absolute: the level is an absolute σ on [0, 1] data rather than relative to the maximum.
        val_levels: noise levels of the fixed validation set (three levels across the range when None).
        patch_size: training patch side.
        foreground_crop: probability that a training patch is centred on foreground (clean intensity
            above 0.1 of the [0, 1] range) rather than drawn uniformly (None): for volumes that are
            mostly air.
        batch_size: total batch size (split across data-parallel processes).
        max_iterations: training iterations.
        val_interval: validate (and checkpoint) every N iterations.
        log_interval: write the mean training loss every N iterations.
        lr, weight_decay, betas: Adam settings.
        loss: ``hybrid`` (``mse_weight``·MSE + ``ssim_weight``·(1 − SSIM)), ``charbonnier``, ``l1``, ``mse``.
        scheduler: ``plateau`` (ReduceLROnPlateau on validation SSIM), ``cosine`` (per iteration) or ``none``.
        plateau_patience, plateau_factor: ReduceLROnPlateau settings, in validations.
        early_stopping: stop after this many validations without a better SSIM (None: never).
        seed: seed of everything (weights, patches, noise); rank r uses ``seed + r`` for its data.
        resume: ``last.pt`` of an interrupted run: continue from its iteration.
        init_weights: weights to start from (fine-tuning / transfer learning), e.g. a ``best.safetensors``.
        overfit: smoke test: train and validate on only this many images, without augmentation.
        max_val_images: cap on validation images (each at every validation level).
        self_supervised: ``neighbor2neighbor`` or ``noise2self``: train on noisy data with no target.
        freeze_norm_stats: keep the running statistics of batch normalisation layers fixed (their
            affine weights still train). None: fixed for self-supervised fine-tuning, where the
            sub-sampled or masked inputs have other statistics than the full images the net later sees
            (updating them cost DnCNN 2 dB in 10 iterations on MRI), updated otherwise.
        tracking: also log to ``tensorboard`` and/or ``mlflow``.
        num_workers: data-loader worker processes.
        progress: show a progress bar.
        device: ``cpu``, ``cuda`` or None for the default of ``ignite.distributed``.
        audit_data: every rank writes the indices of the items it trained on to ``audit/rank<r>.json``.
    """

    net: str
    out_dir: str
    net_kwargs: dict[str, Any] = field(default_factory=dict)
    spatial_dims: int = 2
    data: str = "mni152"
    axis: int = 2
    noise: str | None = "rician"
    level_range: tuple[float, float] | None = None
    absolute: bool = False
    val_levels: tuple[float, ...] | None = None
    patch_size: int = 64
    foreground_crop: float | None = None
    batch_size: int = 8
    max_iterations: int = 1000
    val_interval: int = 100
    log_interval: int = 10
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    loss: str = "hybrid"
    mse_weight: float = 0.8
    ssim_weight: float = 0.2
    scheduler: str = "plateau"
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    early_stopping: int | None = None
    seed: int = 0
    resume: str | None = None
    init_weights: str | None = None
    overfit: int | None = None
    max_val_images: int | None = 8
    self_supervised: str | None = None
    freeze_norm_stats: bool | None = None
    tracking: tuple[str, ...] = ()
    num_workers: int = 0
    progress: bool = True
    device: str | None = None
    audit_data: bool = False

    def validate(self) -> None:
        """Raise :class:`UsageError` on an inconsistent configuration (before any work)."""
        from medden.engine.selfsupervised import SELF_SUPERVISED
        from medden.losses import LOSSES
        from medden.noise import NOISE_FUNCTIONS

        if self.spatial_dims not in (2, 3):
            raise UsageError(f"spatial_dims must be 2 or 3, not {self.spatial_dims}")
        for kind in (self.noise or "").split("+") if self.noise else []:
            if kind not in NOISE_FUNCTIONS:
                raise UsageError(
                    f"unknown noise {kind!r}; choose from {', '.join(NOISE_FUNCTIONS)} "
                    "(several joined by '+', e.g. rician+gaussian)"
                )
        if self.noise and "+" in self.noise and self.self_supervised:
            raise UsageError("self-supervised training takes one noise kind")
        if self.loss not in LOSSES:
            raise UsageError(f"unknown loss {self.loss!r}; choose from {', '.join(LOSSES)}")
        if self.scheduler not in SCHEDULERS:
            raise UsageError(f"unknown scheduler {self.scheduler!r}; choose from {', '.join(SCHEDULERS)}")
        if self.self_supervised is not None and self.self_supervised not in SELF_SUPERVISED:
            raise UsageError(f"self_supervised must be one of {', '.join(SELF_SUPERVISED)}")
        for name in self.tracking:
            if name not in TRACKERS:
                raise UsageError(f"unknown tracking {name!r}; choose from {', '.join(TRACKERS)}")
        for name in ("max_iterations", "val_interval", "log_interval", "batch_size", "patch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1")
        if self.patch_size < 8:
            raise UsageError("patch_size must be >= 8")
        if self.foreground_crop is not None and not 0.0 <= self.foreground_crop <= 1.0:
            raise UsageError(f"foreground_crop must be a probability in [0, 1], not {self.foreground_crop}")
        if not self.lr > 0:
            raise UsageError("lr must be > 0")
        if self.level_range is not None and not (0 <= self.level_range[0] <= self.level_range[1]):
            raise UsageError(f"level_range must be (low, high) with 0 <= low <= high, got {self.level_range}")
        parts = self.data.split("+") if not Path(self.data).exists() else [self.data]
        for part in parts:
            if part not in DATA_SOURCES and not Path(part).exists():
                raise UsageError(
                    f"data {part!r} is neither one of {', '.join(DATA_SOURCES)} nor an existing path "
                    "(combine sources with '+', e.g. mni152+skimage-gray)"
                )
        for path in (self.resume, self.init_weights):
            if path and not Path(path).is_file():
                raise UsageError(f"file not found: {path}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What a run achieved (rank 0's view)."""

    out_dir: str
    iterations: int
    best_iteration: int | None
    best_ssim: float | None
    best_psnr: float | None
    best_path: str | None
    best_sha256: str | None
    stopped_early: bool
    seconds: float
    history: list[dict[str, Any]]


# ---------------------------------------------------------------------------------------------- data


def _default_level_range(cfg: TrainConfig) -> tuple[float, float] | None:
    if cfg.level_range is not None:
        return tuple(cfg.level_range)  # type: ignore[return-value]
    if cfg.noise is None:
        return None
    from medden.transforms import DEFAULT_LEVEL_RANGE

    kinds = cfg.noise.split("+")
    return DEFAULT_LEVEL_RANGE[kinds[0]] if len(kinds) == 1 else None  # each kind its own default


def _val_levels(cfg: TrainConfig) -> list[float]:
    if cfg.val_levels:
        return [float(v) for v in cfg.val_levels]
    from medden.transforms import DEFAULT_LEVEL_RANGE

    lo, hi = _default_level_range(cfg) or DEFAULT_LEVEL_RANGE[(cfg.noise or "rician").split("+")[0]]
    lo = max(lo, hi / 10)  # a zero level validates nothing
    return [float(v) for v in np.linspace(lo, hi, 3)]


def _clean_sources(cfg: TrainConfig, split: str) -> list[np.ndarray]:
    """Clean images of ``split``; ``a+b`` data concatenates the sources (e.g. MRI and photographs)."""
    from medden.data import datasets as ds

    if "+" in cfg.data and not Path(cfg.data).exists():
        return [
            img
            for part in cfg.data.split("+")
            for img in _clean_sources(dataclasses.replace(cfg, data=part), split)
        ]
    if cfg.data == "mni152-2mm":  # the T1 slices subsampled in-plane: structures twice as sharp per pixel
        return [
            np.ascontiguousarray(s[:, ::2, ::2])
            for s in _clean_sources(dataclasses.replace(cfg, data="mni152"), split)
        ]
    if cfg.data.startswith("mni152"):
        kind = {"mni152": "t1", "mni152-gm": "gm", "mni152-wm": "wm"}[cfg.data]
        if cfg.spatial_dims == 3:
            return ds.mni152_slabs(split, axis=cfg.axis, kind=kind)
        return ds.mni152_slices(split, axis=cfg.axis, kind=kind)
    if cfg.data.startswith("skimage"):
        if cfg.spatial_dims == 3:
            raise UsageError("skimage images are 2D: use spatial_dims=2")
        return ds.natural_images(split, gray=cfg.data == "skimage-gray", max_side=512)
    # a user folder: split by file/slice order, 80 % train, 10 % val, 10 % test (contiguous)
    images = ds.folder_images(cfg.data, axis=cfg.axis, spatial_dims=cfg.spatial_dims)
    n = len(images)
    cut1, cut2 = max(1, int(0.8 * n)), max(1, int(0.9 * n))
    parts = {
        "train": images[:cut1],
        "val": images[cut1:cut2] or images[-1:],
        "test": images[cut2:] or images[-1:],
    }
    return parts[split]


def _is_paired(cfg: TrainConfig) -> bool:
    from medden.data.datasets import PAIR_LAYOUTS

    root = Path(cfg.data)
    return root.is_dir() and any((root / a).is_dir() and (root / b).is_dir() for a, b in PAIR_LAYOUTS)


def build_data(cfg: TrainConfig, rank: int = 0) -> tuple[list[dict[str, Any]], Any, list[dict[str, Any]]]:
    """Training items, their transform (seeded for ``rank``) and the fixed validation items."""
    from medden.data import datasets as ds

    paired = _is_paired(cfg)
    if paired:
        pairs = ds.paired_folder(cfg.data)
        n_val = max(1, len(pairs) // 10) if len(pairs) > 1 else 0
        train_pairs, val_items = pairs[n_val:] or pairs, pairs[:n_val] or pairs[:1]
        train_items = [{"image": p["image"], "target": p["target"]} for p in train_pairs]
        noise = None
    else:
        sources = _clean_sources(cfg, "train")
        val_sources = _clean_sources(cfg, "val")
        if cfg.overfit:
            sources = sources[: cfg.overfit]
            val_sources = sources
        if not sources:
            raise UsageError(f"no training images in {cfg.data}")
        noise = cfg.noise
        train_items = [{"image": s} for s in sources]
        val_sources = val_sources[: cfg.max_val_images] if cfg.max_val_images else val_sources
        if cfg.self_supervised:
            # the user's situation: fixed noisy scans, no clean copy (noise drawn once per image)
            if noise is not None:
                noisy = ds.validation_items(
                    sources,
                    noise,
                    [float(np.mean(_default_level_range(cfg)))],
                    cfg.absolute,
                    seed=cfg.seed + 77,
                )
                train_items = [{"image": it["image"]} for it in noisy]
            noise = None
        val_items = (
            ds.validation_items(val_sources, cfg.noise, _val_levels(cfg), cfg.absolute) if cfg.noise else []
        )
    if cfg.max_val_images and paired:
        val_items = val_items[: cfg.max_val_images]
    transform = ds.train_transforms(
        cfg.spatial_dims,
        cfg.patch_size,
        noise,
        level_range=_default_level_range(cfg),
        absolute=cfg.absolute,
        augment=not cfg.overfit,
        paired=paired,
        foreground=cfg.foreground_crop,
    )
    transform.set_random_state(cfg.seed + 1 + rank)
    for i, item in enumerate(train_items):
        item["index"] = i
    return train_items, transform, val_items


# ------------------------------------------------------------------------------------------- helpers


def _unwrap(model: Any) -> Any:
    return model.module if hasattr(model, "module") else model


def _plain(t: Any) -> Any:
    """A MetaTensor as a plain tensor (faster, and DDP-friendly)."""
    return t.as_tensor() if hasattr(t, "as_tensor") else t


def _call(model: Any, x: Any, sigma: Any, noise_aware: bool) -> Any:
    if noise_aware and sigma is not None:
        return model(x, sigma)
    return model(x)


def build_net(cfg: TrainConfig, in_channels: int) -> tuple[Any, dict[str, Any]]:
    """The registered net for ``cfg`` and the full constructor arguments used (stored with the weights)."""
    from medden import nets

    kwargs = {"spatial_dims": cfg.spatial_dims, "in_channels": in_channels, "out_channels": in_channels}
    kwargs.update(cfg.net_kwargs)
    if cfg.net not in nets.available():
        raise UsageError(f"unknown net {cfg.net!r}; available: {', '.join(nets.available())}")
    return nets.get(cfg.net, **kwargs), kwargs


def evaluate_items(
    model: Any, items: Sequence[dict[str, Any]], device: Any, noise_aware: bool
) -> dict[str, float]:
    """Mean PSNR and SSIM (data range 1) of ``model`` on fixed noisy/clean items."""
    import torch

    from medden.metrics import psnr, ssim

    net = _unwrap(model)
    was_training = net.training
    net.eval()
    p, s = [], []
    with torch.inference_mode():
        for item in items:
            x = torch.as_tensor(item["image"])[None].to(device)
            sigma = torch.as_tensor([float(item.get("sigma", 0.0))], device=device)
            pred = _call(net, x, sigma, noise_aware).clamp(0, 1)[0].cpu().numpy()
            p.append(psnr(item["target"], pred, data_range=1.0))
            s.append(ssim(item["target"], pred, data_range=1.0))
    net.train(was_training)
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(s))}


class _Trackers:
    """JSON-lines log plus optional TensorBoard / MLflow, on rank 0 only."""

    def __init__(self, out: Path, cfg: TrainConfig, active: bool) -> None:
        self.active = active
        self.path = out / "metrics.jsonl"
        self.tb = None
        self.mlflow = None
        if not active:
            return
        if "tensorboard" in cfg.tracking:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UsageError(
                    "--tracking tensorboard needs the tensorboard package (pip install tensorboard)"
                ) from None
            self.tb = SummaryWriter(log_dir=str(out / "tb"))
        if "mlflow" in cfg.tracking:
            try:
                import mlflow
            except ImportError:
                raise UsageError("--tracking mlflow needs mlflow (pip install mlflow-skinny)") from None
            if not os.environ.get("MLFLOW_TRACKING_URI"):  # a local file store beside the weights
                # MLflow 3 keeps the file store only on request; a database needs a server or SQLAlchemy
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
                mlflow.set_tracking_uri((out / "mlruns").resolve().as_uri())
            mlflow.set_experiment("medden")
            mlflow.start_run(run_name=f"{cfg.net}-{out.name}")
            mlflow.log_params({k: str(v)[:250] for k, v in cfg.to_json().items()})
            self.mlflow = mlflow

    def log(self, record: dict[str, Any]) -> None:
        if not self.active:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        step = int(record["iteration"])
        scalars = {k: v for k, v in record.items() if k != "iteration" and isinstance(v, (int, float))}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()
        if self.mlflow is not None:
            self.mlflow.log_metrics({k: float(v) for k, v in scalars.items()}, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.mlflow is not None:
            self.mlflow.end_run()


def _save_resume_state(
    path: Path, model: Any, optimizer: Any, scheduler: Any, iteration: int, best: dict
) -> None:
    import torch

    from medden.io.atomic import atomic_path

    state = {
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "iteration": iteration,
        "best": {k: v for k, v in best.items() if v is not None},
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


# ---------------------------------------------------------------------------------------------- run


def train(cfg: TrainConfig) -> TrainResult:
    """Train (or fine-tune) a net as configured; data-parallel when started under ``torchrun``.

    Example (a few iterations of DnCNN on MNI152 slices with Rician noise)::

        from medden.engine import TrainConfig, train
        result = train(TrainConfig(net="dncnn", out_dir="runs/dncnn", max_iterations=20, val_interval=10))
        print(result.best_ssim, result.best_path)
    """
    import ignite.distributed as idist

    cfg.validate()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    backend = None
    if world > 1 and idist.get_world_size() == 1:  # torchrun started us; no process group yet
        import torch

        backend = "nccl" if torch.cuda.is_available() and cfg.device != "cpu" else "gloo"
    box: dict[str, TrainResult] = {}
    if backend is None:  # one process (or a process group set up by the caller)
        _run(idist.get_local_rank(), cfg, box)
    else:
        with idist.Parallel(backend=backend) as parallel:
            parallel.run(_run, cfg, box)
    return box["result"]


def _run(local_rank: int, cfg: TrainConfig, box: dict[str, TrainResult]) -> None:
    import ignite.distributed as idist
    import torch
    from ignite.engine import Engine, Events
    from monai.utils import set_determinism

    from medden import checkpoints
    from medden.engine.selfsupervised import SELF_SUPERVISED
    from medden.io.atomic import atomic_path
    from medden.losses import get_loss

    rank, world = idist.get_rank(), idist.get_world_size()
    if world > 1 and not torch.cuda.is_available():
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    set_determinism(seed=cfg.seed)
    device = torch.device(cfg.device) if cfg.device else idist.device()
    out = Path(cfg.out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "config.json") as tmp:
            tmp.write_text(json.dumps(cfg.to_json(), indent=2))

    train_items, transform, val_items = build_data(cfg, rank)
    in_channels = int(np.asarray(train_items[0]["image"]).shape[0])
    model, net_kwargs = build_net(cfg, in_channels)
    noise_aware = bool(getattr(model, "noise_aware", False))
    if cfg.init_weights:
        checkpoints.load_weights(model, cfg.init_weights)
    model = idist.auto_model(model.to(device))
    optimizer = idist.auto_optim(
        torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    )
    scheduler: Any = None
    if cfg.scheduler == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
    elif cfg.scheduler == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=cfg.max_iterations, eta_min=cfg.lr / 100
        )
    loss_fn = get_loss(
        cfg.loss,
        spatial_dims=cfg.spatial_dims,
        **({"mse_weight": cfg.mse_weight, "ssim_weight": cfg.ssim_weight} if cfg.loss == "hybrid" else {}),
    ).to(device)
    ssl = None
    if cfg.self_supervised:
        gen = torch.Generator().manual_seed(cfg.seed + 101 + rank)
        ssl = SELF_SUPERVISED[cfg.self_supervised](spatial_dims=cfg.spatial_dims, generator=gen).to(device)

    from monai.data import Dataset
    from monai.data.utils import list_data_collate, worker_init_fn

    # enough items per epoch for at least 20 steps; DistributedSampler gives each rank its own share
    repeats = max(1, math.ceil(20 * cfg.batch_size / len(train_items)))
    dataset = Dataset(data=[dict(it) for it in train_items] * repeats, transform=transform)
    if cfg.batch_size % world:
        raise UsageError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    sampler = None
    if world > 1:  # each rank gets its own share of every epoch
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size // world,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.num_workers,
        collate_fn=list_data_collate,
        worker_init_fn=worker_init_fn,
        persistent_workers=cfg.num_workers > 0,
    )

    seen: list[int] = []
    freeze = cfg.self_supervised is not None if cfg.freeze_norm_stats is None else cfg.freeze_norm_stats
    batch_norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)
    norms = [m for m in model.modules() if isinstance(m, batch_norms)] if freeze else []

    def step(engine: Engine, batch: dict[str, Any]) -> dict[str, float]:
        model.train()
        for m in norms:  # the running statistics stay those of the trained net
            m.eval()
        x = _plain(batch["image"]).to(device).float()
        if cfg.audit_data:
            seen.extend(int(i) for i in batch["index"])
        if ssl is not None:
            loss = ssl(lambda t: model(t), x)
        else:
            y = _plain(batch["target"]).to(device).float()
            sigma = batch.get("sigma")
            sigma = _plain(sigma).to(device).float() if sigma is not None else None
            loss = loss_fn(_call(model, x, sigma, noise_aware), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if cfg.scheduler == "cosine":
            scheduler.step()
        return {"loss": float(loss.detach())}

    trainer = Engine(step)
    if sampler is not None:
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: sampler.set_epoch(e.state.epoch))
    best: dict[str, Any] = {"ssim": None, "psnr": None, "iteration": None, "sha256": None, "path": None}
    stale = {"count": 0, "stopped_early": False}
    history: list[dict[str, Any]] = []
    trackers = _Trackers(out, cfg, active=rank == 0)
    losses: list[float] = []
    start_iteration = 0

    if cfg.resume:
        state = torch.load(cfg.resume, map_location="cpu", weights_only=True)
        _unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        start_iteration = int(state["iteration"])
        best.update(state.get("best", {}))
        if start_iteration >= cfg.max_iterations:
            raise UsageError(f"{cfg.resume} is already at iteration {start_iteration} >= max_iterations")

    @trainer.on(Events.ITERATION_COMPLETED)
    def _log_loss(engine: Engine) -> None:
        losses.append(engine.state.output["loss"])
        if engine.state.iteration % cfg.log_interval == 0:
            lr = optimizer.param_groups[0]["lr"]
            record = {"iteration": engine.state.iteration, "loss": float(np.mean(losses)), "lr": lr}
            losses.clear()
            history.append(record)
            trackers.log(record)

    @trainer.on(Events.ITERATION_COMPLETED(every=cfg.val_interval) | Events.COMPLETED)
    def _validate(engine: Engine) -> None:
        it = engine.state.iteration
        if history and history[-1].get("iteration") == it and "val_ssim" in history[-1]:
            return  # COMPLETED right after a validation
        if val_items:
            metrics = evaluate_items(model, val_items, device, noise_aware)
            improved = best["ssim"] is None or metrics["ssim"] > best["ssim"]
            if improved:
                best.update(ssim=metrics["ssim"], psnr=metrics["psnr"], iteration=it)
                stale["count"] = 0
                if rank == 0:
                    path = out / "best.safetensors"
                    digest = checkpoints.save_weights(
                        _unwrap(model), path, net=cfg.net, net_kwargs=net_kwargs, iteration=it, val=metrics
                    )
                    best.update(sha256=digest, path=str(path))
                    with atomic_path(out / "best.json") as tmp:
                        tmp.write_text(
                            json.dumps({"net": cfg.net, "net_kwargs": net_kwargs, **best}, indent=2)
                        )
            else:
                stale["count"] += 1
            if scheduler is not None and cfg.scheduler == "plateau":
                scheduler.step(metrics["ssim"])
            record = {
                "iteration": it,
                "val_psnr": metrics["psnr"],
                "val_ssim": metrics["ssim"],
                "best_ssim": best["ssim"],
            }
        else:  # self-supervised on data with no clean reference: keep the latest weights
            record = {"iteration": it}
            if rank == 0:
                path = out / "best.safetensors"
                digest = checkpoints.save_weights(
                    _unwrap(model), path, net=cfg.net, net_kwargs=net_kwargs, iteration=it
                )
                best.update(iteration=it, sha256=digest, path=str(path))
        history.append(record)
        trackers.log(record)
        if rank == 0:
            _save_resume_state(out / "last.pt", model, optimizer, scheduler, it, best)
        if cfg.early_stopping and stale["count"] >= cfg.early_stopping:
            stale["stopped_early"] = True
            engine.terminate()

    if rank == 0 and cfg.progress:
        from ignite.handlers import ProgressBar

        ProgressBar(persist=False).attach(trainer, output_transform=lambda o: {"loss": o["loss"]})

    t0 = time.perf_counter()
    if start_iteration:
        trainer.load_state_dict(
            {"iteration": start_iteration, "epoch_length": len(loader), "max_iters": cfg.max_iterations}
        )
        trainer.run(loader)
    else:
        trainer.run(loader, max_iters=cfg.max_iterations, epoch_length=len(loader))
    seconds = time.perf_counter() - t0
    trackers.close()
    if cfg.audit_data:
        audit = out / "audit"
        audit.mkdir(parents=True, exist_ok=True)
        with atomic_path(audit / f"rank{rank}.json") as tmp:
            tmp.write_text(json.dumps({"rank": rank, "world": world, "indices": seen}))
    box["result"] = TrainResult(
        out_dir=str(out),
        iterations=trainer.state.iteration,
        best_iteration=best["iteration"],
        best_ssim=best["ssim"],
        best_psnr=best["psnr"],
        best_path=best["path"],
        best_sha256=best["sha256"],
        stopped_early=stale["stopped_early"],
        seconds=seconds,
        history=history,
    )
