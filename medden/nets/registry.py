"""A plain registry of nets: name → constructor and default arguments.

``get(name, **kwargs)`` builds a net (the registered defaults, then ``kwargs``); ``available()``
lists the names. A net added with :func:`register` joins the parametrised test suite
(``tests/test_nets.py``) and ``medden models`` with no other change.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(frozen=True)
class NetSpec:
    """What the registry knows of a net.

    Attributes:
        name: registry name.
        factory: the class (or function) that builds it.
        defaults: constructor arguments of this entry (a configuration such as ``compact``).
        spatial_dims: the spatial dimensions it supports.
        channels: input channel counts it is meant for (the tests run each).
        ablation: arguments that switch a part off (the tests check they change the parameter count).
        summary: one line for ``medden models``.
    """

    name: str
    factory: Callable[..., nn.Module]
    defaults: dict[str, Any] = field(default_factory=dict)
    spatial_dims: tuple[int, ...] = (2,)
    channels: tuple[int, ...] = (1, 3)
    ablation: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


_REGISTRY: dict[str, NetSpec] = {}


def register(spec: NetSpec) -> NetSpec:
    """Add a net to the registry (its name must be new)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"a net named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def available() -> list[str]:
    """The registered net names, sorted."""
    return sorted(_REGISTRY)


def spec(name: str) -> NetSpec:
    """The :class:`NetSpec` of ``name`` (KeyError with the available names if unknown)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown net {name!r}; available: {', '.join(available())}") from None


def get(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered net ``name`` with its defaults updated by ``kwargs``.

    Example:
        >>> from medden import nets
        >>> net = nets.get("dncnn", spatial_dims=2, in_channels=1, out_channels=1, depth=5)
        >>> type(net).__name__
        'DnCNN'
    """
    s = spec(name)
    return s.factory(**{**s.defaults, **kwargs})


#: the largest net :func:`build` makes from untrusted arguments (the published MIRNet has 31.8 M)
MAX_PARAMETERS = 100_000_000

#: JSON types a constructor argument read from a file may have
_PLAIN = (bool, int, float, str, type(None))


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return len(value) <= 16 and all(isinstance(v, _PLAIN) for v in value)
    return isinstance(value, _PLAIN)


def build(name: Any, kwargs: Any, max_parameters: int = MAX_PARAMETERS) -> nn.Module:
    """Build a registered net from arguments read from a file (weights metadata, a bundle config).

    Unlike :func:`get`, nothing here is trusted: the name must be registered, every argument must be
    a keyword of the net's constructor with a plain JSON value (numbers, strings, booleans, short
    lists of them), and the net is first built on PyTorch's ``meta`` device, which allocates no memory,
    so that arguments asking for more than ``max_parameters`` parameters (``features: 30000``) are
    refused before any allocation. Raises ``ValueError`` with a one-line reason.

    Example:
        >>> build("dncnn", {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "depth": 3}).spatial_dims
        2
        >>> build("dncnn", {"features": 30000})
        Traceback (most recent call last):
        ...
        ValueError: net 'dncnn' with these arguments would have 121.5 G parameters (limit 100.0 M)
    """
    import torch

    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown net {str(name)[:40]!r}; available: {', '.join(available())}")
    if not isinstance(kwargs, dict):
        raise ValueError(f"net arguments must be a mapping, not {type(kwargs).__name__}")
    s = _REGISTRY[name]
    params = inspect.signature(s.factory).parameters
    for key, value in kwargs.items():
        if key not in params or key == "self":
            raise ValueError(f"net {name!r} takes no argument {str(key)[:40]!r}")
        if not _plain(value):
            raise ValueError(f"net {name!r}: argument {key!r} must be a plain number, string or list")
    args = {**s.defaults, **kwargs}
    try:
        with torch.device("meta"):
            probe = s.factory(**args)
    except Exception as exc:  # untrusted arguments can fail anywhere in a constructor
        raise ValueError(f"net {name!r}: bad arguments ({' '.join(str(exc).split())[:200]})") from None
    n = sum(p.numel() for p in probe.parameters())
    if n > max_parameters:
        raise ValueError(
            f"net {name!r} with these arguments would have {_human(n)} parameters "
            f"(limit {_human(max_parameters)})"
        )
    return s.factory(**args)


def _human(n: int) -> str:
    return f"{n / 1e9:.1f} G" if n >= 1e9 else f"{n / 1e6:.1f} M"


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
