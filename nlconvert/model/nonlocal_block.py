"""The space-time non-local block (Wang et al., 2018), as the official Caffe2 code computes it."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import NonLocalSpec
from .layers import FrozenBatchNorm3d


def normalize_affinity(affinity: torch.Tensor, use_softmax: bool, scale: float) -> torch.Tensor:
    """Raw ``theta^T phi`` (... x queries x keys) -> the weights that multiply g.

    Embedded Gaussian: ``softmax(scale * a)`` over the keys; dot product: ``a / keys`` (the
    official code ignores the scale then).
    """
    if use_softmax:
        if scale != 1.0:
            affinity = affinity * scale
        return torch.softmax(affinity, dim=-1)
    return affinity / affinity.shape[-1]


class NonLocalBlock(nn.Module):
    """``z = x + W_z(y)`` with ``y = softmax(theta(x)^T phi(x)) g(x)`` over all T*H*W positions.

    theta, phi, g and out are 1x1x1 convolutions with bias; phi and g read a (1, s, s) max
    pool of the input; the affinity is scaled by ``Ci^-0.5`` before the softmax (embedded
    Gaussian) or divided by the number of phi positions (dot product). With ``group_size``
    set, the time axis is cut into consecutive groups of that many frames and the block runs
    inside each group independently (the affine models' res3).

    Reshapes read T, H, W and the batch from the tensor, so any batch and clip size works
    (the Caffe2 net bakes the batch size in).
    """

    def __init__(self, channels: int, spec: NonLocalSpec, grouped: bool = False) -> None:
        super().__init__()
        inner = channels // 2
        self.inner = inner
        self.use_softmax = spec.use_softmax
        self.scale = inner**-0.5 if spec.use_scale else 1.0
        self.pool_stride = spec.max_pool_stride if spec.use_maxpool else 0
        self.group_size = spec.group_size if grouped else 0
        self.theta = nn.Conv3d(channels, inner, 1)
        self.phi = nn.Conv3d(channels, inner, 1)
        self.g = nn.Conv3d(channels, inner, 1)
        self.out = nn.Conv3d(inner, channels, 1)
        self.norm: nn.Module = (
            FrozenBatchNorm3d(channels, spec.bn_eps) if spec.use_bn else nn.Identity()
        )
        #: Called with each forward's attention weights (``nlconvert.attention`` records them);
        #: it only reads the tensor, so the block computes the same with or without it.
        self.attention_sink: Callable[[torch.Tensor], None] | None = None

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, h, w = x.shape
        theta = self.theta(x).flatten(2)  # N x Ci x THW
        src = x
        if self.pool_stride:
            k = (1, self.pool_stride, self.pool_stride)
            src = F.max_pool3d(x, kernel_size=k, stride=k)
        phi = self.phi(src).flatten(2)  # N x Ci x THW'
        g = self.g(src).flatten(2)  # N x Ci x THW'
        affinity = normalize_affinity(torch.matmul(theta.transpose(1, 2), phi),  # N x THW x THW'
                                      self.use_softmax, self.scale)
        if self.attention_sink is not None:
            self.attention_sink(affinity)
        y = torch.matmul(g, affinity.transpose(1, 2))  # N x Ci x THW
        y = y.reshape(n, self.inner, t, h, w)
        return x + self.norm(self.out(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.group_size:
            return self._attend(x)
        n, c, t, h, w = x.shape
        gs = self.group_size
        # (N, C, G*gs, H, W) -> (N*G, C, gs, H, W): group g of clip n goes to batch n*G + g.
        grouped = x.reshape(n, c, t // gs, gs, h, w).transpose(1, 2).reshape(-1, c, gs, h, w)
        z = self._attend(grouped)
        return z.reshape(n, t // gs, c, gs, h, w).transpose(1, 2).reshape(n, c, t, h, w)
