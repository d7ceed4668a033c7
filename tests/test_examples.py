"""The scripts in examples/ run as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_convert_export_run(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "convert_export_run.py"), "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "top-5" in proc.stdout and " 1. " in proc.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == ["i3d_nonlocal_8x8.onnx", "i3d_nonlocal_8x8.pkl", "i3d_nonlocal_8x8.pt"], names


def test_finetune_small(tmp_path: Path) -> None:
    """examples/finetune.py end to end at its smallest (the README shows the --quick run)."""
    pytest.importorskip("av")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "finetune.py"), "--out", str(out), "--epochs", "1",
         "--train-videos", "1", "--val-videos", "1", "--batch-size", "3"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1: loss" in proc.stdout and "val accuracy" in proc.stdout
    assert "predict held_out.mp4" in proc.stdout
    # The new class names, in the prediction and in the saved file.
    assert all(name in proc.stdout.split("predict held_out.mp4")[1]
               for name in ("still", "sliding", "flickering"))
    import nlconvert

    saved = nlconvert.load_model(out / "finetuned.pt")
    assert saved.class_names == ["still", "sliding", "flickering"]
    assert saved.provenance["training"]["norm"] == "frozen"
