"""Bounded fuzzing of the init_net reader: only NLConvertError (or a valid result) comes out."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from nlconvert.errors import NLConvertError
from nlconvert.io import netdef_from_blobs, read_checkpoint
from nlconvert.io.caffe2_pb import NetDef, make_op

N_NETDEF_CASES = 1000
SEED = 31337


def _seeds(caffe2_tiny: Path) -> list[bytes]:
    rng = np.random.default_rng(5)
    blobs = {
        "conv1_w": rng.standard_normal((4, 3, 1, 3, 3)).astype(np.float32),
        "pred_b": rng.standard_normal(3).astype(np.float32),
        "idx": np.arange(4, dtype=np.int64),
    }
    seeds = [netdef_from_blobs(blobs).SerializeToString()]
    net = NetDef(name="init")
    net.op.append(make_op("ConstantFill", [], ["bias"], shape=[8], value=0.5))
    net.op.append(make_op("GivenTensorFill", [], ["data"], shape=[1, 1], values=[0.0]))
    net.op.append(make_op("GivenTensorFill", [], ["w"], shape=[2, 2], values=[1.0, 2, 3, 4]))
    seeds.append(net.SerializeToString())
    data = (caffe2_tiny / "tiny_val_init_net.pb").read_bytes()
    # Keep the cases small: the header and the first few ops of the real file.
    seeds.append(data[:4000])
    seeds.append(data)
    return seeds


def _mutate(data: bytes, pool: list[bytes], r: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(r.randint(1, 3)):
        kind = r.randrange(6)
        pos = r.randrange(len(b) + 1)
        if kind == 0 and b:
            i = r.randrange(len(b))
            b[i] ^= 1 << r.randrange(8)
        elif kind == 1 and b:
            b[r.randrange(len(b))] = r.choice((0x00, 0x08, 0x0A, 0x12, 0x30, 0x2A, 0x7F, 0xFF))
        elif kind == 2:
            del b[pos:]
        elif kind == 3:
            b[pos:pos] = bytes(r.randrange(256) for _ in range(r.randint(1, 8)))
        elif kind == 4:
            del b[pos : pos + r.randint(1, 32)]
        else:
            other = r.choice(pool)
            b = b[:pos] + other[r.randrange(len(other) + 1) :]
    return bytes(b)


def test_fuzz_init_net_reader(tmp_path: Path, caffe2_tiny: Path) -> None:
    seeds = _seeds(caffe2_tiny)
    r = random.Random(SEED)
    path = tmp_path / "init_net.pb"
    bad: list[str] = []
    errors = 0
    for case in range(N_NETDEF_CASES):
        data = _mutate(r.choice(seeds), seeds, r)
        path.write_bytes(data)
        try:
            read_checkpoint(path)
        except NLConvertError as e:
            errors += 1
            if not str(e).isprintable():
                bad.append(f"case {case}: non-printable message {e!r}")
        except Exception as e:  # noqa: BLE001 - this is what the test hunts for
            bad.append(f"case {case}: {type(e).__name__}: {e}")
    assert not bad, bad[:5]
    assert errors > N_NETDEF_CASES // 3
