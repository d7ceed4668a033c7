"""Check exported mmaction2 files with mmaction2 itself (``export-mmaction2 --check``).

mmaction2's own ``init_recognizer`` builds the recognizer from the written config and
checkpoint; its data preprocessor, backbone and ``I3DHead`` score a seeded clip of raw RGB
pixel values, and the logits are compared with nlconvert's model on the same clip.
Needs ``pip install 'nlconvert[mmaction2]'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..arch import INPUT_MEAN, INPUT_STD
from ..errors import NLConvertError, ParityError
from ..model.resnet import NLResNet

#: Relative tolerance on the logits (max |diff| / max |logit|): the issue's "exact".
TOLERANCE = 1e-5
#: Spatial size of the check clip: small, the arithmetic is the same at any size.
CHECK_SIZE = 64


class MMAction2MissingError(NLConvertError):
    """mmaction2 is not installed (``--check`` needs it)."""


@dataclass(frozen=True)
class MMAction2Check:
    """The comparison of mmaction2's logits with nlconvert's."""

    shape: tuple[int, ...]
    max_abs: float
    relative: float

    @property
    def ok(self) -> bool:
        return self.relative <= TOLERANCE


def require_mmaction2() -> None:
    """Raise :class:`MMAction2MissingError` (one line, how to install) without mmaction2."""
    import importlib.util

    if importlib.util.find_spec("mmaction") is None:
        raise MMAction2MissingError("checking with mmaction2 needs it installed: "
                                    "pip install 'nlconvert[mmaction2]'")


def check_clip_shape(model: NLResNet) -> tuple[int, int, int, int, int]:
    """The check clip: 2 clips of the training length (at most 32 frames) at 64x64."""
    arch = model.arch
    frames = min(arch.frames, 32)
    arch.check_input(frames, CHECK_SIZE, CHECK_SIZE)
    return (2, 3, frames, CHECK_SIZE, CHECK_SIZE)


def mmaction2_logits(config: str | Path, checkpoint: str | Path, pixels: torch.Tensor) -> torch.Tensor:
    """Logits of the recognizer mmaction2 builds from `config` + `checkpoint` for raw RGB
    `pixels` (V x 3 x T x H x W in [0, 255], the views of one sample), through its own
    data preprocessor, backbone and head."""
    try:
        from mmaction.apis import init_recognizer
        from mmaction.structures import ActionDataSample
    except ImportError as exc:
        raise MMAction2MissingError(
            f"checking with mmaction2 needs it installed: pip install 'nlconvert[mmaction2]' ({exc})"
        ) from None
    recognizer = init_recognizer(str(config), str(checkpoint), device="cpu")
    with torch.no_grad():
        data = recognizer.data_preprocessor({"inputs": [pixels], "data_samples": [ActionDataSample()]},
                                            False)
        inputs = data["inputs"]
        feats = recognizer.backbone(inputs.reshape((-1,) + tuple(inputs.shape[2:])))
        return recognizer.cls_head(feats)


def check_export(config: str | Path, checkpoint: str | Path, model: NLResNet, *, seed: int = 0
                 ) -> MMAction2Check:
    """Compare mmaction2's logits for a seeded clip with `model`'s (clip head)."""
    shape = check_clip_shape(model)
    pixels = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 255
    got = mmaction2_logits(config, checkpoint, pixels)
    model.set_head("clip")
    with torch.no_grad():
        want = model((pixels - INPUT_MEAN) / INPUT_STD)
    if tuple(got.shape) != tuple(want.shape):
        raise ParityError(f"{config}: mmaction2 gives logits of shape {tuple(got.shape)}, "
                          f"nlconvert {tuple(want.shape)}")
    max_abs = float((got - want).abs().max())
    scale = float(want.abs().max()) or 1.0
    return MMAction2Check(shape, max_abs, max_abs / scale)
