"""The one denoiser interface every medden net implements.

``net(x)`` or ``net(x, sigma)`` on (B, C, H, W) — or (B, C, D, H, W) for nets that support 3D —
with values in [0, 1]. Any spatial size works: the input is padded (replicate) to the multiple the
net needs and the output is cropped back. ``sigma`` is the noise standard deviation on the [0, 1]
scale, a number or one value per batch item; nets that do not use a noise level ignore it.

Every net is scriptable (``torch.jit.script``) and exportable (``torch.export``, ONNX) with dynamic
spatial sizes (:mod:`medden.export`). No ``from __future__ import annotations`` here: TorchScript
reads the class annotations below as types, and cannot resolve them as strings.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Denoiser(nn.Module):
    """Base class: checks the input, pads to :attr:`multiple`, calls :meth:`denoise`, crops back.

    Subclasses set :attr:`supported_dims`, call ``super().__init__(spatial_dims, in_channels,
    out_channels, multiple)`` and implement ``denoise(x, sigma)`` on padded input.

    Attributes:
        spatial_dims: 2 or 3.
        in_channels: channels of ``x``.
        out_channels: channels of the output.
        multiple: every spatial size is padded to a multiple of this.
        noise_aware: the net uses ``sigma`` (estimated from the input when not given).
        intensity: the scaling into [0, 1] the net expects (``minmax`` per image unless trained otherwise).

    Together with :attr:`default_mode` and the call, this is :class:`medden.denoiser.Denoiser`.
    """

    supported_dims: tuple[int, ...] = (2, 3)
    noise_aware: bool = False
    intensity: str = "minmax"

    @property
    def default_mode(self) -> str:
        """``3d`` for a 3D net, else ``2d`` (slice-wise)."""
        return "3d" if self.spatial_dims == 3 else "2d"

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, multiple: int = 1) -> None:
        super().__init__()
        if spatial_dims not in self.supported_dims:
            raise ValueError(
                f"{type(self).__name__} supports spatial_dims {self.supported_dims}, got {spatial_dims}"
            )
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"channels must be >= 1, got in={in_channels}, out={out_channels}")
        self.spatial_dims, self.in_channels, self.out_channels = spatial_dims, in_channels, out_channels
        self.multiple = int(multiple)
        # the start of the wrong-input message, built here so that forward stays scriptable
        self._expects = (
            f"{type(self).__name__} expects (B, {in_channels}, {', '.join('DHW'[3 - spatial_dims :])}) input"
        )

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float | None = None) -> torch.Tensor:
        """Pad every spatial size up to a multiple of :attr:`multiple` (replicate), denoise, crop back.

        Written for TorchScript (``torch.jit.script``) and ``torch.export``: the padding is computed
        from the input's shape inside the graph, so an exported net takes any size.
        """
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(self._expects + f", got {list(x.shape)}")
        if self.multiple == 1:
            return self.denoise(x, sigma)
        m = self.multiple
        pad: list[int] = []
        for d in range(x.dim() - 1, 1, -1):  # F.pad lists the last dimension first
            pad += [0, (m - x.shape[d] % m) % m]
        y = self.denoise(F.pad(x, pad, mode="replicate"), sigma)
        for d in range(2, x.dim()):
            y = y.narrow(d, 0, x.shape[d])
        return y

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float | None) -> torch.Tensor:
        """The net itself, on input whose spatial sizes are multiples of :attr:`multiple`."""
        raise NotImplementedError
