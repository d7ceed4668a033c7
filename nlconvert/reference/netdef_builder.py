"""Write the Caffe2 ``NetDef`` that the official code builds for an :class:`ArchSpec`.

The op sequence, blob names and arguments follow lib/models/resnet_video.py ("short" stem),
resnet_video_org.py ("org" stem), resnet_helper.py and nonlocal_helper.py of
facebookresearch/video-nonlocal-net under the configs of the released models
(MODEL.ALLOW_INPLACE_SUM/RELU/RESHAPE True, no name scope), for split ``val`` (clip head:
FC ``pred`` + ``softmax``) and ``test`` (fully-convolutional head). The argument style is
that of the real Caffe2 nets in shared/data/caffe2_tiny (``kernels``/``strides``/``pads``
with head-then-tail pads, ``order`` NCHW, ``is_test``, float32 ``epsilon``).

Caffe2 properties this reproduces on purpose (they are what the official net computes):

- The non-local Reshape ops bake in the batch size the net was built for
  (``shape=(batch, Ci, -1)``). Fed another batch size, the net silently computes wrong
  attention (it mixes clips), so the reference must be run with the batch it was built for.
- The grouped non-local of the affine models bakes in ``group_num`` (from the training clip
  length, ``ArchSpec.frames``) and the spatial size ``crop_size / 8``.
- ``pool5`` is an AveragePool of kernel ``(Tp, 7, 7)`` with ``Tp`` from the training clip
  length; ``pool5_spatial`` only exists so tests can run the net at reduced input sizes.

The fully-convolutional ``pred`` conv reads a 5-D weight; the net starts with a Reshape of
``pred_w`` into ``pred_w_conv`` so that the init net only needs the checkpoint's ``pred_w``
(the official loader reshapes the array instead; pass ``pred_w_conv_input=True`` to read
``pred_w_conv`` from the workspace as the official net does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..arch.spec import HEADS, STAGE_INNER, STAGE_NAMES, STAGE_STRIDES, STAGE_WIDTHS, ArchSpec, Head
from ..errors import ArchitectureError
from ..io.caffe2_pb import NetDef, make_op

#: TRAIN.CROP_SIZE the official test script sets for the fully-convolutional test
#: (TRAIN.JITTER_SCALES[0]); it only matters for the grouped non-local Reshape.
FULLY_CONV_CROP_SIZE = 256
#: The spatial kernel of pool5 in the official code.
POOL5_SPATIAL = 7
STEM_WIDTH = 64
_BN_PARAMS = ("s", "b", "rm", "riv")
_AFFINE_PARAMS = ("s", "b")
_ZERO_PADS = [0, 0, 0] * 2


def _norm_params(arch: ArchSpec) -> tuple[str, ...]:
    return _BN_PARAMS if arch.norm == "bn" else _AFFINE_PARAMS


def _stage_blocks(arch: ArchSpec) -> list[tuple[str, int, int, int, int, int, int]]:
    """(prefix, dim_in, dim_out, dim_inner, stride, u, stage index) for every block."""
    out = []
    dim_in = STEM_WIDTH
    for s, stage in enumerate(STAGE_NAMES):
        for i in range(arch.blocks_per_stage[s]):
            stride = STAGE_STRIDES[s] if i == 0 else 1
            u = arch.temporal_convs[s][i]
            out.append((f"{stage}_{i}", dim_in, STAGE_WIDTHS[s], STAGE_INNER[s], stride, u, s))
            dim_in = STAGE_WIDTHS[s]
    return out


def nonlocal_prefix(stage: str, index: int) -> str:
    """The blob prefix of the non-local block after block `index` of `stage` ("res3")."""
    return f"nonlocal_conv{stage[3:]}_{index}"


def expected_blob_shapes(arch: ArchSpec) -> dict[str, tuple[int, ...]]:
    """Every weight blob of `arch` with its shape, in the order the clip-head net reads them.

    Conv weights are 5-D ``(out, in, kt, kh, kw)``; for an ImageNet 2D checkpoint
    (``arch.is_2d``) they are 4-D ``(out, in, kh, kw)``.
    """

    def kernel(kt: int, kh: int, kw: int) -> tuple[int, ...]:
        return (kh, kw) if arch.is_2d else (kt, kh, kw)

    shapes: dict[str, tuple[int, ...]] = {}
    norm = _norm_params(arch)

    def conv_norm(prefix: str, cin: int, cout: int, k: tuple[int, ...]) -> None:
        shapes[f"{prefix}_w"] = (cout, cin, *k)
        for p in norm:
            shapes[f"{prefix}_bn_{p}"] = (cout,)

    conv_norm("conv1", 3, STEM_WIDTH, kernel(1 + 2 * arch.conv1_temporal, 7, 7))
    # conv1's BN is named res_conv1_bn, not conv1_bn.
    for p in norm:
        shapes[f"res_conv1_bn_{p}"] = shapes.pop(f"conv1_bn_{p}")
    nl = arch.nonlocal_block
    for prefix, cin, cout, inner, stride, u, s in _stage_blocks(arch):
        conv_norm(f"{prefix}_branch2a", cin, inner, kernel(1 + 2 * u, 1, 1))
        conv_norm(f"{prefix}_branch2b", inner, inner, kernel(1, 3, 3))
        conv_norm(f"{prefix}_branch2c", inner, cout, kernel(1, 1, 1))
        if cin != cout or stride != 1:
            conv_norm(f"{prefix}_branch1", cin, cout, kernel(1, 1, 1))
        stage, idx = STAGE_NAMES[s], int(prefix.split("_")[1])
        if idx in arch.nonlocal_indices(stage):
            nlp = nonlocal_prefix(stage, idx)
            ci = cout // 2
            for part in ("theta", "phi", "g"):
                shapes[f"{nlp}_{part}_w"] = (ci, cout, *kernel(1, 1, 1))
                shapes[f"{nlp}_{part}_b"] = (ci,)
            shapes[f"{nlp}_out_w"] = (cout, ci, *kernel(1, 1, 1))
            shapes[f"{nlp}_out_b"] = (cout,)
            if nl.use_bn:
                for p in _BN_PARAMS:
                    shapes[f"{nlp}_bn_{p}"] = (cout,)
    shapes["pred_w"] = (arch.num_classes, STAGE_WIDTHS[-1])
    shapes["pred_b"] = (arch.num_classes,)
    return shapes



def blob_differences(arch: ArchSpec, blobs: Mapping[str, Any], limit: int = 3) -> list[str]:
    """How weight blobs differ from what `arch` needs (wrong shapes first, then missing and
    left-over blobs), at most `limit` lines plus a count of the rest; empty when they fit."""
    want = expected_blob_shapes(arch)
    got = {name: tuple(int(d) for d in getattr(a, "shape", ())) for name, a in blobs.items()}

    def dims(shape: tuple[int, ...]) -> str:
        return "x".join(map(str, shape)) or "scalar"

    found = [f"{n} is {dims(got[n])}, {arch.name} needs {dims(s)}"
             for n, s in want.items() if n in got and got[n] != s]
    found += [f"{n} is missing" for n in want if n not in got]
    found += [f"{n} is not a blob of {arch.name}" for n in got if n not in want]
    if len(found) > limit:
        found = [*found[:limit], f"{len(found) - limit} more difference(s)"]
    return found

def expected_blob_names(arch: ArchSpec, head: Head = "clip") -> list[str]:
    """The weight blobs the predict net of `head` reads, in the order it first reads them.

    The fully-convolutional net reads ``pred_w`` first (its Reshape into ``pred_w_conv`` is
    op 0) and ``pred_b`` last.
    """
    _check_head(head)
    names = list(expected_blob_shapes(arch))
    if head == "fully_conv":
        names.remove("pred_w")
        names.insert(0, "pred_w")
    return names


def _check_head(head: str) -> None:
    if head not in HEADS:
        raise ArchitectureError(f"unknown head {head!r}; expected one of {', '.join(HEADS)}")


class _NetWriter:
    """Appends ops to a NetDef and notes which weight blobs it reads."""

    def __init__(self, arch: ArchSpec, name: str) -> None:
        self.arch = arch
        self.net = NetDef(name=name)
        self.produced: set[str] = {"data"}
        self.weights: list[str] = []

    def op(self, op_type: str, inputs: list[str], outputs: list[str], **args: Any) -> str:
        for name in inputs:
            if name not in self.produced and name not in self.weights:
                self.weights.append(name)
        self.net.op.append(make_op(op_type, inputs, outputs, **args))
        self.produced.update(outputs)
        return outputs[0]

    def conv(self, blob_in: str, prefix: str, kernels: list[int], strides: list[int],
             pads: list[int], bias: bool = False, weight: str | None = None,
             group: int = 1) -> str:
        inputs = [blob_in, weight or f"{prefix}_w"] + ([f"{prefix}_b"] if bias else [])
        return self.op("Conv", inputs, [prefix], kernels=kernels, strides=strides, pads=pads,
                       group=group if group != 1 else None, order="NCHW")

    def spatial_bn(self, blob_in: str, out: str, eps: float) -> str:
        params = [f"{out}_{p}" for p in _BN_PARAMS]
        return self.op("SpatialBN", [blob_in, *params], [out], is_test=1, epsilon=float(eps),
                       order="NCHW")

    def norm(self, blob_in: str, out: str) -> str:
        """SpatialBN (BN models) or AffineNd (affine models), never in place."""
        if self.arch.norm == "bn":
            return self.spatial_bn(blob_in, out, self.arch.bn_eps)
        return self.op("AffineNd", [blob_in, f"{out}_s", f"{out}_b"], [out])

    def conv_norm(self, blob_in: str, prefix: str, kernels: list[int], strides: list[int],
                  pads: list[int]) -> str:
        return self.norm(self.conv(blob_in, prefix, kernels, strides, pads), f"{prefix}_bn")

    def relu_(self, blob: str) -> str:
        return self.op("Relu", [blob], [blob])

    def pool(self, op_type: str, blob_in: str, out: str, kernels: list[int],
             strides: list[int]) -> str:
        return self.op(op_type, [blob_in], [out], kernels=kernels, strides=strides,
                       pads=_ZERO_PADS, order="NCHW")

    # ----- resnet_helper.py ---------------------------------------------------------------
    def residual_block(self, blob_in: str, prefix: str, dim_in: int, dim_out: int,
                       dim_inner: int, stride: int, u: int) -> str:
        x = self.conv_norm(blob_in, f"{prefix}_branch2a", [1 + 2 * u, 1, 1], [1, 1, 1],
                           [u, 0, 0] * 2)
        x = self.relu_(x)
        x = self.conv_norm(x, f"{prefix}_branch2b", [1, 3, 3], [1, stride, stride],
                           [0, 1, 1] * 2)
        x = self.relu_(x)
        tr = self.conv_norm(x, f"{prefix}_branch2c", [1, 1, 1], [1, 1, 1], _ZERO_PADS)
        if dim_in == dim_out and stride == 1:
            sc = blob_in
        else:
            sc = self.conv_norm(blob_in, f"{prefix}_branch1", [1, 1, 1], [1, stride, stride],
                                _ZERO_PADS)
        out = self.op("Sum", [tr, sc], [tr])  # ALLOW_INPLACE_SUM: the branch blob
        return self.relu_(out)

    # ----- nonlocal_helper.py -------------------------------------------------------------
    def spacetime_nonlocal(self, blob_in: str, dim: int, batch: int, prefix: str) -> str:
        nl = self.arch.nonlocal_block
        ci = dim // 2
        one = ([1, 1, 1], [1, 1, 1], _ZERO_PADS)
        theta = self.conv(blob_in, f"{prefix}_theta", *one, bias=True)
        if nl.use_maxpool:
            m = nl.max_pool_stride
            pooled = self.pool("MaxPool", blob_in, f"{prefix}_pool", [1, m, m], [1, m, m])
        else:
            pooled = blob_in
        phi = self.conv(pooled, f"{prefix}_phi", *one, bias=True)
        g = self.conv(pooled, f"{prefix}_g", *one, bias=True)
        shape = [batch, ci, -1]
        self.op("Reshape", [theta], [theta, f"{theta}_shape5d"], shape=shape)
        self.op("Reshape", [phi], [phi, f"{phi}_shape5d"], shape=shape)
        self.op("Reshape", [g], [g, f"{g}_shape5d"], shape=shape)
        aff = self.op("BatchMatMul", [theta, phi], [f"{prefix}_affinity"], trans_a=1)
        if nl.use_softmax:
            if nl.use_scale:
                self.op("Scale", [aff], [aff], scale=float(ci ** -0.5))
            p = self.op("Softmax", [aff], [f"{aff}_prob"], axis=2)
        else:
            # Dot product: divide by the number of phi positions, built as the official
            # code does (ConstantFill/ReduceBackSum/broadcast Add/Div).
            ones = self.op("ConstantFill", [aff], [f"{aff}_ones"], value=1.0)
            const = self.op("ReduceBackSum", [ones], [f"{aff}_const"])
            zeros = self.op("ConstantFill", [aff], [f"{aff}_zeros"], value=0.0)
            denom = self.op("Add", [zeros, const], [f"{aff}_denom"], broadcast=1, axis=0)
            self.op("StopGradient", [denom], [denom])
            p = self.op("Div", [aff, denom], [f"{aff}_sc"])
        y = self.op("BatchMatMul", [g, p], [f"{prefix}_y"], trans_b=1)
        self.op("Reshape", [y, f"{theta}_shape5d"], [y, f"{y}_shape3d"])
        out = self.conv(y, f"{prefix}_out", *one, bias=True)
        if nl.use_bn:
            out = self.spatial_bn(out, f"{prefix}_bn", nl.bn_eps)
        return out

    def add_nonlocal(self, blob_in: str, dim: int, batch: int, prefix: str) -> str:
        out = self.spacetime_nonlocal(blob_in, dim, batch, prefix)
        return self.op("Sum", [blob_in, out], [f"{prefix}_sum"])

    def add_nonlocal_group(self, blob_in: str, dim: int, batch: int, pool_stride: int,
                           spatial: int, prefix: str) -> str:
        group_size = self.arch.nonlocal_block.group_size
        if pool_stride % group_size:
            raise ArchitectureError(
                f"{self.arch.name}: grouped non-local needs the pool5 temporal kernel "
                f"{pool_stride} (training clip {self.arch.frames}) divisible by {group_size}"
            )
        group_num = pool_stride // group_size
        axes = [0, 2, 1, 3, 4]
        if group_num > 1:
            t = self.op("Transpose", [blob_in], [f"{blob_in}_trans"], axes=axes)
            self.op("Reshape", [t], [t, f"{t}_shape5d"],
                    shape=[batch * group_num, group_size, dim, spatial, spatial])
            blob_in = self.op("Transpose", [t], [f"{t}_trans"], axes=axes)
            shape5d = f"{t}_shape5d"
        out = self.spacetime_nonlocal(blob_in, dim, batch * group_num, prefix)
        out = self.op("Sum", [blob_in, out], [f"{prefix}_sum"])
        if group_num > 1:
            t = self.op("Transpose", [out], [f"{out}_trans"], axes=axes)
            self.op("Reshape", [t, shape5d], [t, f"{t}_shape5d"])
            out = self.op("Transpose", [t], [f"{t}_trans"], axes=axes)
        return out


def build_predict_net(
    arch: ArchSpec,
    head: Head,
    batch_size: int,
    crop_size: int | None = None,
    *,
    pool5_spatial: int = POOL5_SPATIAL,
    pred_w_conv_input: bool = False,
) -> Any:
    """The predict ``NetDef`` of the official code for `arch`, split val (clip) or test.

    `batch_size` and (for grouped non-local) `crop_size` are baked into Reshape ops as the
    official net does: run the net with exactly that batch size and crop. `crop_size`
    defaults to ``arch.crop_size`` for the clip head and to 256 (the official fully-conv test
    setting) for the fully-conv head. The temporal pool5 kernel and the non-local groups come
    from ``arch.frames`` (TRAIN.VIDEO_LENGTH); use ``dataclasses.replace(arch, frames=...)``
    to build the net of another training clip length.
    """
    _check_head(head)
    if arch.is_2d:
        raise ArchitectureError(f"{arch.name} is an ImageNet 2D checkpoint, not a video net")
    if batch_size < 1:
        raise ArchitectureError(f"batch size must be >= 1, got {batch_size}")
    if crop_size is None:
        crop_size = arch.crop_size if head == "clip" else FULLY_CONV_CROP_SIZE
    spatial = int(crop_size / 8)  # the official code bakes int(crop_size / 8)
    pool_stride = arch.pool5_temporal_kernel
    w = _NetWriter(arch, f"{arch.name}_{'val' if head == 'clip' else 'test'}")
    if head == "fully_conv" and not pred_w_conv_input:
        w.op("Reshape", ["pred_w"], ["pred_w_conv", "pred_w_shape2d"],
             shape=[arch.num_classes, STAGE_WIDTHS[-1], 1, 1, 1])

    u1 = arch.conv1_temporal
    x = w.conv("data", "conv1", [1 + 2 * u1, 7, 7], [arch.conv1_temporal_stride, 2, 2],
               [u1, 3, 3] * 2)
    x = w.norm(x, "res_conv1_bn")
    x = w.relu_(x)
    x = w.pool("MaxPool", x, "pool1", list(arch.pool1_kernel), list(arch.pool1_stride))
    for prefix, cin, cout, inner, stride, u, s in _stage_blocks(arch):
        stage, idx = STAGE_NAMES[s], int(prefix.split("_")[1])
        if stage == "res3" and idx == 0:
            x = w.pool("MaxPool", x, "pool2", [2, 1, 1], [2, 1, 1])
        x = w.residual_block(x, prefix, cin, cout, inner, stride, u)
        if idx in arch.nonlocal_indices(stage):
            nlp = nonlocal_prefix(stage, idx)
            if arch.is_grouped(stage):
                x = w.add_nonlocal_group(x, cout, batch_size, pool_stride, spatial, nlp)
            else:
                x = w.add_nonlocal(x, cout, batch_size, nlp)
    x = w.pool("AveragePool", x, "pool5", [pool_stride, pool5_spatial, pool5_spatial],
               [1, 1, 1])
    if head == "clip":
        x = w.op("FC", [x, "pred_w", "pred_b"], ["pred"])
        w.op("Softmax", [x], ["softmax"])
    else:
        x = w.conv(x, "pred", [1, 1, 1], [1, 1, 1], _ZERO_PADS, bias=True, weight="pred_w_conv")
        x = w.op("Transpose", [x], ["pred_tr"], axes=[0, 2, 3, 4, 1])
        x = w.op("Reshape", [x], ["pred_re", "pred_shape5d"], shape=[-1, arch.num_classes])
        x = w.op("Softmax", [x], ["softmax_conv"])
        x = w.op("Reshape", [x, "pred_shape5d"], ["softmax_conv_re", "pred_shape2d"])
        x = w.op("Transpose", [x], ["softmax_conv_tr"], axes=[0, 4, 1, 2, 3])
        x = w.op("ReduceBackMean", [x], ["softmax_ave_w"])
        x = w.op("ReduceBackMean", [x], ["softmax_ave_h"])
        w.op("ReduceBackMean", [x], ["softmax"])
    w.net.external_input.extend(["data", *w.weights])
    w.net.external_output.append("softmax")
    return w.net
