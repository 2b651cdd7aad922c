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
import math
import os
import time
from dataclasses import dataclass, field
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
    val_score,
)
from medden.engine.steps import (
    VAL_SCORES,
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
    "TrainingRun",
    "build_net",
    "build_run",
    "evaluate_items",
    "make_trainer",
    "run_trainer",
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
    run = build_run(cfg)
    box["result"] = run_trainer(run, make_trainer(run))


@dataclass
class TrainingRun:
    """Everything one process of a run is made of, built by :func:`build_run` before the trainer.

    The data (``items``, their ``transform``, the ``loader`` and its resumable ``sampler``, the fixed
    ``val_items``), the net and its data-parallel wrapper (``model``), the optimiser, schedule and loss,
    how a batch reaches the net (``prepare_batch``, ``inferer``), the validation ``evaluator`` (the
    plateau schedule and early stopping attached to it) and the trainer's ``handlers`` by name, in the
    order they attach. :func:`make_trainer` builds MONAI's ``SupervisedTrainer`` from it (a bundle's
    ``train.json`` spells the same trainer out), :func:`run_trainer` runs it.
    """

    cfg: TrainConfig
    rank: int
    world: int
    device: Any
    out: Path
    items: Any
    transform: Any
    val_items: list[dict[str, Any]]
    net: Any
    net_kwargs: dict[str, Any]
    loader: Any
    sampler: Any
    model: Any
    optimizer: Any
    scheduler: Any
    loss: Any
    prepare_batch: Any
    inferer: Any
    evaluator: Any
    log: RunLog
    best: BestWeights
    early: EarlyStop | None
    handlers: dict[str, Any] = field(default_factory=dict)


def build_run(cfg: TrainConfig) -> TrainingRun:
    """The pieces of one process of a run of ``cfg`` (inside the process group, if any); nothing trains
    yet. Rank 0 writes ``config.json``."""
    cfg.validate()
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
        # 2D weights may start a 3D net, blind weights a noise-aware one (other misfits fail as before)
        checkpoints.load_weights(net, cfg.init_weights, adapt=True)
    generator = torch.Generator().manual_seed(cfg.seed + 101 + rank)  # self-supervised sub-samples/masks
    loader, sampler = train_loader(cfg, items, transform, rank, world)
    model = idist.auto_model(net.to(device))
    if cfg.compile:  # the trainer runs the compiled net; weights are saved from ``net`` (shared)
        model = torch.compile(model)
    optimizer, scheduler, loss = build_optimisation(cfg, model, device)
    evaluator = None
    if val_items:
        evaluator = build_evaluator(net, val_items, device, net.noise_aware, cfg.val_metric)
    early = _attach_schedule(cfg, evaluator, scheduler)
    log = RunLog(out, cfg, active=rank == 0)
    best = BestWeights(net, out, cfg.net, net_kwargs, evaluator, write=rank == 0, key=cfg.val_metric)
    run = TrainingRun(
        cfg, rank, world, device, out, items, transform, val_items, net, net_kwargs, loader, sampler,
        model, optimizer, scheduler, passthrough_loss if cfg.self_supervised else loss,
        PrepareBatch(net.noise_aware, cfg.level_weighted), train_call(cfg, net, generator, device), evaluator,
        log, best, early,
    )  # fmt: skip
    run.handlers = _handlers(run, generator)
    return run


def _handlers(run: TrainingRun, generator: Any) -> dict[str, Any]:
    """The trainer's handlers of ``run``, by name, in the order they attach."""
    cfg = run.cfg
    handlers: dict[str, Any] = {"sampler_epoch": SamplerEpoch(run.sampler)}
    if cfg.scheduler == "cosine":
        handlers["lr_schedule"] = LrScheduleHandler(run.scheduler, print_lr=False, epoch_level=False)
    losses = LossLog(cfg.log_interval, run.optimizer, run.log)
    handlers.update(
        loss_log=losses,
        validation=Validation(cfg.val_interval, run.evaluator),
        best_weights=run.best,
        validation_log=ValidationLog(run.log, run.evaluator, run.best),
    )
    parts = {"model": run.net, "optimizer": run.optimizer, "scheduler": run.scheduler}
    parts.update(best=run.best, early_stopping=run.early, log=losses)
    random = RandomStates(run.sampler, run.transform, generator, run.world)
    handlers["resume_state"] = ResumeState(
        run.out / "last.pt", parts, random, run.loader.batch_size, write=run.rank == 0
    )
    if run.rank == 0 and cfg.progress:
        handlers["progress"] = Progress()
    if cfg.audit_data:
        handlers["data_audit"] = DataAudit(run.out, run.rank, run.world)
    return handlers


def make_trainer(run: TrainingRun) -> SupervisedTrainer:
    """MONAI's ``SupervisedTrainer`` of ``run`` (data-parallel under ``torchrun``) with its handlers; it
    steps until ``max_iterations`` (:func:`run_trainer`), whatever ``max_epochs`` says."""
    return SupervisedTrainer(
        device=run.device,
        max_epochs=math.ceil(run.cfg.max_iterations / len(run.loader)),
        train_data_loader=run.loader,
        epoch_length=len(run.loader),
        network=run.model,
        optimizer=run.optimizer,
        loss_function=run.loss,
        prepare_batch=run.prepare_batch,
        inferer=run.inferer,
        decollate=False,
        optim_set_to_none=True,
        event_names=[TrainEvents],
        train_handlers=list(run.handlers.values()),
    )


def run_trainer(run: TrainingRun, trainer: Any) -> TrainResult:
    """Run ``trainer`` (built from ``run``) until ``max_iterations``, from ``resume``'s iteration when
    given, and report."""
    cfg = run.cfg
    if run.early is not None:
        run.early.set_trainer(trainer)
    try:
        _start(cfg, trainer, run.handlers["resume_state"])
        t0 = time.perf_counter()
        trainer.run()
        seconds = time.perf_counter() - t0
    finally:
        run.log.close()
    best = run.best.best
    return TrainResult(
        out_dir=str(run.out),
        iterations=trainer.state.iteration,
        best_iteration=best["iteration"],
        best_ssim=best["ssim"],
        best_psnr=best["psnr"],
        best_path=best["path"],
        best_sha256=best["sha256"],
        stopped_early=bool(run.early is not None and run.early.stopped),
        seconds=seconds,
        history=run.log.history,
        best_val={k: best[k] for k in VAL_SCORES if best[k] is not None},
    )


class SamplerEpoch:
    """Tells the resumable sampler which epoch starts (its order depends on it)."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler

    def attach(self, engine: Any) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self.sampler.set_epoch(e.state.epoch))


class Progress:
    """ignite's ``ProgressBar`` showing the training loss."""

    def attach(self, engine: Any) -> None:
        ProgressBar(persist=False).attach(
            engine, output_transform=lambda o: {"loss": float(o[Keys.LOSS].detach())}
        )


def _attach_schedule(cfg: TrainConfig, evaluator: Any, scheduler: Any) -> EarlyStop | None:
    """ReduceLROnPlateau on the validation score ``cfg.val_metric`` (MONAI's ``LrScheduleHandler``) and
    early stopping, on the evaluator (the cosine schedule is a trainer handler). Returns the early
    stopping, whose trainer :func:`run_trainer` sets."""
    if evaluator is None:  # nothing to judge progress by
        return None
    early = EarlyStop(cfg.early_stopping, None, cfg.val_metric) if cfg.early_stopping else None
    if early is not None:
        early.attach(evaluator)
    if cfg.scheduler == "plateau":
        step = LrScheduleHandler(
            scheduler, print_lr=False, step_transform=lambda e: val_score(e, cfg.val_metric)
        )
        step.attach(evaluator)
    return early


def _start(cfg: TrainConfig, trainer: Any, resume: ResumeState) -> None:
    """Set the trainer to run until ``max_iterations``, from ``cfg.resume``'s iteration if given."""
    if cfg.resume:
        resume.load(trainer, cfg.resume, cfg.max_iterations)
    else:
        trainer.load_state_dict(
            {"iteration": 0, "epoch_length": trainer.state.epoch_length, "max_iters": cfg.max_iterations}
        )
