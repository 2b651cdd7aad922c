"""The trunk GIMSANet and MGMSDNet share: image branches and Sobel-gradient branches, fused, then
multi-scale attention blocks into which the gradient features are infused, and a noise-predicting
tail (global residual). The two nets differ in their branches (see their modules)."""

from __future__ import annotations

import torch
from torch import nn

from medden.nets.base import Denoiser
from medden.nets.blocks import GradientFilter, MultiScaleAttentionBlock, conv, sigma_map
from medden.nets.blocks.conv import act


class GradientGuidedDenoiser(Denoiser):
    """Base of GIMSANet and MGMSDNet (2D).

    Args:
        spatial_dims: 2.
        in_channels: 1 (gray) or 3 (color).
        out_channels: must equal ``in_channels`` (residual learning).
        features: feature channels.
        num_blocks: multi-scale attention blocks.
        directions: Sobel directions of the gradient branch (empty: no gradient branch).
        negative_branch: add a branch on the negative image ``1 − x``.
        dilations: receptive fields of the multi-scale blocks.
        attention: channel + spatial attention in the blocks.
        noise_level_input: the image branch also takes a σ map (FFDNet-style, ``net(x, sigma)``); the
            σ channel comes last, so blind weights start this net exactly as they were, with the σ
            channel's weights set to zero (:func:`medden.checkpoints.adapt_state_dict`).
    """

    supported_dims = (2,)

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        features: int,
        num_blocks: int,
        directions: tuple[str, ...],
        negative_branch: bool,
        dilations: tuple[int, ...] = (1, 2, 3),
        attention: bool = True,
        noise_level_input: bool = False,
    ) -> None:
        super().__init__(spatial_dims, in_channels, out_channels)
        self.noise_aware = bool(noise_level_input)
        if out_channels != in_channels:
            raise ValueError(
                f"{type(self).__name__} learns the noise residual: out_channels must equal in_channels"
            )
        sd = spatial_dims

        def head(channels: int) -> nn.Module:
            return nn.Sequential(conv(sd, channels, features), act("prelu"))

        self.image_head = head(in_channels + int(self.noise_aware))
        self.negative_head = head(in_channels) if negative_branch else None
        self.gradient = GradientFilter(in_channels, tuple(directions)) if directions else None
        self.gradient_head = head(in_channels * len(directions)) if directions else None
        branches = 1 + int(negative_branch) + int(bool(directions))
        self.fuse = conv(sd, branches * features, features, kernel_size=1)
        self.blocks = nn.ModuleList(
            [
                MultiScaleAttentionBlock(sd, features, dilations, attention=attention)
                for _ in range(num_blocks)
            ]
        )
        self.infuse = (
            nn.ModuleList([conv(sd, 2 * features, features, kernel_size=1) for _ in range(num_blocks)])
            if directions
            else None
        )
        self.tail = conv(sd, features, out_channels)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float | None) -> torch.Tensor:
        feats = [self.image_head(torch.cat([x, sigma_map(x, sigma)], dim=1) if self.noise_aware else x)]
        if self.negative_head is not None:
            feats.append(self.negative_head(1.0 - x))
        g = None
        if self.gradient is not None and self.gradient_head is not None:
            g = self.gradient_head(self.gradient(x))
            feats.append(g)
        h = self.fuse(torch.cat(feats, dim=1))
        y = h
        if g is not None and self.infuse is not None:
            for infuse, block in zip(self.infuse, self.blocks):
                y = block(infuse(torch.cat([y, g], dim=1)))
        else:
            for block in self.blocks:
                y = block(y)
        return x - self.tail(y + h)
