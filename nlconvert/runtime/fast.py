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
from ..model.resnet import ClassifierHead


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

    def __init__(self, head: ClassifierHead) -> None:
        super().__init__()
        self.head = head.float()

    @property
    def mode(self) -> str:
        return str(self.head.mode)

    def forward(self, x: torch.Tensor, taps: Any = None) -> torch.Tensor:
        return self.head(x.float(), taps)

    def fully_conv(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.fully_conv(x.float())

    def features(self, res4: torch.Tensor, res5: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.head.features(res4.float(), res5.float())


class FastModel(nn.Module):
    """The optimised network: float32 N x 3 x T x H x W in, float32 out.

    ``forward`` computes the source model's head; :meth:`probs` the fully-convolutional
    head's probabilities and :meth:`features` the clip head's ``FEATURE_OUTPUTS``, whatever
    the source's head. With ``compile``, each of the three is compiled on first use.
    """

    def __init__(self, net: nn.Module, dtype: torch.dtype, channels_last: bool,
                 source: NLResNet, compile: bool = False) -> None:
        super().__init__()
        self.net = net
        self.dtype = dtype
        self.channels_last = channels_last
        self.arch = source.arch
        self.class_names = source.class_names
        self.head_mode = source.head_mode
        self.use_compile = compile
        self._runners: dict[str, Any] = {}

    def check_input(self, x: torch.Tensor) -> None:
        """The same checks as the exact model."""
        self.arch.check_clip(tuple(int(d) for d in x.shape), self.head_mode)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x.to(self.dtype)

    def _runner(self, what: str) -> Any:
        if what not in self._runners:
            fn: Any = {"forward": self.net, "features": self.net.forward_features,
                       "probs": _FullyConvProbs(self.net), "maps": self.net.trunk}[what]
            self._runners[what] = torch.compile(fn, dynamic=False) if self.use_compile else fn
        return self._runners[what]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._runner("forward")(self._prepare(x)).float()

    @torch.no_grad()
    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """The fully-convolutional head's N x classes probabilities (the test protocol's)."""
        return self._runner("probs")(self._prepare(x)).float()

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The clip head's logits, pool5 and res4 mean (float32)."""
        return tuple(t.float() for t in self._runner("features")(self._prepare(x)))

    @torch.no_grad()
    def maps(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The res4 and res5 activations before pooling (float32, contiguous)."""
        return tuple(t.float().contiguous() for t in self._runner("maps")(self._prepare(x)))


class _FullyConvProbs(nn.Module):
    """The network with the fully-convolutional head, whatever its head mode."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net: Any = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.head.fully_conv(self.net.trunk(x)[1])


def optimize(model: NLResNet, *, dtype: torch.dtype | None = None, channels_last: bool = True,
             compile: bool = False, device: str | torch.device = "cpu") -> FastModel:
    """A fast, approximate copy of `model` (see the module doc) on `device`.

    `dtype`: on a CPU, bfloat16 where it is native (AVX512-BF16 / AMX), else float32; on CUDA
    float16. `compile`: ``torch.compile`` (inductor; on a CPU with freezing) on first use of
    each head; the first call then takes a minute, later processes reuse the cached
    artefacts. The original model is not changed.
    """
    dev = torch.device(device)
    if dtype is None:
        if dev.type == "cuda":
            dtype = torch.float16
        else:
            dtype = torch.bfloat16 if bf16_is_fast() else torch.float32
    net = copy.deepcopy(model).eval()
    fold_norms(net)
    _use_sdpa(net)
    net = net.to(device=dev, dtype=dtype)
    if dtype != torch.float32:
        net.head = Float32Head(net.head)  # type: ignore[assignment]
    if channels_last:
        net = net.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    if compile and dev.type == "cpu":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # constant-fold weights, prepack them for oneDNN
    return FastModel(net, dtype, channels_last, model, compile=compile).eval()
