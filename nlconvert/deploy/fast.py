"""The fast CPU inference path: an explicit, approximate alternative to the exact model.

:func:`optimize` returns a copy of a network that computes the same function in fewer
operations and lower precision:

* every FrozenBatchNorm3d / Affine3d is folded into the convolution before it (a per-channel
  scale of the weights and a bias), in float64 so folding adds no error of its own;
* the non-local attention runs as one ``F.scaled_dot_product_attention`` (a fused kernel:
  the THW x THW' affinity is never stored). SDPA's default scale 1/sqrt(d) with d = Ci is
  exactly the embedded Gaussian's Ci^-0.5;
* weights and activations in bfloat16 (AMX / AVX512-BF16 tiles on CPUs that have them) and
  the ``channels_last_3d`` memory layout oneDNN's convolutions prefer; the head (pooling,
  classifier, softmax) stays float32;
* optionally ``torch.compile`` (inductor, with freezing) on top.

The exact unfused float32 model stays the default everywhere else; this path is opt-in
(``nlconvert bench --fast``). Input and output stay float32.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..model import Affine3d, FrozenBatchNorm3d, NLResNet, NonLocalBlock


def cpu_bf16_support() -> dict[str, bool]:
    """What this CPU offers bfloat16 inference: AVX512-BF16 instructions and AMX tiles."""
    cpu: Any = torch.cpu
    flags = {}
    for name, probe in (("avx512_bf16", "_is_avx512_bf16_supported"),
                        ("amx", "_is_amx_tile_supported")):
        fn = getattr(cpu, probe, None)
        flags[name] = bool(fn()) if callable(fn) else False
    return flags


def bf16_is_fast() -> bool:
    """True when bfloat16 compute is native on this CPU (AVX512-BF16 or AMX)."""
    flags = cpu_bf16_support()
    return flags["avx512_bf16"] or flags["amx"]


@torch.no_grad()
def _fold(conv: nn.Conv3d, norm: nn.Module) -> None:
    """Fold `norm` (FrozenBatchNorm3d or Affine3d) into `conv` in place."""
    if isinstance(norm, FrozenBatchNorm3d):
        scale = norm.weight.double() / (norm.running_var.double() + norm.eps).sqrt()
        shift = norm.bias.double() - norm.running_mean.double() * scale
    elif isinstance(norm, Affine3d):
        scale, shift = norm.weight.double(), norm.bias.double()
    else:
        raise TypeError(f"cannot fold {type(norm).__name__}")
    weight = conv.weight.double() * scale.view(-1, 1, 1, 1, 1)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(shift)
    conv.weight.copy_(weight.to(conv.weight.dtype))
    conv.bias = nn.Parameter((bias * scale + shift).to(conv.weight.dtype))


# (conv attribute, norm attribute) pairs of the modules of nlconvert.model.resnet.
_PAIRS = (("conv", "norm"), ("conv_a", "norm_a"), ("conv_b", "norm_b"), ("conv_c", "norm_c"),
          ("out", "norm"))


def fold_norms(model: nn.Module) -> nn.Module:
    """Fold every norm layer into the convolution before it (in place); returns `model`."""
    for module in model.modules():
        for conv_name, norm_name in _PAIRS:
            conv = getattr(module, conv_name, None)
            norm = getattr(module, norm_name, None)
            if isinstance(conv, nn.Conv3d) and isinstance(norm, (FrozenBatchNorm3d, Affine3d)):
                _fold(conv, norm)
                setattr(module, norm_name, nn.Identity())
    return model


def _attend_sdpa(self: NonLocalBlock, x: torch.Tensor) -> torch.Tensor:
    """NonLocalBlock._attend with a fused softmax(theta^T phi / sqrt(Ci)) g."""
    n, _, t, h, w = x.shape
    src = x
    if self.pool_stride:
        k = (1, self.pool_stride, self.pool_stride)
        src = F.max_pool3d(x, kernel_size=k, stride=k)
    # N x 1 x positions x Ci: one attention head of width Ci.
    q = self.theta(x).flatten(2).transpose(1, 2).unsqueeze(1)
    k_ = self.phi(src).flatten(2).transpose(1, 2).unsqueeze(1)
    v = self.g(src).flatten(2).transpose(1, 2).unsqueeze(1)
    y = F.scaled_dot_product_attention(q, k_, v, scale=self.scale)  # N x 1 x THW x Ci
    y = y.squeeze(1).transpose(1, 2).reshape(n, self.inner, t, h, w)
    return x + self.norm(self.out(y))


class FastNonLocal(nn.Module):
    """A :class:`NonLocalBlock` whose attention is one SDPA call (same grouping)."""

    def __init__(self, block: NonLocalBlock) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        if not b.use_softmax:  # dot-product variant: no softmax to fuse
            return b(x)
        if not b.group_size:
            return _attend_sdpa(b, x)
        n, c, t, h, w = x.shape
        gs = b.group_size
        grouped = x.reshape(n, c, t // gs, gs, h, w).transpose(1, 2).reshape(-1, c, gs, h, w)
        z = _attend_sdpa(b, grouped)
        return z.reshape(n, t // gs, c, gs, h, w).transpose(1, 2).reshape(n, c, t, h, w)


def _use_sdpa(model: nn.Module) -> None:
    for module in model.modules():
        blocks = getattr(module, "nonlocal_blocks", None)
        if isinstance(blocks, nn.ModuleDict):
            for key, block in list(blocks.items()):
                if isinstance(block, NonLocalBlock):
                    blocks[key] = FastNonLocal(block)


class Float32Head(nn.Module):
    """The classifier head in float32 on a low-precision trunk.

    Pooling 2048 x T x H x W features and the FC are cheap; rounding the pooled features to
    bfloat16 (8 mantissa bits) would cost more accuracy than all the convolutions before.
    """

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head.float()

    @property
    def mode(self) -> str:
        return str(self.head.mode)

    def forward(self, x: torch.Tensor, taps: Any = None) -> torch.Tensor:
        return self.head(x.float(), taps)


class FastModel(nn.Module):
    """The optimised network: float32 N x 3 x T x H x W in, float32 N x classes out."""

    def __init__(self, net: nn.Module, dtype: torch.dtype, channels_last: bool,
                 source: NLResNet) -> None:
        super().__init__()
        self.net = net
        self.dtype = dtype
        self.channels_last = channels_last
        self.arch = source.arch
        self.class_names = source.class_names
        self.head_mode = source.head_mode
        self.compiled: Any = None

    def check_input(self, x: torch.Tensor) -> None:
        """The same checks as the exact model."""
        self.net.check_input(x)  # type: ignore[operator]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        x = x.to(self.dtype)
        runner = self.compiled if self.compiled is not None else self.net
        return runner(x).float()


def optimize(model: NLResNet, dtype: torch.dtype | None = None, channels_last: bool = True,
             compile: bool = False) -> FastModel:
    """A fast, approximate copy of `model` for CPU inference (see the module doc).

    `dtype`: bfloat16 by default on CPUs with native bf16 (AVX512-BF16 / AMX), else float32.
    `compile`: also ``torch.compile`` the network (inductor, freezing); the first call then
    takes a minute. The original model is not changed.
    """
    if dtype is None:
        dtype = torch.bfloat16 if bf16_is_fast() else torch.float32
    net = copy.deepcopy(model).eval()
    fold_norms(net)
    _use_sdpa(net)
    net = net.to(dtype)
    if dtype != torch.float32:
        net.head = Float32Head(net.head)  # type: ignore[assignment]
    if channels_last:
        net = net.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    fast = FastModel(net, dtype, channels_last, model).eval()
    if compile:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # constant-fold weights, prepack them for oneDNN
        fast.compiled = torch.compile(net, dynamic=False)
    return fast
