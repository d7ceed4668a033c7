"""The official initialisation of every tensor of a network (lib/models of video-nonlocal-net).

One table of facts, used wherever a tensor is not in a file: ``--inflate`` (the non-local
blocks and classifier a 2D ImageNet checkpoint lacks), and the training stage
(:mod:`nlconvert.training`: a new classifier, non-local blocks inserted into a baseline, a
network from scratch). Each value comes with a short note saying how it was made, so that
``caffe2-to-torch`` and ``info`` can report it.
"""

from __future__ import annotations

import math

import torch

from ..arch import ArchSpec
from ..model.resnet import build_model

#: cfg.MODEL.FC_INIT_STD: the classifier's Gaussian weights (zero bias).
FC_INIT_STD = 0.01
#: cfg.NONLOCAL.CONV_INIT_STD: theta, phi, g and out of a non-local block (zero biases).
NONLOCAL_CONV_INIT_STD = 0.01
#: cfg.NONLOCAL.BN_INIT_GAMMA: the BN after W_z starts at scale 0, so a new block is identity.
NONLOCAL_BN_INIT_GAMMA = 0.0
#: cfg.MODEL.BN_INIT_GAMMA of every Kinetics config: the last BN of each residual branch.
BN_INIT_GAMMA = 0.0


def _is_nonlocal(name: str) -> bool:
    return ".nonlocal_blocks." in name


def init_rule(arch: ArchSpec, name: str, shape: tuple[int, ...]) -> tuple[str, float]:
    """How the official code initialises parameter/buffer `name`: (kind, value).

    kind is ``"gauss"`` (value = std), ``"const"`` (value) or ``"msra"`` (Caffe2 MSRAFill:
    Gaussian with std sqrt(2 / fan_out), fan_out = numel / input channels).
    """
    if name.endswith("running_mean"):
        return "const", 0.0
    if name.endswith("running_var"):
        return "const", 1.0
    if name.startswith("head.fc."):
        return ("gauss", FC_INIT_STD) if name.endswith("weight") else ("const", 0.0)
    if _is_nonlocal(name):
        if ".norm." in name:  # SpatialBN (NONLOCAL.USE_BN) after the out conv
            return ("const", NONLOCAL_BN_INIT_GAMMA) if name.endswith("weight") else ("const", 0.0)
        if name.endswith("bias"):
            return "const", 0.0
        if ".out." in name and not arch.nonlocal_block.use_bn:
            return "const", 0.0  # NONLOCAL.USE_ZERO_INIT_CONV of the affine configs
        return "gauss", NONLOCAL_CONV_INIT_STD
    if len(shape) > 1:  # a backbone convolution
        return "msra", math.sqrt(2.0 / (math.prod(shape) / shape[1]))
    if name.endswith("norm_c.weight"):
        return "const", BN_INIT_GAMMA
    return ("const", 1.0) if name.endswith("weight") else ("const", 0.0)


def describe_rule(kind: str, value: float) -> str:
    """The note of a rule for humans: ``N(0, 0.01)``, ``MSRA N(0, 0.0178)``, ``zero``, ``one``."""
    if kind == "gauss":
        return f"N(0, {value:g})"
    if kind == "msra":
        return f"MSRA N(0, {value:.4g})"
    return {0.0: "zero", 1.0: "one"}.get(value, f"constant {value:g}")


def official_init(arch: ArchSpec, *, seed: int = 0, names: set[str] | None = None
                  ) -> dict[str, tuple[torch.Tensor, str]]:
    """Initial values (with how each was made) of the tensors of `arch` (all, or `names`).

    Gaussian draws come from one generator seeded with `seed`, in state-dict order.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, tuple[torch.Tensor, str]] = {}
    for name, t in build_model(arch, device="meta").state_dict().items():
        if names is not None and name not in names:
            continue
        shape = tuple(t.shape)
        kind, value = init_rule(arch, name, shape)
        if kind == "const":
            tensor = torch.full(shape, value)
        else:
            tensor = torch.randn(shape, generator=gen) * value
        out[name] = (tensor, describe_rule(kind, value))
    return out
