"""Dynamic convolution (Chen et al., CVPR 2020) and DRAN's noise gate."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medden.nets.blocks.conv import Pool, conv


class DynamicConv(nn.Module):
    """A convolution whose kernel is an input-dependent mixture of K candidate kernels.

    ``W(x) = Σ_k π_k(x) W_k`` and ``b(x) = Σ_k π_k(x) b_k`` with
    ``π(x) = softmax(FC(ReLU(FC(avgpool(x)))) / temperature)``; the per-sample convolution runs as
    one grouped convolution over the batch.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size.
        num_kernels: K candidate kernels.
        reduction: reduction of the attention MLP.
        temperature: softmax temperature (larger: closer to a uniform mixture).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        num_kernels: int = 4,
        reduction: int = 4,
        temperature: float = 4.0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        self.spatial_dims, self.in_channels, self.out_channels = spatial_dims, in_channels, out_channels
        self.kernel_size, self.num_kernels, self.temperature = kernel_size, num_kernels, float(temperature)
        hidden = max(in_channels // reduction, 4)
        self.attention = nn.Sequential(
            Pool[Pool.ADAPTIVEAVG, spatial_dims](1),
            conv(spatial_dims, in_channels, hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            conv(spatial_dims, hidden, num_kernels, kernel_size=1),
        )
        shape = (num_kernels, out_channels, in_channels) + (kernel_size,) * spatial_dims
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.zeros(num_kernels, out_channels))
        for k in range(num_kernels):
            nn.init.kaiming_uniform_(self.weight.data[k], a=5**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        pi = torch.softmax(self.attention(x).flatten(1) / self.temperature, dim=1)  # (B, K)
        weight = torch.einsum("bk,koi...->boi...", pi, self.weight).reshape(
            [b * self.out_channels, self.in_channels] + list(self.weight.shape[3:])
        )
        bias = (pi @ self.bias).reshape(-1)
        grouped = x.reshape([1, b * self.in_channels] + list(x.shape[2:]))
        if self.spatial_dims == 2:
            y = F.conv2d(grouped, weight, bias, padding=self.kernel_size // 2, groups=b)
        else:
            y = F.conv3d(grouped, weight, bias, padding=self.kernel_size // 2, groups=b)
        return y.reshape([b, self.out_channels] + list(y.shape[2:]))


class NoiseGate(nn.Module):
    """DRAN's noise gate: ``x · sigmoid(conv(x))``, a learned per-voxel, per-channel gate."""

    def __init__(self, spatial_dims: int, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.gate = conv(spatial_dims, channels, channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.gate(x))
