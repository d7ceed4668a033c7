"""The safe pickle VM on Python 3 pickles of every protocol, key types and dropping."""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import numpy as np
import pytest

from nlconvert.errors import CheckpointFormatError
from nlconvert.io import Dropped, load_pickle, loads_pickle, read_checkpoint
from nlconvert.io.checkpoint import keep_blob

PROTOCOLS = range(6)


def _blobs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "conv1_w": rng.standard_normal((8, 3, 3, 7, 7)).astype(np.float32),
        "res_conv1_bn_s": rng.standard_normal(8).astype(np.float32),
        "res_conv1_bn_riv": rng.random(8).astype(np.float32),
        "pred_w": rng.standard_normal((5, 16)).astype(np.float32),
    }


def _official(blobs: dict[str, np.ndarray], key: type = str) -> dict:
    entries: dict = {}
    for name, a in blobs.items():
        entries[name] = a
        entries[f"{name}_momentum"] = np.zeros_like(a)
    entries["lr"] = np.array(0.01, dtype=np.float32)
    entries["model_iter"] = 1234
    if key is bytes:
        entries = {k.encode(): v for k, v in entries.items()}
    return {"blobs": entries}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("key", [str, bytes])
def test_python3_official_pickles(tmp_path: Path, protocol: int, key: type) -> None:
    blobs = _blobs()
    path = tmp_path / "ckpt.pkl"
    path.write_bytes(pickle.dumps(_official(blobs, key), protocol=protocol))
    ckpt = read_checkpoint(path)
    assert ckpt.format == "official_pkl"
    assert set(ckpt.blobs) == set(blobs)
    for name, a in blobs.items():
        np.testing.assert_array_equal(ckpt.blobs[name], a)
    assert sorted(k for k, v in ckpt.ignored.items() if v == "optimizer momentum") == sorted(
        f"{n}_momentum" for n in blobs
    )
    assert ckpt.meta == {"lr": pytest.approx(0.01), "model_iter": 1234}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mixed_key_types_and_flat_layout(tmp_path: Path, protocol: int) -> None:
    # The official code's unicode_literals makes lr/model_iter/momentum keys unicode
    # while parameter keys stay str; a reader must take both in one dict.
    blobs = _blobs()
    entries: dict = {name.encode(): a for name, a in blobs.items()}
    entries["conv1_w_momentum"] = np.zeros(3, np.float32)
    entries["lr"] = 0.1
    path = tmp_path / "flat.pkl"
    path.write_bytes(pickle.dumps(entries, protocol=protocol))
    ckpt = read_checkpoint(path)
    assert ckpt.format == "flat_pkl"
    assert set(ckpt.blobs) == set(blobs)
    assert ckpt.meta == {"lr": 0.1}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_values_round_trip(protocol: int) -> None:
    obj = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "f64": np.linspace(0, 1, 5),
        "f16": np.ones(3, np.float16),
        "be": np.arange(4, dtype=">i8"),
        "u8": np.arange(7, dtype=np.uint8),
        "bool": np.array([True, False]),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "empty": np.zeros((0, 3), np.float32),
        "zero_d": np.array(2.5, np.float32),
        "scalar": np.float32(1.5),
        "int_scalar": np.int64(-3),
        "odict": collections.OrderedDict([("a", 1), ("b", [1, 2])]),
        "nested": [(1, 2.5, None, True), {"x": b"\x00\xff"}, "text", -(2**70)],
        "set": {1, 2},
        "frozen": frozenset({"a"}),
    }
    got = loads_pickle(pickle.dumps(obj, protocol=protocol))
    assert list(got) == list(obj)
    for k, v in obj.items():
        if isinstance(v, np.ndarray | np.generic):
            assert got[k].dtype == v.dtype and np.shape(got[k]) == np.shape(v), k
            np.testing.assert_array_equal(got[k], v)
        else:
            assert got[k] == v, k
    assert isinstance(got["scalar"], np.float32)
    assert got["f32"].flags.writeable


def test_python2_values_come_back_as_bytes_with_text_keys() -> None:
    data = pickle.dumps({b"key": b"value"}, protocol=2)
    assert loads_pickle(data) == {"key": b"value"}


def test_duplicate_keys_after_decoding_are_refused() -> None:
    data = pickle.dumps({b"lr": 1.0, "lr": 2.0}, protocol=2)
    with pytest.raises(CheckpointFormatError, match="duplicate dict key 'lr'"):
        loads_pickle(data, name="dup.pkl")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_keep_drops_large_values_unread(protocol: int) -> None:
    big = np.arange(10_000, dtype=np.float32)
    obj = {"blobs": {"a_w": big, "a_w_momentum": big * 2, "b_w": big * 3, "lr": 0.5}}
    got = loads_pickle(pickle.dumps(obj, protocol=protocol), keep=keep_blob)["blobs"]
    dropped = got["a_w_momentum"]
    assert isinstance(dropped, Dropped)
    assert dropped.shape == (10_000,) and dropped.dtype == np.float32
    np.testing.assert_array_equal(got["a_w"], big)
    np.testing.assert_array_equal(got["b_w"], big * 3)
    assert got["lr"] == 0.5  # small values are read even when not kept


def test_dropped_value_under_a_weight_name_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({"blobs": {"conv1_w": [1, 2, 3]}}, protocol=2))
    with pytest.raises(CheckpointFormatError, match=r"m\.pkl: blob 'conv1_w' is a list"):
        read_checkpoint(path)


def test_strings_that_are_not_keys_are_not_dropped() -> None:
    # A list value whose element equals a dropped key name must survive.
    data = pickle.dumps({"a": ["lr"], "b": "x" * 5000, "lr": "y" * 5000}, protocol=2)
    got = loads_pickle(data, keep=lambda k: k != "lr")
    assert got["a"] == ["lr"] and got["b"] == "x" * 5000
    assert isinstance(got["lr"], Dropped)


def test_load_pickle_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"w": np.ones((300, 300), np.float32)}, protocol=4))
    got = load_pickle(path)
    assert got["w"].shape == (300, 300) and got["w"].flags.writeable


def test_missing_file_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointFormatError, match="no such file"):
        read_checkpoint(tmp_path / "nope.pkl")
    with pytest.raises(CheckpointFormatError, match="cannot open"):
        load_pickle(tmp_path / "nope.pkl")
