"""PyTorch layers against independent numpy formulas of the Caffe2 operators, on small tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nlconvert.arch import NonLocalSpec
from nlconvert.model.layers import Affine3d, FrozenBatchNorm3d
from nlconvert.model.nonlocal_block import NonLocalBlock

EPS = 1.0000001e-5


def _rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def test_frozen_bn_uses_variance_and_caffe2_eps() -> None:
    rng = np.random.default_rng(0)
    x = _rand(rng, 2, 4, 3, 5, 5)
    s, b, rm = _rand(rng, 4), _rand(rng, 4), _rand(rng, 4)
    riv = rng.uniform(0.01, 2.0, 4).astype(np.float32)
    bn = FrozenBatchNorm3d(4, EPS)
    bn.load_state_dict({"weight": torch.tensor(s), "bias": torch.tensor(b),
                        "running_mean": torch.tensor(rm), "running_var": torch.tensor(riv)})
    c = (slice(None), None, None, None)
    want = (x - rm[c]) / np.sqrt(riv[c] + EPS) * s[c] + b[c]
    got = bn(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # riv read as an inverse variance would be far off: the test can fail.
    wrong = (x - rm[c]) * np.sqrt(riv[c] + EPS) * s[c] + b[c]
    assert np.abs(got - wrong).max() > 1e-2
    bn.train()  # training mode must not change the arithmetic of a converted network
    np.testing.assert_allclose(bn(torch.tensor(x)).detach().numpy(), want, rtol=1e-5, atol=1e-5)


def test_affine_is_exact() -> None:
    rng = np.random.default_rng(1)
    x = _rand(rng, 2, 3, 2, 4, 4)
    s, b = _rand(rng, 3), _rand(rng, 3)
    layer = Affine3d(3)
    layer.load_state_dict({"weight": torch.tensor(s), "bias": torch.tensor(b)})
    c = (slice(None), None, None, None)
    want = x * s[c] + b[c]
    assert np.array_equal(layer(torch.tensor(x)).detach().numpy(), want.astype(np.float32))


def _conv1x1(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("nc...,oc->no...", x, w[:, :, 0, 0, 0]) + b[None, :, None, None, None]


def _maxpool_1x2x2(x: np.ndarray) -> np.ndarray:
    n, c, t, h, w = x.shape
    h2, w2 = h // 2, w // 2
    x = x[:, :, :, : h2 * 2, : w2 * 2].reshape(n, c, t, h2, 2, w2, 2)
    return x.max(axis=(4, 6))


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _nonlocal_numpy(x: np.ndarray, p: dict[str, np.ndarray], spec: NonLocalSpec,
                    group: int) -> np.ndarray:
    """The official op sequence (nonlocal_helper.py) written out in numpy, float64."""
    x = x.astype(np.float64)
    n, c, t, h, w = x.shape
    if group:
        # Transpose(0,2,1,3,4) -> Reshape(N*G, gs, C, H, W) -> Transpose(0,2,1,3,4)
        xg = x.transpose(0, 2, 1, 3, 4).reshape(n * (t // group), group, c, h, w)
        xg = xg.transpose(0, 2, 1, 3, 4)
        out = _nonlocal_numpy(xg, p, spec, 0)
        out = out.transpose(0, 2, 1, 3, 4).reshape(n, t, c, h, w).transpose(0, 2, 1, 3, 4)
        return out
    ci = c // 2
    theta = _conv1x1(x, p["theta.weight"], p["theta.bias"]).reshape(n, ci, -1)
    src = _maxpool_1x2x2(x) if spec.use_maxpool else x
    phi = _conv1x1(src, p["phi.weight"], p["phi.bias"]).reshape(n, ci, -1)
    g = _conv1x1(src, p["g.weight"], p["g.bias"]).reshape(n, ci, -1)
    aff = np.einsum("nci,ncj->nij", theta, phi)
    if spec.use_softmax:
        aff = _softmax(aff * ci**-0.5 if spec.use_scale else aff)
    else:
        aff = aff / phi.shape[-1]
    y = np.einsum("ncj,nij->nci", g, aff).reshape(n, ci, t, h, w)
    out = _conv1x1(y, p["out.weight"], p["out.bias"])
    if spec.use_bn:
        cc = (slice(None), None, None, None)
        out = (out - p["norm.running_mean"][cc]) / np.sqrt(p["norm.running_var"][cc] + EPS)
        out = out * p["norm.weight"][cc] + p["norm.bias"][cc]
    return x + out


@pytest.mark.parametrize(
    "spec,grouped,t",
    [
        (NonLocalSpec(), False, 4),
        (NonLocalSpec(use_bn=False, grouped_stages=("res3",)), True, 8),
        (NonLocalSpec(use_softmax=False), False, 2),
        (NonLocalSpec(use_scale=False, use_maxpool=False), False, 2),
    ],
)
def test_nonlocal_block_matches_official_op_sequence(
    spec: NonLocalSpec, grouped: bool, t: int
) -> None:
    rng = np.random.default_rng(2)
    c = 16
    block = NonLocalBlock(c, spec, grouped=grouped).eval()
    params = {}
    for name, tensor in block.state_dict().items():
        if name.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, tuple(tensor.shape)).astype(np.float32)
        else:
            value = _rand(rng, *tensor.shape) * 0.5
        params[name] = value
    block.load_state_dict({k: torch.tensor(v) for k, v in params.items()})
    for batch in (1, 3):  # the Caffe2 net bakes the batch size in; ours must not
        x = _rand(rng, batch, c, t, 6, 5)
        want = _nonlocal_numpy(x, params, spec, spec.group_size if grouped else 0)
        got = block(torch.tensor(x)).detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_grouping_keeps_groups_apart() -> None:
    """Frames of one 4-frame group must not attend to another group's frames."""
    spec = NonLocalSpec(use_bn=False, grouped_stages=("res3",))
    block = NonLocalBlock(8, spec, grouped=True).eval()
    x = torch.randn(1, 8, 8, 4, 4)
    y0 = block(x)
    x2 = x.clone()
    x2[:, :, 4:] += 5.0  # change the second group only
    y1 = block(x2)
    assert torch.equal(y0[:, :, :4], y1[:, :, :4])
    assert not torch.allclose(y0[:, :, 4:], y1[:, :, 4:])
