"""Broken and abusive (not code-running) inputs: every one ends as a one-line
CheckpointFormatError naming the file, with no large allocation and no other exception."""

from __future__ import annotations

import pickle
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from nlconvert.errors import CheckpointFormatError, NonFiniteWeightError, UnsafePickleError
from nlconvert.io import read_checkpoint, safe_pickle, write_flat_pkl, write_official_pkl
from nlconvert.io.caffe2_pb import NetDef, make_op

_HOSTILE = str(Path(__file__).resolve().parent / "hostile")
if _HOSTILE not in sys.path:
    sys.path.insert(0, _HOSTILE)
from pickle_asm import Asm, checkpoint  # noqa: E402


def _params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "conv1_w": rng.standard_normal((8, 3, 3, 7, 7)).astype(np.float32),
        "res_conv1_bn_s": rng.standard_normal(8).astype(np.float32),
        "res_conv1_bn_rm": rng.standard_normal(8).astype(np.float32),
        "pred_w": rng.standard_normal((5, 16)).astype(np.float32),
        "pred_b": rng.standard_normal(5).astype(np.float32),
    }


def _expect_format_error(
    path: Path, cls: type[CheckpointFormatError] = CheckpointFormatError, match: str | None = None
) -> str:
    tracemalloc.start()
    try:
        with pytest.raises(cls, match=match) as err:
            read_checkpoint(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert peak < 32 << 20, f"{path.name}: peak {peak} bytes"
    return message


def _writers(tmp_path: Path) -> dict[str, Path]:
    params = _params()
    files = {
        "official_p2": write_official_pkl(tmp_path / "official.pkl", params, 400000, 0.01),
        "flat_p0": write_flat_pkl(tmp_path / "flat.pkl", params),
    }
    for protocol in (2, 5):
        path = tmp_path / f"py3_p{protocol}.pkl"
        path.write_bytes(pickle.dumps({"blobs": params}, protocol=protocol))
        files[f"py3_p{protocol}"] = path
    net = NetDef(name="init")
    for name, a in params.items():
        net.op.append(make_op("GivenTensorFill", [], [name], shape=list(a.shape), values=a.ravel().tolist()))
    (tmp_path / "init_net.pb").write_bytes(net.SerializeToString())
    files["init_net"] = tmp_path / "init_net.pb"
    return files


@pytest.mark.parametrize("kind", ["official_p2", "flat_p0", "py3_p2", "py3_p5", "init_net"])
def test_truncation_at_every_percent(tmp_path: Path, kind: str) -> None:
    source = _writers(tmp_path)[kind]
    data = source.read_bytes()
    assert read_checkpoint(source).blobs  # the whole file is fine
    cut = tmp_path / f"cut_{source.name}"
    for percent in range(100):
        cut.write_bytes(data[: len(data) * percent // 100])
        message = _expect_format_error(cut)
        if percent and kind != "init_net":
            assert "truncated" in message or "byte" in message, message


def _pickle_file(tmp_path: Path, data: bytes, name: str = "bad.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_nonfinite_weights(tmp_path: Path) -> None:
    params = _params()
    params["pred_w"][1, 2] = np.inf
    params["conv1_w"][0, 0, 0, 0, :2] = np.nan
    path = write_official_pkl(tmp_path / "nan.pkl", params, 1, 0.1)
    message = _expect_format_error(path, NonFiniteWeightError, "blob '(conv1_w|pred_w)'")
    assert "NaN/Inf" in message
    ckpt = read_checkpoint(path, allow_nonfinite=True)
    assert np.isinf(ckpt.blobs["pred_w"][1, 2])
    flat = write_flat_pkl(tmp_path / "inf.pkl", {"w": np.array([-np.inf], np.float32)})
    _expect_format_error(flat, NonFiniteWeightError, "blob 'w'")


@pytest.mark.parametrize(
    ("value", "cls", "match"),
    [
        (np.array([1, "a"], dtype=object), UnsafePickleError, "numpy dtype 'O8'"),
        (np.array(["abc"]), UnsafePickleError, "numpy dtype 'U3'"),
        (np.array([b"abc"]), UnsafePickleError, "numpy dtype 'S3'"),
        (np.zeros(3, dtype=[("a", "f4")]), UnsafePickleError, "numpy dtype 'V4'"),
        (np.arange(3, dtype=np.int64), CheckpointFormatError, "blob 'conv1_w' has dtype int64"),
        (np.array([True]), CheckpointFormatError, "blob 'conv1_w' has dtype bool"),
        ("a string", CheckpointFormatError, "blob 'conv1_w' is a str"),
        ({"nested": 1}, CheckpointFormatError, "blob 'conv1_w' is a dict"),
        (np.float32(1.0), CheckpointFormatError, "blob 'conv1_w' is a float32"),
    ],
)
@pytest.mark.parametrize("protocol", [2, 5])
def test_wrong_value_types(tmp_path: Path, value: object, cls: type, match: str, protocol: int) -> None:
    data = pickle.dumps({"blobs": {"conv1_w": value}}, protocol=protocol)
    _expect_format_error(_pickle_file(tmp_path, data), cls, match)


def _nested_lists(depth: int) -> bytes:
    a = Asm().op("PROTO", 2)
    for _ in range(depth):
        a.op("EMPTY_LIST")
    for _ in range(depth - 1):
        a.op("APPEND")
    return a.op("STOP").getvalue()


def _nested_tuples(depth: int) -> bytes:
    a = Asm().op("PROTO", 2).op("EMPTY_TUPLE")
    for _ in range(depth):
        a.op("TUPLE1")
    return a.op("STOP").getvalue()


def _nested_dicts(depth: int) -> bytes:
    a = Asm().op("PROTO", 2)
    for _ in range(depth):
        a.op("EMPTY_DICT").op("SHORT_BINSTRING", b"k")
    a.op("NONE")
    for _ in range(depth):
        a.op("SETITEM")
    return a.op("STOP").getvalue()


def _array_state(shape: tuple, raw: bytes) -> bytes:
    return checkpoint(
        2,
        [
            (
                "conv1_w",
                lambda e: (
                    e.glob("numpy.core.multiarray", "_reconstruct"),
                    e.glob("numpy", "ndarray"),
                    e.value((0,)),
                    e.data(b"b"),
                    e.op("TUPLE3"),
                    e.op("REDUCE"),
                    e.op("MARK"),
                    e.int(1),
                    e.op("MARK"),
                    [e.op("LONG1", d) if d >= 2**31 else e.value(d) for d in shape],
                    e.op("TUPLE"),
                    e.dtype("f4"),
                    e.false(),
                    e.data(raw),
                    e.op("TUPLE"),
                    e.op("BUILD"),
                ),
            )
        ],
    )


BROKEN: dict[str, tuple[Callable[[], bytes], str]] = {
    "nested_lists": (lambda: _nested_lists(20_000), "nested deeper"),
    "nested_tuples": (lambda: _nested_tuples(20_000), "nested deeper"),
    "nested_dicts": (lambda: _nested_dicts(20_000), "nested deeper"),
    "mark_bomb": (lambda: b"\x80\x02" + b"(" * 100_000 + b".", "nested pickle MARKs"),
    "self_reference": (
        lambda: (
            Asm().op("PROTO", 2).op("EMPTY_LIST").op("BINPUT", 0).op("BINGET", 0).op("APPEND").op("STOP").getvalue()
        ),
        "self-referencing",
    ),
    "huge_memo_get": (
        lambda: Asm().op("PROTO", 2).op("LONG_BINGET", 0xFFFFFFFF).op("STOP").getvalue(),
        "memo index 4294967295 is not defined",
    ),
    "huge_memo_put_then_get": (
        lambda: Asm().op("MARK").op("DICT").op("PUT", 10**30).op("GET", 10**30 + 1).op("STOP").getvalue(),
        "not defined",
    ),
    "negative_put": (
        lambda: b"(dp-1\n.",
        "negative memo index",
    ),
    "long4_bomb": (
        lambda: b"\x80\x02}X\x01\x00\x00\x00w\x8b\xff\xff\xff\x7f" + b"\0" * 100,
        "truncated|too large",
    ),
    "long4_big": (
        lambda: b"\x80\x02}X\x01\x00\x00\x00w\x8b\x00\x10\x00\x00" + b"\1" * 4096 + b"s.",
        "integer of 4096 bytes",
    ),
    "binstring_negative": (
        lambda: b"\x80\x02}U\x01wT\xff\xff\xff\xffs.",
        "negative length",
    ),
    "binunicode8_claim": (
        lambda: b"\x80\x04}\x8d" + (1 << 62).to_bytes(8, "little") + b"xx",
        "truncated",
    ),
    "frame_claim": (lambda: b"\x80\x04\x95" + (1 << 50).to_bytes(8, "little") + b"}.", "truncated"),
    "unknown_opcode": (lambda: b"\x80\x02}\xff.", "unknown pickle opcode 0xff"),
    "protocol_9": (lambda: b"\x80\x09}.", "unknown file format"),
    "no_stop": (lambda: b"\x80\x02}U\x01wK\x01s", "truncated"),
    "stop_on_empty": (lambda: b"\x80\x02.", "underflow"),
    "setitems_without_mark": (lambda: b"\x80\x02}U\x01wK\x01u.", "MARK missing"),
    "append_to_dict": (lambda: b"\x80\x02}K\x01a.", "APPEND on a dict"),
    "setitem_on_list": (lambda: b"\x80\x02]U\x01wK\x01s.", "SETITEM on a list"),
    "unhashable_key": (lambda: b"\x80\x02}]K\x01s.", "malformed pickle"),
    "bad_escape": (lambda: b"(dp1\nS'\\x4'\np2\nI1\ns.", "invalid escape"),
    "unquoted_string": (lambda: b"(dp1\nSabc\np2\nI1\ns.", "not a quoted string"),
    "bad_int": (lambda: b"(dp1\nS'a'\nI12x\ns.", "invalid INT"),
    "long_int_line": (lambda: b"(dp1\nS'a'\nI" + b"9" * 5000 + b"\ns.", "line longer"),
    "bad_utf8": (lambda: b"\x80\x02}X\x02\x00\x00\x00\xff\xfeK\x01s.", "invalid UTF-8"),
    "top_level_list": (lambda: pickle.dumps([1, 2], protocol=2), "holds a list"),
    "no_weights": (lambda: pickle.dumps({"lr": 0.1}, protocol=2), "no weight blobs"),
    "int_blob_name": (lambda: pickle.dumps({1: np.ones(1, np.float32)}, protocol=2), "int"),
    "shape_2e40": (lambda: _array_state((1 << 40,), b"\0" * 4), "needs 4398046511104 bytes"),
    "shape_product_overflow": (
        lambda: _array_state((1 << 32, 1 << 32, 0), b"\0" * 4),
        "needs 0 bytes",
    ),
    "shape_negative": (lambda: _array_state((-1, 4), b"\0" * 16), "invalid array dimension"),
    "shape_too_many_dims": (lambda: _array_state((1,) * 40, b"\0" * 4), "short tuple"),
    "data_short": (lambda: _array_state((2, 3), b"\0" * 20), "has 20 bytes but shape"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_pickles(tmp_path: Path, case: str) -> None:
    make, match = BROKEN[case]
    _expect_format_error(_pickle_file(tmp_path, make(), f"{case}.pkl"), match=match)


def test_stack_and_item_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(safe_pickle, "MAX_STACK", 1000)
    path = _pickle_file(tmp_path, b"\x80\x02" + b"N" * 70_000 + b".")
    _expect_format_error(path, match="stack deeper than 1000")
    monkeypatch.setattr(safe_pickle, "MAX_ITEMS", 1000)
    path = _pickle_file(tmp_path, b"\x80\x02]" + b"Na" * 2000 + b".")
    _expect_format_error(path, match="more than 1000 container items")


def test_refused_global_in_dropped_value_is_still_refused(tmp_path: Path) -> None:
    data = checkpoint(
        2,
        [("conv1_w_momentum", lambda e: e.call("os", "system", [lambda: e.value("true")]))],
    )
    _expect_format_error(_pickle_file(tmp_path, data), UnsafePickleError, "'os.system'")


def test_emit_helper_builds_valid_checkpoints(tmp_path: Path) -> None:
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    for protocol in range(6):
        data = checkpoint(protocol, [("conv1_w", lambda e: e.array(w))])
        ckpt = read_checkpoint(_pickle_file(tmp_path, data, f"ok{protocol}.pkl"))
        np.testing.assert_array_equal(ckpt.blobs["conv1_w"], w)
