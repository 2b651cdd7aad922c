"""Resolve what ``--model`` / ``--bundle`` / ``--checkpoint`` name into one denoiser.

A :class:`ResolvedModel` wraps a medden net with its weights (from a checkpoint or a bundle) or a
classical baseline, behind the one call ``fn(x, sigma=None)`` on (B, C, …) tensors in [0, 1], with
what the provenance record needs (name, weights sha256, source).

Models by name (``--model NAME``): the classical baselines (``bm3d``, ``bm4d``, ``median``,
``switching_median``, ``nlm``), and the bundles that ship trained weights, found in the folders
listed in ``MEDDEN_BUNDLES`` (``os.pathsep``-separated) and in the ``bundles/`` folder of a source
checkout. A bundle is used through its ``configs/inference.json`` (``network_def``) and its
``configs/metadata.json`` (weights file and sha256), so ``--model NAME`` and ``--bundle PATH`` load
the same weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medden.errors import UsageError


@dataclass
class ResolvedModel:
    """A denoiser ready to run.

    Attributes:
        name: what the user asked for (model, bundle or net name).
        fn: the denoiser, ``fn(x, sigma=None)``.
        spatial_dims: 2 or 3: the dimensionality of the inputs ``fn`` takes.
        in_channels: channels ``fn`` takes (None: any).
        noise_aware: ``fn`` uses a noise level.
        weights: the weights file (None for baselines).
        sha256: the weights file's sha256 (None for baselines).
        kind: ``net``, ``bundle`` or ``baseline``.
        default_mode: the inference mode the model was made for (``2d`` or ``3d``).
        extra: anything else worth recording (bundle version, net arguments).
        intensity: the scaling into [0, 1] the model was trained for (:class:`medden.inferers.IntensityScaler`
            mode): ``minmax`` per unit for medical images, ``dtype`` (0-255) for photographs.
    """

    name: str
    fn: Any
    spatial_dims: int
    in_channels: int | None
    noise_aware: bool
    weights: Path | None = None
    sha256: str | None = None
    kind: str = "net"
    default_mode: str = "2d"
    extra: dict[str, Any] = field(default_factory=dict)
    intensity: str = "minmax"

    def provenance(self) -> dict[str, Any]:
        """The model part of a provenance record."""
        return {
            "model": self.name,
            "model_kind": self.kind,
            "weights": str(self.weights) if self.weights else None,
            "weights_sha256": self.sha256,
            **self.extra,
        }


def bundle_search_path() -> list[Path]:
    """Folders searched for bundles by name: ``MEDDEN_BUNDLES``, then a source checkout's ``bundles/``."""
    paths = [Path(p) for p in os.environ.get("MEDDEN_BUNDLES", "").split(os.pathsep) if p]
    checkout = Path(__file__).resolve().parents[2] / "bundles"
    if checkout.is_dir():
        paths.append(checkout)
    return paths


def available_bundles() -> dict[str, Path]:
    """Bundles found on :func:`bundle_search_path`, by folder name."""
    found: dict[str, Path] = {}
    for root in bundle_search_path():
        if root.is_dir():
            for cfg in sorted(root.glob("*/configs/inference.json")):
                found.setdefault(cfg.parents[1].name, cfg.parents[1])
    return found


def resolve(
    model: str | None = None,
    bundle: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    net: str | None = None,
    device: str = "cpu",
    sha256: str | None = None,
) -> ResolvedModel:
    """The denoiser for exactly one of ``model``, ``bundle`` or ``checkpoint`` (+ ``net``)."""
    given = [x is not None for x in (model, bundle, checkpoint)]
    if sum(given) != 1:
        raise UsageError("give exactly one of --model NAME, --bundle PATH or --checkpoint FILE")
    if net is not None and checkpoint is None:
        raise UsageError("--net goes with --checkpoint")
    dev = _device(device)
    if checkpoint is not None:
        return _from_checkpoint(Path(checkpoint), net, dev, sha256)
    if bundle is not None:
        return _from_bundle(Path(bundle), dev)
    assert model is not None
    from medden import baselines

    if model in baselines.available():
        fn = baselines.get(model)
        dims = 3 if model == "bm4d" else 2
        return ResolvedModel(
            name=model,
            fn=fn,
            spatial_dims=dims,
            in_channels=None,
            noise_aware=bool(getattr(fn, "noise_aware", False)),
            kind="baseline",
            default_mode="3d" if dims == 3 else "2d",
            extra={"baseline_config": _config_of(fn)},
        )
    bundles = available_bundles()
    if model in bundles:
        return _from_bundle(bundles[model], dev, name=model)
    choices = sorted(baselines.available()) + sorted(bundles)
    raise UsageError(
        f"unknown model {model!r}; models with weights or baselines: {', '.join(choices)} "
        "(a registered net without shipped weights needs --checkpoint FILE --net NAME)"
    )


def _config_of(fn: Any) -> dict[str, Any]:
    cfg = getattr(fn, "config", None)
    try:
        return dict(cfg()) if callable(cfg) else {}
    except Exception:  # a baseline without a JSON-able config still runs
        return {}


def _device(device: str) -> Any:
    import torch

    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"--device must be cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available on this machine")
    if device == "cuda" and "LOCAL_RANK" in os.environ:  # under torchrun: one GPU per process
        device = f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    return torch.device(device)


def wrap_net(
    model: Any, name: str, weights: Path, digest: str, kind: str, device: Any, extra: dict[str, Any]
) -> ResolvedModel:
    """A loaded net as a :class:`ResolvedModel` (moved to ``device``, in eval mode)."""
    model = model.to(device).eval()
    dims = int(getattr(model, "spatial_dims", 2))
    return ResolvedModel(
        name=name,
        fn=model,
        spatial_dims=dims,
        in_channels=getattr(model, "in_channels", None),
        noise_aware=bool(getattr(model, "noise_aware", False)),
        weights=weights,
        sha256=digest,
        kind=kind,
        default_mode="3d" if dims == 3 else "2d",
        extra=extra,
    )


def _from_checkpoint(path: Path, net: str | None, device: Any, sha256: str | None) -> ResolvedModel:
    from medden import checkpoints, nets

    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}")
    if net is not None and net not in nets.available():
        raise UsageError(f"unknown net {net!r}; available: {', '.join(nets.available())}")
    meta = checkpoints.read_metadata(path) if path.suffix == ".safetensors" else {}
    name = net or meta.get("net")
    if not name:
        raise UsageError(f"{path}: the file does not name its net; add --net NAME")
    model = checkpoints.load_net(path, net=name, sha256=sha256)
    digest = checkpoints.sha256_file(path)
    extra = {"net": name, "net_kwargs": meta.get("net_kwargs", {})}
    return wrap_net(model, name, path, digest, "net", device, extra)


def _from_bundle(root: Path, device: Any, name: str | None = None) -> ResolvedModel:
    """Build a bundle's ``network_def`` and load its checksummed weights (:mod:`medden.bundle`)."""
    from monai.bundle import ConfigParser

    from medden.bundle import load_network

    cfg_file = root / "configs" / "inference.json"
    if not cfg_file.is_file():
        raise UsageError(f"not a bundle (no configs/inference.json): {root}")
    try:
        parser = ConfigParser()
        parser.read_config(str(cfg_file))
        parser["bundle_root"] = str(root)
        model = parser.get_parsed_content("network_def")
    except Exception as exc:  # a broken bundle config is the user's input: one line, exit 2
        raise UsageError(f"{root}: cannot build the bundle's network ({type(exc).__name__}: {exc})") from None
    resolved = load_network(model, root, device)
    resolved.name = name or root.name
    return resolved
