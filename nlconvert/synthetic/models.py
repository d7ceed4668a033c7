"""Seeded random PyTorch networks whose activations behave like a trained network's."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ..arch import ArchSpec, Head
from ..arch.classes import default_class_names
from ..model import Affine3d, FrozenBatchNorm3d, NLResNet, build_model
from .clips import seeded_clip


@torch.no_grad()
def synthetic_model(arch: ArchSpec, seed: int = 0, head: Head = "clip",
                    calib_shape: tuple[int, int, int] | None = None) -> NLResNet:
    """A seeded random network whose activations stay O(1), like a trained one.

    Conv weights are He-initialised; every norm layer is calibrated on a seeded clip so that
    it normalises what it actually sees (BN running statistics = the observed channel mean
    and variance, affine layers the equivalent scale and shift), then gets a random gamma
    and beta. The last norm of each residual branch and the non-local output are damped so
    the residual sums do not grow. Non-local weights are non-trivial.
    """
    model = build_model(arch, head, default_class_names(arch.num_classes))
    gen = torch.Generator().manual_seed(seed)
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv3d, nn.Linear)):
            fan_in = mod.weight[0].numel()
            # theta and phi smaller: a soft attention, not a one-hot one.
            gain = 1.0 if name.endswith((".theta", ".phi")) else 2.0
            mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * math.sqrt(gain / fan_in))
            if mod.bias is not None:
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen) * 0.05)
    norms = {name: mod for name, mod in model.named_modules()
             if isinstance(mod, (FrozenBatchNorm3d, Affine3d))}
    handles = []
    for name, mod in norms.items():
        if ".nonlocal_blocks." in name:
            # A non-local output is nearly the same for every noise clip: statistics measured
            # on one would blow up on the next. Fixed statistics and a small gamma instead
            # (trained NL blocks start from gamma 0 and stay small).
            _set_norm(mod, torch.randn(mod.weight.shape[0], generator=gen) * 0.1,
                      0.5 + torch.rand(mod.weight.shape[0], generator=gen), gen, 0.2)
            continue
        damp = 0.4 if name.endswith("norm_c") else 1.0
        handles.append(mod.register_forward_pre_hook(_calibrator(gen, damp)))
    t, h, w = calib_shape or (arch.frames, arch.crop_size, arch.crop_size)
    fc = model.head.fc
    pooled: list[torch.Tensor] = []
    handles.append(fc.register_forward_pre_hook(lambda _m, args: pooled.append(args[0])))
    mode = model.head_mode
    model.set_head("clip")
    try:
        model(seeded_clip((2, 3, t, h, w), seed + 1))
    finally:
        for handle in handles:
            handle.remove()
        model.set_head(mode)
    # A centred classifier with logits spread over a few units, like a trained one: the
    # feature every clip shares is subtracted, so the top class depends on the clip.
    feats = pooled[0]
    centre = feats.mean(dim=0)
    spread = float((feats - centre).matmul(fc.weight.t()).std().clamp_min(1e-6))
    fc.weight.mul_(3.0 / spread)
    fc.bias.copy_(-fc.weight.matmul(centre) + torch.randn(fc.bias.shape, generator=gen) * 0.3)
    return model


def _set_norm(module: nn.Module, mean: torch.Tensor, var: torch.Tensor, gen: torch.Generator,
              damp: float) -> None:
    c = mean.shape[0]
    gamma = (0.5 + 0.5 * torch.rand(c, generator=gen)) * damp
    beta = torch.randn(c, generator=gen) * 0.1 * damp
    if isinstance(module, FrozenBatchNorm3d):
        module.running_mean.copy_(mean)
        module.running_var.copy_(var)
        module.weight.copy_(gamma)
        module.bias.copy_(beta)
    elif isinstance(module, Affine3d):
        inv = gamma / var.sqrt()
        module.weight.copy_(inv)
        module.bias.copy_(beta - mean * inv)


def _calibrator(gen: torch.Generator, damp: float) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        mean = x.mean(dim=(0, 2, 3, 4))
        var = x.var(dim=(0, 2, 3, 4), unbiased=False)
        var = var + 0.05 * var.mean() + 1e-3  # a floor: near-constant channels must not explode
        _set_norm(module, mean, var, gen, damp)

    return hook
