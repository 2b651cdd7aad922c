"""Training losses: hybrid MSE + SSIM (the HMAD-Net paper's), Charbonnier (MIRNet's), L1 (DRAN's)."""

from __future__ import annotations

import torch
from torch import nn


class HybridLoss(nn.Module):
    """``mse_weight · MSE + ssim_weight · (1 − SSIM)``, the HMAD-Net paper's loss (0.8 and 0.2).

    SSIM is MONAI's differentiable SSIM (Gaussian 11-tap window, σ 1.5) on images in
    ``[0, data_range]``; 2D and 3D.

    Args:
        spatial_dims: 2 or 3.
        mse_weight: weight of the mean squared error.
        ssim_weight: weight of ``1 − SSIM``.
        data_range: the value range of the images (1.0 for [0, 1]).
        win_size: SSIM window side; reduced automatically for patches smaller than the window.

    Example:
        >>> import torch
        >>> loss = HybridLoss(spatial_dims=2)
        >>> x = torch.rand(2, 1, 32, 32)
        >>> float(loss(x, x)) < 1e-6
        True
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        mse_weight: float = 0.8,
        ssim_weight: float = 0.2,
        data_range: float = 1.0,
        win_size: int = 11,
    ) -> None:
        super().__init__()
        if mse_weight < 0 or ssim_weight < 0 or mse_weight + ssim_weight == 0:
            raise ValueError("loss weights must be >= 0 and not both 0")
        self.spatial_dims = spatial_dims
        self.mse_weight = mse_weight
        self.ssim_weight = ssim_weight
        self.data_range = data_range
        self.win_size = win_size
        self._ssim: dict[int, nn.Module] = {}

    def _ssim_loss(self, win: int) -> nn.Module:
        if win not in self._ssim:
            from monai.losses import SSIMLoss

            self._ssim[win] = SSIMLoss(
                spatial_dims=self.spatial_dims, data_range=self.data_range, win_size=win
            )
        return self._ssim[win]

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = pred.new_zeros(())
        if self.mse_weight:
            loss = loss + self.mse_weight * nn.functional.mse_loss(pred, target)
        if self.ssim_weight:
            smallest = min(pred.shape[2:])
            win = min(self.win_size, smallest - (1 - smallest % 2))  # odd and no larger than the patch
            loss = loss + self.ssim_weight * self._ssim_loss(max(win, 3))(pred, target)
        return loss


class CharbonnierLoss(nn.Module):
    """``mean(sqrt((pred − target)² + eps²))``, a smooth L1 (MIRNet's loss).

    Example:
        >>> import torch
        >>> round(float(CharbonnierLoss(eps=1e-3)(torch.zeros(4), torch.zeros(4))), 6)
        0.001
    """

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((pred - target) ** 2 + self.eps**2).mean()


LOSSES = ("hybrid", "charbonnier", "l1", "mse")


def get_loss(name: str, spatial_dims: int = 2, **kwargs: float) -> nn.Module:
    """A loss by name: ``hybrid`` (``mse_weight``, ``ssim_weight``), ``charbonnier``, ``l1``, ``mse``."""
    if name == "hybrid":
        return HybridLoss(spatial_dims=spatial_dims, **kwargs)
    if name == "charbonnier":
        return CharbonnierLoss(**kwargs)
    if name == "l1":
        return nn.L1Loss()
    if name == "mse":
        return nn.MSELoss()
    raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
