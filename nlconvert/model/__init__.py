"""The PyTorch NL-ResNet and its layers."""

from .layers import Affine3d, FrozenBatchNorm3d
from .nonlocal_block import NonLocalBlock
from .resnet import NLResNet, build_model

__all__ = ["Affine3d", "FrozenBatchNorm3d", "NLResNet", "NonLocalBlock", "build_model"]
