"""``nlconvert export-caffe2``: the core function and the command line."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from nlconvert.arch.zoo import get_arch
from nlconvert.errors import ArchitectureError, MappingError, OutputExistsError
from nlconvert.io import netdef_from_blobs
from nlconvert.reference import load_net, run_net
from nlconvert.reference.caffe2_export import INIT_NET, PREDICT_NET, export_caffe2
from nlconvert.reference.netdef_builder import build_predict_net, expected_blob_names
from nlconvert.synthetic import random_blobs

ARCH = "c2d_baseline_8x8"  # the smallest zoo net: export + read back stays a few seconds


@pytest.fixture(scope="module")
def blobs() -> dict[str, np.ndarray]:
    return random_blobs(get_arch(ARCH), seed=11)


def test_errors_are_raised_before_anything_is_written(tmp_path: Path, blobs):
    arch = get_arch(ARCH)
    partial = dict(blobs)
    del partial["res4_2_branch2b_bn_riv"]
    with pytest.raises(MappingError, match="res4_2_branch2b_bn_riv"):
        export_caffe2(arch, partial, tmp_path / "a")
    bad = dict(blobs, pred_w=np.zeros((10, 2048), np.float32))
    with pytest.raises(MappingError, match=r"pred_w \(10, 2048\)"):
        export_caffe2(arch, bad, tmp_path / "b")
    with pytest.raises(ArchitectureError, match="2D"):
        export_caffe2(get_arch("r50_imagenet_2d"), blobs, tmp_path / "c")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / PREDICT_NET).write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="force=True"):
        export_caffe2(arch, blobs, tmp_path / "d")
    assert not (tmp_path / "d" / INIT_NET).exists()  # checked before the first write
    assert not any((tmp_path / n).exists() for n in ("a", "b", "c"))


def _check_pair(out: Path, blobs: dict[str, np.ndarray], head: str, batch: int) -> None:
    arch = get_arch(ARCH)
    init, predict = load_net(out / INIT_NET), load_net(out / PREDICT_NET)
    assert predict.SerializeToString() == build_predict_net(arch, head, batch).SerializeToString()
    assert [op.output[0] for op in init.op] == expected_blob_names(arch, head)
    assert {op.type for op in init.op} == {"GivenTensorFill"}
    ws = run_net(init, {}, record=False)
    for name in expected_blob_names(arch, head):
        assert ws[name].dtype == np.float32
        np.testing.assert_array_equal(ws[name], blobs[name])


def test_cli_exports_an_init_net_checkpoint(tmp_path: Path, blobs, capsys):
    """A checkpoint given as init_net.pb (plus blobs the net does not read) round-trips."""
    from nlconvert.cli import main

    src = tmp_path / "weights_init_net.pb"
    src.write_bytes(netdef_from_blobs(blobs).SerializeToString())
    out = tmp_path / "out"
    rc = main(["export-caffe2", str(src), "-o", str(out), "--arch", ARCH,
               "--head", "fully_conv", "--batch-size", "2"])
    assert rc == 0
    assert "batch size 2 is baked" in capsys.readouterr().out
    _check_pair(out, blobs, "fully_conv", 2)
    rc = main(["export-caffe2", str(src), "-o", str(out), "--arch", ARCH])
    assert rc == 2 and "--force" in capsys.readouterr().err


def test_cli_reports_missing_blobs_of_a_foreign_checkpoint(tmp_path: Path, capsys):
    from nlconvert.cli import main

    src = tmp_path / "tiny.pkl"
    tiny = {"blobs": {"conv1_w": np.zeros((64, 3, 1, 7, 7), np.float32)}}
    src.write_bytes(pickle.dumps(tiny, protocol=2))
    rc = main(["export-caffe2", str(src), "-o", str(tmp_path / "o"), "--arch", ARCH])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("nlconvert: error:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_exported_pair_runs_at_full_size(tmp_path: Path, blobs):
    arch = get_arch(ARCH)
    export_caffe2(arch, blobs, tmp_path, head="clip", batch_size=1)
    ws = run_net(load_net(tmp_path / INIT_NET), {}, record=False)
    x = np.random.default_rng(0).standard_normal((1, 3, arch.frames, 224, 224), dtype=np.float32)
    ws.update(data=x)
    out = run_net(load_net(tmp_path / PREDICT_NET), ws, record=False)
    direct = run_net(build_predict_net(arch, "clip", 1), {**blobs, "data": x}, record=False)
    np.testing.assert_array_equal(out["softmax"], direct["softmax"])
    np.testing.assert_allclose(out["softmax"].sum(), 1.0, rtol=1e-5)
