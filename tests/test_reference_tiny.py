"""The numpy reference reproduces every blob real Caffe2 produced for the tiny nets.

tests/data/caffe2_tiny (a copy of shared/data/caffe2_tiny) holds the official op sequence
(both heads) run by the Caffe2 runtime of PyTorch 1.8.1, its init nets, inputs and every blob
the run produced. In-place blobs hold their final values there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nlconvert.io.caffe2_pb import arg_dict
from nlconvert.reference import load_net, run_init_and_predict

RTOL = 1e-4


@pytest.fixture(scope="module")
def caffe2_outputs(caffe2_tiny: Path) -> dict[str, np.ndarray]:
    with np.load(caffe2_tiny / "tiny_caffe2_outputs.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def runs(caffe2_tiny: Path) -> dict[str, object]:
    with np.load(caffe2_tiny / "tiny_input.npz") as z:
        inputs = {k: z[k] for k in z.files}
    return {
        split: (
            load_net(caffe2_tiny / f"tiny_{split}_predict_net.pb"),
            run_init_and_predict(
                load_net(caffe2_tiny / f"tiny_{split}_init_net.pb"),
                load_net(caffe2_tiny / f"tiny_{split}_predict_net.pb"),
                {"data": inputs[split]},
            ),
        )
        for split in ("val", "test")
    }


@pytest.mark.parametrize("split", ["val", "test"])
def test_every_caffe2_blob_is_reproduced(split, runs, caffe2_outputs):
    net, ws = runs[split]
    expected = {k.split("__", 1)[1]: v for k, v in caffe2_outputs.items()
                if k.startswith(f"{split}__")}
    produced = {o for op in net.op for o in op.output}
    # The npz holds every blob the predict net wrote, and nothing else.
    assert set(expected) == produced
    for name, ref in expected.items():
        got = ws[name]
        assert got.shape == ref.shape, name
        assert got.dtype == ref.dtype, name
        if ref.dtype.kind in "iu":
            np.testing.assert_array_equal(got, ref, err_msg=name)
        else:
            atol = 1e-5 * max(1.0, float(np.abs(ref).max()))
            np.testing.assert_allclose(got, ref, rtol=RTOL, atol=atol, err_msg=name)


@pytest.mark.parametrize("split", ["val", "test"])
def test_softmax_outputs(split, runs):
    _, ws = runs[split]
    sm = ws["softmax"]
    assert sm.shape == (2, 5)
    np.testing.assert_allclose(sm.sum(axis=1), 1.0, rtol=1e-5)


def test_in_place_blobs_step_by_step(runs, caffe2_outputs):
    """res2_0_branch2c_bn is written by SpatialBN, then in place by Sum and Relu."""
    net, ws = runs["val"]
    hist = ws.history("res2_0_branch2c_bn")
    assert [r.op_type for r in hist] == ["SpatialBN", "Sum", "Relu"]
    bn, summed, relu = (r.value for r in hist)
    np.testing.assert_allclose(summed, bn + ws["res2_0_branch1_bn"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(relu, np.maximum(summed, 0))
    assert (bn < 0).any()  # the pre-ReLU value really differs from the final one
    np.testing.assert_allclose(relu, caffe2_outputs["val__res2_0_branch2c_bn"], rtol=RTOL,
                               atol=1e-5)
    # conv1's BN is ReLU'd in place; theta is reshaped in place to (N, Ci, THW).
    assert [r.op_type for r in ws.history("res_conv1_bn")] == ["SpatialBN", "Relu"]
    theta = ws.history("nonlocal_conv3_0_theta")
    assert theta[0].value.shape == (2, 8, 2, 4, 4) and theta[1].value.shape == (2, 8, 32)
    # Scale in place on the affinity: the recorded first value is the raw theta^T phi.
    aff = ws.history("nonlocal_conv3_0_affinity")
    scale = arg_dict(net.op[aff[1].index])["scale"]
    np.testing.assert_allclose(aff[1].value, aff[0].value * np.float32(scale), rtol=1e-6)
