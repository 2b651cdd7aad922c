"""Building blocks shared by every medden net: each block is written once, here."""

from medden.nets.blocks.attention import (
    ChannelAttention,
    ChannelSpatialAttention,
    DualAttention,
    SpatialAttention,
)
from medden.nets.blocks.conv import act, conv
from medden.nets.blocks.dynamic import DynamicConv, NoiseGate
from medden.nets.blocks.filters import SOBEL, Blur2d, FixedFilter2d, GradientFilter
from medden.nets.blocks.multiscale import MultiScaleAttentionBlock
from medden.nets.blocks.noise_level import estimate_sigma, sigma_map
from medden.nets.blocks.residual import ResidualBlock
from medden.nets.blocks.sampling import ResidualDownsample, ResidualUpsample, resample
from medden.nets.blocks.skff import SKFF

__all__ = [
    "SKFF",
    "SOBEL",
    "Blur2d",
    "ChannelAttention",
    "ChannelSpatialAttention",
    "DualAttention",
    "DynamicConv",
    "FixedFilter2d",
    "GradientFilter",
    "MultiScaleAttentionBlock",
    "NoiseGate",
    "ResidualBlock",
    "ResidualDownsample",
    "ResidualUpsample",
    "SpatialAttention",
    "act",
    "conv",
    "estimate_sigma",
    "resample",
    "sigma_map",
]
