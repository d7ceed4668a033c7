"""``nlconvert bench`` end to end on a small model."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")

from nlconvert.arch.zoo import get_arch  # noqa: E402
from nlconvert.cli import main  # noqa: E402
from nlconvert.convert import save_model  # noqa: E402
from nlconvert.synthetic.models import synthetic_model  # noqa: E402


def test_bench_cli_json(tmp_path, capsys):
    model = synthetic_model(get_arch("c2d_baseline_8x8"), seed=9, calib_shape=(8, 32, 32))
    pt = save_model(model, tmp_path / "c2d.pt")
    out = tmp_path / "bench.json"
    rc = main(["bench", str(pt), "--frames", "8", "--size", "32", "--batch-sizes", "1,2",
               "--threads", "1", "--runs", "1", "--warmup", "0", "--backend", "onnx,fast",
               "--no-compile", "--int8", "--layouts", "frames,ncthw", "--error-clips", "1",
               "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())
    paths = {(r["path"], r["precision"], r["batch"]) for r in rows}
    assert ("torch", "fp32", 1) in paths and ("onnx", "fp32", 2) in paths
    assert ("onnx-int8", "int8", 1) in paths
    assert ("onnx-ncthw", "fp32", 2) in paths
    assert any(r["path"] == "fast" for r in rows)
    ort_row = next(r for r in rows if r["path"] == "onnx")
    assert ort_row["max_rel_err"] < 1e-4 and ort_row["top1_agree"] == 1.0
    text = capsys.readouterr().out
    assert "threads 1" in text and "speed-up" in text
    # the JSON file is an output like any other: not replaced without --force
    assert main(["bench", str(pt), "--frames", "8", "--size", "32", "--backend", "onnx",
                 "--json", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_bench_cli_bad_layouts(tmp_path, capsys):
    pt = tmp_path / "m.pt"
    pt.write_bytes(b"x")
    assert main(["bench", str(pt), "--layouts", "frames,nhwc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "frames,ncthw" in err[0]
