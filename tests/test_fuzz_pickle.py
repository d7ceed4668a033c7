"""Bounded fuzzing of the pickle reader: only NLConvertError (or a valid result) comes out.

A seeded mutator (bit flips, byte writes, truncations, insertions, deletions, splices)
runs over valid checkpoints of protocols 0-5, through ``read_checkpoint`` (sniffing
included) and straight into the VM. A hypothesis test checks the VM against stdlib
pickle on random plain values.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlconvert.errors import NLConvertError
from nlconvert.io import loads_pickle, read_checkpoint, write_flat_pkl, write_official_pkl
from nlconvert.io.checkpoint import keep_blob

N_PICKLE_CASES = 2000
SEED = 20260
OPCODES = b"(.012FIJKLMNPQRSTUVXabcdeghijlopqrstu}])G\x80\x81\x82\x85\x86\x87\x88\x89\x8a\x8b" + (
    b"BC\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98"
)


def _seeds(tmp_path: Path) -> list[bytes]:
    rng = np.random.default_rng(7)
    params = {
        "conv1_w": rng.standard_normal((4, 3, 1, 3, 3)).astype(np.float32),
        "res_conv1_bn_s": rng.standard_normal(4).astype(np.float32),
        "res_conv1_bn_riv": rng.random(4).astype(np.float32),
        "pred_b": rng.standard_normal(3).astype(np.float32),
    }
    seeds = [
        write_official_pkl(tmp_path / "official.pkl", params, 400000, 1e-4).read_bytes(),
        write_flat_pkl(tmp_path / "flat.pkl", params).read_bytes(),
    ]
    entries: dict = {k.encode(): v for k, v in params.items()}
    entries["lr"] = np.array(0.01, np.float32)
    entries["model_iter"] = 7
    for protocol in range(6):
        seeds.append(pickle.dumps({"blobs": entries}, protocol=protocol))
    return seeds


def mutate(data: bytes, pool: list[bytes], r: random.Random) -> bytes:
    """One to three random edits of ``data``."""
    b = bytearray(data)
    for _ in range(r.randint(1, 3)):
        kind = r.randrange(7)
        pos = r.randrange(len(b) + 1)
        if kind == 0 and b:  # bit flips
            for _ in range(r.randint(1, 4)):
                i = r.randrange(len(b))
                b[i] ^= 1 << r.randrange(8)
        elif kind == 1 and b:  # random byte values
            for _ in range(r.randint(1, 4)):
                b[r.randrange(len(b))] = r.randrange(256)
        elif kind == 2:  # truncation
            del b[pos:]
        elif kind == 3:  # insert opcodes / junk
            junk = bytes(r.choice(OPCODES) for _ in range(r.randint(1, 6)))
            b[pos:pos] = junk
        elif kind == 4:  # delete a chunk
            del b[pos : pos + r.randint(1, 64)]
        elif kind == 5:  # splice with another seed
            other = r.choice(pool)
            b = b[:pos] + other[r.randrange(len(other) + 1) :]
        else:  # duplicate a chunk
            chunk = b[pos : pos + r.randint(1, 128)]
            b[pos:pos] = chunk
    return bytes(b)


def test_fuzz_pickle_reader(tmp_path: Path) -> None:
    seeds = _seeds(tmp_path)
    r = random.Random(SEED)
    path = tmp_path / "fuzz.pkl"
    bad: list[str] = []
    outcomes = {"ok": 0, "error": 0}
    for case in range(N_PICKLE_CASES):
        data = mutate(r.choice(seeds), seeds, r)
        path.write_bytes(data)
        for through_file in (True, False):
            try:
                if through_file:
                    read_checkpoint(path)
                else:
                    loads_pickle(data, name="fuzz.pkl", keep=keep_blob)
                outcomes["ok"] += 1
            except NLConvertError as e:
                outcomes["error"] += 1
                if not str(e).isprintable():
                    bad.append(f"case {case}: non-printable message {e!r}")
            except Exception as e:  # noqa: BLE001 - this is what the test hunts for
                bad.append(f"case {case}: {type(e).__name__}: {e} (data {data[:40]!r}...)")
    assert not bad, bad[:5]
    assert outcomes["error"] > N_PICKLE_CASES // 2  # the mutations really break things


plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
arrays = st.builds(
    lambda shape, dtype, seed: (
        np.random.default_rng(seed).standard_normal(int(np.prod(shape))).astype(dtype).reshape(shape)
    ),
    st.lists(st.integers(0, 4), max_size=3).map(tuple),
    st.sampled_from(["f2", "f4", "f8", ">f4", "i4", "u1", "?"]),
    st.integers(0, 1000),
)


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=plain, array=arrays, protocol=st.integers(0, 5))
def test_vm_agrees_with_stdlib_pickle(value: object, array: np.ndarray, protocol: int) -> None:
    data = pickle.dumps({"v": value, "a": array}, protocol=protocol)
    got = loads_pickle(data)
    assert got["v"] == value
    assert got["a"].dtype == array.dtype and got["a"].shape == array.shape
    assert got["a"].tobytes() == array.tobytes()
