"""One training engine for every registered net: supervised, fine-tuning and self-supervised.

A MONAI ``SupervisedTrainer`` runs the step (:mod:`medden.engine.steps`: the net, Adam, the loss, the
noise-aware call) and a ``SupervisedEvaluator`` validates on fixed noisy/clean items; everything else
is a handler (:mod:`medden.engine.handlers`). ``ignite.distributed`` (``idist``) makes the same code
data-parallel under ``torchrun`` (gloo on CPU, NCCL on GPU); ignite's ``ProgressBar`` shows progress.
Everything the run needs is in a :class:`TrainConfig`; :func:`train` returns a :class:`TrainResult`.
The data come from :mod:`medden.data.sources` (:mod:`medden.engine.data`).

Files written under ``out_dir`` (by rank 0 only, each atomically):

- ``best.safetensors`` + ``best.json`` — the weights with the best validation SSIM so far, with the
  net name and constructor arguments in the safetensors metadata, and the sha256, iteration and
  metrics in the JSON;
- ``last.pt`` — the resumable state (model, optimiser, scheduler, early stopping, iteration, best
  score, random states), a plain dict of tensors and numbers loaded back with ``weights_only=True``;
- ``metrics.jsonl`` — one JSON object per logged training interval and per validation;
- ``config.json`` — the configuration of the run; ``tb/`` and ``mlruns/`` when tracking is asked.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import numpy as np
import torch
from ignite.engine import Events
from ignite.handlers import ProgressBar
from monai.engines import SupervisedTrainer
from monai.handlers import LrScheduleHandler
from monai.utils import CommonKeys as Keys
from monai.utils import set_determinism

from medden import checkpoints
from medden.engine.config import SCHEDULERS, TRACKERS, TrainConfig, TrainResult
from medden.engine.data import build_data, train_loader
from medden.engine.handlers import (
    BestWeights,
    DataAudit,
    EarlyStop,
    LossLog,
    RandomStates,
    ResumeState,
    RunLog,
    TrainEvents,
    Validation,
    ValidationLog,
)
from medden.engine.steps import (
    PrepareBatch,
    build_evaluator,
    build_net,
    build_optimisation,
    evaluate_items,
    passthrough_loss,
    train_call,
)
from medden.io.atomic import atomic_path

__all__ = [
    "SCHEDULERS",
    "TRACKERS",
    "TrainConfig",
    "TrainResult",
    "build_data",
    "build_net",
    "evaluate_items",
    "train",
]


def train(cfg: TrainConfig) -> TrainResult:
    """Train (or fine-tune) a net as configured; data-parallel when started under ``torchrun``.

    Example (a few iterations of DnCNN on MNI152 slices with Rician noise)::

        from medden.engine import TrainConfig, train
        result = train(TrainConfig(net="dncnn", out_dir="runs/dncnn", max_iterations=20, val_interval=10))
        print(result.best_ssim, result.best_path)
    """
    cfg.validate()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    backend = None
    if world > 1 and idist.get_world_size() == 1:  # torchrun started us; no process group yet
        backend = "nccl" if torch.cuda.is_available() and cfg.device != "cpu" else "gloo"
    box: dict[str, TrainResult] = {}
    if backend is None:  # one process (or a process group set up by the caller)
        _run(idist.get_local_rank(), cfg, box)
    else:
        with idist.Parallel(backend=backend) as parallel:
            parallel.run(_run, cfg, box)
    return box["result"]


def _run(local_rank: int, cfg: TrainConfig, box: dict[str, TrainResult]) -> None:
    """One process of a run: build the engines and their handlers, run, report."""
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
    items, transform, val_items = build_data(cfg, rank)
    net, net_kwargs = build_net(cfg, int(np.asarray(items[0]["image"]).shape[0]))
    if cfg.init_weights:
        checkpoints.load_weights(net, cfg.init_weights)
    generator = torch.Generator().manual_seed(cfg.seed + 101 + rank)  # self-supervised sub-samples/masks
    loader, sampler = train_loader(cfg, items, transform, rank, world)
    trainer, optimizer, scheduler = _trainer(cfg, net, loader, generator, device)
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: sampler.set_epoch(e.state.epoch))
    evaluator = build_evaluator(net, val_items, device, net.noise_aware) if val_items else None
    log = RunLog(out, cfg, active=rank == 0)
    try:
        early = _attach_schedule(cfg, trainer, evaluator, scheduler)
        best = BestWeights(net, out, cfg.net, net_kwargs, evaluator, write=rank == 0)
        losses = LossLog(cfg.log_interval, optimizer, log)
        for handler in (
            losses,
            Validation(cfg.val_interval, evaluator),
            best,
            ValidationLog(log, evaluator, best),
        ):
            handler.attach(trainer)
        parts = {"model": net, "optimizer": optimizer, "scheduler": scheduler}
        parts.update(best=best, early_stopping=early, log=losses)
        random = RandomStates(sampler, transform, generator, world)
        resume = ResumeState(out / "last.pt", parts, random, loader.batch_size, write=rank == 0)
        resume.attach(trainer)
        _attach_extras(cfg, trainer, out, rank, world)
        _start(cfg, trainer, resume)
        t0 = time.perf_counter()
        trainer.run()
        seconds = time.perf_counter() - t0
    finally:
        log.close()
    box["result"] = TrainResult(
        out_dir=str(out),
        iterations=trainer.state.iteration,
        best_iteration=best.best["iteration"],
        best_ssim=best.best["ssim"],
        best_psnr=best.best["psnr"],
        best_path=best.best["path"],
        best_sha256=best.best["sha256"],
        stopped_early=bool(early is not None and early.stopped),
        seconds=seconds,
        history=log.history,
    )


def _trainer(cfg: TrainConfig, net: Any, loader: Any, generator: Any, device: Any) -> tuple[Any, Any, Any]:
    """MONAI's ``SupervisedTrainer`` of ``net`` (data-parallel under ``torchrun``) with Adam and the
    loss of ``cfg``, stepping until ``max_iterations`` (:func:`_start`); with its optimiser and
    learning-rate scheduler."""
    model = idist.auto_model(net.to(device))
    optimizer, scheduler, loss = build_optimisation(cfg, model, device)
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=1,  # replaced by max_iterations when the run is set up (_start)
        train_data_loader=loader,
        epoch_length=len(loader),
        network=model,
        optimizer=optimizer,
        loss_function=passthrough_loss if cfg.self_supervised else loss,
        prepare_batch=PrepareBatch(net.noise_aware),
        inferer=train_call(cfg, net, generator, device),
        decollate=False,
        optim_set_to_none=True,
        event_names=[TrainEvents],
    )
    return trainer, optimizer, scheduler


def _attach_schedule(cfg: TrainConfig, trainer: Any, evaluator: Any, scheduler: Any) -> EarlyStop | None:
    """MONAI's ``LrScheduleHandler``: cosine per iteration on the trainer, ReduceLROnPlateau on the
    validation SSIM on the evaluator; early stopping on the evaluator. Returns the early stopping."""
    if cfg.scheduler == "cosine":
        LrScheduleHandler(scheduler, print_lr=False, epoch_level=False).attach(trainer)
    if evaluator is None:  # nothing to judge progress by
        return None
    early = EarlyStop(cfg.early_stopping, trainer) if cfg.early_stopping else None
    if early is not None:
        early.attach(evaluator)
    if cfg.scheduler == "plateau":
        step = LrScheduleHandler(
            scheduler, print_lr=False, step_transform=lambda e: e.state.metrics["val_ssim"]
        )
        step.attach(evaluator)
    return early


def _attach_extras(cfg: TrainConfig, trainer: Any, out: Path, rank: int, world: int) -> None:
    """The progress bar (rank 0) and the data audit."""
    if rank == 0 and cfg.progress:
        ProgressBar(persist=False).attach(
            trainer, output_transform=lambda o: {"loss": float(o[Keys.LOSS].detach())}
        )
    if cfg.audit_data:
        DataAudit(out, rank, world).attach(trainer)


def _start(cfg: TrainConfig, trainer: Any, resume: ResumeState) -> None:
    """Set the trainer to run until ``max_iterations``, from ``cfg.resume``'s iteration if given."""
    if cfg.resume:
        resume.load(trainer, cfg.resume, cfg.max_iterations)
    else:
        trainer.load_state_dict(
            {"iteration": 0, "epoch_length": trainer.state.epoch_length, "max_iters": cfg.max_iterations}
        )
