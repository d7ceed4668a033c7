"""Every zoo network: the exported ONNX file (default graph) against the numpy Caffe2 reference."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from zoo_cases import VIDEO, small_frames  # noqa: E402

from nlconvert.arch import Head  # noqa: E402
from nlconvert.arch.zoo import get_arch  # noqa: E402
from nlconvert.convert import convert_checkpoint  # noqa: E402
from nlconvert.parity.run import run_parity  # noqa: E402
from nlconvert.runtime.onnx_export import FP32_RTOL, export_onnx  # noqa: E402

MakeCheckpoint = Callable[..., Path]


def _export_and_compare(ckpt: Path, tmp_path: Path, head: Head, frames: int, size: int,
                        batch: int = 1) -> None:
    """Export at (batch, frames, size), then compare the file with the reference at that shape."""
    model = convert_checkpoint(ckpt, head=head)
    shape = (batch, 3, frames, size, size)
    onnx_file = tmp_path / f"{ckpt.stem}_{head}.onnx"
    export_onnx(model, onnx_file, head=head, example_shape=shape, check_shapes=[shape], log=None)
    result = run_parity(ckpt, onnx_path=onnx_file, frames=frames, size=size, batch=batch,
                        head=head)
    rows = [r for r in result.rows if r.side == "onnx_file"]
    assert len(rows) == 1, [r.side for r in result.rows]
    assert result.ok, [(r.name, r.side, r.max_rel_err) for r in result.rows if not r.ok]
    assert result.topk["onnx_file"] == result.topk["reference"]


@pytest.mark.parametrize("name", VIDEO)
def test_onnx_matches_reference_small(name: str, make_checkpoint: MakeCheckpoint,
                                      tmp_path: Path) -> None:
    _export_and_compare(make_checkpoint(name, seed=21), tmp_path, "clip", small_frames(name),
                        64, batch=2)


def test_exported_at_8x224_runs_at_16x256(make_checkpoint: MakeCheckpoint, tmp_path: Path) -> None:
    model = convert_checkpoint(make_checkpoint("i3d_nonlocal_8x8", seed=22))
    report = export_onnx(model, tmp_path / "m.onnx", example_shape=(1, 3, 8, 224, 224),
                         check_shapes=[(1, 3, 16, 256, 256)], log=None)
    assert [c.shape for c in report.checks] == [(1, 3, 8, 224, 224), (1, 3, 16, 256, 256)]
    assert all(c.max_rel <= FP32_RTOL and c.top1_agree == 1.0 for c in report.checks)


@pytest.mark.slow
@pytest.mark.parametrize("name", VIDEO)
def test_onnx_matches_reference_training_clip(name: str, make_checkpoint: MakeCheckpoint,
                                              tmp_path: Path) -> None:
    _export_and_compare(make_checkpoint(name, seed=23), tmp_path, "clip", get_arch(name).frames,
                        224)


@pytest.mark.slow
@pytest.mark.parametrize("name", VIDEO)
def test_onnx_matches_reference_fully_conv_256(name: str, make_checkpoint: MakeCheckpoint,
                                               tmp_path: Path) -> None:
    _export_and_compare(make_checkpoint(name, seed=24), tmp_path, "fully_conv",
                        get_arch(name).frames, 256)
