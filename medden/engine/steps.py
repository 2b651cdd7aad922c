"""The pieces MONAI's engines are built from: the net, the optimiser and its schedule, the loss, how a
batch reaches the net (``prepare_batch`` and ``inferer``), and the validation evaluator with its
PSNR/SSIM metrics."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import ignite.distributed as idist
import numpy as np
import torch
from ignite.metrics import Metric
from monai.data.utils import list_data_collate
from monai.engines import SupervisedEvaluator
from monai.utils import CommonKeys as Keys

from medden import nets
from medden.engine.config import VAL_METRICS, TrainConfig
from medden.engine.selfsupervised import SELF_SUPERVISED
from medden.errors import UsageError
from medden.losses import get_loss
from medden.metrics import foreground_mask, psnr, ssim

_BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)


def unwrap(model: Any) -> Any:
    """The net inside a ``torch.compile`` and/or data-parallel wrapper (or the net itself)."""
    model = getattr(model, "_orig_mod", model)
    return model.module if hasattr(model, "module") else model


def build_net(cfg: TrainConfig, in_channels: int) -> tuple[Any, dict[str, Any]]:
    """The registered net for ``cfg`` and the full constructor arguments used (stored with the weights)."""
    kwargs = {"spatial_dims": cfg.spatial_dims, "in_channels": in_channels, "out_channels": in_channels}
    kwargs.update(cfg.net_kwargs)
    if cfg.net not in nets.available():
        raise UsageError(f"unknown net {cfg.net!r}; available: {', '.join(nets.available())}")
    return nets.get(cfg.net, **kwargs), kwargs


def build_optimisation(cfg: TrainConfig, model: Any, device: Any) -> tuple[Any, Any, Any]:
    """Adam (data-parallel aware), the learning-rate scheduler (None for ``none``) and the loss."""
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
    weights = {"mse_weight": cfg.mse_weight, "ssim_weight": cfg.ssim_weight} if cfg.loss == "hybrid" else {}
    loss = get_loss(cfg.loss, spatial_dims=cfg.spatial_dims, **weights).to(device)
    return optimizer, scheduler, loss


#: the smallest noise level a level-weighted loss divides by (``TrainConfig.level_weighted``)
LEVEL_FLOOR = 0.01


class PrepareBatch:
    """MONAI's ``prepare_batch``: ``image`` and ``target`` as plain float tensors on the device (the
    noisy image stands in for a missing target), plus ``sigma`` as the net's second argument when
    the net is noise-aware and the batch carries the drawn level.

    With ``level_weighted`` the target is divided by each item's level (at least :data:`LEVEL_FLOOR`)
    and the level handed on as ``level_scale``, by which :class:`NetCall` divides the prediction: the
    loss then measures errors in units of the noise, so a low-noise item weighs as much as a noisy one
    (with an absolute loss its error, and so its gradient, is otherwise about σ times smaller)."""

    def __init__(self, noise_aware: bool, level_weighted: bool = False) -> None:
        self.noise_aware, self.level_weighted = noise_aware, level_weighted

    def __call__(
        self, batch: dict[str, Any], device: Any = None, non_blocking: bool = False, **_: Any
    ) -> Any:
        x = _plain(batch["image"]).to(device, non_blocking=non_blocking).float()
        y = _plain(batch["target"]).to(device, non_blocking=non_blocking).float() if "target" in batch else x
        sigma = batch.get("sigma")
        if sigma is not None:
            sigma = _plain(sigma).to(device, non_blocking=non_blocking).float()
        args = (sigma,) if self.noise_aware and sigma is not None else ()
        if not self.level_weighted:
            return (x, y, args, {}) if args else (x, y)
        if sigma is None:
            raise UsageError("a level-weighted loss needs every item's noise level (noise added on the fly)")
        scale = sigma.clamp_min(LEVEL_FLOOR).reshape(-1, *([1] * (y.dim() - 1)))
        return x, y / scale, args, {"level_scale": scale}


def _plain(t: Any) -> Any:
    """A MetaTensor as a plain tensor (faster, and DDP-friendly)."""
    return t.as_tensor() if hasattr(t, "as_tensor") else torch.as_tensor(t)


class NetCall:
    """MONAI's ``inferer``: ``net(x, *args)`` (``args`` is ``(sigma,)`` for a noise-aware net), with the
    batch-normalisation layers in ``frozen`` kept in eval mode so their running statistics stay."""

    def __init__(self, frozen: Sequence[Any] = ()) -> None:
        self.frozen = list(frozen)

    def __call__(self, inputs: Any, network: Any, *args: Any, **kwargs: Any) -> Any:
        for m in self.frozen:  # the trainer has just put the whole net in training mode
            m.eval()
        scale = kwargs.pop("level_scale", None)  # a level-weighted loss (PrepareBatch)
        out = network(inputs, *args, **kwargs)
        return out if scale is None else out / scale


class SelfSupervisedCall(NetCall):
    """The inferer of self-supervised training: the blind-spot loss runs the net itself on the noisy
    batch, so the "prediction" is the loss value, which :func:`passthrough_loss` hands on."""

    def __init__(self, loss: Callable[..., Any], frozen: Sequence[Any] = ()) -> None:
        super().__init__(frozen)
        self.loss = loss

    def __call__(self, inputs: Any, network: Any, *args: Any, **kwargs: Any) -> Any:
        for m in self.frozen:
            m.eval()
        return self.loss(lambda t: network(t), inputs)


def passthrough_loss(value: Any, _target: Any) -> Any:
    """The loss function of self-supervised training: the value :class:`SelfSupervisedCall` computed."""
    return value


def train_call(cfg: TrainConfig, net: Any, generator: Any, device: Any) -> NetCall:
    """How the trainer runs the net: supervised, or through the self-supervised loss (drawing its
    sub-samples or masks from ``generator``); batch-norm statistics frozen as ``cfg`` says."""
    freeze = cfg.self_supervised is not None if cfg.freeze_norm_stats is None else cfg.freeze_norm_stats
    frozen = [m for m in net.modules() if isinstance(m, _BATCH_NORMS)] if freeze else []
    if cfg.self_supervised is None:
        return NetCall(frozen)
    ssl = SELF_SUPERVISED[cfg.self_supervised](spatial_dims=cfg.spatial_dims, generator=generator)
    return SelfSupervisedCall(ssl.to(device), frozen)


class ItemScore(Metric):
    """Mean over the images of ``score(target, prediction clamped to [0, 1], data_range=1)``
    (:func:`medden.metrics.psnr` or :func:`medden.metrics.ssim`), each image scored on its own; with
    ``foreground``, over the target's foreground (:func:`medden.metrics.foreground_mask`) only, an
    image with none left out (NaN when no image has any)."""

    def __init__(self, score: Callable[..., float], foreground: bool = False) -> None:
        self.score, self.foreground = score, foreground
        self._values: list[float] = []
        super().__init__(output_transform=lambda out: (out[Keys.PRED], out[Keys.LABEL]))

    def reset(self) -> None:
        self._values = []

    def update(self, output: tuple[Any, Any]) -> None:
        pred, target = output
        for p, t in zip(pred.clamp(0, 1).cpu().numpy(), target.cpu().numpy(), strict=True):
            if not self.foreground:
                self._values.append(self.score(t, p, data_range=1.0))
                continue
            try:
                self._values.append(self.score(t, p, data_range=1.0, mask=foreground_mask(t)))
            except ValueError:  # an empty image: no foreground to score
                continue

    def compute(self) -> float:
        return float(np.mean(self._values)) if self._values else math.nan


#: the validation scores (:data:`~medden.engine.config.VAL_METRICS`), by the name they have in
#: ``state.metrics`` after ``val_``: the score function and whether it is over the foreground only
VAL_SCORES: dict[str, tuple[Callable[..., float], bool]] = {
    name: (ssim if name.startswith("ssim") else psnr, name.endswith("_fg")) for name in VAL_METRICS
}


def build_evaluator(
    net: Any, items: Sequence[dict[str, Any]], device: Any, noise_aware: bool, key: str = "ssim"
) -> Any:
    """A MONAI ``SupervisedEvaluator`` of ``net`` on fixed noisy/clean items, one image per step, with
    ``val_ssim``, ``val_psnr``, ``val_ssim_fg`` and ``val_psnr_fg`` (:data:`VAL_SCORES`) in
    ``state.metrics``, ``val_<key>`` its key metric.

    The items are collated once (no data loader: nothing draws from the global random state)."""
    batches = [list_data_collate([item]) for item in items]
    metrics = {f"val_{name}": ItemScore(*how) for name, how in VAL_SCORES.items()}
    return SupervisedEvaluator(
        device=device,
        val_data_loader=batches,
        network=net,
        prepare_batch=PrepareBatch(noise_aware),
        inferer=NetCall(),
        key_val_metric={f"val_{key}": metrics.pop(f"val_{key}")},
        additional_metrics=metrics,
        decollate=False,
    )


def evaluate_items(
    model: Any, items: Sequence[dict[str, Any]], device: Any, noise_aware: bool
) -> dict[str, float]:
    """Mean PSNR and SSIM (data range 1) of ``model`` on fixed noisy/clean items, on the whole image
    and on the foreground (``psnr``, ``ssim``, ``psnr_fg``, ``ssim_fg``), as the trainer validates
    (:func:`build_evaluator`); the model's training mode is left as it was."""
    evaluator = build_evaluator(unwrap(model), items, device, noise_aware)
    evaluator.run()
    return {name: evaluator.state.metrics[f"val_{name}"] for name in VAL_SCORES}
