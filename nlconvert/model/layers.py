"""Normalisation layers with the exact test-time semantics of the Caffe2 operators."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FrozenBatchNorm3d(nn.Module):
    """Caffe2 ``SpatialBN`` in test mode: ``(x - mean) / sqrt(var + eps) * weight + bias``.

    The statistics are never updated (a converted network is for inference; ``train()`` does
    not change the arithmetic). ``running_var`` is the variance: Caffe2 names it ``_riv``.
    """

    def __init__(self, channels: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    running_mean: torch.Tensor
    running_var: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class Affine3d(nn.Module):
    """Caffe2 ``AffineNd``: exactly ``x * weight + bias`` per channel (frozen BN of the affine models).

    Not a BatchNorm with unit variance: that would divide by ``sqrt(1 + eps)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}"


def make_norm(kind: str, channels: int, eps: float) -> nn.Module:
    """The normalisation layer of an architecture: ``"bn"`` or ``"affine"``."""
    if kind == "bn":
        return FrozenBatchNorm3d(channels, eps)
    if kind == "affine":
        return Affine3d(channels)
    raise ValueError(f"unknown norm kind {kind!r}")
