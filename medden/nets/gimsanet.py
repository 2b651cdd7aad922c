"""GIMSANet: gradient-infused multi-scale attention network (Das et al., INDICON 2024)."""

from __future__ import annotations

from medden.nets.gradient_guided import GradientGuidedDenoiser


class GIMSANet(GradientGuidedDenoiser):
    """GIMSANet: horizontal and vertical Sobel gradient features infused into a multi-scale
    attention CNN that predicts the noise (``x − noise``), for gray and color AWGN.

    The partial public code builds its "horizontal" Sobel kernel wrongly; here the vertical kernel
    is the true transpose of the horizontal one (:data:`medden.nets.blocks.SOBEL`). The defaults
    give about 1.2 M parameters, close to the public code's 1.28 M.

    Args:
        spatial_dims: 2 (the net is 2D).
        in_channels: 1 (gray) or 3 (color).
        out_channels: must equal ``in_channels``.
        features: feature channels.
        num_blocks: multi-scale attention blocks.
        gradient: infuse gradient features (False for ablation).
        attention: channel + spatial attention in the blocks (False for ablation).
        noise_level_input: also take the noise level as a σ map channel (``net(x, sigma)``, FFDNet-style).

    Example:
        >>> import torch
        >>> from medden.nets import GIMSANet
        >>> net = GIMSANet(spatial_dims=2, in_channels=3, out_channels=3, features=8, num_blocks=2).eval()
        >>> net(torch.rand(1, 3, 45, 50)).shape
        torch.Size([1, 3, 45, 50])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        features: int = 64,
        num_blocks: int = 9,
        gradient: bool = True,
        attention: bool = True,
        noise_level_input: bool = False,
    ) -> None:
        super().__init__(
            spatial_dims,
            in_channels,
            out_channels,
            features=features,
            num_blocks=num_blocks,
            directions=("h", "v") if gradient else (),
            negative_branch=False,
            attention=attention,
            noise_level_input=noise_level_input,
        )
