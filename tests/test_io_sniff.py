"""Sniffing: pickles and NetDefs are recognised; every other kind of file is explained."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nlconvert.errors import CheckpointFormatError
from nlconvert.io import read_checkpoint, sniff
from nlconvert.io.caffe2_pb import NetDef, make_op


def _tar_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("model.pkl")
        data = pickle.dumps({"a": 1}, protocol=2)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    return buf.getvalue()


def _torch_legacy() -> bytes:
    # What torch.save(..., _use_new_zipfile_serialization=False) starts with.
    return b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b".\x80\x02M\xe9\x03."


def _safetensors() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0\0\0\0"


def _onnx() -> bytes:
    # ModelProto: ir_version=8, producer_name="pytorch", then a graph field.
    return b"\x08\x08\x12\x07pytorch\x1a\x032.1:\x00"


CASES = {
    "empty": (b"", "empty file"),
    "gzip": (gzip.compress(b"x" * 100), "gzip file.*tar xzf"),
    "tar": (_tar_bytes(), "tar archive"),
    "zip": (_zip_bytes(), "zip archive or a torch.save file.*torch.load"),
    "torch_legacy": (_torch_legacy(), "legacy torch.save file"),
    "html": (b"<!DOCTYPE html>\n<html><body>Not found</body></html>", "web page.*download"),
    "html_lower": (b"\n  <html><head></head></html>", "web page"),
    "text": (b"This is not a checkpoint.\nJust some notes.\n", "text file"),
    "safetensors": (_safetensors(), "safetensors"),
    "onnx": (_onnx(), "ONNX model"),
    "binary": (bytes(range(200, 256)) * 4, "unknown file format"),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_wrong_kinds_are_explained(tmp_path: Path, kind: str) -> None:
    data, pattern = CASES[kind]
    path = tmp_path / "model.pkl"  # every one renamed to .pkl, as users do
    path.write_bytes(data)
    with pytest.raises(CheckpointFormatError, match=pattern) as err:
        sniff(path)
    message = str(err.value)
    assert message.startswith(str(path) + ": ") and "\n" not in message
    with pytest.raises(CheckpointFormatError, match=pattern):
        read_checkpoint(path)


@pytest.mark.parametrize("protocol", range(6))
def test_pickles_of_every_protocol(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "x.pkl"
    for obj in ({"blobs": {"w": np.ones(2, np.float32)}}, {}, [1], np.ones(3)):
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
        assert sniff(path) == "pickle"


def test_netdefs(tmp_path: Path) -> None:
    net = NetDef(name="init")
    net.op.append(make_op("GivenTensorFill", [], ["w"], shape=[2], values=[1.0, 2.0]))
    path = tmp_path / "init_net.pb"
    path.write_bytes(net.SerializeToString())
    assert sniff(path) == "protobuf"
    nameless = NetDef()
    nameless.op.append(make_op("ConstantFill", [], ["w"], shape=[2], value=1.0))
    path.write_bytes(nameless.SerializeToString())
    assert sniff(path) == "protobuf"


def test_text_that_starts_like_a_netdef_is_text(tmp_path: Path) -> None:
    path = tmp_path / "notes.pb"
    path.write_bytes(b"Bad gateway: the server returned an error\n")
    with pytest.raises(CheckpointFormatError, match="text file"):
        sniff(path)


def test_directory_and_missing(tmp_path: Path) -> None:
    with pytest.raises(CheckpointFormatError, match="directory"):
        sniff(tmp_path)
    with pytest.raises(CheckpointFormatError, match="no such file"):
        sniff(tmp_path / "missing.pkl")
