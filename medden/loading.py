"""One loader for every model: ``load_model()`` turns a name, a bundle or a weights file into a
:class:`medden.denoiser.LoadedModel` with its provenance.

Models by name: the classical baselines (``bm3d``, ``bm4d``, ``median``, ``switching_median``,
``nlm``, ``gamma``, ``clahe``) and the bundles that ship trained weights
(:func:`medden.bundle_format.available_bundles`). The command line (``--model``/``--bundle``/
``--checkpoint``), the Python API, the bundles and ``medden evaluate`` all load through here, so
``--model NAME`` and ``--bundle PATH`` load the same checksummed weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from medden import baselines, checkpoints
from medden.bundle_format import available_bundles, load_network
from medden.denoiser import LoadedModel
from medden.errors import UsageError


def load_model(
    model: str | None = None,
    bundle: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    net: str | None = None,
    device: str = "cpu",
    sha256: str | None = None,
    allow_unverified: bool = False,
    net_kwargs: dict[str, Any] | None = None,
) -> LoadedModel:
    """The denoiser for exactly one of ``model``, ``bundle`` or ``checkpoint`` (+ ``net``).

    A bundle whose metadata records no weights sha256 is refused unless ``allow_unverified``;
    ``net_kwargs`` complete the constructor arguments of a checkpoint whose file does not record them
    (a bare state dict). Every problem is a one-line :class:`UsageError` (exit code 2).

    Example:
        >>> load_model("median").provenance()["model_kind"]
        'baseline'
    """
    given = [x is not None for x in (model, bundle, checkpoint)]
    if sum(given) != 1:
        raise UsageError("give exactly one of --model NAME, --bundle PATH or --checkpoint FILE")
    if net is not None and checkpoint is None:
        raise UsageError("--net goes with --checkpoint")
    dev = _device(device)
    if checkpoint is not None:
        return _from_checkpoint(Path(checkpoint), net, dev, sha256, net_kwargs)
    if bundle is not None:
        return _from_bundle(Path(bundle), dev, allow_unverified=allow_unverified)
    assert model is not None
    if model in baselines.available():
        fn = baselines.get(model)
        return LoadedModel.wrap(fn, model, "baseline", extra={"baseline_config": fn.config()})
    bundles = available_bundles()
    if model in bundles:
        return _from_bundle(bundles[model], dev, name=model, allow_unverified=allow_unverified)
    choices = sorted(baselines.available()) + sorted(bundles)
    raise UsageError(
        f"unknown model {model!r}; models with weights or baselines: {', '.join(choices)} "
        "(a registered net without shipped weights needs --checkpoint FILE --net NAME)"
    )


def _device(device: str) -> Any:
    import torch

    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"--device must be cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available on this machine")
    if device == "cuda" and "LOCAL_RANK" in os.environ:  # under torchrun: one GPU per process
        device = f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    return torch.device(device)


def _from_checkpoint(
    path: Path, net: str | None, device: Any, sha256: str | None, net_kwargs: dict[str, Any] | None
) -> LoadedModel:
    from medden import nets  # defers torch

    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}")
    if net is not None and net not in nets.available():
        raise UsageError(f"unknown net {net!r}; available: {', '.join(nets.available())}")
    meta = checkpoints.read_metadata(path) if path.suffix == ".safetensors" else {}
    name = net or meta.get("net")
    if not name:
        raise UsageError(f"{path}: the file does not name its net; add --net NAME")
    model = checkpoints.load_net(path, net=name, sha256=sha256, **(net_kwargs or {}))
    digest = checkpoints.sha256_file(path)
    extra = {"net": name, "net_kwargs": {**meta.get("net_kwargs", {}), **(net_kwargs or {})}}
    return LoadedModel.wrap(model.to(device).eval(), name, "net", weights=path, sha256=digest, extra=extra)


def _from_bundle(
    root: Path, device: Any, name: str | None = None, allow_unverified: bool = False
) -> LoadedModel:
    """A bundle's net (its ``network_def`` read as data, never evaluated) with its checksummed weights."""
    if not (root / "configs" / "inference.json").is_file():
        raise UsageError(f"not a bundle (no configs/inference.json): {root}")
    resolved = load_network(None, root, device, allow_unverified=allow_unverified)
    resolved.name = name or root.name
    return resolved
