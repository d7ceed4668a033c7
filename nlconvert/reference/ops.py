"""Caffe2 operators in numpy, float32 throughout: the independent reference of nlconvert.

Each operator is written twice: a plain numeric function (``conv_nd``, ``max_pool_nd``, ...)
with Python arguments, and an adapter in :data:`OPERATORS` that reads the inputs and the
``Argument`` list of an ``OperatorDef`` the way Caffe2's C++ operator does (argument names,
defaults, legacy broadcasting). The semantics follow caffe2/operators/*.cc of PyTorch 1.x:

- Conv/pool output size: ``floor((in + pad_head + pad_tail - dilation*(k-1) - 1) / stride) + 1``;
  ``pads`` lists every head, then every tail (``[t0, h0, w0, t1, h1, w1]``).
- AveragePool divides by the number of input cells inside the window (padding excluded)
  unless ``count_include_pad`` is set; MaxPool ignores padding.
- SpatialBN (``is_test``): ``alpha = s / sqrt(var + eps)``, ``y = x * alpha + (b - mean * alpha)``.
- Softmax flattens to 2-D at ``axis``; FC flattens X at ``axis`` and W at ``axis_w``.
- Reshape: 0 copies the input dimension, -1 is inferred; the second output is the old shape
  (int64).
- Add/Sub/Mul/Div with ``broadcast=1``: Caffe2's legacy rule (B matches a contiguous run of
  A's dimensions starting at ``axis``; leading/trailing 1s of B are ignored); otherwise
  numpy-style broadcasting.

Nothing here imports torch or :mod:`nlconvert.model`: this module is what the PyTorch port
is checked against. Convolutions are im2col (one strided copy per kernel offset) plus one
float32 matmul per group; there is no Python loop over output positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import OperatorArgumentError, UnsupportedOperatorError

Array = npt.NDArray[Any]
# An operator adapter: (inputs, arguments, number of outputs) -> outputs.
OpFn = Callable[[list[Array], dict[str, Any], int], list[Array]]

F32 = np.float32

# TensorProto.DataType -> numpy dtype (caffe2.proto).
_DTYPES: dict[int, Any] = {
    1: np.float32,
    2: np.int32,
    5: np.bool_,
    6: np.uint8,
    7: np.int8,
    8: np.uint16,
    9: np.int16,
    10: np.int64,
    12: np.float16,
    13: np.float64,
}


# ----- numeric functions ------------------------------------------------------------------
def _require(cond: bool, message: str) -> None:
    if not cond:
        raise OperatorArgumentError(message)


def _as_f32(x: Array, what: str) -> Array:
    """The array as float32; Caffe2's float operators reject any other dtype."""
    arr = np.asarray(x)
    _require(arr.dtype == F32, f"{what} must be float32, got {arr.dtype}")
    return arr


def _full(values: Sequence[int] | None, default: int, n: int, what: str) -> tuple[int, ...]:
    if values is None:
        return (default,) * n
    vals = tuple(int(v) for v in values)
    _require(len(vals) == n, f"{what} has {len(vals)} entries, expected {n}")
    return vals


def output_size(size: int, kernel: int, stride: int, pad_head: int, pad_tail: int,
                dilation: int = 1) -> int:
    """Caffe2's output length of a conv/pool axis (legacy_pad NOTSET)."""
    dkernel = dilation * (kernel - 1) + 1
    return (size + pad_head + pad_tail - dkernel) // stride + 1


def _geometry(
    spatial: tuple[int, ...],
    kernels: Sequence[int],
    strides: Sequence[int] | None,
    pads: Sequence[int] | None,
    dilations: Sequence[int] | None,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    nd = len(spatial)
    k = _full(kernels, 1, nd, "kernels")
    s = _full(strides, 1, nd, "strides")
    p = _full(pads, 0, 2 * nd, "pads")
    d = _full(dilations, 1, nd, "dilations")
    _require(all(v > 0 for v in k + s + d), f"kernels/strides/dilations must be > 0: {k} {s} {d}")
    _require(all(v >= 0 for v in p), f"negative pads are not supported: {p}")
    out = tuple(
        output_size(spatial[i], k[i], s[i], p[i], p[nd + i], d[i]) for i in range(nd)
    )
    _require(
        all(o > 0 for o in out),
        f"input {spatial} too small for kernel {k}, stride {s}, pads {p} (output {out})",
    )
    return k, s, p, d, out


def _pad(x: Array, pads: tuple[int, ...], value: float) -> Array:
    nd = x.ndim - 2
    if not any(pads):
        return x
    widths = [(0, 0), (0, 0)] + [(pads[i], pads[nd + i]) for i in range(nd)]
    return np.pad(x, widths, mode="constant", constant_values=value)


def _window(offsets: tuple[int, ...], dil: tuple[int, ...], strides: tuple[int, ...],
            out: tuple[int, ...]) -> tuple[slice, ...]:
    """Slices picking, for one kernel offset, the input cell of every output position."""
    return (slice(None), slice(None)) + tuple(
        slice(o * d, o * d + s * (n - 1) + 1, s)
        for o, d, s, n in zip(offsets, dil, strides, out, strict=True)
    )


def conv_nd(
    x: Array,
    w: Array,
    b: Array | None = None,
    strides: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    dilations: Sequence[int] | None = None,
    group: int = 1,
) -> Array:
    """N-d convolution (NCHW; weight ``(O, C/group, *k)``; pads head-then-tail)."""
    x = _as_f32(x, "Conv input")
    w = _as_f32(w, "Conv filter")
    _require(x.ndim >= 3, f"Conv input must be N-d NCHW, got shape {x.shape}")
    _require(w.ndim == x.ndim, f"Conv filter {w.shape} does not fit input {x.shape}")
    n, c = x.shape[:2]
    o, cg = w.shape[:2]
    _require(group >= 1 and c % group == 0 and o % group == 0,
             f"channels {c} -> {o} not divisible by group {group}")
    _require(cg * group == c, f"Conv filter {w.shape} expects {cg * group} input channels, got {c}")
    k, s, p, d, out = _geometry(x.shape[2:], w.shape[2:], strides, pads, dilations)
    positions = math.prod(out)
    if all(v == 1 for v in k) and not any(p):
        xs = x if all(v == 1 for v in s) else x[_window((0,) * len(k), d, s, out)]
        cols = np.ascontiguousarray(xs).reshape(n, c, positions)
    else:
        xp = _pad(x, p, 0.0)
        kvol = math.prod(k)
        cols5 = np.empty((n, c, kvol, *out), dtype=F32)
        for idx, offs in enumerate(np.ndindex(*k)):
            cols5[:, :, idx] = xp[_window(offs, d, s, out)]
        cols = cols5.reshape(n, c * kvol, positions)
    og = o // group
    if group == 1:
        y = np.matmul(w.reshape(o, -1), cols)
    else:
        cols_g = cols.reshape(n, group, -1, positions)
        y = np.matmul(w.reshape(group, og, -1), cols_g).reshape(n, o, positions)
    y = y.reshape(n, o, *out)
    if b is not None:
        b = _as_f32(b, "Conv bias")
        _require(b.shape == (o,), f"Conv bias shape {b.shape}, expected ({o},)")
        y += b.reshape((1, o) + (1,) * len(out))
    return y


def _pool_nd(x: Array, kernels: Sequence[int], strides: Sequence[int] | None,
             pads: Sequence[int] | None, is_max: bool, count_include_pad: bool) -> Array:
    x = _as_f32(x, "pool input")
    _require(x.ndim >= 3, f"pool input must be N-d NCHW, got shape {x.shape}")
    k, s, p, d, out = _geometry(x.shape[2:], kernels, strides, pads, None)
    nd = len(k)
    _require(all(p[i] < k[i] and p[nd + i] < k[i] for i in range(nd)),
             f"pads {p} must be smaller than the kernel {k}")
    spatial = x.shape[2:]
    if all(o == 1 for o in out) and not any(p) and tuple(k) == tuple(spatial):
        axes = tuple(range(2, x.ndim))  # a global pool: one reduction
        if is_max:
            return x.max(axis=axes, keepdims=True)
        return x.mean(axis=axes, keepdims=True, dtype=F32)
    xp = _pad(x, p, -np.inf if is_max else 0.0)
    acc: Array | None = None
    for offs in np.ndindex(*k):
        v = xp[_window(offs, d, s, out)]
        if acc is None:
            acc = np.array(v, dtype=F32)
        elif is_max:
            np.maximum(acc, v, out=acc)
        else:
            np.add(acc, v, out=acc)
    assert acc is not None
    if is_max:
        return acc
    if count_include_pad:
        return acc * F32(1.0 / math.prod(k))
    # Cells of each window inside the input, per axis; the count is their product.
    count = np.ones((1,) * len(out), dtype=np.int64)
    for i in range(nd):
        start = np.arange(out[i]) * s[i] - p[i]
        n_in = np.minimum(start + k[i], spatial[i]) - np.maximum(start, 0)
        shape = [1] * nd
        shape[i] = out[i]
        count = count * n_in.reshape(shape)
    scale = (1.0 / count.astype(np.float64)).astype(F32)
    return acc * scale.reshape((1, 1) + scale.shape)


def max_pool_nd(x: Array, kernels: Sequence[int], strides: Sequence[int] | None = None,
                pads: Sequence[int] | None = None) -> Array:
    """Caffe2 MaxPool (padding never wins)."""
    return _pool_nd(x, kernels, strides, pads, True, False)


def average_pool_nd(x: Array, kernels: Sequence[int], strides: Sequence[int] | None = None,
                    pads: Sequence[int] | None = None, count_include_pad: bool = False) -> Array:
    """Caffe2 AveragePool (padding excluded from the divisor unless `count_include_pad`)."""
    return _pool_nd(x, kernels, strides, pads, False, count_include_pad)


def _channel(v: Array, x: Array, what: str) -> Array:
    v = _as_f32(v, what)
    c = x.shape[1]
    _require(v.shape == (c,), f"{what} has shape {v.shape}, expected ({c},)")
    return v.reshape((1, c) + (1,) * (x.ndim - 2))


def spatial_bn(x: Array, scale: Array, bias: Array, mean: Array, var: Array,
               epsilon: float = 1e-5) -> Array:
    """SpatialBN in test mode, in Caffe2's fused form (float32)."""
    x = _as_f32(x, "SpatialBN input")
    _require(x.ndim >= 2, f"SpatialBN input must be NC..., got {x.shape}")
    s = _channel(scale, x, "SpatialBN scale")
    alpha = s / np.sqrt(_channel(var, x, "SpatialBN var") + F32(epsilon))
    beta = _channel(bias, x, "SpatialBN bias") - _channel(mean, x, "SpatialBN mean") * alpha
    return x * alpha + beta


def affine_nd(x: Array, scale: Array, bias: Array) -> Array:
    """AffineNd / AffineChannel: per-channel ``x * s + b``."""
    x = _as_f32(x, "AffineNd input")
    _require(x.ndim >= 2, f"AffineNd input must be NC..., got {x.shape}")
    return x * _channel(scale, x, "AffineNd scale") + _channel(bias, x, "AffineNd bias")


def relu(x: Array) -> Array:
    """max(x, 0)."""
    return np.maximum(_as_f32(x, "Relu input"), F32(0))


def _axis(axis: int, ndim: int, what: str) -> int:
    a = axis + ndim if axis < 0 else axis
    _require(0 <= a < ndim, f"{what} axis {axis} out of range for {ndim}-d input")
    return a


def softmax(x: Array, axis: int = 1) -> Array:
    """Caffe2 Softmax: flatten to ``[prod(dims[:axis]), prod(dims[axis:])]``, rows sum to 1."""
    x = _as_f32(x, "Softmax input")
    a = _axis(axis, x.ndim, "Softmax")
    rows = math.prod(x.shape[:a])
    x2 = x.reshape(rows, -1)
    e = np.exp(x2 - x2.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape)


def fc(x: Array, w: Array, b: Array, axis: int = 1, axis_w: int = 1) -> Array:
    """FC: ``y = X2 @ W2.T + b`` with X flattened at `axis` and W at `axis_w`."""
    x = _as_f32(x, "FC input")
    w = _as_f32(w, "FC weight")
    b = _as_f32(b, "FC bias")
    a = _axis(axis, x.ndim, "FC")
    aw = _axis(axis_w, w.ndim, "FC weight")
    x2 = x.reshape(math.prod(x.shape[:a]), -1)
    w2 = w.reshape(math.prod(w.shape[:aw]), -1)
    _require(x2.shape[1] == w2.shape[1],
             f"FC input {x.shape} (K={x2.shape[1]}) does not fit weight {w.shape} "
             f"(K={w2.shape[1]})")
    _require(b.shape == (w2.shape[0],), f"FC bias {b.shape}, expected ({w2.shape[0]},)")
    y = x2 @ w2.T + b
    return y.reshape(x.shape[:a] + (w2.shape[0],))


def batch_matmul(a: Array, b: Array, trans_a: bool = False, trans_b: bool = False,
                 broadcast: bool = False) -> Array:
    """BatchMatMul: matmul over the last two axes, batches over the others."""
    a = _as_f32(a, "BatchMatMul A")
    b = _as_f32(b, "BatchMatMul B")
    _require(a.ndim >= 2 and b.ndim >= 2, f"BatchMatMul needs >= 2-d inputs: {a.shape} {b.shape}")
    if not broadcast:
        _require(a.ndim == b.ndim and a.shape[:-2] == b.shape[:-2],
                 f"BatchMatMul batch dimensions differ: {a.shape} vs {b.shape}")
    at = np.swapaxes(a, -1, -2) if trans_a else a
    bt = np.swapaxes(b, -1, -2) if trans_b else b
    _require(at.shape[-1] == bt.shape[-2],
             f"BatchMatMul inner dimensions differ: {a.shape} (trans_a={int(trans_a)}) vs "
             f"{b.shape} (trans_b={int(trans_b)})")
    return np.matmul(at, bt)


def reshape(x: Array, shape: Sequence[int]) -> tuple[Array, Array]:
    """Caffe2 Reshape: returns the reshaped array and the old shape (int64)."""
    x = np.asarray(x)
    new = [int(v) for v in shape]
    for i, v in enumerate(new):
        if v == 0:
            _require(i < x.ndim, f"Reshape: 0 at index {i} but the input {x.shape} has "
                     f"{x.ndim} dims")
            new[i] = x.shape[i]
    _require(new.count(-1) <= 1, f"Reshape: more than one -1 in {list(shape)}")
    _require(all(v >= -1 for v in new), f"Reshape: invalid shape {list(shape)}")
    if -1 in new:
        known = math.prod(v for v in new if v != -1)
        _require(known > 0 and x.size % known == 0,
                 f"Reshape: cannot infer -1 of {list(shape)} for input {x.shape}")
        new[new.index(-1)] = x.size // known
    _require(math.prod(new) == x.size,
             f"Reshape: input {x.shape} ({x.size} values) cannot take shape {new}")
    return x.reshape(new), np.asarray(x.shape, dtype=np.int64)


def transpose(x: Array, axes: Sequence[int] | None = None) -> Array:
    """Transpose with `axes` (default: reversed), as a contiguous array."""
    x = np.asarray(x)
    if axes is None or len(axes) == 0:
        perm = list(range(x.ndim))[::-1]
    else:
        perm = [int(a) for a in axes]
        _require(sorted(perm) == list(range(x.ndim)),
                 f"Transpose axes {perm} are not a permutation of {x.ndim} dims")
    return np.ascontiguousarray(np.transpose(x, perm))


def reduce_back(x: Array, mean: bool, num_reduce_dim: int = 1) -> Array:
    """ReduceBackMean / ReduceBackSum over the last `num_reduce_dim` axes."""
    x = _as_f32(x, "ReduceBack input")
    _require(0 <= num_reduce_dim <= x.ndim, f"num_reduce_dim {num_reduce_dim} for {x.shape}")
    if num_reduce_dim == 0:
        return x.copy()
    axes = tuple(range(x.ndim - num_reduce_dim, x.ndim))
    if mean:
        return x.mean(axis=axes, dtype=F32)
    return x.sum(axis=axes, dtype=F32)


def legacy_broadcast(a: Array, b: Array, axis: int = -1) -> Array:
    """B viewed so that numpy broadcasting against A follows Caffe2's legacy rule."""
    _require(a.ndim >= b.ndim, f"broadcast: B {b.shape} has more dims than A {a.shape}")
    if axis == -1:
        axis = a.ndim - b.ndim
    _require(0 <= axis <= a.ndim - b.ndim,
             f"broadcast axis {axis} out of range [0, {a.ndim - b.ndim}]")
    start = 0
    while start < b.ndim and b.shape[start] == 1:
        start += 1
    end = b.ndim - 1
    while end >= start and b.shape[end] == 1:
        end -= 1
    core = b.shape[start:end + 1]
    _require(core == a.shape[axis + start:axis + end + 1],
             f"broadcast: B {b.shape} does not match A {a.shape} at axis {axis}")
    trailing = a.ndim - (axis + end + 1)
    return b.reshape(core + (1,) * trailing) if core else b.reshape(())


_BINARY: dict[str, Callable[[Array, Array], Array]] = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": np.divide,
}


def elementwise(op_type: str, a: Array, b: Array, broadcast: bool = False,
                axis: int = -1) -> Array:
    """Add/Sub/Mul/Div, with Caffe2's legacy broadcasting when `broadcast`."""
    a, b = np.asarray(a), np.asarray(b)
    _require(a.dtype == b.dtype, f"{op_type}: dtypes differ ({a.dtype} vs {b.dtype})")
    fn = _BINARY[op_type]
    if broadcast:
        return np.asarray(fn(a, legacy_broadcast(a, b, axis))).astype(a.dtype, copy=False)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise OperatorArgumentError(f"{op_type}: shapes {a.shape} and {b.shape} do not "
                                    "broadcast") from None
    return np.asarray(fn(a, b)).astype(a.dtype, copy=False)


def sum_(inputs: Sequence[Array]) -> Array:
    """Sum of same-shaped tensors, added left to right."""
    _require(len(inputs) >= 1, "Sum needs at least one input")
    first = np.asarray(inputs[0])
    out = first.copy()
    for i, v in enumerate(inputs[1:], start=1):
        v = np.asarray(v)
        _require(v.shape == first.shape,
                 f"Sum input {i} has shape {v.shape}, input 0 has {first.shape}")
        out += v
    return out


# ----- argument parsing -------------------------------------------------------------------
def _flag(args: dict[str, Any], name: str, default: int = 0) -> bool:
    return bool(int(args.get(name, default)))


def _ints(value: Any) -> list[int]:
    return [int(v) for v in value]


def _spatial_arg(args: dict[str, Any], nd: int, plural: str, single: str,
                 hw: tuple[str, str] | None) -> list[int] | None:
    """`plural` (a list), `single` (one int for every axis) or the 2-D `_h`/`_w` pair."""
    if plural in args:
        return _ints(args[plural])
    if single in args:
        return [int(args[single])] * nd
    if hw and (hw[0] in args or hw[1] in args):
        _require(nd == 2, f"{hw[0]}/{hw[1]} are 2-D arguments, the input is {nd}-d")
        return [int(args.get(hw[0], 1)), int(args.get(hw[1], 1))]
    return None


def _pads_arg(args: dict[str, Any], nd: int) -> list[int] | None:
    if "pads" in args:
        return _ints(args["pads"])
    if "pad" in args:
        return [int(args["pad"])] * (2 * nd)
    names = ("pad_t", "pad_l", "pad_b", "pad_r")
    if any(n in args for n in names):
        _require(nd == 2, "pad_t/pad_l/pad_b/pad_r are 2-D arguments")
        t, l, b, r = (int(args.get(n, 0)) for n in names)
        return [t, l, b, r]
    return None


def _check_order_and_legacy(args: dict[str, Any], op: str) -> None:
    order = args.get("order", b"NCHW")
    order = order.decode() if isinstance(order, bytes) else str(order)
    if order != "NCHW":
        raise UnsupportedOperatorError(f"{op}: order {order!r} (only NCHW is supported)")
    legacy = int(args.get("legacy_pad", 0))
    if legacy not in (0, 1):  # NOTSET, VALID (= zero pads)
        raise UnsupportedOperatorError(f"{op}: legacy_pad {legacy} is not supported")


def _n_inputs(inputs: list[Array], lo: int, hi: int, op: str) -> None:
    _require(lo <= len(inputs) <= hi, f"{op} takes {lo}..{hi} inputs, got {len(inputs)}")


def _op_conv(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
    _n_inputs(inputs, 2, 3, "Conv")
    _check_order_and_legacy(args, "Conv")
    x, w = inputs[0], inputs[1]
    nd = np.ndim(x) - 2
    kernels = _spatial_arg(args, nd, "kernels", "kernel", ("kernel_h", "kernel_w"))
    if kernels is not None:
        _require(tuple(kernels) == tuple(np.shape(w)[2:]),
                 f"Conv kernels {kernels} do not match the filter {np.shape(w)}")
    strides = _spatial_arg(args, nd, "strides", "stride", ("stride_h", "stride_w"))
    dil = _spatial_arg(args, nd, "dilations", "dilation", ("dilation_h", "dilation_w"))
    pads = [0] * (2 * nd) if int(args.get("legacy_pad", 0)) == 1 else _pads_arg(args, nd)
    bias = inputs[2] if len(inputs) == 3 else None
    return [conv_nd(x, w, bias, strides, pads, dil, int(args.get("group", 1)))]


def _make_pool(is_max: bool) -> OpFn:
    name = "MaxPool" if is_max else "AveragePool"

    def op(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
        _n_inputs(inputs, 1, 1, name)
        _check_order_and_legacy(args, name)
        x = inputs[0]
        nd = np.ndim(x) - 2
        if _flag(args, "global_pooling"):
            kernels: list[int] | None = list(np.shape(x)[2:])
            strides: list[int] | None = None
            pads: list[int] | None = None
        else:
            kernels = _spatial_arg(args, nd, "kernels", "kernel", ("kernel_h", "kernel_w"))
            _require(kernels is not None, f"{name} needs kernels or global_pooling")
            strides = _spatial_arg(args, nd, "strides", "stride", ("stride_h", "stride_w"))
            pads = [0] * (2 * nd) if int(args.get("legacy_pad", 0)) == 1 else _pads_arg(args, nd)
        assert kernels is not None
        if is_max:
            return [max_pool_nd(x, kernels, strides, pads)]
        return [average_pool_nd(x, kernels, strides, pads, _flag(args, "count_include_pad"))]

    return op


def _op_spatial_bn(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
    _n_inputs(inputs, 5, 5, "SpatialBN")
    _check_order_and_legacy(args, "SpatialBN")
    if not _flag(args, "is_test"):
        raise UnsupportedOperatorError("SpatialBN without is_test (training mode) is not "
                                       "supported by the inference reference")
    _require(n_out == 1, f"SpatialBN in test mode has 1 output, got {n_out}")
    x, scale, bias, mean, var = inputs
    return [spatial_bn(x, scale, bias, mean, var, float(args.get("epsilon", 1e-5)))]


def _op_affine(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
    _n_inputs(inputs, 3, 3, "AffineNd")
    return [affine_nd(inputs[0], inputs[1], inputs[2])]


def _op_relu(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
    _n_inputs(inputs, 1, 1, "Relu")
    return [relu(inputs[0])]


def _op_softmax(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
    _n_inputs(inputs, 1, 1, "Softmax")
    return [softmax(inputs[0], int(args.get("axis", 1)))]


def _op_fc(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
    _n_inputs(inputs, 3, 3, "FC")
    return [fc(inputs[0], inputs[1], inputs[2], int(args.get("axis", 1)),
               int(args.get("axis_w", 1)))]


def _op_batch_matmul(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
    _n_inputs(inputs, 2, 2, "BatchMatMul")
    return [batch_matmul(inputs[0], inputs[1], _flag(args, "trans_a"), _flag(args, "trans_b"),
                         _flag(args, "broadcast"))]


def _op_scale(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
    _n_inputs(inputs, 1, 1, "Scale")
    x = _as_f32(inputs[0], "Scale input")
    return [x * F32(float(args.get("scale", 1.0)))]


def _op_reshape(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
    _n_inputs(inputs, 1, 2, "Reshape")
    _require(1 <= n_out <= 2, f"Reshape has 1 or 2 outputs, got {n_out}")
    if len(inputs) == 2:
        _require("shape" not in args, "Reshape: shape given both as argument and as input")
        shape_blob = np.asarray(inputs[1])
        _require(shape_blob.ndim == 1 and shape_blob.dtype.kind in "iu",
                 f"Reshape: the shape input must be a 1-d integer tensor, got "
                 f"{shape_blob.dtype} {shape_blob.shape}")
        shape = [int(v) for v in shape_blob]
    else:
        _require("shape" in args, "Reshape: no shape argument and no shape input")
        shape = _ints(args["shape"])
    y, old = reshape(inputs[0], shape)
    return [y, old][:n_out]


def _op_transpose(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
    _n_inputs(inputs, 1, 1, "Transpose")
    axes = args.get("axes")
    return [transpose(inputs[0], _ints(axes) if axes else None)]


def _make_reduce_back(mean: bool) -> OpFn:
    name = "ReduceBackMean" if mean else "ReduceBackSum"

    def op(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
        _n_inputs(inputs, 1, 1, name)  # the optional `lengths` input is not supported
        return [reduce_back(inputs[0], mean, int(args.get("num_reduce_dim", 1)))]

    return op


def _dtype(args: dict[str, Any], default: int = 1) -> Any:
    code = int(args.get("dtype", default))
    if code not in _DTYPES:
        raise UnsupportedOperatorError(f"dtype {code} is not supported")
    return _DTYPES[code]


def _op_constant_fill(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
    _n_inputs(inputs, 0, 1, "ConstantFill")
    dtype = _dtype(args)
    if inputs:
        _require("shape" not in args, "ConstantFill: shape given both as argument and input")
        if _flag(args, "input_as_shape"):
            shape = [int(v) for v in np.asarray(inputs[0]).reshape(-1)]
        else:
            shape = list(np.shape(inputs[0]))
    else:
        shape = _ints(args.get("shape", []))
    shape += _ints(args.get("extra_shape", []))
    value = args.get("value", 0)
    return [np.full(shape, value, dtype=dtype)]


def _make_given_fill(dtype: Any) -> OpFn:
    def op(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
        _n_inputs(inputs, 0, 0, "GivenTensorFill")
        shape = _ints(args.get("shape", []))
        values = np.asarray(args.get("values", []), dtype=dtype)
        _require(values.size == math.prod(shape),
                 f"GivenTensorFill: {values.size} values for shape {shape}")
        return [values.reshape(shape)]

    return op


def _op_dropout(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
    _n_inputs(inputs, 1, 1, "Dropout")
    if not _flag(args, "is_test"):
        raise UnsupportedOperatorError("Dropout without is_test is random; the inference "
                                       "reference only runs test-mode nets")
    x = np.asarray(inputs[0])
    return [x.copy(), np.ones(x.shape, dtype=np.bool_)][:n_out]


def _identity(name: str) -> OpFn:
    def op(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
        _n_inputs(inputs, 1, 1, name)
        return [np.array(inputs[0], copy=True)]

    return op


def _op_sum(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
    return [sum_(inputs)]


def _make_binary(name: str) -> OpFn:
    def op(inputs: list[Array], args: dict[str, Any], n_out: int) -> list[Array]:
        _n_inputs(inputs, 2, 2, name)
        return [elementwise(name, inputs[0], inputs[1], _flag(args, "broadcast"),
                            int(args.get("axis", -1)))]

    return op


#: Operator type -> adapter. The executor looks types up here.
OPERATORS: dict[str, OpFn] = {
    "Conv": _op_conv,
    "Conv1D": _op_conv,
    "Conv2D": _op_conv,
    "Conv3D": _op_conv,
    "MaxPool": _make_pool(True),
    "MaxPool1D": _make_pool(True),
    "MaxPool2D": _make_pool(True),
    "MaxPool3D": _make_pool(True),
    "AveragePool": _make_pool(False),
    "AveragePool1D": _make_pool(False),
    "AveragePool2D": _make_pool(False),
    "AveragePool3D": _make_pool(False),
    "SpatialBN": _op_spatial_bn,
    "AffineNd": _op_affine,
    "AffineChannel": _op_affine,
    "Relu": _op_relu,
    "Softmax": _op_softmax,
    "FC": _op_fc,
    "BatchMatMul": _op_batch_matmul,
    "Scale": _op_scale,
    "Reshape": _op_reshape,
    "Transpose": _op_transpose,
    "ReduceBackMean": _make_reduce_back(True),
    "ReduceBackSum": _make_reduce_back(False),
    "ConstantFill": _op_constant_fill,
    "GivenTensorFill": _make_given_fill(np.float32),
    "GivenTensorDoubleFill": _make_given_fill(np.float64),
    "GivenTensorIntFill": _make_given_fill(np.int32),
    "GivenTensorInt64Fill": _make_given_fill(np.int64),
    "GivenTensorBoolFill": _make_given_fill(np.bool_),
    "Dropout": _op_dropout,
    "Copy": _identity("Copy"),
    "StopGradient": _identity("StopGradient"),
    "Alias": _identity("Alias"),
    "Sum": _op_sum,
    "Add": _make_binary("Add"),
    "Sub": _make_binary("Sub"),
    "Mul": _make_binary("Mul"),
    "Div": _make_binary("Div"),
}
