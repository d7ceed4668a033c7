"""Architectures: what a network is (:class:`ArchSpec`), the zoo of named networks, the
detection of a checkpoint's architecture, and the class names of the outputs.

Plain data and numpy only: importing this package never imports torch.
"""

from .classes import default_class_names, kinetics400_names, ranked, top_k
from .spec import (
    FEATURE_LAYERS,
    FEATURE_OUTPUTS,
    GRAPH_LAYOUTS,
    HEADS,
    INPUT_MEAN,
    INPUT_STD,
    NORMALIZATION,
    SPATIAL_LAYERS,
    ArchSpec,
    Head,
    NonLocalSpec,
)
from .zoo import ZooCheckpoint, arch_names, get_arch, published_accuracy, released_checkpoints

__all__ = [
    "FEATURE_LAYERS",
    "SPATIAL_LAYERS",
    "FEATURE_OUTPUTS",
    "GRAPH_LAYOUTS",
    "HEADS",
    "INPUT_MEAN",
    "INPUT_STD",
    "NORMALIZATION",
    "ArchSpec",
    "Head",
    "NonLocalSpec",
    "ZooCheckpoint",
    "arch_names",
    "default_class_names",
    "get_arch",
    "kinetics400_names",
    "published_accuracy",
    "ranked",
    "released_checkpoints",
    "top_k",
]
