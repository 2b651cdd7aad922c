"""Write each bundle's ``models/model.pt`` and ``models/model.ts`` from its ``models/model.safetensors``.

MONAI's tools expect them beside the weights medden loads: ``python -m monai.bundle ckpt_export``
reads ``models/model.pt`` (a plain state dict, loadable with ``torch.load(weights_only=True)``) and
MONAI Label loads ``models/model.ts`` (TorchScript, ``torch.jit.load``; it keeps the net's
``forward(x, sigma=None)`` and takes any size). medden itself keeps loading the safetensors.

The script checks the safetensors against ``medden.weights_sha256`` first, records the two files'
sha256 in ``configs/metadata.json`` under ``medden.artifacts_sha256`` and leaves a bundle alone when
its files are already right (recorded sha256, the same weights, the same output as the eager net), so
a rerun after new weights are shipped rewrites only what changed. ``model.ts`` carries the bundle's
metadata and ``inference.json`` as MONAI's ``ckpt_export`` writes them, and is checked against the
eager net at :func:`medden.workflows.export.check_sizes` and at the sizes of the bundle's sample data
before it is put in place. Run from the repository root::

    .venv/bin/python bundles/artifacts.py [NAME ...] [--force]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from medden import checkpoints
from medden.bundle import sample_pair
from medden.bundle_format import load_network, read_metadata
from medden.io.atomic import atomic_path
from medden.workflows import export

HERE = Path(__file__).resolve().parent
PT, TS = "models/model.pt", "models/model.ts"
#: the largest |model.ts − eager| accepted (scripting keeps the same operations: 0 in practice)
TOLERANCE = 1e-5


def bundles(names: list[str]) -> list[Path]:
    """The bundle folders beside this script (all, or those named)."""
    found = {p.parents[1].name: p.parents[1] for p in sorted(HERE.glob("*/configs/inference.json"))}
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise SystemExit(f"unknown bundles {unknown}; known: {', '.join(found)}")
    return [found[n] for n in names] if names else list(found.values())


def recorded(root: Path) -> dict[str, str]:
    """``medden.artifacts_sha256`` of the bundle's metadata (empty when none)."""
    info = read_metadata(root).get("medden", {})
    value = info.get("artifacts_sha256") if isinstance(info, dict) else None
    return dict(value) if isinstance(value, dict) else {}


def pt_is_current(root: Path, net: Any) -> bool:
    """``model.pt`` is there, has its recorded sha256 and holds exactly the net's weights."""
    path = root / PT
    if not path.is_file() or checkpoints.sha256_file(path) != recorded(root).get(PT):
        return False
    state = torch.load(path, map_location="cpu", weights_only=True)
    ours = net.state_dict()
    return state.keys() == ours.keys() and all(torch.equal(state[k], ours[k]) for k in ours)


def ts_difference(path: Path, net: Any, sizes: list[tuple[int, ...]]) -> float:
    """The largest |TorchScript − eager| at ``sizes`` (with and without σ for noise-aware nets)."""
    return export.max_difference(export.torchscript_runner(path), net, sizes, without_sigma=True)


def ts_is_current(root: Path, net: Any) -> bool:
    """``model.ts`` is there, has its recorded sha256 and gives the eager output on a small odd input."""
    path = root / TS
    if not path.is_file() or checkpoints.sha256_file(path) != recorded(root).get(TS):
        return False
    return ts_difference(path, net, export.check_sizes(net.spatial_dims)[1:2]) <= TOLERANCE


def sample_sizes(root: Path, net: Any) -> list[tuple[int, ...]]:
    """The spatial sizes the bundle's sample data reach the net at: the slices of the MRI sample
    volume along each axis (2D), a 64³ sliding-window patch (3D), or the sample photographs."""
    config = json.loads((root / "configs" / "inference.json").read_text())
    task = config.get("task") if isinstance(config.get("task"), str) else None
    if task is None:  # configs that do not name the task: by channels and modality
        modality = json.dumps(read_metadata(root).get("network_data_format", {}))
        task = "mri_rician" if '"MR"' in modality else "gray" if net.in_channels == 1 else "color"
    if net.spatial_dims == 3:
        return [(64, 64, 64)]
    if task.startswith("mri_"):
        shape = sample_pair(task)[1].shape
        return sorted({tuple(s for j, s in enumerate(shape) if j != axis) for axis in range(3)})
    photos = {sample_pair(task, index=i)[1].shape[1:] for i in range(3)}
    return sorted(tuple(int(n) for n in s) for s in photos)


def embedded(root: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """What ``ckpt_export`` puts in a ``model.ts``: the metadata (without the record of the files
    themselves) and ``inference.json``."""
    meta = read_metadata(root)
    if isinstance(meta.get("medden"), dict):
        meta["medden"] = {k: v for k, v in meta["medden"].items() if k != "artifacts_sha256"}
    config = json.loads((root / "configs" / "inference.json").read_text())
    return meta, {"inference.json": json.dumps(config).encode()}


def write_ts(root: Path, net: Any) -> None:
    """Script the net, save it with the bundle's metadata, check it, then put it in place."""
    sizes = export.check_sizes(net.spatial_dims) + sample_sizes(root, net)
    meta, extra = embedded(root)
    with atomic_path(root / TS) as tmp:
        export.save_torchscript(export.to_torchscript(net), tmp, meta, extra)
        worst = ts_difference(tmp, net, sizes)
        if not worst <= TOLERANCE:
            raise SystemExit(f"{root.name}: model.ts differs from the eager net by {worst:.3g}")
    print(f"  {TS}: max |ts − eager| {worst:.2g} at {', '.join('x'.join(map(str, s)) for s in sizes)}")


def record(root: Path) -> bool:
    """Record the two files' sha256 in ``metadata.json`` (written only when they changed)."""
    path = root / "configs" / "metadata.json"
    meta = json.loads(path.read_text())
    digests = {name: checkpoints.sha256_file(root / name) for name in (PT, TS)}
    if meta.get("medden", {}).get("artifacts_sha256") == digests:
        return False
    meta.setdefault("medden", {})["artifacts_sha256"] = digests
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(meta, indent=4) + "\n")  # as bundles/generate.py writes it
    return True


def update(root: Path, force: bool = False) -> list[str]:
    """Bring one bundle's ``model.pt``, ``model.ts`` and their record up to date; what was written."""
    net = load_network(None, root).fn  # checks the safetensors against medden.weights_sha256
    written = []
    if force or not pt_is_current(root, net):
        checkpoints.save_weights(net, root / PT)
        written.append(PT)
    if force or not ts_is_current(root, net):
        write_ts(root, net)
        written.append(TS)
    if record(root):
        written.append("configs/metadata.json")
    if write_large_files(root):
        written.append("large_files.yml")
    for name in written:  # shipped files are world-readable
        (root / name).chmod(0o644)
    return written


@functools.cache
def _generator() -> Any:
    """``bundles/generate.py`` (beside this script, not a package), loaded once."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "medden_bundles_generate", Path(__file__).with_name("generate.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_large_files(root: Path) -> bool:
    """Rewrite ``large_files.yml`` (the weights files' sha256, as ``bundles/generate.py`` writes it) when it
    no longer matches the files; run after new ``model.pt``/``model.ts`` so the two never disagree."""
    text = _generator().large_files(root.name)
    path = root / "large_files.yml"
    if path.is_file() and path.read_text() == text:
        return False
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="bundles (default: all)")
    parser.add_argument("--force", action="store_true", help="rewrite the files even when they are current")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    for root in bundles(args.names):
        start = time.perf_counter()
        written = update(root, force=args.force)
        what = ", ".join(written) if written else "up to date"
        print(f"{root.name}: {what} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
