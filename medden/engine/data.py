"""What the trainer feeds the net: training items, their transform, the fixed validation items, and a
data loader whose epoch order can be resumed mid-epoch.

The images come from :mod:`medden.data.sources` (the same code ``medden evaluate`` uses), the MONAI
pipeline from :func:`medden.data.datasets.train_transforms`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import Dataset
from monai.data.utils import list_data_collate, worker_init_fn
from torch.utils.data.distributed import DistributedSampler

from medden.data import datasets as ds
from medden.data import sources
from medden.data.synthetic import ConcatSequence
from medden.engine.config import TrainConfig
from medden.errors import UsageError


def clean_images(cfg: TrainConfig, data: str, split: str) -> Sequence[np.ndarray]:
    """:func:`medden.data.sources.clean_sources` of ``data`` with the run's geometry and seed."""
    return sources.clean_sources(
        data, split, axis=cfg.axis, spatial_dims=cfg.spatial_dims, patch_size=cfg.patch_size, seed=cfg.seed
    )


class TrainItems(Sequence):
    """Training items made on access, ``{"image": images[i], "index": i}`` (and ``target`` for pairs):
    a synthetic source of any length is never materialised. With ``noise`` the image is a fixed noisy
    copy, the noise of item ``i`` drawn with seed ``seed + 1000 i`` (self-supervised training data)."""

    def __init__(
        self,
        images: Sequence[np.ndarray],
        targets: Sequence[np.ndarray] | None = None,
        noise: str | None = None,
        level: float = 0.0,
        absolute: bool = False,
        seed: int = 0,
    ) -> None:
        self.images, self.targets = images, targets
        self.noise, self.level, self.absolute, self.seed = noise, level, absolute, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = range(len(self))[index]
        image = self.images[i]
        if self.noise is not None:
            noisy = ds.validation_items(
                [image], self.noise, [self.level], self.absolute, self.seed + 1000 * i
            )
            image = noisy[0]["image"]
        item = {"image": image, "index": i}
        if self.targets is not None:
            item["target"] = self.targets[i]
        return item


def build_data(cfg: TrainConfig, rank: int = 0) -> tuple[Sequence[dict[str, Any]], Any, list[dict[str, Any]]]:
    """Training items (a lazy sequence), their transform (seeded for ``rank``) and the fixed
    validation items (:func:`validation_items`)."""
    paired = sources.is_paired(cfg.data)
    own_pairs: list[dict[str, Any]] | None = None
    images: Sequence[np.ndarray] = []
    noise = cfg.noise
    if paired:
        pairs = ds.paired_folder(cfg.data)
        n_val = max(1, len(pairs) // 10) if len(pairs) > 1 else 0
        train_pairs, own_pairs = pairs[n_val:] or pairs, pairs[:n_val] or pairs[:1]
        train_items: Sequence[dict[str, Any]] = TrainItems(
            [p["image"] for p in train_pairs], [p["target"] for p in train_pairs]
        )
        noise = None
    else:
        images = clean_images(cfg, cfg.data, "train")
        images = images[: cfg.overfit] if cfg.overfit else images
        if not images:
            raise UsageError(f"no training images in {cfg.data}")
        train_items = TrainItems(images)
        if cfg.self_supervised:
            # the user's situation: fixed noisy scans, no clean copy (the same noise at every access)
            if noise is not None:
                level = float(np.mean(sources.default_level_range(noise, cfg.level_range)))
                train_items = TrainItems(
                    images, noise=noise, level=level, absolute=cfg.absolute, seed=cfg.seed + 77
                )
            noise = None
    val_items = validation_items(cfg, own_pairs, images if cfg.overfit else None)
    transform = ds.train_transforms(
        cfg.spatial_dims,
        cfg.patch_size,
        noise,
        level_range=sources.default_level_range(cfg.noise, cfg.level_range),
        absolute=cfg.absolute,
        augment=not cfg.overfit,
        paired=paired,
        foreground=cfg.foreground_crop,
        target_noise=cfg.target_noise,
    )
    transform.set_random_state(cfg.seed + 1 + rank)
    return train_items, transform, val_items


def validation_items(
    cfg: TrainConfig,
    own_pairs: list[dict[str, Any]] | None = None,
    overfit_images: Sequence[np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """The fixed validation items, at most ``cfg.max_val_images`` images (each at every level).

    From ``cfg.val_data`` when given, else from ``cfg.data``: noisy/clean pairs as they are (a
    paired training folder keeps its first tenth for this, ``own_pairs``), otherwise the clean images
    of the ``val`` split (the training images themselves when overfitting) with ``cfg.noise`` at the
    validation levels. Items of a source that names its images (``realscans``) say which in ``source``.
    """
    cap = cfg.max_val_images
    if cfg.val_data is None and own_pairs is not None:
        return own_pairs[:cap] if cap else own_pairs
    if cfg.val_data is not None and sources.is_paired(cfg.val_data):
        pairs = ds.paired_folder(cfg.val_data)
        return pairs[:cap] if cap else pairs
    if cfg.val_data is None and overfit_images is not None:
        images: Sequence[np.ndarray] = overfit_images
    else:
        images = clean_images(cfg, cfg.val_data or cfg.data, "val")
    labels = getattr(images, "labels", None)
    images = images[:cap] if cap else images
    if not cfg.noise:
        return []
    levels = sources.validation_levels(cfg.noise, cfg.level_range, cfg.val_levels)
    items = ds.validation_items(images, cfg.noise, levels, cfg.absolute)
    if labels is not None:  # kinds x images x levels
        for k, item in enumerate(items):
            item["source"] = labels[(k // len(levels)) % len(images)]
    return items


class ResumableSampler(torch.utils.data.Sampler):
    """The epoch order of the training items, resumable in the middle of an epoch.

    Wraps torch's ``RandomSampler`` (one process: a new permutation per epoch from the global torch
    random state) or ``DistributedSampler`` (several: a permutation from the seed and the epoch, one
    share per process), unchanged. It remembers the random state an epoch's order was drawn from, so
    :meth:`state_dict` (taken after ``consumed`` items) and :meth:`load_state_dict` let a resumed run
    draw the same order again and skip the items already trained on, then carry on from the saved
    global random state.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._epoch_rng: Any = None
        self._pending: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.inner)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        pending, self._pending = self._pending, None
        if pending is not None and pending["epoch_rng"] is not None:
            torch.set_rng_state(pending["epoch_rng"])
        self._epoch_rng = torch.get_rng_state()
        order = list(self.inner)  # draws the permutation (RandomSampler: from the global torch state)
        if pending is not None:
            if pending["rng"] is not None:  # undo the draws of the resumed loader's start
                torch.set_rng_state(pending["rng"])
            order = order[pending["skip"] :]
        yield from order

    def state_dict(self, consumed: int) -> dict[str, Any]:
        """The state after ``consumed`` items of the current epoch."""
        return {"epoch_rng": self._epoch_rng, "rng": torch.get_rng_state(), "skip": int(consumed)}

    def load_state_dict(self, state: dict[str, Any], random_state: bool = True) -> None:
        """Resume: the next epoch starts ``skip`` items into the saved epoch's order (random states
        restored only with ``random_state``; a ``skip`` of 0 starts a new epoch)."""
        if random_state:
            torch.set_rng_state(state["rng"])
        if state["skip"]:
            self._pending = {
                "epoch_rng": state["epoch_rng"] if random_state else None,
                "rng": state["rng"] if random_state else None,
                "skip": state["skip"],
            }


def train_loader(
    cfg: TrainConfig, items: Sequence[dict[str, Any]], transform: Any, rank: int, world: int
) -> tuple[Any, ResumableSampler]:
    """The training data loader of one process (its share of ``cfg.batch_size``) and its sampler.

    An epoch holds enough items for at least 20 steps; items are made on access (a fresh dict each
    time), so synthetic sources are never materialised.
    """
    if cfg.batch_size % world:
        raise UsageError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    repeats = max(1, math.ceil(20 * cfg.batch_size / len(items)))
    dataset = Dataset(data=items if repeats == 1 else ConcatSequence([items] * repeats), transform=transform)
    if world > 1:  # each rank gets its own share of every epoch
        inner: Any = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    else:
        inner = torch.utils.data.RandomSampler(dataset)
    sampler = ResumableSampler(inner)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size // world,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.num_workers,
        collate_fn=list_data_collate,
        worker_init_fn=worker_init_fn,
        persistent_workers=cfg.num_workers > 0,
    )
    return loader, sampler
