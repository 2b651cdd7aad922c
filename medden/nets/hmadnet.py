"""HMAD-Net / DenoiseNet: a residual-attention U-Net for medical image denoising (2D and 3D)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medden.nets.base import Denoiser
from medden.nets.blocks import ChannelAttention, ResidualBlock, SpatialAttention, conv, sigma_map
from medden.nets.blocks.conv import Conv, Pool


class HMADNet(Denoiser):
    """HMAD-Net (DenoiseNet), implemented from the paper's sections 3.1.1–3.1.4.

    - Encoder level: two 3×3 conv (stride 1, pad 1) + SiLU with a residual skip, channel attention
      (global average and max pooling → shared two 1×1 convs → sigmoid), then 2×2 max pooling.
    - Bottleneck: ``bottleneck_blocks`` residual blocks (two 3×3 conv + SiLU, residual scaling
      ``res_scale`` = 0.2) followed by channel and 7×7 spatial attention ("residual-attention fusion").
    - Decoder level: transposed convolution (kernel 2, stride 2), concatenation with the encoder
      skip, a residual attention block (residual block + channel and spatial attention).
    - Output: 1×1 convolution and sigmoid, an image in [0, 1] (``output="sigmoid"``, the paper's).
      ``output="linear"`` returns the 1×1 convolution as it is (for nets that add it to something).
      ``output="residual"`` (a medden option) makes the 1×1 convolution predict the noise and returns
      ``x − noise`` (global residual learning, as DnCNN and DRAN): it trains faster and keeps the
      brightest tissue, which a sigmoid compresses.

    ``noise_level_input=True`` (a medden option, as FFDNet) concatenates a constant map of the noise
    level σ to the input, so the net is called ``net(x, sigma)`` and is noise-level-aware; ``sigma``
    defaults to the in-net MAD estimate. The paper's net is blind (the default).

    The paper gives no widths; ``features`` sets them (the compact registry entry uses half).
    ``attention=False`` / ``residual=False`` remove the attention modules / residual connections for
    the paper's ablation (Table 4).

    Args:
        spatial_dims: 2 (slices, images) or 3 (volumes).
        in_channels: input channels.
        out_channels: output channels.
        features: widths of the encoder levels and, last, of the bottleneck; ``len(features) − 1``
            poolings, so inputs are padded to a multiple of ``2 ** (len(features) − 1)``.
        bottleneck_blocks: residual blocks in the bottleneck.
        res_scale: residual scaling of the bottleneck blocks.
        attention: use channel and spatial attention.
        residual: use residual connections.
        reduction: channel-attention reduction.
        output: ``sigmoid`` (the paper: predict the image), ``residual`` (predict the noise) or
            ``linear`` (the head's output unchanged).
        noise_level_input: take the noise level σ as an extra input channel (``net(x, sigma)``).

    Example:
        >>> import torch
        >>> from medden.nets import HMADNet
        >>> net = HMADNet(spatial_dims=2, in_channels=1, out_channels=1, features=(8, 16, 32)).eval()
        >>> net(torch.rand(1, 1, 67, 93)).shape
        torch.Size([1, 1, 67, 93])
        >>> HMADNet(spatial_dims=3, features=(4, 8))(torch.rand(1, 1, 9, 10, 11)).shape
        torch.Size([1, 1, 9, 10, 11])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256),
        bottleneck_blocks: int = 2,
        res_scale: float = 0.2,
        attention: bool = True,
        residual: bool = True,
        reduction: int = 8,
        output: str = "sigmoid",
        noise_level_input: bool = False,
    ) -> None:
        features = tuple(int(f) for f in features)
        if output not in ("sigmoid", "residual", "linear"):
            raise ValueError(f"output must be 'sigmoid', 'residual' or 'linear', not {output!r}")
        if output == "residual" and in_channels != out_channels:
            raise ValueError("output='residual' needs out_channels == in_channels")
        if len(features) < 2:
            raise ValueError("features needs at least one encoder level and the bottleneck width")
        super().__init__(spatial_dims, in_channels, out_channels, multiple=2 ** (len(features) - 1))
        sd = spatial_dims
        self.noise_aware = bool(noise_level_input)
        self.encoders = nn.ModuleList()
        prev = in_channels + (1 if noise_level_input else 0)
        for f in features[:-1]:
            self.encoders.append(
                ResidualBlock(
                    sd, prev, f, residual=residual, channel_attention=attention, reduction=reduction
                )
            )
            prev = f
        self.pool = Pool[Pool.MAX, sd](kernel_size=2, stride=2)
        bottleneck: list[nn.Module] = [ResidualBlock(sd, prev, features[-1], residual=residual)]
        bottleneck += [
            ResidualBlock(sd, features[-1], scale=res_scale, residual=residual)
            for _ in range(bottleneck_blocks)
        ]
        if attention:
            bottleneck += [ChannelAttention(sd, features[-1], reduction=reduction), SpatialAttention(sd)]
        self.bottleneck = nn.Sequential(*bottleneck)
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        prev = features[-1]
        for f in reversed(features[:-1]):
            self.upsamplers.append(Conv[Conv.CONVTRANS, sd](prev, f, kernel_size=2, stride=2))
            self.decoders.append(
                ResidualBlock(
                    sd,
                    2 * f,
                    f,
                    residual=residual,
                    channel_attention=attention,
                    spatial_attention=attention,
                    reduction=reduction,
                )
            )
            prev = f
        self.head = conv(sd, features[0], out_channels, kernel_size=1)
        self.output = output

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float | None) -> torch.Tensor:
        inp = x
        if self.noise_aware:
            x = torch.cat([x, sigma_map(x, sigma)], dim=1)
        skips: list[torch.Tensor] = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for i, (up, decoder) in enumerate(zip(self.upsamplers, self.decoders)):
            x = decoder(torch.cat([up(x), skips[len(skips) - 1 - i]], dim=1))
        if self.output == "residual":
            return inp - self.head(x)
        if self.output == "linear":
            return self.head(x)
        return torch.sigmoid(self.head(x))
