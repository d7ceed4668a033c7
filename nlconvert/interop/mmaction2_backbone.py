"""nlconvert's NL-ResNet trunk as an mmaction2 backbone, registered in mmaction2's ``MODELS``.

An ``export-mmaction2`` config names this module in ``custom_imports``: mmaction2 imports it
while reading the config, and ``Recognizer3D`` then builds ``NLConvertResNet`` as its
backbone. The backbone is nlconvert's own network (the Caffe2 arithmetic: unpadded pool1,
pool-then-conv non-local sub-sampling, the ``Ci^-0.5`` scale, the output conv's bias,
frozen BN or affine norms, grouped non-local), without the classifier: mmaction2's stock
``I3DHead`` is the classifier. Its weights load from, and save to, mmaction2's key names
(``weights_map/mmaction2.toml``), through state-dict hooks, so mmengine's loader and
``state_dict()`` see mmaction2 keys.

Needs mmaction2 (``pip install 'nlconvert[mmaction2]'``). The mmaction2 1.2.0 wheel lacks
``mmaction/models/localizers/drn`` although ``mmaction.models`` imports it
(open-mmlab/mmaction2#2714); :func:`stand_in_for_missing_drn` puts a stand-in there so that
mmaction2's registry can import its models at all.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import ArchSpec
from ..model.resnet import NLResNet
from .mmaction2 import BACKBONE_TYPE, from_mmaction2, to_mmaction2

#: The recognizer's child this backbone is (its keys in weights_map/mmaction2.toml).
ROLE = "backbone"
_DRN = "mmaction.models.localizers.drn"


def stand_in_for_missing_drn() -> bool:
    """If the installed mmaction2 lacks ``models/localizers/drn`` (the 1.2.0 wheel), register
    a stand-in module whose ``DRN`` refuses to be built; True if one was needed.

    Only the missing module is replaced (a complete mmaction2 is left alone), and only the
    temporal-grounding model DRN, which nlconvert never builds, is unavailable.
    """
    spec = importlib.util.find_spec("mmaction")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the mmaction2 backbone needs mmaction2: pip install 'nlconvert[mmaction2]'")
    root = Path(next(iter(spec.submodule_search_locations)))
    if (root / "models" / "localizers" / "drn").is_dir() or _DRN in sys.modules:
        return False

    class DRN:  # the name mmaction.models.localizers imports
        """Stand-in: this mmaction2 wheel ships without DRN (open-mmlab/mmaction2#2714)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError("this mmaction2 wheel ships without mmaction/models/localizers/drn "
                              "(open-mmlab/mmaction2#2714); install mmaction2 from source for DRN")

    package = types.ModuleType(_DRN)
    package.__path__ = []
    module = types.ModuleType(f"{_DRN}.drn")
    module.DRN = DRN  # type: ignore[attr-defined]
    package.drn = module  # type: ignore[attr-defined]
    sys.modules[_DRN] = package
    sys.modules[f"{_DRN}.drn"] = module
    return True


stand_in_for_missing_drn()
from mmaction.registry import MODELS  # noqa: E402  (after the stand-in)


def _rename_under(state_dict: dict[str, Any], prefix: str, rename: Any) -> None:
    """Rename, in place and in order, the keys of `state_dict` under `prefix` whose rest
    `rename` maps (it returns None for keys to leave)."""
    items = list(state_dict.items())
    state_dict.clear()
    for key, value in items:
        new = rename(key[len(prefix):]) if key.startswith(prefix) else None
        state_dict[prefix + new if new else key] = value


@MODELS.register_module(name=BACKBONE_TYPE)
class NLConvertResNet(NLResNet):
    """The Caffe2 NL-ResNet trunk (input N x 3 x T x H x W, normalised RGB).

    In training mode, or with ``fully_conv_test=False``, the output is res5 (N x 2048 x T x
    H x W), which ``I3DHead`` turns into the clip head's logits. In eval mode with
    ``fully_conv_test=True`` (the exported config's choice) the output is the official
    fully-convolutional test head's input, cut into rows: res5 average-pooled (Tp, 7, 7)
    with stride 1, each remaining position a row (N*P x 2048 x 1 x 1 x 1, the P rows of a
    clip together). ``I3DHead`` then scores every position with the same FC and its
    ``average_clips='prob'`` averages the softmaxes over them and the views: exactly the
    official mean of per-position softmaxes. At the training clip size (P = 1) both outputs
    give the same logits; a clip whose res5 is smaller than the pool is pooled whole.

    `arch`: the architecture as :meth:`nlconvert.arch.ArchSpec.to_dict` writes it (the
    exported config carries it). ``pretrained``/``init_cfg`` are accepted for mmaction2's
    conventions and unused: the weights come from the exported checkpoint.
    """

    def __init__(self, arch: Mapping[str, Any], fully_conv_test: bool = False,
                 pretrained: str | None = None, init_cfg: Any = None) -> None:
        super().__init__(ArchSpec.from_dict(dict(arch)), "clip")
        del self.head  # mmaction2's I3DHead classifies
        self.fully_conv_test = fully_conv_test
        self.register_load_state_dict_pre_hook(self._keys_from_mmaction2)
        self.register_state_dict_post_hook(self._keys_to_mmaction2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res5 = self.trunk(x)[1]
        if self.training or not self.fully_conv_test:
            return res5
        return self.positions(res5)

    def positions(self, res5: torch.Tensor) -> torch.Tensor:
        """res5 (N x C x T x H x W) -> the fully-convolutional head's pooled positions as rows
        (N*P x C x 1 x 1 x 1): AveragePool (Tp, 7, 7) stride 1, each kernel dim capped at
        the map's size."""
        kernel = tuple(min(k, d) for k, d in zip((self.arch.pool5_temporal_kernel, 7, 7),
                                                 res5.shape[2:], strict=True))
        if kernel == tuple(res5.shape[2:]):
            # One position: the clip head's own global mean (so its logits are bitwise).
            return res5.mean(dim=(2, 3, 4), keepdim=True)
        pooled = F.avg_pool3d(res5, kernel, stride=1)
        c = pooled.shape[1]
        return pooled.flatten(2).transpose(1, 2).reshape(-1, c, 1, 1, 1)

    def init_weights(self) -> None:
        """mmengine calls this before training; the converted weights need no initialisation."""

    @staticmethod
    def _keys_from_mmaction2(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                             *args: Any) -> None:
        _rename_under(state_dict, prefix, lambda key: from_mmaction2(ROLE, key))

    @staticmethod
    def _keys_to_mmaction2(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                           *args: Any) -> None:
        def rename(param: str) -> str | None:
            role, key = to_mmaction2(param)
            return key if role == ROLE else None

        _rename_under(state_dict, prefix, rename)
