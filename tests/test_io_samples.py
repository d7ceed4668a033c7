"""The readers on the authentic samples (Python 2.7 + numpy 1.16 pickles, real Caffe2 nets)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from nlconvert.io import load_pickle, read_checkpoint, read_netdef, sniff
from nlconvert.io.py2pickle import write_py2_pickle


@pytest.fixture(scope="module")
def params(caffe2_tiny: Path) -> dict[str, np.ndarray]:
    with np.load(caffe2_tiny / "tiny_params.npz") as z:
        return {k: z[k] for k in z.files}


def test_official_pkl_matches_params(caffe2_tiny: Path, params: dict[str, np.ndarray]) -> None:
    ckpt = read_checkpoint(caffe2_tiny / "tiny_official_py2.pkl")
    assert ckpt.format == "official_pkl"
    assert set(ckpt.blobs) == set(params)
    for name, ref in params.items():
        got = ckpt.blobs[name]
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, ref)
    momentum = {k for k, v in ckpt.ignored.items() if v == "optimizer momentum"}
    assert len(momentum) == 27 and all(k.endswith("_momentum") for k in momentum)
    assert ckpt.ignored["lr"] == "learning rate"
    assert ckpt.ignored["model_iter"] == "iteration counter"
    assert ckpt.meta == {"model_iter": 400000, "lr": pytest.approx(1e-4)}
    assert len(ckpt.sha256) == 64


def test_flat_protocol0_pkl_matches_params(caffe2_tiny: Path, params: dict[str, np.ndarray]) -> None:
    ckpt = read_checkpoint(caffe2_tiny / "tiny_flat_py2_protocol0.pkl")
    assert ckpt.format == "flat_pkl"
    # The sample keeps the BN running statistics and drops pred_* (see the report).
    assert set(ckpt.blobs) == set(params) - {"pred_w", "pred_b"}
    for name, got in ckpt.blobs.items():
        np.testing.assert_array_equal(got, params[name])
    assert ckpt.meta == {"lr": 0.00125}
    assert ckpt.ignored == {"lr": "learning rate"}


def test_sample_keys_are_all_python2_str(caffe2_tiny: Path) -> None:
    # Every key of the authentic sample is a Python 2 str (bytes), lr/model_iter/momentum
    # included: encoding='bytes' gives only bytes keys.
    with open(caffe2_tiny / "tiny_official_py2.pkl", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert list(raw) == [b"blobs"]
    assert all(isinstance(k, bytes) for k in raw[b"blobs"])


@pytest.mark.parametrize("name", ["tiny_official_py2.pkl", "tiny_flat_py2_protocol0.pkl"])
def test_reader_matches_stdlib_latin1(caffe2_tiny: Path, name: str) -> None:
    ours = load_pickle(caffe2_tiny / name)
    with open(caffe2_tiny / name, "rb") as f:
        ref = pickle.load(f, encoding="latin1")  # trusted sample only
    ours = ours.get("blobs", ours)
    ref = ref.get("blobs", ref)
    assert list(ours) == list(ref)  # file order kept
    for k, v in ref.items():
        if isinstance(v, np.ndarray):
            assert ours[k].dtype == v.dtype and ours[k].shape == v.shape
            np.testing.assert_array_equal(ours[k], v)
        else:
            assert ours[k] == v


@pytest.mark.parametrize(
    ("name", "protocol", "memo_all"),
    [("tiny_official_py2.pkl", 2, False), ("tiny_flat_py2_protocol0.pkl", 0, True)],
)
def test_writer_reproduces_sample_byte_for_byte(caffe2_tiny: Path, tmp_path: Path, name: str,
                                                protocol: int, memo_all: bool) -> None:
    obj = load_pickle(caffe2_tiny / name)
    out = tmp_path / name
    kwargs = {"memo_key": lambda k: True} if memo_all else {}
    write_py2_pickle(out, obj, protocol, **kwargs)
    assert out.read_bytes() == (caffe2_tiny / name).read_bytes()


@pytest.mark.parametrize(
    ("init", "predict", "pred_blob"),
    [
        ("tiny_val_init_net.pb", "tiny_val_predict_net.pb", "pred_w"),
        ("tiny_test_init_net.pb", "tiny_test_predict_net.pb", "pred_w_conv"),
    ],
)
def test_init_nets(caffe2_tiny: Path, params: dict[str, np.ndarray], init: str, predict: str, pred_blob: str) -> None:
    for pnet in (None, caffe2_tiny / predict):
        ckpt = read_checkpoint(caffe2_tiny / init, predict_net_path=pnet)
        assert ckpt.format == "init_net"
        assert "data" not in ckpt.blobs
        assert ckpt.ignored == {"data": "data input placeholder"}
        assert pred_blob in ckpt.blobs
        for name, got in ckpt.blobs.items():
            ref = params[name] if name in params else params["pred_w"].reshape(got.shape)
            np.testing.assert_array_equal(got, ref)
        if pnet is not None:
            assert ckpt.predict_net is not None and len(ckpt.predict_net.op) > 30


@pytest.mark.parametrize("name", ["tiny_val_predict_net.pb", "tiny_test_predict_net.pb"])
def test_predict_nets_parse(caffe2_tiny: Path, name: str) -> None:
    assert sniff(caffe2_tiny / name) == "protobuf"
    net = read_netdef(caffe2_tiny / name)
    types = [op.type for op in net.op]
    assert types[0] == "Conv" and "SpatialBN" in types and "Softmax" in types
    assert net.external_input[0] == "data"
    assert list(net.external_output) == ["softmax"]


def test_predict_net_passed_as_weights_is_explained(caffe2_tiny: Path) -> None:
    from nlconvert.errors import CheckpointFormatError

    with pytest.raises(CheckpointFormatError, match="predict_net.*init_net"):
        read_checkpoint(caffe2_tiny / "tiny_val_predict_net.pb")
