"""Weights on disk: safetensors (or a state-dict ``.pt`` loaded with ``weights_only=True``), checksummed.

A medden weights file is a plain state dict. Its safetensors header also carries, as metadata,
the registered net name and its constructor arguments (JSON), so a file alone can rebuild its net
(:func:`load_net`). Every load can check a sha256; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from medden.errors import MeddenError
from medden.io.atomic import atomic_path


class CheckpointError(MeddenError):
    """A weights file that is missing, corrupt, of the wrong net, or fails its checksum."""


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_weights(
    model: Any,
    path: str | os.PathLike[str],
    net: str | None = None,
    net_kwargs: dict | None = None,
    **extra: Any,
) -> str:
    """Save ``model``'s state dict (or a state dict) atomically; return the file's sha256.

    ``.safetensors`` files get ``net``, ``net_kwargs`` and ``extra`` as JSON metadata (the same
    content always gives the same bytes); ``.pt`` files hold the bare state dict.
    """
    import torch

    state = model.state_dict() if hasattr(model, "state_dict") else dict(model)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            # one metadata key: safetensors stores metadata in a hash map, so several keys would be
            # written in a random order and identical weights would get different checksums
            info = {"net": net, "net_kwargs": net_kwargs or {}, **extra}
            save_file(state, str(tmp), metadata={"medden": json.dumps(info, sort_keys=True)})
        else:
            torch.save(state, tmp)
    return sha256_file(path)


def verify_sha256(path: str | os.PathLike[str], expected: str | None) -> str:
    """Check a file's sha256 against ``expected`` (if given); return the actual one."""
    if not Path(path).is_file():
        raise CheckpointError(f"weights file not found: {path}")
    actual = sha256_file(path)
    if expected and actual.lower() != expected.lower():
        raise CheckpointError(f"{path}: sha256 {actual} does not match the recorded {expected}")
    return actual


def load_state_dict(path: str | os.PathLike[str], sha256: str | None = None) -> dict[str, Any]:
    """Load a state dict safely (safetensors, or ``torch.load(weights_only=True)``) after the checksum.

    A ``.pt`` file holding anything but tensors and plain containers (a pickled model, code) is
    refused in one line: medden never unpickles objects, whatever the file says.
    """
    import pickle

    import torch

    verify_sha256(path, sha256)
    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refused: the file holds pickled Python objects, not only tensors "
            "(medden loads safetensors or plain state dicts, never pickled code)"
        ) from None
    except Exception as exc:  # corrupt, truncated or not a weights file (SafetensorError, EOFError, ...)
        raise CheckpointError(
            f"{path}: cannot read weights ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a training checkpoint: take the model part
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a state dict")
    return state


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The medden metadata of a safetensors file (net name, kwargs, extras), decoded from JSON."""
    if not str(path).endswith(".safetensors"):
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
    except Exception as exc:  # SafetensorError: truncated, garbage, or not a safetensors file
        raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None
    try:
        info = json.loads(raw["medden"]) if "medden" in raw else {}
    except (ValueError, TypeError):
        raise CheckpointError(f"{path}: unreadable medden metadata") from None
    if not isinstance(info, dict) or not isinstance(info.get("net_kwargs", {}), dict):
        raise CheckpointError(f"{path}: unreadable medden metadata")
    return dict(info)


def adapt_state_dict(state: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Weights of a related net made to fit ``target`` (the state dict of the net to start):

    - *2D to 3D* (I3D-style inflation, Carreira & Zisserman 2017): a 2D kernel ``(out, in, kh, kw)``
      whose 3D counterpart is ``(out, in, kh, kw, kd)`` (MONAI's ``(H, W, D)`` order: depth last, the
      axis 2D slices are cut along) is placed on the middle depth slice (odd ``kd``: the 3D convolution
      of a volume then equals the 2D convolution of each slice) or repeated over depth (even ``kd``: the
      stride-``kd`` transposed convolutions that upsample, which then copy each slice ``kd`` times);
    - *blind to noise-level-aware*: a convolution taking fewer input channels than its counterpart (the
      first one, and a 1x1 skip beside it) gets zero weights for the missing ones, which come last (the
      σ map medden's nets append).

    Either way the new net starts as the old one (slice by slice; ignoring σ) and learns the rest from
    there instead of from random weights. Other tensors pass as they are; what still does not fit is
    refused by ``load_state_dict``.
    """
    import torch

    out: dict[str, Any] = {}
    for key, value in state.items():
        ref = target.get(key)
        if ref is not None and value.ndim + 1 == ref.ndim >= 4 and ref.shape[:-1][2:] == value.shape[2:]:
            depth = int(ref.shape[-1])
            if depth % 2:
                grown = torch.zeros((*value.shape, depth), dtype=value.dtype)
                grown[..., depth // 2] = value
            else:
                grown = value.unsqueeze(-1).repeat(*([1] * value.ndim), depth)
            value = grown
        if (
            ref is not None
            and value.ndim == ref.ndim >= 3
            and value.shape[0] == ref.shape[0]
            and value.shape[2:] == ref.shape[2:]
            and value.shape[1] < ref.shape[1]
        ):
            extra = torch.zeros(
                (value.shape[0], ref.shape[1] - value.shape[1], *value.shape[2:]), dtype=value.dtype
            )
            value = torch.cat([value, extra], dim=1)
        out[key] = value
    return out


def load_weights(
    model: Any,
    path: str | os.PathLike[str],
    sha256: str | None = None,
    strict: bool = True,
    adapt: bool = False,
) -> str:
    """Load weights into ``model`` (checksum first); return the file's sha256.

    ``adapt``: weights of the same architecture in 2D, or without the σ input, may start a 3D or a
    noise-level-aware net (:func:`adapt_state_dict`).
    """
    digest = verify_sha256(path, sha256)
    state = load_state_dict(path)
    target = model.module if hasattr(model, "module") else model
    if adapt:
        state = adapt_state_dict(state, target.state_dict())
    try:
        target.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the net ({first})") from None
    return digest


def load_net(
    path: str | os.PathLike[str], net: str | None = None, sha256: str | None = None, **kwargs: Any
) -> Any:
    """Build the registered net recorded in a weights file (or ``net``) and load the weights into it.

    The file's metadata is untrusted: its net name and arguments go through :func:`medden.nets.build`
    (registered names, constructor keywords, plain values, a bound on the parameter count checked
    before any memory is allocated), and every problem is a :class:`CheckpointError`.
    """
    from medden import nets  # defers torch and MONAI

    meta = read_metadata(path)
    name = net or meta.get("net")
    if not name:
        raise CheckpointError(f"{path}: the file does not name its net; pass the net name")
    try:
        model = nets.build(name, {**meta.get("net_kwargs", {}), **kwargs})
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    load_weights(model, path, sha256=sha256)
    return model.eval()
