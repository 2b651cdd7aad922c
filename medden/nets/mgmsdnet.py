"""MGMSDNet: multi-gradient multi-scale attention-driven denoiser network (Das et al.)."""

from __future__ import annotations

from medden.nets.gradient_guided import GradientGuidedDenoiser


class MGMSDNet(GradientGuidedDenoiser):
    """MGMSDNet: Sobel gradients in four directions (horizontal, vertical and both diagonals), a
    negative-image branch (``1 − x``) and multi-scale attention blocks, predicting the noise
    (``x − noise``). The defaults give about 2 M parameters, as the authors describe.

    Args:
        spatial_dims: 2 (the net is 2D).
        in_channels: 1 (gray) or 3 (color).
        out_channels: must equal ``in_channels``.
        features: feature channels.
        num_blocks: multi-scale attention blocks.
        negative_branch: use the negative-image branch (False for ablation).
        attention: channel + spatial attention in the blocks (False for ablation).
        noise_level_input: also take the noise level as a σ map channel (``net(x, sigma)``, FFDNet-style).

    Example:
        >>> import torch
        >>> from medden.nets import MGMSDNet
        >>> net = MGMSDNet(spatial_dims=2, features=8, num_blocks=2).eval()
        >>> net(torch.rand(2, 1, 31, 17)).shape
        torch.Size([2, 1, 31, 17])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        features: int = 64,
        num_blocks: int = 14,
        negative_branch: bool = True,
        attention: bool = True,
        noise_level_input: bool = False,
    ) -> None:
        super().__init__(
            spatial_dims,
            in_channels,
            out_channels,
            features=features,
            num_blocks=num_blocks,
            directions=("h", "v", "d45", "d135"),
            negative_branch=negative_branch,
            attention=attention,
            noise_level_input=noise_level_input,
        )
