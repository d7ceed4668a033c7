"""init_net reading: fill operators, packed/unpacked encodings, validation, round trips."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from nlconvert.errors import CheckpointFormatError, NonFiniteWeightError
from nlconvert.io import (
    blobs_from_init_net,
    netdef_from_blobs,
    read_checkpoint,
    read_netdef,
    write_init_net,
)
from nlconvert.io import caffe2_pb as pb
from nlconvert.io.caffe2_pb import NetDef, make_op
from nlconvert.io.netdef_io import data_placeholders

# -- a hand encoder for the protobuf wire format ----------------------------------------


def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1  # negative int64 are 10-byte two's complement varints
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    tag = _varint(number << 3 | wire)
    if wire == 2:
        return tag + _varint(len(payload)) + payload
    return tag + payload


def _arg_ints(name: str, values: list[int], packed: bool) -> bytes:
    body = _field(1, 2, name.encode())
    if packed:
        body += _field(6, 2, b"".join(_varint(v) for v in values))
    else:
        body += b"".join(_field(6, 0, _varint(v)) for v in values)
    return body


def _arg_floats(name: str, values: list[float], packed: bool) -> bytes:
    body = _field(1, 2, name.encode())
    if packed:
        body += _field(5, 2, b"".join(struct.pack("<f", v) for v in values))
    else:
        body += b"".join(_field(5, 5, struct.pack("<f", v)) for v in values)
    return body


def _fill_op(blob: str, shape: list[int], values: list[float], packed: bool) -> bytes:
    op = _field(2, 2, blob.encode()) + _field(4, 2, b"GivenTensorFill")
    op += _field(5, 2, _arg_ints("shape", shape, packed))
    op += _field(5, 2, _arg_floats("values", values, packed))
    return op


def _netdef_bytes(ops: list[bytes], name: str = "init") -> bytes:
    return _field(1, 2, name.encode()) + b"".join(_field(2, 2, op) for op in ops)


@pytest.mark.parametrize("packed", [False, True])
def test_hand_encoded_packed_and_unpacked(tmp_path: Path, packed: bool) -> None:
    values = [0.5, -1.25, 3.0, 4.5, 0.0, 2.0]
    path = tmp_path / "init_net.pb"
    path.write_bytes(_netdef_bytes([_fill_op("conv1_w", [2, 3], values, packed)]))
    ckpt = read_checkpoint(path)
    np.testing.assert_array_equal(ckpt.blobs["conv1_w"], np.array(values, np.float32).reshape(2, 3))


def _net(*ops: object) -> NetDef:
    net = NetDef(name="init")
    net.op.extend(ops)
    return net


def test_all_fill_types() -> None:
    net = _net(
        make_op("GivenTensorFill", [], ["f"], shape=[2], values=[1.5, 2.5]),
        make_op("GivenTensorDoubleFill", [], ["d"], shape=[1], values=[0.25]),
        make_op("GivenTensorIntFill", [], ["i"], shape=[2], values=[1, -2]),
        make_op("GivenTensorInt64Fill", [], ["l"], shape=[1], values=[2**40]),
        make_op("GivenTensorBoolFill", [], ["b"], shape=[2], values=[1, 0]),
        make_op("ConstantFill", [], ["c"], shape=[2, 2], value=0.5),
        make_op("ConstantFill", [], ["ci"], shape=[3], value=7, dtype=pb.DT_INT64),
        make_op("GivenTensorFill", [], ["data"], shape=[1, 1], values=[0.0]),
    )
    blobs = blobs_from_init_net(net, "init_net.pb")
    assert "data" not in blobs
    assert blobs["f"].dtype == np.float32 and blobs["f"].tolist() == [1.5, 2.5]
    assert blobs["d"].dtype == np.float64
    assert blobs["i"].dtype == np.int32 and blobs["i"].tolist() == [1, -2]
    assert blobs["l"].dtype == np.int64 and blobs["l"].tolist() == [2**40]
    assert blobs["b"].dtype == np.bool_ and blobs["b"].tolist() == [True, False]
    np.testing.assert_array_equal(blobs["c"], np.full((2, 2), 0.5, np.float32))
    assert blobs["ci"].dtype == np.int64 and blobs["ci"].tolist() == [7, 7, 7]


def test_placeholders_from_predict_net() -> None:
    init = _net(
        make_op("GivenTensorFill", [], ["w"], shape=[1], values=[1.0]),
        make_op("GivenTensorFill", [], ["video"], shape=[1, 1], values=[0.0]),
    )
    predict = NetDef(name="net", external_input=["video", "w"])
    predict.op.append(make_op("Conv", ["video", "w"], ["y"]))
    assert data_placeholders(init, predict) == {"video": "data input placeholder"}
    assert set(blobs_from_init_net(init, "x.pb", predict)) == {"w"}


@pytest.mark.parametrize(
    ("op", "pattern"),
    [
        (
            make_op("GivenTensorFill", [], ["w"], shape=[2, 3], values=[1.0]),
            r"blob 'w' has shape \[2, 3\] \(6 values\) but 1 values",
        ),
        (make_op("GivenTensorFill", [], ["w"], shape=[-1], values=[1.0]), "'w' has an invalid shape"),
        (make_op("GivenTensorFill", [], ["w"], shape=[2**40], values=[1.0]), "'w' has shape"),
        (make_op("ConstantFill", [], ["w"], shape=[2**40], value=1.0), "implausibly large"),
        (make_op("ConstantFill", [], ["w"], shape=[2**20, 2**20], value=1.0), "implausibly"),
        (make_op("ConstantFill", [], ["w"], shape=[2], dtype=pb.DT_STRING), "unsupported dtype"),
        (make_op("UniformFill", [], ["w"], shape=[2]), "unsupported operator 'UniformFill'"),
        (make_op("ConstantFill", ["s"], ["w"], input_as_shape=1), "with an input"),
    ],
)
def test_invalid_fills(op: object, pattern: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointFormatError, match=pattern) as err:
            blobs_from_init_net(_net(op), "bad_init.pb")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(err.value).startswith("bad_init.pb: ")
    assert peak < 10 << 20  # refused before allocating


def test_duplicate_blob_names() -> None:
    net = _net(
        make_op("GivenTensorFill", [], ["w"], shape=[1], values=[1.0]),
        make_op("GivenTensorFill", [], ["w"], shape=[1], values=[2.0]),
    )
    with pytest.raises(CheckpointFormatError, match="blob 'w' is filled twice"):
        blobs_from_init_net(net, "init_net.pb")


def test_garbled_protobuf(tmp_path: Path) -> None:
    path = tmp_path / "init_net.pb"
    good = _net(make_op("GivenTensorFill", [], ["w"], shape=[4], values=[1.0] * 4))
    data = good.SerializeToString()
    path.write_bytes(data[:-3])
    with pytest.raises(CheckpointFormatError, match="not a valid Caffe2 NetDef"):
        read_netdef(path)
    with pytest.raises(CheckpointFormatError):
        read_checkpoint(path)


def test_nonfinite_and_dtypes(tmp_path: Path) -> None:
    path = tmp_path / "init_net.pb"
    write_init_net({"w": np.array([1.0, np.nan], np.float32)}, path)
    with pytest.raises(NonFiniteWeightError, match="blob 'w' holds 1 NaN/Inf"):
        read_checkpoint(path)
    assert np.isnan(read_checkpoint(path, allow_nonfinite=True).blobs["w"][1])
    write_init_net({"w": np.array([1, 2], np.int32)}, path, force=True)
    with pytest.raises(CheckpointFormatError, match="blob 'w' has dtype int32"):
        read_checkpoint(path)
    write_init_net({"w": np.array([1.5, 2.5], np.float64)}, path, force=True)
    assert read_checkpoint(path).blobs["w"].dtype == np.float32


def test_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    blobs = {
        "conv1_w": rng.standard_normal((4, 3, 1, 3, 3)).astype(np.float32),
        "pred_b": rng.standard_normal(5).astype(np.float32),
        "idx": np.arange(3, dtype=np.int32),
        "idx64": np.arange(3, dtype=np.int64),
        "flag": np.array([True, False]),
    }
    path = write_init_net(blobs, tmp_path / "init_net.pb")
    got = blobs_from_init_net(read_netdef(path), path)
    assert list(got) == list(blobs)
    for k, v in blobs.items():
        assert got[k].dtype == v.dtype
        np.testing.assert_array_equal(got[k], v)
    assert len(netdef_from_blobs(blobs).op) == 5


def test_names_from_the_file_cannot_break_the_message_line() -> None:
    # Found by atheris: blob names and op types are untrusted text.
    net = _net(make_op("GivenTensorFill\n", ["x"], ["w\nINFO: fake log line"], shape=[2]))
    with pytest.raises(CheckpointFormatError) as err:
        blobs_from_init_net(net, "init_net.pb")
    assert str(err.value).isprintable() and "'w\\nINFO: fake log line'" in str(err.value)


def test_pickle_keys_cannot_break_the_message_line(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({"blobs": {"w\r\nx": np.array([1, 2], np.int8)}}, protocol=2))
    with pytest.raises(CheckpointFormatError) as err:
        read_checkpoint(path)
    assert str(err.value).isprintable()
