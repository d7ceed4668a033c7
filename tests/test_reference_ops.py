"""Each numpy Caffe2 operator of nlconvert.reference against an independent formulation.

The references here are written the slow, obvious way (loops over output positions, explicit
formulas) on tiny tensors; the operators are driven through ``OperatorDef`` + ``run_net`` so
that the Caffe2 argument handling is tested too.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from nlconvert.errors import NLConvertError
from nlconvert.io import netdef_from_blobs
from nlconvert.io.caffe2_pb import NetDef, make_op
from nlconvert.reference import (
    OperatorArgumentError,
    ReferenceExecutionError,
    UnsupportedOperatorError,
    run_net,
)

RNG = np.random.default_rng(1234)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def run_op(op_type: str, inputs: dict[str, np.ndarray], outputs: list[str], **args):
    """Run one op on `inputs` (in the given order) and return its outputs."""
    net = NetDef(name="t")
    net.op.append(make_op(op_type, list(inputs), outputs, **args))
    ws = run_net(net, inputs)
    return [ws[o] for o in outputs]


# ----- independent formulations -----------------------------------------------------------
def conv_loops(x, w, b, strides, pads, dil, group):
    n, c = x.shape[:2]
    o, cg = w.shape[:2]
    k = w.shape[2:]
    nd = len(k)
    sp = x.shape[2:]
    out = [
        (sp[i] + pads[i] + pads[nd + i] - dil[i] * (k[i] - 1) - 1) // strides[i] + 1
        for i in range(nd)
    ]
    y = np.zeros((n, o, *out), np.float64)
    og = o // group
    for bi, oc in itertools.product(range(n), range(o)):
        gi = oc // og
        for pos in itertools.product(*(range(v) for v in out)):
            acc = 0.0 if b is None else float(b[oc])
            for ci in range(cg):
                for kk in itertools.product(*(range(v) for v in k)):
                    idx = [pos[i] * strides[i] - pads[i] + kk[i] * dil[i] for i in range(nd)]
                    if all(0 <= idx[i] < sp[i] for i in range(nd)):
                        acc += float(x[(bi, gi * cg + ci, *idx)]) * float(w[(oc, ci, *kk)])
            y[(bi, oc, *pos)] = acc
    return y


def pool_loops(x, k, s, p, mode, count_include_pad=False):
    nd = len(k)
    sp = x.shape[2:]
    out = [(sp[i] + p[i] + p[nd + i] - k[i]) // s[i] + 1 for i in range(nd)]
    y = np.zeros(x.shape[:2] + tuple(out), np.float64)
    for bi, ci in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for pos in itertools.product(*(range(v) for v in out)):
            vals = []
            for kk in itertools.product(*(range(v) for v in k)):
                idx = [pos[i] * s[i] - p[i] + kk[i] for i in range(nd)]
                if all(0 <= idx[i] < sp[i] for i in range(nd)):
                    vals.append(float(x[(bi, ci, *idx)]))
            if mode == "max":
                y[(bi, ci, *pos)] = max(vals)
            else:
                y[(bi, ci, *pos)] = sum(vals) / (math.prod(k) if count_include_pad else len(vals))
    return y


# ----- Conv -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kernel,strides,pads,dil,group,bias",
    [
        ((3, 3, 3), (1, 2, 1), (1, 0, 2, 0, 1, 1), (1, 1, 1), 1, True),  # asymmetric pads
        ((3, 1, 1), (1, 1, 1), (1, 0, 0, 1, 0, 0), (1, 1, 1), 1, False),  # branch2a (3x1x1)
        ((1, 3, 3), (1, 2, 2), (0, 1, 1, 0, 1, 1), (1, 1, 1), 2, False),  # grouped, strided
        ((1, 1, 1), (1, 2, 2), (0, 0, 0, 0, 0, 0), (1, 1, 1), 1, False),  # branch1 shortcut
        ((1, 1, 1), (1, 1, 1), (0, 0, 0, 0, 0, 0), (1, 1, 1), 1, True),  # plain matmul path
        ((2, 2, 3), (2, 1, 2), (0, 1, 2, 1, 0, 0), (1, 2, 1), 4, True),  # dilation, groups
    ],
)
def test_conv3d_matches_loops(kernel, strides, pads, dil, group, bias):
    x = rand(2, 4, 4, 5, 6)
    w = rand(8, 4 // group, *kernel)
    b = rand(8) if bias else None
    inputs = {"x": x, "w": w} | ({"b": b} if bias else {})
    (y,) = run_op("Conv", inputs, ["y"], kernels=list(kernel), strides=list(strides),
                  pads=list(pads), dilations=list(dil), group=group, order="NCHW")
    ref = conv_loops(x, w, b, strides, pads, dil, group)
    assert y.dtype == np.float32
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_conv2d_single_int_and_hw_arguments():
    x, w = rand(1, 3, 7, 6), rand(5, 3, 3, 3)
    ref = conv_loops(x, w, None, (2, 2), (1, 1, 1, 1), (1, 1), 1)
    (y1,) = run_op("Conv", {"x": x, "w": w}, ["y"], kernel=3, stride=2, pad=1)
    (y2,) = run_op("Conv", {"x": x, "w": w}, ["y"], kernel_h=3, kernel_w=3, stride_h=2,
                   stride_w=2, pad_t=1, pad_l=1, pad_b=1, pad_r=1)
    (y3,) = run_op("Conv", {"x": x, "w": w}, ["y"], strides=[2, 2], pads=[1, 1, 1, 1])
    for y in (y1, y2, y3):  # y3: the kernel comes from the filter
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_conv_pads_are_head_then_tail():
    # pads [t0, h0, t1, h1] for a 2-D conv: heads first. Only the head of H is padded here.
    x, w = rand(1, 1, 4, 4), np.ones((1, 1, 1, 1), np.float32)
    (y,) = run_op("Conv", {"x": x, "w": w}, ["y"], kernels=[1, 1], pads=[2, 0, 0, 0])
    assert y.shape == (1, 1, 6, 4)
    np.testing.assert_array_equal(y[0, 0, :2], 0)
    np.testing.assert_array_equal(y[0, 0, 2:], x[0, 0])


def test_conv_errors_name_the_problem():
    with pytest.raises(ReferenceExecutionError, match="op 0 .*Conv.*kernels"):
        run_op("Conv", {"x": rand(1, 3, 4, 4), "w": rand(2, 3, 3, 3)}, ["y"], kernels=[2, 2])
    with pytest.raises(ReferenceExecutionError, match="input channels"):
        run_op("Conv", {"x": rand(1, 4, 4, 4), "w": rand(2, 3, 3, 3)}, ["y"])
    with pytest.raises(ReferenceExecutionError, match="too small"):
        run_op("Conv", {"x": rand(1, 3, 2, 2), "w": rand(2, 3, 3, 3)}, ["y"])
    with pytest.raises(UnsupportedOperatorError, match="NHWC"):
        run_op("Conv", {"x": rand(1, 3, 4, 4), "w": rand(2, 3, 3, 3)}, ["y"], order="NHWC")


# ----- pools ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "k,s,p",
    [
        ((1, 3, 3), (1, 2, 2), (0, 0, 0, 0, 0, 0)),  # pool1 short: 7 -> 3 (floor, no pad)
        ((2, 3, 3), (2, 2, 2), (0, 0, 0, 0, 0, 0)),  # pool1 org
        ((2, 1, 1), (2, 1, 1), (0, 0, 0, 0, 0, 0)),  # pool2
        ((1, 3, 3), (1, 2, 2), (0, 1, 0, 0, 0, 2)),  # asymmetric pads
        ((2, 3, 2), (1, 1, 2), (1, 1, 1, 0, 2, 1)),
    ],
)
@pytest.mark.parametrize("mode", ["max", "avg", "avg_incl"])
def test_pools_match_loops(k, s, p, mode):
    x = rand(2, 3, 5, 7, 7)
    op = "MaxPool" if mode == "max" else "AveragePool"
    extra = {"count_include_pad": 1} if mode == "avg_incl" else {}
    (y,) = run_op(op, {"x": x}, ["y"], kernels=list(k), strides=list(s), pads=list(p),
                  order="NCHW", **extra)
    ref = pool_loops(x, k, s, p, "max" if mode == "max" else "avg", mode == "avg_incl")
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


def test_pool_output_size_is_floor():
    # 112 -> 55 with kernel 3 stride 2 and no pad (a padded pool would give 56).
    x = rand(1, 1, 1, 112, 112)
    (y,) = run_op("MaxPool", {"x": x}, ["y"], kernels=[1, 3, 3], strides=[1, 2, 2],
                  pads=[0] * 6)
    assert y.shape == (1, 1, 1, 55, 55)


def test_global_pooling_and_pool5():
    x = rand(2, 4, 3, 7, 7)
    (ya,) = run_op("AveragePool", {"x": x}, ["y"], global_pooling=1)
    (ym,) = run_op("MaxPool", {"x": x}, ["y"], global_pooling=1)
    np.testing.assert_allclose(ya, x.mean(axis=(2, 3, 4), keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ym, x.max(axis=(2, 3, 4), keepdims=True))
    # pool5 of the fully-conv test: kernel (Tp, 7, 7), stride 1 on 8x8 leaves 2x2.
    x = rand(1, 3, 2, 8, 8)
    (y,) = run_op("AveragePool", {"x": x}, ["y"], kernels=[2, 7, 7], strides=[1, 1, 1])
    np.testing.assert_allclose(y, pool_loops(x, (2, 7, 7), (1, 1, 1), (0,) * 6, "avg"),
                               rtol=1e-5, atol=1e-6)


# ----- normalisation and pointwise ---------------------------------------------------------
def test_spatial_bn_test_mode():
    x, s, b, rm, riv = rand(2, 3, 2, 4, 4), rand(3), rand(3), rand(3), RNG.uniform(
        0.5, 2, 3).astype(np.float32)
    eps = 1.0000001e-5
    (y,) = run_op("SpatialBN", {"x": x, "s": s, "b": b, "rm": rm, "riv": riv}, ["y"],
                  is_test=1, epsilon=eps, order="NCHW")
    c = (slice(None), None, None, None)
    x64 = x.astype(np.float64)
    ref = (x64 - rm[c]) / np.sqrt(riv[c].astype(np.float64) + eps) * s[c] + b[c]
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(UnsupportedOperatorError, match="is_test"):
        run_op("SpatialBN", {"x": x, "s": s, "b": b, "rm": rm, "riv": riv}, ["y"])


def test_affine_relu_scale_sum_identities():
    x, s, b = rand(2, 3, 2, 2, 2), rand(3), rand(3)
    (y,) = run_op("AffineNd", {"x": x, "s": s, "b": b}, ["y"])
    np.testing.assert_allclose(y, x * s[:, None, None, None] + b[:, None, None, None],
                               rtol=1e-6)
    (r,) = run_op("Relu", {"x": x}, ["y"])
    np.testing.assert_array_equal(r, np.where(x > 0, x, 0))
    (sc,) = run_op("Scale", {"x": x}, ["y"], scale=0.25)
    np.testing.assert_array_equal(sc, x * np.float32(0.25))
    a2, a3 = rand(2, 3, 2, 2, 2), rand(2, 3, 2, 2, 2)
    (sm,) = run_op("Sum", {"a": x, "b": a2, "c": a3}, ["y"])
    np.testing.assert_allclose(sm, x + a2 + a3, rtol=1e-6)
    for op in ("Copy", "StopGradient", "Alias"):
        (c,) = run_op(op, {"x": x}, ["y"])
        np.testing.assert_array_equal(c, x)
    (d,) = run_op("Dropout", {"x": x}, ["y"], is_test=1, ratio=0.5)
    np.testing.assert_array_equal(d, x)
    with pytest.raises(UnsupportedOperatorError, match="Dropout"):
        run_op("Dropout", {"x": x}, ["y"], ratio=0.5)


@pytest.mark.parametrize("axis", [None, 1, 2, -1])
def test_softmax_flattens_at_axis(axis):
    x = rand(2, 3, 4, 5)
    args = {} if axis is None else {"axis": axis}
    (y,) = run_op("Softmax", {"x": x}, ["y"], **args)
    a = 1 if axis is None else axis % x.ndim
    x2 = x.reshape(math.prod(x.shape[:a]), -1).astype(np.float64)
    ref = np.exp(x2) / np.exp(x2).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(y, ref.reshape(x.shape), rtol=1e-5, atol=1e-7)
    # axis 1 on a 4-d tensor normalises over C*H*W together, not over C alone
    if a == 1:
        np.testing.assert_allclose(y.sum(axis=(1, 2, 3)), 1, rtol=1e-5)


def test_fc_flattens_input_and_weight():
    x, w, b = rand(2, 16, 1, 1, 1), rand(5, 16), rand(5)
    (y,) = run_op("FC", {"x": x, "w": w, "b": b}, ["y"])
    np.testing.assert_allclose(y, x.reshape(2, 16) @ w.T + b, rtol=1e-5, atol=1e-6)
    x = rand(2, 3, 4)
    (y,) = run_op("FC", {"x": x, "w": rand(6, 4), "b": rand(6)}, ["y"], axis=2)
    assert y.shape == (2, 3, 6)
    with pytest.raises(ReferenceExecutionError, match="FC"):
        run_op("FC", {"x": rand(2, 15), "w": w, "b": b}, ["y"])


@pytest.mark.parametrize("ta,tb", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_batch_matmul_transposes(ta, tb):
    a = rand(3, 4, 5) if not ta else rand(3, 5, 4)
    b = rand(3, 5, 6) if not tb else rand(3, 6, 5)
    (y,) = run_op("BatchMatMul", {"a": a, "b": b}, ["y"], trans_a=ta, trans_b=tb)
    a2 = a.transpose(0, 2, 1) if ta else a
    b2 = b.transpose(0, 2, 1) if tb else b
    ref = np.einsum("bij,bjk->bik", a2.astype(np.float64), b2.astype(np.float64))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


# ----- shapes -----------------------------------------------------------------------------
def test_reshape_zero_minus_one_and_old_shape():
    x = rand(2, 3, 4, 5)
    y, old = run_op("Reshape", {"x": x}, ["y", "old"], shape=[0, -1, 5])
    assert y.shape == (2, 12, 5)
    np.testing.assert_array_equal(y.reshape(-1), x.reshape(-1))
    assert old.dtype == np.int64 and old.tolist() == [2, 3, 4, 5]
    for dtype in (np.int64, np.int32):  # the shape as a second input blob
        z, old2 = run_op("Reshape", {"y": y, "s": old.astype(dtype)}, ["z", "o"])
        np.testing.assert_array_equal(z, x)
        assert old2.tolist() == [2, 12, 5]
    (only,) = run_op("Reshape", {"x": x}, ["y"], shape=[-1])
    assert only.shape == (120,)
    with pytest.raises(ReferenceExecutionError, match="-1"):
        run_op("Reshape", {"x": x}, ["y", "o"], shape=[-1, -1])
    with pytest.raises(ReferenceExecutionError, match="Reshape"):
        run_op("Reshape", {"x": x}, ["y", "o"], shape=[7, -1])
    with pytest.raises(ReferenceExecutionError, match="Reshape"):
        run_op("Reshape", {"x": x}, ["y", "o"], shape=[2, 3, 4, 6])


def test_reshape_batch_baked_in_is_silently_wrong_for_another_batch():
    # Caffe2 property the non-local net relies on: shape (batch, C, -1) with batch 2 fed
    # a batch-1 tensor gives a valid but meaningless (2, C, L/2) tensor.
    x = rand(1, 8, 2, 4, 4)
    y, _ = run_op("Reshape", {"x": x}, ["y", "o"], shape=[2, 8, -1])
    assert y.shape == (2, 8, 16)


def test_transpose_and_reduce_back():
    x = rand(2, 3, 4, 5, 6)
    (t,) = run_op("Transpose", {"x": x}, ["y"], axes=[0, 2, 3, 4, 1])
    np.testing.assert_array_equal(t, np.moveaxis(x, 1, -1))
    (r,) = run_op("Transpose", {"x": x}, ["y"])
    np.testing.assert_array_equal(r, x.T)
    (m,) = run_op("ReduceBackMean", {"x": x}, ["y"])
    np.testing.assert_allclose(m, x.mean(axis=-1), rtol=1e-5, atol=1e-7)
    (s,) = run_op("ReduceBackSum", {"x": x}, ["y"])
    np.testing.assert_allclose(s, x.sum(axis=-1), rtol=1e-5, atol=1e-6)
    (m2,) = run_op("ReduceBackMean", {"x": x}, ["y"], num_reduce_dim=2)
    np.testing.assert_allclose(m2, x.mean(axis=(-1, -2)), rtol=1e-5, atol=1e-7)
    with pytest.raises(ReferenceExecutionError, match="permutation"):
        run_op("Transpose", {"x": x}, ["y"], axes=[0, 1, 2])


def test_constant_fill():
    x = rand(2, 3, 4)
    (ones,) = run_op("ConstantFill", {"x": x}, ["y"], value=1.0)
    assert ones.shape == x.shape and ones.dtype == np.float32 and (ones == 1).all()
    (z,) = run_op("ConstantFill", {}, ["y"], shape=[2, 5], value=3, dtype=10)
    assert z.dtype == np.int64 and z.shape == (2, 5) and (z == 3).all()
    (s,) = run_op("ConstantFill", {"s": np.array([3, 2], np.int64)}, ["y"], input_as_shape=1)
    assert s.shape == (3, 2) and (s == 0).all()


# ----- elementwise with legacy broadcast --------------------------------------------------
def test_add_div_legacy_broadcast():
    a = rand(2, 3, 4)
    # axis 0: B (2, 3) matches A's first two dims (the dot-product non-local's denominator)
    b = rand(2, 3)
    (y,) = run_op("Add", {"a": a, "b": b}, ["y"], broadcast=1, axis=0)
    np.testing.assert_allclose(y, a + b[:, :, None], rtol=1e-6)
    # default axis: B matches A's trailing dims
    c = rand(3, 4)
    (y,) = run_op("Mul", {"a": a, "c": c}, ["y"], broadcast=1)
    np.testing.assert_allclose(y, a * c[None], rtol=1e-6)
    # leading/trailing 1s of B are ignored: (1, 3, 1) at axis 0 acts on A's axis 1
    d = RNG.uniform(1, 2, (1, 3, 1)).astype(np.float32)
    (y,) = run_op("Div", {"a": a, "d": d}, ["y"], broadcast=1, axis=0)
    np.testing.assert_allclose(y, a / d.reshape(1, 3, 1), rtol=1e-6)
    (y,) = run_op("Sub", {"a": a, "e": a}, ["y"])  # numpy-style without broadcast
    np.testing.assert_array_equal(y, 0)
    with pytest.raises(ReferenceExecutionError, match="broadcast"):
        run_op("Add", {"a": a, "b": rand(4, 3)}, ["y"], broadcast=1, axis=0)


def test_dot_product_denominator_sequence():
    # nonlocal_helper.py without softmax: ConstantFill/ReduceBackSum/Add(broadcast axis 0)/Div
    aff = rand(2, 6, 5)
    net = NetDef(name="dp")
    net.op.extend([
        make_op("ConstantFill", ["aff"], ["ones"], value=1.0),
        make_op("ReduceBackSum", ["ones"], ["const"]),
        make_op("ConstantFill", ["aff"], ["zeros"], value=0.0),
        make_op("Add", ["zeros", "const"], ["denom"], broadcast=1, axis=0),
        make_op("StopGradient", ["denom"], ["denom"]),
        make_op("Div", ["aff", "denom"], ["sc"]),
    ])
    ws = run_net(net, {"aff": aff})
    np.testing.assert_allclose(ws["sc"], aff / 5, rtol=1e-6)


# ----- init nets and the executor ---------------------------------------------------------
def test_given_tensor_fills_round_trip_through_the_init_net_writer():
    blobs = {"a": rand(2, 3, 1, 1, 1), "b": rand(7), "c": np.zeros((0, 3), np.float32)}
    net = NetDef()
    net.ParseFromString(netdef_from_blobs(blobs).SerializeToString())
    ws = run_net(net, {})
    for k, v in blobs.items():
        assert ws[k].dtype == np.float32
        np.testing.assert_array_equal(ws[k], v)
    for op, dtype in (("GivenTensorIntFill", np.int32), ("GivenTensorInt64Fill", np.int64)):
        (v,) = run_op(op, {}, ["y"], shape=[2, 2], values=[1, 2, 3, 4])
        assert v.dtype == dtype and v.tolist() == [[1, 2], [3, 4]]


def test_executor_errors_name_op_index_and_type():
    net = NetDef(name="bad")
    net.op.extend([make_op("Relu", ["x"], ["x"]), make_op("FancyOp", ["x"], ["y"])])
    with pytest.raises(UnsupportedOperatorError, match=r"op 1 \(FancyOp") as info:
        run_net(net, {"x": rand(2)})
    assert isinstance(info.value, NLConvertError)
    net = NetDef(name="missing")
    net.op.append(make_op("Relu", ["nope"], ["y"]))
    with pytest.raises(ReferenceExecutionError, match=r"op 0 \(Relu.*'nope'"):
        run_net(net, {})
    with pytest.raises(OperatorArgumentError, match="float32"):
        run_op("Relu", {"x": np.ones(3)}, ["y"])


def test_in_place_ops_are_recorded_step_by_step_and_inputs_untouched():
    x = rand(2, 3)
    net = NetDef(name="inplace")
    net.op.extend([
        make_op("Scale", ["x"], ["y"], scale=2.0),
        make_op("Relu", ["y"], ["y"]),
        make_op("Sum", ["y", "x"], ["y"]),
    ])
    caller = {"x": x}
    ws = run_net(net, caller)
    hist = ws.history("y")
    assert [(r.index, r.op_type) for r in hist] == [(0, "Scale"), (1, "Relu"), (2, "Sum")]
    np.testing.assert_array_equal(hist[0].value, 2 * x)
    np.testing.assert_array_equal(hist[1].value, np.maximum(2 * x, 0))
    np.testing.assert_array_equal(ws["y"], np.maximum(2 * x, 0) + x)
    np.testing.assert_array_equal(ws.first_value("y"), 2 * x)
    assert set(caller) == {"x"} and caller["x"] is x
    assert run_net(net, caller, record=False).records == []


def test_reference_is_independent_of_torch_and_the_model():
    """The reference checks the PyTorch port, so it must not import it (or torch)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import nlconvert.reference, nlconvert.reference.netdef_builder\n"
        "import nlconvert.reference.caffe2_export\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', "
        "'nlconvert.model'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
