"""The bundle format: layout, metadata and checksummed loading of a medden bundle's net.

A medden bundle (``bundles/<name>/``) follows the MONAI model-zoo layout: ``configs/metadata.json``,
``inference.json``, ``train.json``, ``evaluate.json``, ``multi_gpu_train.json``, ``logging.conf``,
``models/model.safetensors``, ``docs/README.md`` and ``LICENSE``. The weights' sha256 is recorded in
``metadata.json`` under ``medden.weights_sha256`` and checked at every load; the net is built from the
``network_def`` of ``configs/inference.json`` read as plain data, never evaluated (a config is code).
What the bundle configs *run* (inference, training, evaluation) is :mod:`medden.bundle`, at the top.

Bundles are found by name in the folders of ``MEDDEN_BUNDLES`` (``os.pathsep``-separated) and in the
``bundles/`` folder of a source checkout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medden import checkpoints
from medden.denoiser import INTENSITIES, LoadedModel
from medden.errors import UsageError

WEIGHTS = "models/model.safetensors"
SCHEMA = Path(__file__).resolve().parents[1] / "bundles" / "schema" / "meta_schema.json"


def bundle_search_path() -> list[Path]:
    """Folders searched for bundles by name: ``MEDDEN_BUNDLES``, then a source checkout's ``bundles/``."""
    paths = [Path(p) for p in os.environ.get("MEDDEN_BUNDLES", "").split(os.pathsep) if p]
    checkout = Path(__file__).resolve().parents[1] / "bundles"
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


def find_bundle(name: str) -> Path:
    """The folder of the bundle ``name`` (a usage error naming the known ones if there is none)."""
    found = available_bundles()
    if name not in found:
        raise UsageError(f"bundle {name!r} not found; known: {', '.join(sorted(found)) or 'none'}")
    return found[name]


def read_metadata(bundle_root: str | os.PathLike[str]) -> dict[str, Any]:
    """The bundle's ``configs/metadata.json``."""
    path = Path(bundle_root) / "configs" / "metadata.json"
    if not path.is_file():
        raise UsageError(f"not a bundle (no configs/metadata.json): {bundle_root}")
    return dict(json.loads(path.read_text()))


#: the only ``_target_`` a bundle's ``network_def`` may name when medden reads it as data
NETWORK_TARGETS = ("medden.nets.get", "medden.nets.build")


def network_spec(bundle_root: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """The net name and arguments of a bundle's ``network_def``, read as plain data (never evaluated).

    A MONAI bundle config is code (``$`` expressions run Python, ``@``/``%`` pull other entries in),
    so medden does not run it to find the net: ``configs/inference.json`` is parsed as JSON, its
    ``network_def`` must name one of :data:`NETWORK_TARGETS` with plain values, and the net is then
    built by :func:`medden.nets.build` (registered names, bounded size). Anything else is a one-line
    :class:`UsageError`, whoever wrote the bundle. (``python -m monai.bundle run`` does run the config's
    code: run bundles you trust.)
    """
    root = Path(bundle_root)
    cfg_file = root / "configs" / "inference.json"
    if not cfg_file.is_file():
        raise UsageError(f"not a bundle (no configs/inference.json): {root}")
    try:
        config = json.loads(cfg_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{cfg_file}: not readable JSON ({type(exc).__name__})") from None
    spec = config.get("network_def") if isinstance(config, dict) else None
    if not isinstance(spec, dict):
        raise UsageError(f"{cfg_file}: no network_def object")
    args = {k: v for k, v in spec.items() if k != "_target_"}
    if spec.get("_target_") not in NETWORK_TARGETS:
        raise UsageError(f"{cfg_file}: network_def must have _target_ {' or '.join(NETWORK_TARGETS)}")
    if _has_expression(args):
        raise UsageError(
            f"{cfg_file}: network_def holds a config expression ($, @ or %); medden builds a bundle's "
            "network from plain values only"
        )
    name = args.pop("name", None)
    if not isinstance(name, str):
        raise UsageError(f"{cfg_file}: network_def has no net name")
    return name, args


def _has_expression(value: Any) -> bool:
    if isinstance(value, str):
        return value[:1] in ("$", "@", "%")
    if isinstance(value, dict):
        return any(_has_expression(k) or _has_expression(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_expression(v) for v in value)
    return False


def load_network(
    network: Any, bundle_root: str | os.PathLike[str], device: Any = "cpu", allow_unverified: bool = False
) -> Any:
    """Load the bundle's checksummed weights into ``network`` (built from :func:`network_spec` when
    None); return it wrapped for inference.

    The sha256 recorded in ``metadata.json`` (``medden.weights_sha256``) is checked first; a bundle
    that records none is refused unless ``allow_unverified``.
    """
    root = Path(bundle_root)
    meta = read_metadata(root)
    weights = root / WEIGHTS
    if not weights.is_file():
        raise UsageError(f"{root}: the bundle has no weights ({WEIGHTS}); train them with configs/train.json")
    info = meta.get("medden") if isinstance(meta.get("medden"), dict) else {}
    expected = info.get("weights_sha256")
    if not isinstance(expected, str) or not expected:
        if not allow_unverified:
            raise UsageError(
                f"{root}: metadata.json records no medden.weights_sha256, so the weights cannot be "
                "verified; refusing them (--allow-unverified to load anyway)"
            )
        expected = None
    name, args = network_spec(root)
    if network is None:
        from medden import nets  # defers torch

        try:
            network = nets.build(name, args)
        except ValueError as exc:
            raise UsageError(f"{root}: {exc}") from None
    intensity = info.get("intensity", "minmax")
    if intensity not in INTENSITIES:
        raise UsageError(f"{root}: metadata.json has an unknown intensity {str(intensity)[:20]!r}")
    digest = checkpoints.load_weights(network, weights, sha256=expected)
    extra = {
        "bundle": str(root),
        "bundle_version": meta.get("version"),
        "verified": expected is not None,
        "net": name,
        "net_kwargs": args,
    }
    return LoadedModel.wrap(
        network.to(device).eval(),
        root.name,
        "bundle",
        weights=weights,
        sha256=digest,
        extra=extra,
        intensity=intensity,
    )
