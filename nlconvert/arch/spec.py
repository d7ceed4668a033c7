"""The architecture description: everything the official Caffe2 code can build.

An :class:`ArchSpec` is plain data. The PyTorch builder (:mod:`nlconvert.model`), the Caffe2
NetDef builder (:mod:`nlconvert.reference.netdef_builder`) and the blob-name mapping all
read it; none of them knows the zoo. Named specs come from ``nlconvert/data/zoo.toml``
(:mod:`nlconvert.arch.zoo`).

The facts every consumer of a network needs live here once: the input normalisation, the
two heads, the ONNX graph layouts and the rules for which clip shapes a network accepts.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ArchitectureError, InputShapeError

Stem = Literal["short", "org"]
Norm = Literal["bn", "affine"]
Head = Literal["clip", "fully_conv"]

#: The heads of the official code: ``clip`` (train/val: global mean + FC, logits) and
#: ``fully_conv`` (TEST.TEST_FULLY_CONV: pred as a 1x1x1 conv, mean of per-position softmaxes).
HEADS: tuple[Head, ...] = ("clip", "fully_conv")
#: Graph layouts of an ONNX export: ``frames`` (frame-major 2-D convolutions, norms folded;
#: fastest in ONNX Runtime on CPU) and ``ncthw`` (the network's own 3-D graph).
GRAPH_LAYOUTS = ("frames", "ncthw")

#: What the clip head computes besides the logits, in the order exported models output them:
#: ``logits`` (N x classes), ``pool5`` (N x 2048: the global mean of res5, the input of the
#: ``pred`` layer) and ``res4`` (N x 1024: the global mean of res4).
FEATURE_OUTPUTS = ("logits", "pool5", "res4")
#: Layers ``nlconvert features`` can write: the FEATURE_OUTPUTS, ``res5`` (the same global mean
#: as ``pool5``) and ``probs`` (the softmax of the clip head's logits).
FEATURE_LAYERS = ("pool5", "res4", "res5", "logits", "probs")
#: Layers whose maps ``nlconvert features --spatial`` can keep before pooling (C x t x h x w).
SPATIAL_LAYERS = ("res4", "res5")

# Input normalisation of the official loader (MODEL.MEAN, MODEL.STD): (pixel - mean) / std on
# RGB in [0, 255], clips N x 3 x T x H x W.
INPUT_MEAN = 114.75
INPUT_STD = 57.375
NORMALIZATION: dict[str, object] = {"mean": INPUT_MEAN, "std": INPUT_STD, "channels": "RGB",
                                    "layout": "NCTHW"}

# Caffe2 defaults of the official configs (lib/core/config.py).
BN_EPSILON = 1.0000001e-5
STAGE_NAMES = ("res2", "res3", "res4", "res5")
STAGE_WIDTHS = (256, 512, 1024, 2048)  # output channels of res2..res5
STAGE_INNER = (64, 128, 256, 512)  # bottleneck widths of res2..res5
STAGE_STRIDES = (1, 2, 2, 2)  # spatial stride of the first block of each stage
BLOCKS_PER_DEPTH = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


@dataclass(frozen=True)
class NonLocalSpec:
    """Options of the non-local block (cfg.NONLOCAL of the official code)."""

    use_softmax: bool = True  # embedded Gaussian; False = dot product divided by N
    use_scale: bool = True  # multiply theta^T phi by Ci^-0.5 before the softmax
    use_maxpool: bool = True  # sub-sample phi and g by a (1, s, s) max pool
    max_pool_stride: int = 2
    use_bn: bool = True  # SpatialBN after the out conv
    bn_eps: float = BN_EPSILON
    # Grouped non-local: the time axis of the grouped stages is cut into groups of
    # `group_size` frames and the block runs inside each group (affine models, res3 only).
    group_size: int = 4
    grouped_stages: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArchSpec:
    """A complete description of one network of the official code."""

    name: str
    depth: int  # 50 or 101
    stem: Stem  # "short" (resnet_video.py) or "org" (resnet_video_org.py)
    conv1_temporal: int  # u of conv1: kernel 1 + 2u, pad u (0 C2D, 2 I3D)
    temporal_convs: tuple[tuple[int, ...], ...]  # u of each block's branch2a, res2..res5
    norm: Norm = "bn"
    bn_eps: float = BN_EPSILON
    # Block indices after which a non-local block sits, per stage name ("res3": (1, 3)).
    nonlocal_after: tuple[tuple[str, tuple[int, ...]], ...] = ()
    nonlocal_block: NonLocalSpec = field(default_factory=NonLocalSpec)
    num_classes: int = 400
    frames: int = 8  # training clip length (TRAIN.VIDEO_LENGTH)
    sample_rate: int = 8  # frame sampling rate (TRAIN.SAMPLE_RATE)
    crop_size: int = 224
    is_2d: bool = False  # ImageNet 2D checkpoint: a source for --inflate, not a video net
    family: str = ""  # "c2d" or "i3d", for display

    def __post_init__(self) -> None:
        if self.depth not in BLOCKS_PER_DEPTH:
            raise ArchitectureError(f"{self.name}: depth must be 50 or 101, not {self.depth}")
        if self.stem not in ("short", "org"):
            raise ArchitectureError(f"{self.name}: stem must be 'short' or 'org'")
        if self.norm not in ("bn", "affine"):
            raise ArchitectureError(f"{self.name}: norm must be 'bn' or 'affine'")
        blocks = BLOCKS_PER_DEPTH[self.depth]
        if tuple(len(s) for s in self.temporal_convs) != blocks:
            raise ArchitectureError(
                f"{self.name}: temporal_convs must have {blocks} blocks per stage, "
                f"got {tuple(len(s) for s in self.temporal_convs)}"
            )
        for stage, idxs in self.nonlocal_after:
            if stage not in STAGE_NAMES:
                raise ArchitectureError(f"{self.name}: unknown stage {stage!r}")
            n = blocks[STAGE_NAMES.index(stage)]
            if any(i < 0 or i >= n for i in idxs):
                raise ArchitectureError(f"{self.name}: non-local index out of range in {stage}")

    # ----- derived facts -------------------------------------------------------------
    @property
    def blocks_per_stage(self) -> tuple[int, ...]:
        return BLOCKS_PER_DEPTH[self.depth]

    @property
    def conv1_temporal_stride(self) -> int:
        return 2 if self.stem == "org" else 1

    @property
    def pool1_kernel(self) -> tuple[int, int, int]:
        return (2, 3, 3) if self.stem == "org" else (1, 3, 3)

    @property
    def pool1_stride(self) -> tuple[int, int, int]:
        return (2, 2, 2) if self.stem == "org" else (1, 2, 2)

    @property
    def temporal_reduction(self) -> int:
        """How much the network divides T by before res5 (conv1, pool1, pool2)."""
        return 8 if self.stem == "org" else 2

    @property
    def pool5_temporal_kernel(self) -> int:
        """T of res5 at the training clip: the AveragePool kernel of the Caffe2 head."""
        return max(1, self.frames // self.temporal_reduction)

    @property
    def has_nonlocal(self) -> bool:
        return any(idxs for _, idxs in self.nonlocal_after)

    def nonlocal_indices(self, stage: str) -> tuple[int, ...]:
        for name, idxs in self.nonlocal_after:
            if name == stage:
                return idxs
        return ()

    def is_grouped(self, stage: str) -> bool:
        return stage in self.nonlocal_block.grouped_stages and bool(self.nonlocal_indices(stage))

    def temporal_sizes(self, frames: int) -> dict[str, int]:
        """T after each stage for an input of `frames` frames (Caffe2's floor rule)."""
        t = (frames + 2 * self.conv1_temporal - (1 + 2 * self.conv1_temporal))
        t = t // self.conv1_temporal_stride + 1
        k, s = self.pool1_kernel[0], self.pool1_stride[0]
        t = (t - k) // s + 1
        res2 = t
        res3 = (t - 2) // 2 + 1  # pool2
        return {"conv1": t, "res2": res2, "res3": res3, "res4": res3, "res5": res3}

    @staticmethod
    def spatial_size(size: int) -> int:
        """H (or W) at res5 for an input of `size` pixels: conv1 /2, pool1 3x3 /2, three /2."""
        size = (size - 1) // 2 + 1  # conv1 7x7 stride 2 pad 3
        size = (size - 3) // 2 + 1  # pool1 3x3 stride 2, no padding
        for _ in range(3):  # res3..res5: 3x3 stride 2 pad 1
            size = (size - 1) // 2 + 1
        return size

    def check_input(self, frames: int, height: int, width: int) -> None:
        """Raise :class:`InputShapeError` for a clip the network's trunk cannot take."""
        min_frames = self.temporal_reduction
        if frames < min_frames:
            raise InputShapeError(
                f"{self.name}: needs at least {min_frames} frames, got {frames}"
            )
        if height < 32 or width < 32:
            raise InputShapeError(f"{self.name}: needs H, W >= 32, got {height}x{width}")
        t3 = self.temporal_sizes(frames)["res3"]
        g = self.nonlocal_block.group_size
        for stage in self.nonlocal_block.grouped_stages:
            if self.is_grouped(stage) and t3 % g != 0:
                raise InputShapeError(
                    f"{self.name}: grouped non-local in {stage} needs T at {stage} divisible "
                    f"by {g}; {frames} input frames give {t3} "
                    f"(use a multiple of {g * self.temporal_reduction} frames)"
                )

    def check_clip(self, shape: tuple[int, ...] | list[int], head: str,
                   static_shape: tuple[int | None, ...] | list[int | None] | None = None) -> None:
        """Raise :class:`InputShapeError` (one line) for a clip shape N x 3 x T x H x W that
        the network with `head` cannot take; `static_shape`: the fixed dims of an export."""
        if len(shape) != 5 or int(shape[1]) != 3:
            raise InputShapeError(f"expected a float32 clip N x 3 x T x H x W, got shape {tuple(shape)}")
        if static_shape is not None:
            for got, fixed in zip(shape, static_shape, strict=True):
                if fixed is not None and int(got) != fixed:
                    dims = "x".join("?" if d is None else str(d) for d in static_shape)
                    raise InputShapeError(
                        f"this file was exported with static shapes {dims}; got "
                        f"{'x'.join(map(str, shape))} (export without --static for other sizes)")
        _, _, t, h, w = (int(s) for s in shape)
        self.check_input(t, h, w)
        if head == "fully_conv":
            t5 = self.temporal_sizes(t)["res5"]
            h5, w5 = self.spatial_size(h), self.spatial_size(w)
            if t5 < self.pool5_temporal_kernel or h5 < 7 or w5 < 7:
                raise InputShapeError(
                    f"{self.name}: the fully-convolutional head pools "
                    f"{self.pool5_temporal_kernel}x7x7 at res5, but {t}x{h}x{w} input leaves "
                    f"{t5}x{h5}x{w5} there (use at least {self.frames} frames and 224x224 pixels)")

    # ----- (de)serialisation -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchSpec:
        d = dict(data)
        nl = dict(d.pop("nonlocal_block", {}) or {})
        if "grouped_stages" in nl:
            nl["grouped_stages"] = tuple(nl["grouped_stages"])
        d["temporal_convs"] = tuple(tuple(int(u) for u in s) for s in d["temporal_convs"])
        d["nonlocal_after"] = tuple(
            (str(stage), tuple(int(i) for i in idxs)) for stage, idxs in d.get("nonlocal_after", ())
        )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ArchitectureError(f"unknown architecture fields: {sorted(unknown)}")
        return cls(nonlocal_block=NonLocalSpec(**nl), **d)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        return cls.from_dict(json.loads(text))

    def describe(self) -> str:
        """One line for humans."""
        nl = ", ".join(f"{s}{list(i)}" for s, i in self.nonlocal_after if i) or "none"
        grp = f", grouped {list(self.nonlocal_block.grouped_stages)}" if self.nonlocal_block.grouped_stages else ""
        return (
            f"{self.name}: R{self.depth} {self.family.upper() or '?'} {self.stem} stem, "
            f"{self.frames}x{self.sample_rate}, {self.norm.upper()}, non-local {nl}{grp}, "
            f"{self.num_classes} classes"
        )
