"""The bundle format: layout, metadata and checksummed loading of a medden bundle's net.

A medden bundle (``bundles/<name>/``) follows the MONAI model-zoo layout: ``configs/metadata.json``,
``inference.json``, ``train.json``, ``evaluate.json``, ``multi_gpu_train.json``, ``logging.conf``,
``models/model.safetensors``, ``docs/README.md`` and ``LICENSE``. The weights' sha256 is recorded in
``metadata.json`` under ``medden.weights_sha256`` and checked at every load; the net is built from the
``network_def`` of ``configs/inference.json`` read as plain data, never evaluated (a config is code).
What the bundle configs *run* (inference, training, evaluation) is :mod:`medden.bundle`, at the top.

Bundles are found by name in the folders of ``MEDDEN_BUNDLES`` (``os.pathsep``-separated), then in
the ``bundles/`` folder of a source checkout, then in the bundles an installed wheel carries as
package data (``medden/bundles/``: ``setup.py`` copies them there at build time, without ``eval/``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medden import checkpoints
from medden.denoiser import INTENSITIES, LoadedModel, is_ensemble_size
from medden.errors import UsageError

WEIGHTS = "models/model.safetensors"
_PACKAGE = Path(__file__).resolve().parent
#: the bundles of a source checkout (``<repo>/bundles``; an editable install runs from here)
CHECKOUT_BUNDLES = _PACKAGE.parent / "bundles"
#: the bundles an installed wheel carries (package data, copied from the checkout by ``setup.py``)
INSTALLED_BUNDLES = _PACKAGE / "bundles"


def shipped_bundles() -> Path | None:
    """The folder of the bundles that come with medden: a source checkout's ``bundles/`` (recognised by
    the ``pyproject.toml`` beside it), else the installed package's ``medden/bundles/``, else None."""
    if (CHECKOUT_BUNDLES.parent / "pyproject.toml").is_file() and CHECKOUT_BUNDLES.is_dir():
        return CHECKOUT_BUNDLES
    return INSTALLED_BUNDLES if INSTALLED_BUNDLES.is_dir() else None


#: the MONAI metadata schema the bundles are verified against (vendored: nothing is downloaded)
SCHEMA = (shipped_bundles() or CHECKOUT_BUNDLES) / "schema" / "meta_schema.json"


def bundle_search_path() -> list[Path]:
    """Folders searched for bundles by name: ``MEDDEN_BUNDLES``, then :func:`shipped_bundles`."""
    paths = [Path(p) for p in os.environ.get("MEDDEN_BUNDLES", "").split(os.pathsep) if p]
    shipped = shipped_bundles()
    if shipped is not None:
        paths.append(shipped)
    return paths


def available_bundles() -> dict[str, Path]:
    """Bundles found on :func:`bundle_search_path`, by folder name (the first one found wins).

    Each folder on the path is a folder of bundles, or a bundle itself (it has
    ``configs/inference.json``).
    """
    found: dict[str, Path] = {}
    for root in bundle_search_path():
        if (root / "configs" / "inference.json").is_file():
            found.setdefault(root.name, root)
        elif root.is_dir():
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


def input_modality(meta: dict[str, Any]) -> str | None:
    """The modality of a bundle's input image (``network_data_format.inputs.<first>.modality`` of its
    metadata: ``MR``, ``CT``, ``OT``...), upper case, or None when the metadata names none."""
    fmt = meta.get("network_data_format")
    inputs = fmt.get("inputs") if isinstance(fmt, dict) else None
    first = next(iter(inputs.values()), None) if isinstance(inputs, dict) and inputs else None
    value = first.get("modality") if isinstance(first, dict) else None
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().upper()


#: what :func:`weights_status` can answer
WEIGHT_STATES = ("verified", "mismatch", "missing", "unrecorded")


def weights_status(bundle_root: str | os.PathLike[str]) -> str:
    """Whether the bundle's weights verify: ``verified`` (their sha256 is the one ``metadata.json``
    records), ``mismatch`` (it is not: :func:`load_network` refuses them), ``missing`` (no
    ``models/model.safetensors``) or ``unrecorded`` (no sha256 recorded: loaded only when unverified
    weights are allowed)."""
    root = Path(bundle_root)
    info = read_metadata(root).get("medden")
    expected = info.get("weights_sha256") if isinstance(info, dict) else None
    if not (root / WEIGHTS).is_file():
        return "missing"
    if not isinstance(expected, str) or not expected:
        return "unrecorded"
    return "verified" if checkpoints.sha256_file(root / WEIGHTS) == expected.lower() else "mismatch"


def describe(bundle_root: str | os.PathLike[str]) -> dict[str, Any]:
    """A bundle at a glance, as ``medden models`` lists it: name, task, net, spatial dims, input
    modality and channels, training noise, version, :func:`weights_status`, folder. A bundle whose
    configs cannot be read gets ``weights: "invalid"`` and the reason in ``error`` instead."""
    root = Path(bundle_root)
    row: dict[str, Any] = {"name": root.name, "path": str(root)}
    try:
        meta = read_metadata(root)
        net, args = network_spec(root)
        weights = weights_status(root)
    except (UsageError, ValueError, TypeError, OSError) as exc:
        return {**row, "weights": "invalid", "error": str(exc).splitlines()[0]}
    image = _mapping(_mapping(_mapping(meta.get("network_data_format")).get("inputs")).get("image"))
    training = _mapping(_mapping(meta.get("medden")).get("training"))
    return {
        **row,
        "task": meta.get("task"),
        "net": net,
        "spatial_dims": args.get("spatial_dims"),
        "modality": image.get("modality"),
        "channels": args.get("in_channels"),
        "noise": training.get("noise"),
        "version": meta.get("version"),
        "weights": weights,
    }


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


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
    ensemble = info.get("ensemble", 1)
    if not is_ensemble_size(ensemble):
        raise UsageError(f"{root}: metadata.json has an unknown ensemble size {str(ensemble)[:20]!r}")
    digest = checkpoints.load_weights(network, weights, sha256=expected)
    extra = {
        "bundle": str(root),
        "bundle_version": meta.get("version"),
        "verified": expected is not None,
        "net": name,
        "net_kwargs": args,
        "bundle_modality": input_modality(meta),
    }
    return LoadedModel.wrap(
        network.to(device).eval(),
        root.name,
        "bundle",
        weights=weights,
        sha256=digest,
        extra=extra,
        intensity=intensity,
        ensemble=ensemble,
    )
