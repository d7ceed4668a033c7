"""``nlconvert bench`` end to end on a small model."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")

from nlconvert.cli import main  # noqa: E402
from nlconvert.convert import save_model  # noqa: E402
from nlconvert.deploy.synthetic import synthetic_model  # noqa: E402
from nlconvert.zoo import get_arch  # noqa: E402


def test_bench_cli_json(tmp_path, capsys):
    model = synthetic_model(get_arch("c2d_baseline_8x8"), seed=9, calib_shape=(8, 32, 32))
    pt = save_model(model, tmp_path / "c2d.pt")
    out = tmp_path / "bench.json"
    rc = main(["bench", str(pt), "--frames", "8", "--size", "32", "--batch", "1,2",
               "--threads", "1", "--runs", "2", "--warmup", "1", "--fast", "--int8",
               "--layouts", "frames,ncthw", "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())
    paths = {(r["path"], r["precision"], r["batch"]) for r in rows}
    assert ("pytorch-eager", "fp32", 1) in paths and ("onnxruntime", "fp32", 2) in paths
    assert ("onnxruntime-int8", "int8", 1) in paths
    assert ("onnxruntime-ncthw", "fp32", 2) in paths
    ort_row = next(r for r in rows if r["path"] == "onnxruntime")
    assert ort_row["max_rel_err"] < 1e-4 and ort_row["top1_agree"] == 1.0
    text = capsys.readouterr().out
    assert "threads 1" in text and "speed-up" in text


def test_bench_cli_bad_layouts(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", str(tmp_path / "missing.pt"), "--layouts", "frames,nhwc"])
    assert info.value.code == 2
    assert "frames,ncthw" in capsys.readouterr().err
