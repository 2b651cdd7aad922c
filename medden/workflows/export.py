"""Export a medden net to TorchScript or ONNX (``medden export``; the bundles' ``models/model.ts``).

Every registered net is scriptable: ``torch.jit.script`` keeps the net's own padding to the multiple
it needs (:class:`medden.nets.base.Denoiser`), so a TorchScript file takes any batch and spatial size,
and keeps the eager call ``forward(x, sigma=None)`` (a noise-aware net estimates σ when none is given).

ONNX goes through ``torch.export`` (``torch.onnx.export(dynamo=True)``, which needs ``onnxscript``)
with a dynamic height and width (and depth in 3D) and a dynamic batch, except for nets with a
dynamic convolution (DRAN: :class:`medden.nets.blocks.DynamicConv` convolves the batch as groups,
and an ONNX convolution's group count is fixed), whose graph takes one image at a time. The graph's
inputs are ``image``, a
``(B, C, H, W)`` or ``(B, C, D, H, W)`` float32 tensor in [0, 1], and, for noise-aware nets only,
``sigma``, a ``(B,)`` float32 tensor: the noise σ on the same [0, 1] scale, one per batch item (an
ONNX graph has no optional input, so σ is required; estimate it first, e.g. ``medden estimate-noise``).
Its output is ``pred``, the shape of ``image``.

Each export is checked before it is put in place: the file is read back (``torch.jit.load``,
onnxruntime) and compared with the eager net at three sizes, odd ones included
(:func:`check_sizes`; largest absolute difference at most :data:`TOLERANCE`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from medden import checkpoints
from medden.bundle_format import available_bundles
from medden.errors import MeddenError, UsageError
from medden.io.atomic import atomic_path
from medden.loading import load_model
from medden.version import __version__

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".ts", "onnx": ".onnx"}
#: the largest |exported − eager| accepted
TOLERANCE = 1e-4
#: the largest batch and spatial size an ONNX graph declares (``torch.export`` needs a bound)
MAX_BATCH, MAX_SIZE = 4096, 16384


#: nets (by class name) that have no ONNX export, and why (they export to TorchScript)
ONNX_UNSUPPORTED = {
    "ImpulseSwitch": "its impulse fill repeats until no impulse is left (data-dependent control flow)",
}


class ExportMismatch(MeddenError):
    """The exported model does not reproduce the eager net (a medden bug: exit code 1)."""

    exit_code = 1


def check_sizes(spatial_dims: int) -> list[tuple[int, ...]]:
    """The three spatial sizes an export is checked at: one even, two odd (70×70 among them)."""
    if spatial_dims == 2:
        return [(32, 32), (70, 70), (45, 83)]
    return [(16, 16, 16), (13, 18, 21), (9, 11, 10)]


def describe_inputs(net: Any, fmt: str) -> dict[str, str]:
    """The exported graph's inputs, in words (also written into the exported file)."""
    axes = ", ".join("DHW"[3 - net.spatial_dims :])
    b = "B" if fmt == "torchscript" or onnx_dynamic_batch(net) else "1"
    inputs = {"image": f"({b}, {net.in_channels}, {axes}) float32 in [0, 1]"}
    if net.noise_aware:
        optional = ", optional: estimated from the image when omitted" if fmt == "torchscript" else ""
        inputs["sigma"] = f"({b},) float32: noise sigma on the [0, 1] scale, one per image{optional}"
    return inputs


def to_torchscript(net: Any) -> Any:
    """``torch.jit.script`` of ``net`` in eval mode (no tracing: every size and σ path is kept)."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\..*deprecated", DeprecationWarning)
        return torch.jit.script(net.eval())


def save_torchscript(
    module: Any, path: str | os.PathLike[str], meta: dict[str, Any], extra: dict[str, bytes] | None = None
) -> None:
    """Save a scripted module with ``meta`` as its ``metadata.json`` (what MONAI's
    ``load_net_with_metadata`` reads) and ``extra`` files, as ``monai.bundle ckpt_export`` does."""
    from monai.data import save_net_with_metadata

    save_net_with_metadata(
        module, str(path), include_config_vals=False, meta_values=meta, more_extra_files=extra or {}
    )


def load_torchscript(path: str | os.PathLike[str]) -> Any:
    """``torch.jit.load`` on the CPU (the deprecation warning of ``torch.jit`` silenced)."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\..*deprecated", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def _onnx_wrapper(net: Any) -> Any:
    """``net`` with the ONNX graph's argument names (``image``, and ``sigma`` when noise-aware)."""
    import torch

    class Blind(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.net = inner

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.net(image)

    class NoiseAware(Blind):
        def forward(self, image: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            return self.net(image, sigma)

    return (NoiseAware if net.noise_aware else Blind)(net).eval()


@contextlib.contextmanager
def _quiet_onnx() -> Iterator[None]:
    """The ONNX exporter's warnings (torchvision ops it skips, deprecations) stay out of the output."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def onnx_dynamic_batch(net: Any) -> bool:
    """Whether ``net``'s ONNX graph takes any batch size (not with a dynamic convolution)."""
    from medden.nets.blocks import DynamicConv

    return not any(isinstance(m, DynamicConv) for m in net.modules())


def to_onnx(net: Any, path: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> None:
    """Export ``net`` to an ONNX file with dynamic spatial sizes and, where it can
    (:func:`onnx_dynamic_batch`), batch; ``meta`` goes into the file's metadata."""
    kind = type(net).__name__
    if kind in ONNX_UNSUPPORTED:
        raise UsageError(f"{kind} has no ONNX export: {ONNX_UNSUPPORTED[kind]}; use --format torchscript")
    try:
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
        import torch
    except ImportError:
        raise UsageError("ONNX export needs onnxscript: pip install onnx onnxscript onnxruntime") from None
    model = _onnx_wrapper(net)
    dynamic_batch = onnx_dynamic_batch(net)
    # an example batch of 2: torch.export would specialise a size of 1
    example = _inputs(net, check_sizes(net.spatial_dims)[0], batch=2 if dynamic_batch else 1, seed=0)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH) if dynamic_batch else None
    axes = "DHW"[3 - net.spatial_dims :]
    dims = {2 + i: torch.export.Dim(a, min=1, max=MAX_SIZE) for i, a in enumerate(axes)}
    if batch is not None:
        dims[0] = batch
    shapes = {"image": dims, "sigma": {0: batch} if batch else None} if net.noise_aware else {"image": dims}
    with _quiet_onnx():
        program = torch.onnx.export(
            model,
            example,
            dynamo=True,
            dynamic_shapes=shapes,
            input_names=list(shapes),
            output_names=["pred"],
            verbose=False,
        )
    program.model.metadata_props["medden"] = json.dumps(meta or {}, sort_keys=True)
    program.save(str(path))


def _inputs(net: Any, size: Sequence[int], batch: int, seed: int) -> tuple[Any, ...]:
    """A random ``image`` (and ``sigma`` for a noise-aware net) of one size, reproducible by ``seed``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.rand((batch, net.in_channels, *size), generator=g)
    if not net.noise_aware:
        return (x,)
    return x, 0.01 + 0.1 * torch.rand(batch, generator=g)


def max_difference(
    run: Callable[..., Any],
    net: Any,
    sizes: Sequence[Sequence[int]],
    without_sigma: bool = False,
    first_batch: int = 2,
) -> float:
    """The largest |run(inputs) − net(inputs)| over ``sizes`` (batch ``first_batch`` at the first
    size, else 1).

    ``run`` takes the inputs as tensors and returns a tensor or an array; ``without_sigma`` also
    compares a noise-aware net's call without σ (its own estimate; TorchScript only).
    """
    import numpy as np
    import torch

    worst = 0.0
    for i, size in enumerate(sizes):
        args = _inputs(net, size, batch=first_batch if i == 0 else 1, seed=i)
        calls = [args, args[:1]] if without_sigma and len(args) == 2 else [args]
        for call in calls:
            with torch.no_grad():
                expected = net(*call).numpy()
                got = np.asarray(run(*call))
            if got.shape != expected.shape:
                raise ExportMismatch(f"exported output shape {got.shape} for input {tuple(call[0].shape)}")
            worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def torchscript_runner(path: str | os.PathLike[str]) -> Callable[..., Any]:
    """A function running a TorchScript file (plain ``torch.jit.load``) on tensors, without gradients.

    It runs with TorchScript's graph optimisation off (``torch.jit.optimized_execution(False)``): the
    same operations, without the profiling runs that cost seconds per new input size for a large net.
    """
    import torch

    module = load_torchscript(path)

    def run(*args: Any) -> Any:
        with torch.no_grad(), torch.jit.optimized_execution(False):
            return module(*args).numpy()

    return run


def onnx_runner(path: str | os.PathLike[str]) -> Callable[..., Any]:
    """A function running an ONNX file with onnxruntime on tensors (``image`` [, ``sigma``])."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UsageError("checking an ONNX export needs onnxruntime: pip install onnxruntime") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(*args: Any) -> Any:
        return session.run(None, {n: a.numpy() for n, a in zip(names, args)})[0]

    return run


def check_export(
    path: str | os.PathLike[str], fmt: str, net: Any, sizes: Sequence[Sequence[int]] | None = None
) -> tuple[float, list[tuple[int, ...]]]:
    """Read an exported file back and compare it with ``net`` at ``sizes`` (default
    :func:`check_sizes`); raise :class:`ExportMismatch` above :data:`TOLERANCE`. Returns the largest
    difference and the sizes."""
    sizes = _valid_sizes(sizes, net.spatial_dims)
    if fmt == "torchscript":
        worst = max_difference(torchscript_runner(path), net, sizes, without_sigma=True)
    else:
        batch = 2 if onnx_dynamic_batch(net) else 1
        worst = max_difference(onnx_runner(path), net, sizes, first_batch=batch)
    if not worst <= TOLERANCE:
        raise ExportMismatch(
            f"the {fmt} export differs from the eager net by {worst:.3g} "
            f"(limit {TOLERANCE:g}): a medden bug, please report it"
        )
    return worst, sizes


def _valid_sizes(sizes: Sequence[Sequence[int]] | None, spatial_dims: int) -> list[tuple[int, ...]]:
    if sizes is None:
        return check_sizes(spatial_dims)
    out = [tuple(int(n) for n in s) for s in sizes]
    if not out or any(len(s) != spatial_dims or min(s) < 1 or max(s) > 4096 for s in out):
        raise UsageError(f"check sizes must be {spatial_dims} numbers from 1 to 4096 each, got {sizes}")
    return out


def resolve_source(
    source: str, net: str | None = None, allow_unverified: bool = False
) -> tuple[Any, str, dict[str, Any]]:
    """The net to export from a weights file, a bundle folder or a bundle name: the net (eval, CPU),
    a name for the output and its provenance."""
    path = Path(source)
    if path.is_dir():
        loaded = load_model(bundle=path, allow_unverified=allow_unverified)
    elif path.is_file():
        loaded = load_model(checkpoint=path, net=net)
    elif source in available_bundles():
        if net is not None:
            raise UsageError("--net goes with a weights file, not a bundle")
        loaded = load_model(model=source, allow_unverified=allow_unverified)
    else:
        raise UsageError(f"not a weights file, bundle folder or bundle name: {source}")
    if loaded.kind not in ("net", "bundle"):
        raise UsageError(f"{source}: only a net with weights can be exported, not a {loaded.kind}")
    stem = path.name if path.is_dir() else path.stem if path.is_file() else source
    return loaded.fn, stem, loaded.provenance()


def export_model(
    source: str,
    fmt: str = "torchscript",
    output: str | os.PathLike[str] | None = None,
    net: str | None = None,
    overwrite: bool = False,
    allow_unverified: bool = False,
    sizes: Sequence[Sequence[int]] | None = None,
) -> dict[str, Any]:
    """Export the net of ``source`` (weights file, bundle folder or bundle name) to ``fmt``.

    The file (default ``./<name>.ts`` or ``./<name>.onnx``) is written atomically and only once it
    has been read back and checked against the eager net at ``sizes`` (default :func:`check_sizes`,
    :func:`check_export`); an existing file is replaced only with ``overwrite``. Returns a record of
    what was written and checked.

    Example:
        >>> export_model("weights.safetensors", "onnx")  # doctest: +SKIP
    """
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    model, stem, provenance = resolve_source(source, net, allow_unverified)
    sizes = _valid_sizes(sizes, model.spatial_dims)
    out = Path(output) if output is not None else Path(f"{stem}{SUFFIXES[fmt]}")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists (--overwrite to replace it)")
    if Path(source).exists() and out.resolve() == Path(source).resolve():
        raise UsageError(f"{out} is the input: choose another --out")
    meta = {
        "medden_version": __version__,
        "format": fmt,
        "source": provenance,
        "inputs": describe_inputs(model, fmt),
        "outputs": {"pred": "the denoised image, shaped like image"},
    }
    with atomic_path(out) as tmp:
        if fmt == "torchscript":
            save_torchscript(to_torchscript(model), tmp, meta)
        else:
            to_onnx(model, tmp, meta)
        worst, sizes = check_export(tmp, fmt, model, sizes)
    return {
        "output": str(out),
        "format": fmt,
        "sha256": checkpoints.sha256_file(out),
        "bytes": out.stat().st_size,
        "net": provenance.get("net"),
        "inputs": meta["inputs"],
        "checked_sizes": [list(s) for s in sizes],
        "max_abs_diff": worst,
    }
