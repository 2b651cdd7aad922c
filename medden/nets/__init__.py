"""medden's networks behind one interface (:class:`medden.nets.base.Denoiser`) and a registry.

Every net is called ``net(x)`` or ``net(x, sigma)`` on (B, C, H, W) — or (B, C, D, H, W) where it
supports 3D — with values in [0, 1]; any spatial size works. ``spatial_dims`` is the first argument
of every constructor. ``get(name, **kwargs)`` builds a registered configuration; ``available()``
lists them.
"""

from medden.nets.base import Denoiser
from medden.nets.dncnn import DnCNN
from medden.nets.dran import DRAN
from medden.nets.gimsanet import GIMSANet
from medden.nets.hmadnet import HMADNet
from medden.nets.mgmsdnet import MGMSDNet
from medden.nets.mirnet import MIRNet
from medden.nets.registry import NetSpec, available, build, count_parameters, get, register, spec
from medden.nets.switching import ImpulseSwitch

__all__ = [
    "DRAN",
    "Denoiser",
    "DnCNN",
    "GIMSANet",
    "HMADNet",
    "ImpulseSwitch",
    "MGMSDNet",
    "MIRNet",
    "NetSpec",
    "available",
    "build",
    "count_parameters",
    "get",
    "register",
    "spec",
]

_BOTH = (2, 3)
for _spec in (
    NetSpec(
        "dncnn",
        DnCNN,
        {"features": 64, "depth": 17},
        _BOTH,
        (1, 3),
        {"depth": 10},
        "DnCNN, 17 layers, residual (Zhang et al. 2017); the standard baseline",
    ),
    NetSpec(
        "hmadnet",
        HMADNet,
        {"features": (32, 64, 128, 256)},
        _BOTH,
        (1, 3),
        {"attention": False},
        "HMAD-Net / DenoiseNet: residual-attention U-Net, sigmoid output",
    ),
    NetSpec(
        "hmadnet-compact",
        HMADNet,
        {"features": (16, 32, 64, 128)},
        _BOTH,
        (1,),
        {"residual": False},
        "HMAD-Net at half width, for CPU training",
    ),
    NetSpec(
        "hmadnet-switching",
        ImpulseSwitch,
        {"features": (16, 32, 64, 128)},
        _BOTH,
        (1,),
        {"refine": False},
        "HMAD-Net as a switching salt-and-pepper denoiser: changes only the detected impulses",
    ),
    NetSpec(
        "dran",
        DRAN,
        {"features": 64, "num_blocks": 8},
        _BOTH,
        (1, 3),
        {"num_kernels": 2},
        "DRAN: dynamic residual attention blocks with noise gates, global residual",
    ),
    NetSpec(
        "dran-compact",
        DRAN,
        {"features": 32, "num_blocks": 6, "noise_level_input": True},
        _BOTH,
        (1,),
        {"noise_level_input": False},
        "DRAN at half width with a noise-level input, for CPU training",
    ),
    NetSpec(
        "mirnet",
        MIRNet,
        {"features": 64, "factor": 2.0, "share_units": True},
        (2,),
        (3, 1),
        {"height": 2},
        "MIRNet, published configuration (3 groups x 2 multi-scale residual blocks)",
    ),
    NetSpec(
        "mirnet-compact",
        MIRNet,
        {"features": 16, "factor": 2.0, "num_groups": 2, "num_blocks": 1},
        (2,),
        (3,),
        {"height": 2},
        "MIRNet compact, for CPU training (low light: residual=False)",
    ),
    NetSpec(
        "gimsanet",
        GIMSANet,
        {"features": 64, "num_blocks": 9},
        (2,),
        (1, 3),
        {"gradient": False},
        "GIMSANet: Sobel-gradient-infused multi-scale attention CNN",
    ),
    NetSpec(
        "gimsanet-compact",
        GIMSANet,
        {"features": 32, "num_blocks": 6},
        (2,),
        (1, 3),
        {"attention": False},
        "GIMSANet at half width, for CPU training",
    ),
    NetSpec(
        "mgmsdnet",
        MGMSDNet,
        {"features": 64, "num_blocks": 14},
        (2,),
        (1, 3),
        {"negative_branch": False},
        "MGMSDNet: four-direction gradients, negative-image branch, multi-scale attention",
    ),
    NetSpec(
        "mgmsdnet-compact",
        MGMSDNet,
        {"features": 32, "num_blocks": 8},
        (2,),
        (1, 3),
        {"negative_branch": False},
        "MGMSDNet at half width, for CPU training",
    ),
):
    register(_spec)
del _spec
