"""Norm layers for training, as the official Caffe2 code trained and fine-tuned.

Two modes, both computing exactly the converted network in ``eval()``:

* ``"frozen"`` (``MODEL.USE_AFFINE`` fine-tuning): nothing in a norm layer changes. Scale and
  shift become buffers (not parameters with ``requires_grad=False`` left to chance, as
  Detectron2's ``FrozenBatchNorm2d``), statistics stay, ``train()`` changes no arithmetic.
  The state-dict names do not change, so a model file is written as before.
* ``"train"`` (the official Kinetics training): ``SpatialBN`` uses batch statistics in
  ``train()`` and updates its running statistics with ``BN_MOMENTUM`` 0.9, i.e.
  ``new = 0.9 * old + 0.1 * batch`` (PyTorch momentum 0.1), epsilon ``BN_EPSILON``. The
  running variance takes the unbiased batch variance: the official models were trained on
  GPUs, where Caffe2's only ``SpatialBN`` is cuDNN's (``spatial_batch_norm_op_cudnn.cc``,
  exponential average factor ``1 - momentum``), and cuDNN's running variance is the unbiased
  one (the CPU op of that Caffe2 divided by N). Affine layers train their scale and shift.
  The official trainer also replaced the running statistics by "precise BN" population
  statistics before every checkpoint and test: :func:`compute_precise_bn`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..model import Affine3d, FrozenBatchNorm3d

NormMode = Literal["frozen", "train"]
NORM_MODES: tuple[NormMode, ...] = ("frozen", "train")

#: cfg.MODEL.BN_MOMENTUM (and NONLOCAL.BN_MOMENTUM): running = 0.9 * running + 0.1 * batch.
BN_MOMENTUM = 0.9


class TrainableBatchNorm3d(FrozenBatchNorm3d):
    """Caffe2 ``SpatialBN`` in training: batch statistics in ``train()``, running statistics
    updated with momentum ``1 - BN_MOMENTUM``; exactly the test-mode layer in ``eval()``."""

    momentum = 1.0 - BN_MOMENTUM

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            True, self.momentum, self.eps)


def freeze_norm(module: nn.Module) -> None:
    """Turn the scale and shift of a norm layer into buffers (same names, same order)."""
    tensors = {name: t.detach() for name, t in module.state_dict(keep_vars=True).items()}
    for name in list(module._parameters):
        del module._parameters[name]
    for name in list(module._buffers):
        del module._buffers[name]
    for name, t in tensors.items():  # weight, bias, then the statistics, as before
        module.register_buffer(name, t)


def trainable_batch_norm(norm: FrozenBatchNorm3d) -> TrainableBatchNorm3d:
    """A training ``SpatialBN`` holding the same tensors as `norm`."""
    out = TrainableBatchNorm3d(norm.weight.shape[0], norm.eps)
    out.weight = nn.Parameter(norm.weight.detach(), requires_grad=True)
    out.bias = nn.Parameter(norm.bias.detach(), requires_grad=True)
    out.running_mean = norm.running_mean
    out.running_var = norm.running_var
    return out


def set_norm_mode(model: nn.Module, mode: NormMode, *,
                  keep_trainable: Collection[str] = frozenset()
                  ) -> None:
    """Put every norm layer of `model` in `mode` (see the module docstring).

    `keep_trainable`: names of norm layers whose scale and shift stay trainable with frozen
    statistics in ``"frozen"`` mode (the BN of a non-local block just inserted: frozen at
    scale 0 it could never learn).
    """
    if mode not in NORM_MODES:
        raise ValueError(f"norm must be one of {', '.join(NORM_MODES)}, not {mode!r}")
    norms = [(name, m) for name, m in model.named_modules()
             if isinstance(m, (FrozenBatchNorm3d, Affine3d))]
    for name, module in norms:
        if mode == "frozen":
            if name not in keep_trainable:
                freeze_norm(module)
        elif isinstance(module, FrozenBatchNorm3d):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, trainable_batch_norm(module))


#: cfg.TRAIN.ITER_COMPUTE_PRECISE_BN: batches the official "precise BN" averages.
PRECISE_BN_BATCHES = 200


@torch.no_grad()
def compute_precise_bn(model: nn.Module, batches: Iterable[torch.Tensor], *,
                       num_batches: int = PRECISE_BN_BATCHES) -> int:
    """Replace the running statistics of every training BN by their population values, as the
    official trainer did before each checkpoint and test (``TRAIN.COMPUTE_PRECISE_BN``,
    ``lib/utils/bn_helper.py``): over `num_batches` clips batches run in ``train()``, the mean
    of the batch means and ``mean(batch var + batch mean**2) - mean**2`` (biased batch
    variances). Returns the number of batches used; the model's mode is restored.
    """
    layers = [m for m in model.modules() if isinstance(m, TrainableBatchNorm3d)]
    if not layers:
        return 0
    sums: dict[nn.Module, list[torch.Tensor]] = {}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].transpose(0, 1).flatten(1).double()  # C x (N T H W)
        mean, mean_sq = x.mean(dim=1), (x * x).mean(dim=1)
        if module in sums:
            sums[module][0] += mean
            sums[module][1] += mean_sq
        else:
            sums[module] = [mean, mean_sq]

    handles = [m.register_forward_pre_hook(record) for m in layers]
    was_training = model.training
    model.train()
    used = 0
    try:
        for clips in batches:
            if used >= num_batches:
                break
            model(clips)
            used += 1
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if used:
        for module, (mean, mean_sq) in sums.items():
            mean, mean_sq = mean / used, mean_sq / used
            module.running_mean.copy_(mean.float())  # type: ignore[operator]
            module.running_var.copy_((mean_sq - mean * mean).clamp_min(0).float())  # type: ignore[operator]
    return used
