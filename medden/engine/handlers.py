"""The trainer's handlers: what happens around the training step, each a small ignite handler.

MONAI's :class:`~monai.handlers.ValidationHandler`, :class:`~monai.handlers.EarlyStopHandler` and
:class:`~monai.handlers.LrScheduleHandler` are used as they are (the first two lightly extended);
medden's own handlers cover what they do not:

- :class:`Validation` — MONAI's ``ValidationHandler`` every ``val_interval`` iterations and once more
  at the end of a run that stops off the interval, then fires :attr:`TrainEvents.VALIDATED`, the
  event the checkpoint handlers listen to (it fires with no validation data too: the latest weights
  are then kept);
- :class:`BestWeights` — ``best.safetensors`` (net name and arguments in its metadata) and
  ``best.json`` (sha256, iteration, metrics) for the best validation SSIM;
- :class:`ResumeState` — ``last.pt``, a plain dict of tensors and numbers read back with
  ``weights_only=True``: model, optimiser, scheduler, early stopping, best score, pending loss
  values and the random states (:class:`RandomStates`);
- :class:`LossLog`, :class:`ValidationLog` and :class:`RunLog` — the records of ``metrics.jsonl``,
  TensorBoard and MLflow (MONAI's ``MLFlowHandler`` refuses the local file store kept beside the
  weights, and its ``TensorBoardStatsHandler`` logs the loss of single iterations rather than the
  interval means kept here, so one writer serves all three);
- :class:`DataAudit` — the indices each rank trained on.

Only rank 0 writes files (``write`` is False elsewhere), except the audit, one file per rank.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, EventEnum, Events
from monai.handlers import EarlyStopHandler, ValidationHandler
from monai.transforms import Randomizable, Transform
from monai.utils import CommonKeys as Keys

from medden import checkpoints
from medden.engine.config import TrainConfig
from medden.engine.data import ResumableSampler
from medden.engine.steps import VAL_SCORES
from medden.errors import UsageError
from medden.io.atomic import atomic_path


class TrainEvents(EventEnum):
    """Events of the medden trainer besides ignite's."""

    VALIDATED = "validated"  # after each validation (at each val_interval without validation data)


class Validation(ValidationHandler):
    """MONAI's ``ValidationHandler`` every ``interval`` iterations and at the end of the run (unless
    the run ended on a validation), then :attr:`TrainEvents.VALIDATED` on the trainer.

    The evaluator runs with the trainer's iteration as its "epoch", so its state says which iteration
    it validated. With ``validator=None`` (no validation data) only the event fires."""

    def __init__(self, interval: int, validator: Any = None) -> None:
        super().__init__(interval, validator, epoch_level=False)
        self.last: int | None = None

    def attach(self, engine: Engine) -> None:
        super().attach(engine)
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        it = engine.state.iteration
        if it == self.last:  # the run ended right after a validation
            return
        self.last = it
        if self.validator is not None:
            self.validator.run(it)
        engine.fire_event(TrainEvents.VALIDATED)


def val_score(engine: Engine, key: str = "ssim") -> float:
    """The validation score ``val_<key>`` of an evaluator, a non-finite value counted as the worst."""
    value = float(engine.state.metrics[f"val_{key}"])
    return value if math.isfinite(value) else -math.inf


class EarlyStop(EarlyStopHandler):
    """MONAI's ``EarlyStopHandler`` on a validation score (``val_<key>``; attached to the evaluator),
    whose counter and best score are saved in ``last.pt``."""

    def __init__(self, patience: int, trainer: Engine, key: str = "ssim") -> None:
        super().__init__(
            patience, score_function=lambda e: val_score(e, key), trainer=trainer, epoch_level=True
        )

    def set_trainer(self, trainer: Engine) -> None:
        super().set_trainer(trainer)
        # ignite prints "Stop training" on every rank; the run's summary says stopped_early instead
        self._handler.logger.setLevel(logging.WARNING)

    @property
    def stopped(self) -> bool:
        """Whether it ended the run."""
        return self._handler is not None and self._handler.counter >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return dict(self._handler.state_dict()) if self._handler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._handler is not None:
            self._handler.load_state_dict(state)


class RunLog:
    """The run's records, kept in :attr:`history` and, when ``active`` (rank 0), appended to
    ``metrics.jsonl`` and sent to TensorBoard (``tb/``) and MLflow (``mlruns/``) when ``cfg`` asks."""

    def __init__(self, out: Path, cfg: TrainConfig, active: bool) -> None:
        self.active, self.path = active, out / "metrics.jsonl"
        self.history: list[dict[str, Any]] = []
        self.tb: Any = None
        self.mlflow: Any = None
        if active and "tensorboard" in cfg.tracking:
            try:
                from torch.utils.tensorboard import SummaryWriter  # defers tensorboard
            except ImportError:
                raise UsageError(
                    "--tracking tensorboard needs the tensorboard package (pip install tensorboard)"
                ) from None
            self.tb = SummaryWriter(log_dir=str(out / "tb"))
        if active and "mlflow" in cfg.tracking:
            self.mlflow = _start_mlflow(out, cfg)

    def add(self, record: dict[str, Any]) -> None:
        self.history.append(record)
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


def _start_mlflow(out: Path, cfg: TrainConfig) -> Any:
    try:
        import mlflow  # defers mlflow
    except ImportError:
        raise UsageError("--tracking mlflow needs mlflow (pip install mlflow-skinny)") from None
    if not os.environ.get("MLFLOW_TRACKING_URI"):  # a local file store beside the weights
        # MLflow 3 keeps the file store only on request; a database needs a server or SQLAlchemy
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri((out / "mlruns").resolve().as_uri())
    mlflow.set_experiment("medden")
    mlflow.start_run(run_name=f"{cfg.net}-{out.name}")
    mlflow.log_params({k: str(v)[:250] for k, v in cfg.to_json().items()})
    return mlflow


class LossLog:
    """Every ``interval`` iterations, a record of the mean training loss since the last one and the
    learning rate (after this iteration's scheduler step)."""

    def __init__(self, interval: int, optimizer: Any, log: RunLog) -> None:
        self.interval, self.optimizer, self.log = interval, optimizer, log
        self.losses: list[float] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        self.losses.append(float(engine.state.output[Keys.LOSS].detach()))
        it = engine.state.iteration
        if it % self.interval == 0:
            lr = self.optimizer.param_groups[0]["lr"]
            self.log.add({"iteration": it, "loss": float(np.mean(self.losses)), "lr": lr})
            self.losses.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"losses": list(self.losses)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses = [float(v) for v in state.get("losses", [])]


class BestWeights:
    """On :attr:`TrainEvents.VALIDATED`: keep the weights with the best validation score ``key``
    (``ssim``, ``psnr``, ``ssim_fg`` or ``psnr_fg``) in ``best.safetensors`` (net name, arguments,
    iteration and every score in its metadata) and ``best.json`` (the same, with the sha256 and the
    key in ``selected_on``); with no evaluator, the latest weights."""

    def __init__(
        self,
        net: Any,
        out: Path,
        name: str,
        net_kwargs: dict[str, Any],
        evaluator: Any,
        write: bool,
        key: str = "ssim",
    ) -> None:
        self.net, self.out, self.name, self.net_kwargs = net, out, name, net_kwargs
        self.evaluator, self.write, self.key = evaluator, write, key
        self.best: dict[str, Any] = {
            "ssim": None,
            "psnr": None,
            "ssim_fg": None,
            "psnr_fg": None,
            "iteration": None,
            "sha256": None,
            "path": None,
        }

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(TrainEvents.VALIDATED, self)

    def __call__(self, engine: Engine) -> None:
        it = engine.state.iteration
        if self.evaluator is None:  # self-supervised on data with no clean reference: keep the latest
            self.best.update(iteration=it)
            self._save(it, None)
            return
        metrics = {name: float(self.evaluator.state.metrics[f"val_{name}"]) for name in VAL_SCORES}
        score = val_score(self.evaluator, self.key)
        kept = self.best[self.key]
        if kept is None or score > (kept if math.isfinite(kept) else -math.inf):
            self.best.update(metrics, iteration=it)
            self._save(it, metrics)

    def _save(self, it: int, metrics: dict[str, float] | None) -> None:
        if not self.write:
            return
        path = self.out / "best.safetensors"
        extra = {"val": metrics} if metrics is not None else {}
        digest = checkpoints.save_weights(
            self.net, path, net=self.name, net_kwargs=self.net_kwargs, iteration=it, **extra
        )
        self.best.update(sha256=digest, path=str(path))
        if metrics is not None:
            with atomic_path(self.out / "best.json") as tmp:
                record = {"net": self.name, "net_kwargs": self.net_kwargs, "selected_on": self.key}
                tmp.write_text(json.dumps({**record, **self.best}, indent=2))

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.best.items() if v is not None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best.update(state)


class ValidationLog:
    """On :attr:`TrainEvents.VALIDATED`: the record ``iteration``, ``val_psnr``, ``val_ssim``,
    ``val_psnr_fg``, ``val_ssim_fg``, ``best_iteration`` and ``best_ssim`` (the whole-image SSIM of the
    kept weights, whatever score selected them); the iteration only with no evaluator."""

    def __init__(self, log: RunLog, evaluator: Any, best: BestWeights) -> None:
        self.log, self.evaluator, self.best = log, evaluator, best

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(TrainEvents.VALIDATED, self)

    def __call__(self, engine: Engine) -> None:
        record: dict[str, Any] = {"iteration": engine.state.iteration}
        if self.evaluator is not None:
            metrics = self.evaluator.state.metrics
            record.update({f"val_{name}": metrics[f"val_{name}"] for name in VAL_SCORES})
            record.update(best_iteration=self.best.best["iteration"], best_ssim=self.best.best["ssim"])
        self.log.add(record)


class RandomStates:
    """The random states a resumed run needs to go on exactly as if it had not stopped: the global
    torch state and the epoch order (:class:`~medden.engine.data.ResumableSampler`), numpy's global
    state, every random transform's own state, and the self-supervised loss's generator.

    Restored only when the saved run and this one are single-process (data-parallel ranks draw from
    their own states, which only rank 0 could save); the epoch order is always resumed."""

    def __init__(self, sampler: ResumableSampler, transform: Any, generator: Any, world: int) -> None:
        self.sampler, self.generator, self.world = sampler, generator, world
        self.transforms = _random_states(transform)

    def state_dict(self, consumed: int) -> dict[str, Any]:
        return {
            "world": self.world,
            "sampler": self.sampler.state_dict(consumed),
            "numpy": _pack(np.random.get_state()),
            "transforms": [_pack(r.get_state()) for r in self.transforms],
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        exact = state.get("world") == self.world == 1
        self.sampler.load_state_dict(state["sampler"], random_state=exact)
        if not exact:
            return
        np.random.set_state(_unpack(state["numpy"]))
        for r, saved in zip(self.transforms, state["transforms"], strict=True):
            r.set_state(_unpack(saved))
        self.generator.set_state(state["generator"])


def _random_states(transform: Any) -> list[np.random.RandomState]:
    """Every distinct ``RandomState`` of the random transforms reachable from ``transform``."""
    seen: set[int] = set()
    out: list[np.random.RandomState] = []

    def walk(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, Randomizable) and id(obj.R) not in seen:
            seen.add(id(obj.R))
            out.append(obj.R)
        for value in vars(obj).values():
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(v, (Transform, Randomizable)):
                    walk(v)

    walk(transform)
    return out


def _pack(state: tuple) -> dict[str, Any]:
    """A numpy ``RandomState`` state as tensors and numbers (loadable with ``weights_only=True``)."""
    _, keys, pos, has_gauss, cached = state
    return {
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "gauss": [int(has_gauss), float(cached)],
    }


def _unpack(state: dict[str, Any]) -> tuple:
    keys = state["keys"].numpy().astype(np.uint32)
    return ("MT19937", keys, state["pos"], state["gauss"][0], state["gauss"][1])


class ResumeState:
    """``last.pt`` after every validation (rank 0, atomically), and :meth:`load` of it for ``resume``.

    ``parts`` are the objects with ``state_dict``/``load_state_dict`` saved under their names (None:
    not in this run); ``iteration`` and the random states (:class:`RandomStates`) are added."""

    def __init__(
        self, path: Path, parts: dict[str, Any], random: RandomStates, batch: int, write: bool
    ) -> None:
        self.path, self.parts, self.random, self.batch, self.write = path, parts, random, batch, write

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(TrainEvents.VALIDATED, self.save)

    def save(self, engine: Engine) -> None:
        if not self.write:
            return
        it = engine.state.iteration
        state = {name: obj.state_dict() if obj is not None else {} for name, obj in self.parts.items()}
        state["iteration"] = it
        state["rng"] = self.random.state_dict(consumed=(it % engine.state.epoch_length) * self.batch)
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def load(self, engine: Engine, source: str, max_iterations: int) -> int:
        """Restore everything from ``source`` and set ``engine`` at its iteration; return it."""
        state = torch.load(source, map_location="cpu", weights_only=True)
        start = int(state["iteration"])
        if start >= max_iterations:
            raise UsageError(f"{source} is already at iteration {start} >= max_iterations")
        for name, obj in self.parts.items():
            if obj is not None and state.get(name):
                obj.load_state_dict(state[name])
        if "rng" in state:  # a last.pt from before the random states were saved has none
            self.random.load_state_dict(state["rng"])
        engine.load_state_dict(
            {"iteration": start, "epoch_length": engine.state.epoch_length, "max_iters": max_iterations}
        )
        return start


class DataAudit:
    """Every rank records the indices of the items it trained on and writes them to
    ``audit/rank<r>.json`` at the end of the run."""

    def __init__(self, out: Path, rank: int, world: int) -> None:
        self.out, self.rank, self.world = out, rank, world
        self.seen: list[int] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.record)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def record(self, engine: Engine) -> None:
        self.seen.extend(int(i) for i in engine.state.batch["index"])

    def write(self, engine: Engine) -> None:
        audit = self.out / "audit"
        audit.mkdir(parents=True, exist_ok=True)
        with atomic_path(audit / f"rank{self.rank}.json") as tmp:
            tmp.write_text(json.dumps({"rank": self.rank, "world": self.world, "indices": self.seen}))
