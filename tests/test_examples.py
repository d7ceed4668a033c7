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
