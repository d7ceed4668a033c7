"""The NetDef builder writes the official nets of every zoo architecture, and they run.

Default tests run every video architecture at a reduced input (batch 2, the shortest clip
the stem and the grouping allow, 64x64, pool5 shrunk to fit); ``-m slow`` runs a few at the
full 224 (and 256 fully-conv) input with the official pool5.
"""

from __future__ import annotations

import dataclasses
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from nlconvert.arch.spec import BN_EPSILON, ArchSpec
from nlconvert.arch.zoo import arch_names, get_arch
from nlconvert.errors import ArchitectureError
from nlconvert.io.caffe2_pb import arg_dict
from nlconvert.reference import load_net, run_net
from nlconvert.reference.netdef_builder import (
    build_predict_net,
    expected_blob_names,
    expected_blob_shapes,
)
from nlconvert.synthetic import random_blobs

VIDEO_ARCHS = [n for n in arch_names() if not get_arch(n).is_2d]
HEADS = ("clip", "fully_conv")
BATCH = 2
CROP = 64  # res5 is 2x2 at 64x64
POOL5 = {"clip": 2, "fully_conv": 1}  # clip: 1x1 after pool5; fully-conv: 2x2 positions

_OUTPUT_PATTERNS = [
    r"conv1|res_conv1_bn|pool[125]",
    r"pred|softmax|pred_w_conv|pred_w_shape2d|pred_tr|pred_re|pred_shape5d|pred_shape2d",
    r"softmax_conv|softmax_conv_re|softmax_conv_tr|softmax_ave_[wh]",
    r"res[2-5]_\d+_branch(2[abc]|1)(_bn)?",
    r"res3_\d+_branch2c_bn_trans(_shape5d|_trans)?",
    r"nonlocal_conv[34]_\d+_((theta|phi|g)(_shape5d)?|pool|y|y_shape3d|out|bn)",
    r"nonlocal_conv[34]_\d+_affinity(_prob|_ones|_const|_zeros|_denom|_sc)?",
    r"nonlocal_conv[34]_\d+_sum(_trans(_shape5d|_trans)?)?",
]
_OUTPUT_RE = re.compile("|".join(f"(?:{p})" for p in _OUTPUT_PATTERNS))


def reduced(arch: ArchSpec) -> ArchSpec:
    """The arch trained on the shortest clip its stem (and non-local grouping) allows.

    The grouped archs get two groups per clip, so the Transpose/Reshape of the grouping runs.
    """
    frames = arch.temporal_reduction
    if arch.nonlocal_block.grouped_stages and arch.has_nonlocal:
        frames = 2 * arch.nonlocal_block.group_size * arch.temporal_reduction
    return dataclasses.replace(arch, frames=frames)


def blobs_for(arch: ArchSpec | str) -> dict[str, np.ndarray]:
    """Random weights of an arch (a few kept: a full R50 is ~100 MB)."""
    arch = get_arch(arch) if isinstance(arch, str) else arch
    return _blobs(arch.name, arch.nonlocal_block)


@lru_cache(maxsize=3)
def _blobs(name: str, nonlocal_block: object) -> dict[str, np.ndarray]:
    arch = dataclasses.replace(get_arch(name), nonlocal_block=nonlocal_block)
    return random_blobs(arch, seed=7)


def clip(arch: ArchSpec, batch: int = BATCH, size: int = CROP, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 3, arch.frames, size, size), dtype=np.float32)


def run_reduced(name: str, head: str, batch: int = BATCH, x: np.ndarray | None = None,
                arch: ArchSpec | None = None, record: bool = False):
    arch = arch or reduced(get_arch(name))
    net = build_predict_net(arch, head, batch, CROP, pool5_spatial=POOL5[head])
    data = clip(arch, batch) if x is None else x
    return net, run_net(net, {**blobs_for(arch), "data": data}, record=record)


# ----- structure --------------------------------------------------------------------------
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("name", VIDEO_ARCHS)
def test_net_is_consistent_and_named_officially(name, head):
    arch = get_arch(name)
    net = build_predict_net(arch, head, BATCH)
    expected = expected_blob_names(arch, head)
    produced: set[str] = {"data"}
    read: list[str] = []
    for i, op in enumerate(net.op):
        for blob in op.input:
            if blob not in produced and blob not in read:
                read.append(blob)
        for out in op.output:
            assert out not in expected, f"op {i} overwrites weight {out}"
            assert _OUTPUT_RE.fullmatch(out), f"op {i} {op.type}: unofficial name {out}"
            produced.add(out)
        args = arg_dict(op)
        if op.type in ("Conv", "MaxPool", "AveragePool"):
            assert len(args["pads"]) == 6 and args["order"] == b"NCHW"
        if op.type == "SpatialBN":
            assert args["is_test"] == 1
            assert np.float32(args["epsilon"]) == np.float32(BN_EPSILON)
        if op.type in ("Sum", "Relu") and op.output[0].startswith("res"):
            assert op.output[0] == op.input[0]  # ALLOW_INPLACE_SUM / RELU
    # Every blob read before it is produced is a weight the checkpoint provides.
    assert read == expected
    assert list(net.external_input) == ["data", *expected]
    assert list(net.external_output) == ["softmax"]
    assert net.op[-1].output[0] == "softmax"
    assert set(expected) <= set(expected_blob_shapes(arch))
    if head == "clip":
        assert [op.type for op in net.op[-2:]] == ["FC", "Softmax"]
    else:
        assert [op.type for op in net.op[-9:]] == [
            "Conv", "Transpose", "Reshape", "Softmax", "Reshape", "Transpose",
            "ReduceBackMean", "ReduceBackMean", "ReduceBackMean",
        ]
    assert not any(op.type == "Dropout" for op in net.op)


def test_official_details_of_i3d_nonlocal_8x8():
    arch = get_arch("i3d_nonlocal_8x8")
    net = build_predict_net(arch, "clip", 4)
    ops = {op.output[0]: op for op in net.op}
    assert arg_dict(ops["conv1"])["kernels"] == [5, 7, 7]
    assert arg_dict(ops["conv1"])["pads"] == [2, 3, 3, 2, 3, 3]
    assert arg_dict(ops["pool1"])["kernels"] == [1, 3, 3]
    assert arg_dict(ops["pool1"])["pads"] == [0] * 6
    assert arg_dict(ops["pool5"])["kernels"] == [4, 7, 7]
    assert arg_dict(ops["res3_0_branch2b"])["strides"] == [1, 2, 2]
    assert arg_dict(ops["res3_0_branch1"])["strides"] == [1, 2, 2]
    assert arg_dict(ops["res5_1_branch2a"])["kernels"] == [3, 1, 1]
    reshapes = [arg_dict(op) for op in net.op if op.type == "Reshape" and "shape" in arg_dict(op)]
    assert {tuple(a["shape"]) for a in reshapes} == {(4, 256, -1), (4, 512, -1)}
    assert [op.input[0] for op in net.op if op.type == "Sum" and "nonlocal" in op.output[0]] == [
        "res3_1_branch2c_bn", "res3_3_branch2c_bn",
        "res4_1_branch2c_bn", "res4_3_branch2c_bn", "res4_5_branch2c_bn",
    ]
    softmax_nl = [arg_dict(op) for op in net.op if op.output[0].endswith("_affinity_prob")]
    assert all(a == {"axis": 2} for a in softmax_nl) and len(softmax_nl) == 5
    scales = [arg_dict(op)["scale"] for op in net.op if op.type == "Scale"]
    assert scales == pytest.approx([256 ** -0.5] * 2 + [512 ** -0.5] * 3, rel=1e-6)


def test_org_stem_and_grouped_nonlocal_of_128x1():
    arch = get_arch("i3d_nonlocal_128x1")
    net = build_predict_net(arch, "fully_conv", 1)  # crop 256 -> res3 32x32
    ops: dict[str, object] = {}
    for op in net.op:
        ops.setdefault(op.output[0], op)  # the first writer (not the in-place Relu)
    assert arg_dict(ops["conv1"])["strides"] == [2, 2, 2]
    assert arg_dict(ops["pool1"])["kernels"] == [2, 3, 3]
    assert arg_dict(ops["pool5"])["kernels"] == [16, 7, 7]
    assert ops["res_conv1_bn"].type == "AffineNd"
    assert arg_dict(ops["res3_1_branch2c_bn_trans"])["axes"] == [0, 2, 1, 3, 4]
    # group_num 4 of group_size 4, spatial crop/8, batch 1 baked in as the official net does
    assert [op.output for op in net.op if op.input[0] == "res3_1_branch2c_bn_trans"][0] == [
        "res3_1_branch2c_bn_trans", "res3_1_branch2c_bn_trans_shape5d"]
    grouped = [arg_dict(op)["shape"] for op in net.op
               if op.type == "Reshape" and op.output[0] == "res3_1_branch2c_bn_trans"]
    assert grouped == [[4, 4, 512, 32, 32]]
    assert "nonlocal_conv3_1_sum_trans_trans" in ops
    theta = [arg_dict(op)["shape"] for op in net.op if op.output[0] == "nonlocal_conv3_1_theta"
             and op.type == "Reshape"]
    assert theta == [[4, 256, -1]]
    theta4 = [arg_dict(op)["shape"] for op in net.op if op.output[0] == "nonlocal_conv4_1_theta"
              and op.type == "Reshape"]
    assert theta4 == [[1, 512, -1]]  # res4 is not grouped
    assert not any(n.startswith("nonlocal_conv3_1_bn") for n in expected_blob_names(arch))
    assert "nonlocal_conv4_1_out_b" in expected_blob_names(arch)


def test_argument_style_matches_the_real_caffe2_nets(caffe2_tiny: Path):
    for split, head in (("val", "clip"), ("test", "fully_conv")):
        real = load_net(caffe2_tiny / f"tiny_{split}_predict_net.pb")
        style: dict[str, set[frozenset[str]]] = {}
        for op in real.op:
            style.setdefault(op.type, set()).add(frozenset(arg_dict(op)))
        ours = build_predict_net(get_arch("i3d_nonlocal_8x8"), head, 2, pred_w_conv_input=True)
        for op in ours.op:
            if op.type in style:
                assert frozenset(arg_dict(op)) in style[op.type], (op.type, arg_dict(op))
        assert {op.type for op in ours.op} == set(style)
        # The head after pool5 is the real one op for op, inputs and outputs included.
        n = 9 if head == "fully_conv" else 2
        assert [(op.type, list(op.input), list(op.output)) for op in ours.op[-n:]] == [
            (op.type, list(op.input), list(op.output)) for op in real.op[-n:]]


def test_builder_rejects_2d_and_bad_heads():
    with pytest.raises(ArchitectureError, match="2D"):
        build_predict_net(get_arch("r50_imagenet_2d"), "clip", 1)
    with pytest.raises(ArchitectureError, match="head"):
        build_predict_net(get_arch("i3d_nonlocal_8x8"), "center", 1)  # type: ignore[arg-type]


# ----- blobs ------------------------------------------------------------------------------
def test_expected_blob_shapes():
    i3d = expected_blob_shapes(get_arch("i3d_nonlocal_8x8"))
    assert i3d["conv1_w"] == (64, 3, 5, 7, 7)
    assert i3d["res2_0_branch2a_w"] == (64, 64, 3, 1, 1)
    assert i3d["res2_0_branch2b_w"] == (64, 64, 1, 3, 3)
    assert i3d["res2_0_branch2c_w"] == (256, 64, 1, 1, 1)
    assert i3d["res2_0_branch1_w"] == (256, 64, 1, 1, 1)
    assert i3d["res3_0_branch1_w"] == (512, 256, 1, 1, 1)
    assert "res3_1_branch1_w" not in i3d
    assert i3d["res5_1_branch2a_w"] == (512, 2048, 3, 1, 1)
    assert i3d["nonlocal_conv3_1_theta_w"] == (256, 512, 1, 1, 1)
    assert i3d["nonlocal_conv4_5_out_w"] == (1024, 512, 1, 1, 1)
    assert i3d["nonlocal_conv4_5_bn_riv"] == (1024,)
    assert i3d["pred_w"] == (400, 2048) and i3d["pred_b"] == (400,)
    assert len(i3d) == 53 * 5 + 5 * 12 + 2  # 53 convs + BN (4 of them branch1), NL, pred
    c2d = expected_blob_shapes(get_arch("c2d_baseline_32x2"))
    assert c2d["conv1_w"] == (64, 3, 1, 7, 7) and c2d["res2_0_branch2a_w"] == (64, 64, 1, 1, 1)
    affine = expected_blob_shapes(get_arch("i3d_nonlocal_32x4"))
    assert not any(n.endswith(("_rm", "_riv")) for n in affine)
    assert "res_conv1_bn_s" in affine and "nonlocal_conv3_1_bn_s" not in affine
    r2d = expected_blob_shapes(get_arch("r50_imagenet_2d"))
    assert r2d["conv1_w"] == (64, 3, 7, 7) and r2d["res2_0_branch2b_w"] == (64, 64, 3, 3)
    assert r2d["pred_w"] == (1000, 2048)
    r101 = expected_blob_shapes(get_arch("r101_i3d_nonlocal_8x8"))
    assert "res4_22_branch2c_w" in r101 and "nonlocal_conv4_20_g_w" in r101
    assert "nonlocal_conv4_1_g_w" not in r101


@pytest.mark.parametrize("name", ["i3d_nonlocal_8x8", "i3d_nonlocal_32x4", "r50_imagenet_2d"])
def test_random_blobs(name):
    arch = get_arch(name)
    a = blobs_for(arch)
    shapes = expected_blob_shapes(arch)
    assert list(a) == list(shapes)
    for k, v in a.items():
        assert v.dtype == np.float32 and v.shape == shapes[k] and np.isfinite(v).all()
    if name == "i3d_nonlocal_32x4":  # seeded: same seed, same values; another seed differs
        b, c = random_blobs(arch, 7), random_blobs(arch, 8)
        assert all(np.array_equal(v, b[k]) for k, v in a.items())
        assert not np.array_equal(c["conv1_w"], a["conv1_w"])
    for k, v in a.items():
        if k.endswith("_riv"):
            assert v.min() >= 0.5 and v.max() <= 2.0
        if k.endswith("_bn_s"):
            assert v.min() > 0.05  # NL BN scale is not the official zero init
        if k.endswith("_w") and len(v.shape) > 2:
            assert 0.2 < v.std() * np.sqrt(np.prod(v.shape[1:])) < 4


# ----- running ----------------------------------------------------------------------------
def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("name", VIDEO_ARCHS)
def test_runs_at_reduced_size(name, head):
    arch = get_arch(name)
    # The grouped nets need 16/64 frames: batch 1 keeps them quick (their batch-2 grouping
    # is checked against the definition below).
    batch = 1 if reduced(arch).frames >= 16 else BATCH
    _, ws = run_reduced(name, head, batch)
    sm = ws["softmax"]
    assert sm.shape == (batch, arch.num_classes) and sm.dtype == np.float32
    assert np.isfinite(sm).all()
    np.testing.assert_allclose(sm.sum(axis=1), 1.0, rtol=1e-5)
    pred = ws["pred"].astype(np.float64)
    if head == "clip":
        np.testing.assert_allclose(sm, _softmax(pred), rtol=1e-4, atol=1e-7)
    else:  # mean over (t, h, w) of the softmax at each position
        assert pred.shape[2:] == (1, 2, 2)
        per_pos = _softmax(np.moveaxis(pred, 1, -1))
        np.testing.assert_allclose(sm, per_pos.mean(axis=(1, 2, 3)), rtol=1e-4, atol=1e-7)
    assert pred.std() > 0.5  # logits are not degenerate


def nonlocal_direct(x: np.ndarray, b: dict[str, np.ndarray], prefix: str, arch: ArchSpec,
                    grouped: bool) -> np.ndarray:
    """The non-local block from its definition (float64), grouped by cutting T when asked."""
    nl = arch.nonlocal_block
    x = x.astype(np.float64)
    n, c, t, h, w = x.shape
    if grouped:
        gs = nl.group_size
        g = t // gs
        xg = x.reshape(n, c, g, gs, h, w).transpose(0, 2, 1, 3, 4, 5).reshape(n * g, c, gs, h, w)
        z = nonlocal_direct(xg, b, prefix, arch, False)
        return z.reshape(n, g, c, gs, h, w).transpose(0, 2, 1, 3, 4, 5).reshape(n, c, t, h, w)

    def conv1(part: str, v: np.ndarray) -> np.ndarray:
        wt = b[f"{prefix}_{part}_w"].reshape(b[f"{prefix}_{part}_w"].shape[0], -1)
        y = np.tensordot(wt.astype(np.float64), v, axes=([1], [1])).swapaxes(0, 1)
        return y + b[f"{prefix}_{part}_b"][:, None, None, None]

    ci = c // 2
    if nl.use_maxpool:
        h2, w2 = h // 2, w // 2
        src = x[..., : 2 * h2, : 2 * w2].reshape(n, c, t, h2, 2, w2, 2).max(axis=(4, 6))
    else:
        src = x
    theta = conv1("theta", x).reshape(n, ci, -1)
    phi = conv1("phi", src).reshape(n, ci, -1)
    g = conv1("g", src).reshape(n, ci, -1)
    att = theta.transpose(0, 2, 1) @ phi  # (n, i, j) = sum_c theta[c, i] phi[c, j]
    if nl.use_softmax:
        att = _softmax(att * ci ** -0.5 if nl.use_scale else att)
    else:
        att = att / att.shape[-1]
    y = (g @ att.transpose(0, 2, 1)).reshape(n, ci, t, h, w)  # y[c, i] = sum_j g[c, j] att[i, j]
    out = conv1("out", y)
    if nl.use_bn:
        e = (slice(None), None, None, None)
        out = ((out - b[f"{prefix}_bn_rm"][e]) / np.sqrt(b[f"{prefix}_bn_riv"][e] + nl.bn_eps)
               * b[f"{prefix}_bn_s"][e] + b[f"{prefix}_bn_b"][e])
    return x + out


@pytest.mark.parametrize(
    "name,variant",
    [
        ("i3d_nonlocal_8x8", None),
        ("i3d_nonlocal_32x4", None),  # grouped res3, res4 not grouped
        ("i3d_nonlocal_128x1", None),  # grouped, org stem
        ("c2d_nonlocal_8x8", {"use_softmax": False}),  # dot product
        ("c2d_nonlocal_8x8", {"use_scale": False, "use_maxpool": False}),
    ],
)
def test_nonlocal_blocks_match_their_definition(name, variant):
    base = reduced(get_arch(name))
    arch = base
    if variant:
        arch = dataclasses.replace(base, nonlocal_block=dataclasses.replace(
            base.nonlocal_block, **variant))
    _, ws = run_reduced(name, "clip", arch=arch)
    blobs = blobs_for(arch)
    checked = 0
    for stage in ("res3", "res4"):
        for idx in arch.nonlocal_indices(stage):
            prefix = f"nonlocal_conv{stage[3:]}_{idx}"
            grouped = arch.is_grouped(stage)
            out = f"{prefix}_sum_trans_trans" if grouped else f"{prefix}_sum"
            x = ws[f"{stage}_{idx}_branch2c_bn"]
            ref = nonlocal_direct(x, blobs, prefix, arch, grouped)
            got = ws[out]
            assert got.shape == x.shape
            scale = float(np.abs(ref).max())
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * scale, err_msg=out)
            checked += 1
    assert checked == 5


def test_batch_size_is_baked_in_like_caffe2():
    name = "i3d_nonlocal_8x8"
    arch = reduced(get_arch(name))
    x = clip(arch, 2)
    _, ws2 = run_reduced(name, "clip", 2, x)
    singles = [run_reduced(name, "clip", 1, x[i:i + 1])[1]["softmax"][0] for i in range(2)]
    # Built for the batch it runs: each clip is independent of the other.
    np.testing.assert_allclose(ws2["softmax"], np.stack(singles), rtol=1e-4, atol=1e-7)
    # Built for batch 2, fed one clip: Caffe2's Reshape (2, C, -1) silently splits the clip.
    net2 = build_predict_net(arch, "clip", 2, CROP, pool5_spatial=POOL5["clip"])
    wrong = run_net(net2, {**blobs_for(name), "data": x[:1]}, record=False)["softmax"]
    assert wrong.shape == (1, arch.num_classes)
    assert not np.allclose(wrong[0], singles[0], rtol=1e-3, atol=1e-6)


# ----- full size --------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "name,head,size",
    [
        ("i3d_nonlocal_8x8", "clip", 224),
        ("c2d_nonlocal_32x2", "clip", 224),
        ("i3d_nonlocal_32x4", "clip", 224),
        ("i3d_nonlocal_8x8", "fully_conv", 256),
        ("i3d_nonlocal_32x4", "fully_conv", 256),
    ],
)
def test_full_size_with_official_pool5(name, head, size):
    arch = get_arch(name)
    net = build_predict_net(arch, head, 1, size)
    x = clip(arch, 1, size)
    ws = run_net(net, {**blobs_for(arch), "data": x}, record=False)
    sm = ws["softmax"]
    assert sm.shape == (1, arch.num_classes) and np.isfinite(sm).all()
    np.testing.assert_allclose(sm.sum(), 1.0, rtol=1e-5)
    assert ws["pool5"].shape[2:] == ((1, 1, 1) if size == 224 else (1, 2, 2))
