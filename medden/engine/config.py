"""What a training run is given (:class:`TrainConfig`) and what it achieved (:class:`TrainResult`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medden.data import sources
from medden.data.datasets import TARGET_NOISE_KINDS
from medden.engine.selfsupervised import SELF_SUPERVISED
from medden.errors import UsageError
from medden.losses import LOSSES
from medden.noise import NOISE_FUNCTIONS

SCHEDULERS = ("plateau", "cosine", "none")
#: validation scores a run can select its weights on (``_fg``: over the clean image's foreground only)
VAL_METRICS = ("ssim", "psnr", "ssim_fg", "psnr_fg")
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
            ``mni152-wm``, ``skimage-gray``, ``skimage-color``; the unlimited synthetic sources
            ``deadleaves-gray``, ``deadleaves-color`` (textured dead leaves) and ``synthmr`` (MR-like
            images by domain randomisation of tissue maps), generated on access at ``patch_size`` from
            ``seed`` (:class:`medden.data.synthetic.SyntheticImages`: 100000 training items, fixed sets
            of 32 for validation and test, whatever the seed); several of them joined by ``+``
            (``mni152+skimage-gray``: MRI slices and photographs), or a path to a folder of
            NIfTI/DICOM/images (clean data, noise added on the fly) or of noisy/clean pairs (``low/`` +
            ``high/``, ``noisy/`` + ``clean/``). A mix of finite sources is their concatenation, each
            image once per epoch (so in proportion to their numbers); when a part is synthetic or has a
            weight ``*w`` (``synthmr*3+mni152``), training draws each part in proportion to its weight
            (1 by default: ``synthmr+mni152`` is half and half). Validation sets are concatenated.
            ``realscans`` is refused here: it is for validation and testing only (``val_data``).
            See :mod:`medden.data.sources`.
        val_data: validate (and select the best weights) on another source than ``data``, e.g.
            ``realscans`` (the real scans shipped with nibabel and pydicom) or a folder; its ``val``
            split, with ``noise`` at ``val_levels`` (a folder of noisy/clean pairs as it is). None: the
            validation split of ``data``.
        axis: slicing axis of volumes for 2D training.
        noise: medden noise kind added on the fly (None for paired data or self-supervised training).
        level_range: range of the drawn noise level (the kind's default when None).
        absolute: the level is an absolute σ on [0, 1] data rather than relative to the maximum.
        val_levels: noise levels of the fixed validation set (three levels across the range when None).
        patch_size: training patch side.
        foreground_crop: probability that a training patch is centred on foreground (clean intensity
            above 0.1 of the [0, 1] range) rather than drawn uniformly (None): for volumes that are
            mostly air.
        target_noise: the clean targets carry noise of their own, as real scans do (the noise kind's
            first, ``rician`` or ``gaussian``, up to this level, on 3 in 4 targets; see
            :func:`medden.data.datasets.train_transforms`); the net is told only the noise added on
            top. None: noise-free targets.
        batch_size: total batch size (split across data-parallel processes).
        max_iterations: training iterations.
        val_interval: validate (and checkpoint) every N iterations.
        log_interval: write the mean training loss every N iterations.
        lr, weight_decay, betas: Adam settings.
        loss: ``hybrid`` (``mse_weight``·MSE + ``ssim_weight``·(1 − SSIM)), ``charbonnier``, ``l1``, ``mse``.
        level_weighted: divide each item's prediction and target by its noise level (at least
            :data:`medden.engine.steps.LEVEL_FLOOR`) before the loss, so errors count in units of the
            noise and low-noise items weigh as much as noisy ones (``l1``, ``charbonnier``, ``mse``).
        scheduler: ``plateau`` (ReduceLROnPlateau on validation SSIM), ``cosine`` (per iteration) or ``none``.
        plateau_patience, plateau_factor: ReduceLROnPlateau settings, in validations.
        early_stopping: stop after this many validations without a better SSIM (None: never).
        seed: seed of everything (weights, patches, noise); rank r uses ``seed + r`` for its data.
        resume: ``last.pt`` of an interrupted run: continue from its iteration. With one process and
            ``num_workers=0`` the run goes on exactly as if it had not stopped (the random states of
            the data order, the augmentation and the noise are in ``last.pt`` too).
        init_weights: weights to start from (fine-tuning / transfer learning), e.g. a ``best.safetensors``.
        overfit: smoke test: train and validate on only this many images, without augmentation
            (validation on ``val_data`` instead when it is given).
        max_val_images: cap on validation images (each at every validation level).
        val_metric: the validation score that selects the kept weights and drives the plateau schedule
            and early stopping: ``ssim`` (whole image), ``psnr``, or ``ssim_fg`` / ``psnr_fg`` over the
            clean image's foreground (:func:`medden.metrics.foreground_mask`): for scans that are
            mostly air, whose whole-image score is dominated by the background. All four are logged.
        self_supervised: ``neighbor2neighbor`` or ``noise2self``: train on noisy data with no target.
        freeze_norm_stats: keep the running statistics of batch normalisation layers fixed (their
            affine weights still train). None: fixed for self-supervised fine-tuning, where the
            sub-sampled or masked inputs have other statistics than the full images the net later sees
            (updating them cost DnCNN 2 dB in 10 iterations on MRI), updated otherwise.
        tracking: also log to ``tensorboard`` and/or ``mlflow``.
        num_workers: data-loader worker processes.
        progress: show a progress bar.
        device: ``cpu``, ``cuda`` or None for the default of ``ignite.distributed``.
        compile: train the net compiled by ``torch.compile`` (inductor): 1.3-1.4x faster steps for
            HMAD-Net and MGMSDNet compact on this project's 2-core CPU, none for DRAN, after 1-2
            minutes of compilation (``benchmarks/training_speed.py``): measure on your machine.
    """

    net: str
    out_dir: str
    net_kwargs: dict[str, Any] = field(default_factory=dict)
    spatial_dims: int = 2
    data: str = "mni152"
    val_data: str | None = None
    axis: int = 2
    noise: str | None = "rician"
    level_range: tuple[float, float] | None = None
    absolute: bool = False
    val_levels: tuple[float, ...] | None = None
    patch_size: int = 64
    foreground_crop: float | None = None
    target_noise: float | None = None
    batch_size: int = 8
    max_iterations: int = 1000
    val_interval: int = 100
    log_interval: int = 10
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    loss: str = "hybrid"
    level_weighted: bool = False
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
    val_metric: str = "ssim"
    self_supervised: str | None = None
    freeze_norm_stats: bool | None = None
    tracking: tuple[str, ...] = ()
    num_workers: int = 0
    progress: bool = True
    device: str | None = None
    compile: bool = False
    audit_data: bool = False

    def validate(self) -> None:
        """Raise :class:`UsageError` on an inconsistent configuration (before any work)."""
        if self.spatial_dims not in (2, 3):
            raise UsageError(f"spatial_dims must be 2 or 3, not {self.spatial_dims}")
        self._validate_noise()
        if self.loss not in LOSSES:
            raise UsageError(f"unknown loss {self.loss!r}; choose from {', '.join(LOSSES)}")
        if self.scheduler not in SCHEDULERS:
            raise UsageError(f"unknown scheduler {self.scheduler!r}; choose from {', '.join(SCHEDULERS)}")
        if self.level_weighted and (self.loss == "hybrid" or not self.noise or self.self_supervised):
            raise UsageError(
                "level_weighted takes an l1, charbonnier or mse loss and noise added on the fly "
                "(supervised): SSIM has fixed constants and a blind-spot loss no level"
            )
        if self.val_metric not in VAL_METRICS:
            raise UsageError(f"unknown val_metric {self.val_metric!r}; choose from {', '.join(VAL_METRICS)}")
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
        if self.target_noise is not None:
            kind = (self.noise or "").split("+")[0]
            if self.target_noise < 0 or kind not in TARGET_NOISE_KINDS:
                raise UsageError(
                    "target_noise is a level >= 0 of rician or gaussian noise (the noise kind's first), "
                    f"not {self.target_noise} with noise {self.noise!r}"
                )
        if not self.lr > 0:
            raise UsageError("lr must be > 0")
        self._validate_data()
        for path in (self.resume, self.init_weights):
            if path and not Path(path).is_file():
                raise UsageError(f"file not found: {path}")

    def _validate_noise(self) -> None:
        for kind in self.noise.split("+") if self.noise else []:
            if kind not in NOISE_FUNCTIONS:
                raise UsageError(
                    f"unknown noise {kind!r}; choose from {', '.join(NOISE_FUNCTIONS)} "
                    "(several joined by '+', e.g. rician+gaussian)"
                )
        if self.noise and "+" in self.noise and self.self_supervised:
            raise UsageError("self-supervised training takes one noise kind")
        if self.level_range is not None and not (0 <= self.level_range[0] <= self.level_range[1]):
            raise UsageError(f"level_range must be (low, high) with 0 <= low <= high, got {self.level_range}")

    def _validate_data(self) -> None:
        sources.check_data(self.data, training=True)
        if self.val_data is None:
            return
        sources.check_data(self.val_data)
        if "val" not in sources.available_splits(self.val_data):
            raise UsageError(f"val_data {self.val_data!r} has no validation split")
        if self.noise is None and not sources.is_paired(self.val_data):
            raise UsageError(
                f"validating on {self.val_data} needs a noise kind to add to its clean images "
                "(or a folder of noisy/clean pairs)"
            )

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
    #: every validation score of the kept weights (``ssim``, ``psnr``, ``ssim_fg``, ``psnr_fg``)
    best_val: dict[str, float] = field(default_factory=dict)
