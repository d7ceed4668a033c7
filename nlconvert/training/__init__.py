"""Training: a converted network as the start of fine-tuning, as the official code trained.

:mod:`.norms` (frozen or training norm layers, Caffe2's BN momentum and epsilon),
:mod:`.create` (:func:`create_model`: pretrained weights, a new classifier, non-local blocks
inserted as identity, dropout; :func:`param_groups`: the official weight-decay split). The
initial values themselves are one table, :mod:`nlconvert.convert.init`. Training clips come
from :class:`nlconvert.video.TrainingClips`.
"""

from .create import create_model, default_names, param_groups
from .norms import (
    BN_MOMENTUM,
    NORM_MODES,
    TrainableBatchNorm3d,
    compute_precise_bn,
    set_norm_mode,
)

__all__ = ["BN_MOMENTUM", "NORM_MODES", "TrainableBatchNorm3d", "compute_precise_bn", "create_model",
           "default_names", "param_groups", "set_norm_mode"]
