"""A plain registry of nets: name → constructor and default arguments.

``get(name, **kwargs)`` builds a net (the registered defaults, then ``kwargs``); ``available()``
lists the names. A net added with :func:`register` joins the parametrised test suite
(``tests/test_nets.py``) and ``medden models`` with no other change.
"""

from __future__ import annotations

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


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
