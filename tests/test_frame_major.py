"""The frame-major rewrite (the default ONNX graph) computes the exact model's function."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from zoo_cases import VIDEO

from nlconvert.arch import NonLocalSpec
from nlconvert.arch.zoo import get_arch
from nlconvert.runtime.frame_major import FrameConv, FrameMajorNet, frame_max_pool, shift_matrix
from nlconvert.synthetic.clips import seeded_clip
from nlconvert.synthetic.models import synthetic_model


def _rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).abs().max() / ref.abs().max())


def _to_frames(x: torch.Tensor) -> torch.Tensor:
    n, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(n * t, c, h, w)


def _from_frames(x: torch.Tensor, t: int) -> torch.Tensor:
    nt, c, h, w = x.shape
    return x.reshape(nt // t, t, c, h, w).transpose(1, 2)


def test_shift_matrix_selects_padded_frames():
    # Kernel 3, stride 1, pad 1 over 4 frames: output o reads frames o-1, o, o+1.
    m = shift_matrix(4, 4, 3, 1, 1, torch.float32)
    for o in range(4):
        for i in range(3):
            row = m[o, i].tolist()
            s = o + i - 1
            assert row == [1.0 if k == s else 0.0 for k in range(4)], (o, i, row)
    # Kernel 5, stride 2, pad 2 (the 32x2 conv1): 8 frames -> 4; output 1 reads 0..4.
    m = shift_matrix(4, 8, 5, 2, 2, torch.float32)
    assert m.shape == (4, 5, 8)
    assert [int(m[1, i].argmax()) for i in range(5)] == [0, 1, 2, 3, 4]
    assert float(m[0, 0].sum()) == 0.0 and float(m[0, 1].sum()) == 0.0  # padding


@pytest.mark.parametrize(
    ("c_in", "c_out", "kernel", "stride", "pad", "gather"),
    [
        (256, 64, (3, 1, 1), (1, 1, 1), (1, 0, 0), False),  # I3D branch2a: shifted sums
        (8, 64, (3, 1, 1), (1, 1, 1), (1, 0, 0), True),  # few inputs: gather frames
        (3, 64, (5, 7, 7), (1, 2, 2), (2, 3, 3), True),  # I3D conv1 (8x8 models)
        (3, 64, (5, 7, 7), (2, 2, 2), (2, 3, 3), True),  # I3D conv1, org stem (stride 2)
        (64, 16, (3, 3, 3), (2, 2, 2), (1, 1, 1), False),  # strided sums, spatial kernel
        (64, 64, (1, 3, 3), (1, 2, 2), (0, 1, 1), False),  # branch2b with stride
        (256, 512, (1, 1, 1), (1, 2, 2), (0, 0, 0), False),  # projection shortcut
    ],
)
def test_frame_conv_equals_conv3d(c_in, c_out, kernel, stride, pad, gather):
    torch.manual_seed(0)
    conv = nn.Conv3d(c_in, c_out, kernel, stride, pad, bias=True).eval()
    fc = FrameConv(conv)
    assert fc.gather == gather
    for shape in ((1, c_in, 8, 12, 10), (2, c_in, 7, 9, 9)):  # odd T too
        x = torch.randn(shape)
        with torch.no_grad():
            ref = conv(x)
            out = _from_frames(fc(_to_frames(x), shape[2]), fc.out_frames(shape[2]))
        assert out.shape == ref.shape
        assert _rel(out, ref) < 1e-5


@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 2), (1, 1)])
def test_frame_max_pool_equals_max_pool3d(kernel, stride):
    x = torch.randn(2, 5, 9, 4, 3)
    ref = F.max_pool3d(x, (kernel, 1, 1), (stride, 1, 1))
    out, t_out = frame_max_pool(_to_frames(x), 9, kernel, stride)
    assert t_out == ref.shape[2]
    assert torch.equal(_from_frames(out, ref.shape[2]), ref)


@pytest.mark.parametrize("arch", VIDEO)
def test_every_zoo_network_matches(arch):
    spec = get_arch(arch)
    t = min(spec.frames, 32)
    model = synthetic_model(spec, seed=7, calib_shape=(t, 32, 32))
    net = FrameMajorNet(model)
    for shape in ((1, 3, t, 32, 32), (2, 3, 2 * t, 48, 32)):
        clip = seeded_clip(shape, 8)
        with torch.no_grad():
            assert _rel(net(clip), model(clip)) < 1e-4, shape
    # The source model is untouched (norms still there, not folded in place).
    assert any(type(m).__name__ in ("FrozenBatchNorm3d", "Affine3d") for m in model.modules())


def test_dot_product_nonlocal_matches():
    # Not in the zoo, but an option of the official code. Unnormalised dot products blow the
    # synthetic network's activations up to ~1e10 (float32 alone then errs by ~1e-3), so
    # compare in float64, where the two computations must agree to rounding.
    nl = dataclasses.replace(NonLocalSpec(), use_softmax=False)
    spec = dataclasses.replace(get_arch("i3d_nonlocal_8x8"), nonlocal_block=nl)
    model = synthetic_model(spec, seed=9, calib_shape=(8, 32, 32)).double()
    clip = seeded_clip((2, 3, 8, 32, 32), 10).double()
    with torch.no_grad():
        assert _rel(FrameMajorNet(model)(clip), model(clip)) < 1e-9


def test_fully_conv_head_matches():
    model = synthetic_model(get_arch("i3d_nonlocal_8x8"), seed=11, calib_shape=(8, 224, 224))
    model.set_head("fully_conv")
    clip = seeded_clip((1, 3, 8, 224, 256), 12)
    with torch.no_grad():
        ref = model(clip)
        out = FrameMajorNet(model)(clip)
    assert out.shape == ref.shape == (1, 400)
    assert _rel(out, ref) < 1e-3  # probabilities: see onnx_export.FP32_RTOL_PROBS
