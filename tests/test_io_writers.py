"""The Python-2-style writers: readable by our reader and by stdlib pickle (latin1)."""

from __future__ import annotations

import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest

from nlconvert.errors import OutputExistsError
from nlconvert.io import load_pickle, read_checkpoint, write_flat_pkl, write_official_pkl
from nlconvert.io.py2pickle import write_py2_pickle


@pytest.fixture(scope="module")
def params(caffe2_tiny: Path) -> dict[str, np.ndarray]:
    with np.load(caffe2_tiny / "tiny_params.npz") as z:
        return {k: z[k] for k in z.files}


def _stdlib(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")  # our own trusted output


def test_official_writer_round_trip(tmp_path: Path, params: dict[str, np.ndarray]) -> None:
    path = write_official_pkl(tmp_path / "c2_model_iter400000.pkl", params, 400000, 1e-4)
    ref = _stdlib(path)["blobs"]
    ours = load_pickle(path)["blobs"]
    for name, a in params.items():
        np.testing.assert_array_equal(ref[name], a)
        np.testing.assert_array_equal(ours[name], a)
        if not name.endswith(("_rm", "_riv")):
            assert not ref[f"{name}_momentum"].any()
    assert ref["model_iter"] == 400000 and ref["lr"].dtype == np.float32
    ckpt = read_checkpoint(path)
    assert ckpt.format == "official_pkl" and set(ckpt.blobs) == set(params)
    assert ckpt.meta["model_iter"] == 400000
    # protocol 2 with Python 2 str keys and numpy.core names, as cPickle wrote
    ops = {op.name for op, _, _ in pickletools.genops(path.read_bytes())}
    assert {"SHORT_BINSTRING", "BINSTRING", "GLOBAL", "REDUCE", "BUILD"} <= ops
    assert not ops & {"BINUNICODE", "SHORT_BINUNICODE", "STACK_GLOBAL", "FRAME"}


def test_unicode_meta_keys_like_the_official_code(tmp_path: Path) -> None:
    blobs = {"conv1_w": np.ones((2, 3), np.float32)}
    path = write_official_pkl(tmp_path / "m.pkl", blobs, 10, 0.1, unicode_meta_keys=True)
    with open(path, "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"blobs"]
    assert {type(k) for k in raw} == {bytes, str}
    assert b"conv1_w" in raw and "conv1_w_momentum" in raw and "lr" in raw
    ckpt = read_checkpoint(path)
    assert set(ckpt.blobs) == {"conv1_w"} and ckpt.meta["model_iter"] == 10


def test_flat_writer_round_trip(tmp_path: Path, params: dict[str, np.ndarray]) -> None:
    path = write_flat_pkl(tmp_path / "flat.pkl", params, lr=0.00125)
    assert path.read_bytes().startswith(b"(dp1\nS'")
    ref = _stdlib(path)
    assert ref["lr"] == 0.00125
    ckpt = read_checkpoint(path)
    assert ckpt.format == "flat_pkl"
    for name, a in params.items():
        np.testing.assert_array_equal(ref[name], a)
        np.testing.assert_array_equal(ckpt.blobs[name], a)


@pytest.mark.parametrize("protocol", [0, 2])
def test_every_byte_value_and_quote_survives(tmp_path: Path, protocol: int) -> None:
    # Python 2 repr() picks its quotes by content; raw data holds every byte value.
    samples = {
        "all_bytes": np.frombuffer(bytes(range(256)) * 4, np.float32).copy(),
        "single_quote": np.frombuffer(b"''''", np.float32).copy(),
        "double_quote": np.frombuffer(b'""""', np.float32).copy(),
        "both": np.frombuffer(b"'\"\\\n", np.float32).copy(),
        "backslash_quote": np.frombuffer(b"\\'\\'", np.float32).copy(),
        "big": np.arange(70_000, dtype=np.float32),
        "f64": np.linspace(0, 1, 9),
        "u8": np.arange(256, dtype=np.uint8),
        "scalar0d": np.array(3.5, np.float32),
    }
    path = write_py2_pickle(tmp_path / "x.pkl", samples, protocol)
    ours = load_pickle(path)
    ref = _stdlib(path)
    for k, a in samples.items():
        assert ours[k].dtype == a.dtype and ours[k].shape == a.shape
        assert ours[k].tobytes() == a.tobytes(), k
        assert ref[k].tobytes() == a.tobytes(), k


def test_writer_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    write_flat_pkl(path, {"w": np.ones(1, np.float32)})
    with pytest.raises(OutputExistsError):
        write_flat_pkl(path, {"w": np.ones(1, np.float32)})
    write_flat_pkl(path, {"w": np.zeros(1, np.float32)}, force=True)
    assert load_pickle(path)["w"][0] == 0
