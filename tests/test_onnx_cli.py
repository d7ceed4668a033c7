"""The export-onnx and run commands end to end, and the GPU path (skipped without CUDA)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from nlconvert.arch.zoo import get_arch  # noqa: E402
from nlconvert.cli import main  # noqa: E402
from nlconvert.convert import save_model  # noqa: E402
from nlconvert.runtime.onnx_session import OnnxModel, available_providers, open_session  # noqa: E402
from nlconvert.synthetic.clips import seeded_clip  # noqa: E402
from nlconvert.synthetic.models import synthetic_model  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A grouped-NL affine model (i3d_nonlocal_32x4) saved as .pt and exported by the CLI."""
    d = tmp_path_factory.mktemp("cli")
    model = synthetic_model(get_arch("i3d_nonlocal_32x4"), seed=7, calib_shape=(8, 32, 32))
    pt = save_model(model, d / "i3d_nonlocal_32x4.pt")
    onnx_path = d / "nl.onnx"
    rc = main(["export-onnx", str(pt), "-o", str(onnx_path), "--shape", "1,3,8,32,32",
               "--check-shape", "2,3,16,40,32"])
    assert rc == 0
    return model, pt, onnx_path


def test_export_cli_and_refuses_overwrite(saved, capsys):
    _, pt, onnx_path = saved
    assert onnx_path.exists()
    rc = main(["export-onnx", str(pt), "-o", str(onnx_path), "--shape", "1,3,8,32,32"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "--force" in err and len(err.splitlines()) == 1


def test_run_cli_prints_kinetics_names(saved, tmp_path, capsys):
    model, _, onnx_path = saved
    clip = seeded_clip((1, 3, 8, 32, 32), 21)
    np.save(tmp_path / "clip.npy", clip.numpy()[0])  # one clip without the batch axis
    rc = main(["run", str(onnx_path), str(tmp_path / "clip.npy"), "--topk", "3",
               "--save", str(tmp_path / "out.npy")])
    assert rc == 0
    out = capsys.readouterr().out
    with torch.no_grad():
        top = int(model(clip).argmax())
    assert f"1. {model.class_names[top]} ({top})" in out
    assert np.load(tmp_path / "out.npy").shape == (1, 400)


def test_run_cli_bad_frames_one_line(saved, tmp_path, capsys):
    _, _, onnx_path = saved
    np.save(tmp_path / "bad.npy", np.zeros((1, 3, 12, 32, 32), np.float32))
    rc = main(["run", str(onnx_path), str(tmp_path / "bad.npy")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "multiple of 8" in err


def test_open_session_reports_provider(saved):
    _, _, onnx_path = saved
    session, provider = open_session(onnx_path, threads=1)
    assert provider in available_providers()
    assert session.get_inputs()[0].name == "clip"
    om = OnnxModel(onnx_path, providers=["CPUExecutionProvider"])
    assert om.provider == "CPUExecutionProvider" and "i3d_nonlocal_32x4" in repr(om)


def _has_cuda() -> bool:
    return torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda(), reason="needs CUDA (torch and onnxruntime-gpu)")
def test_cuda_fp16_onnx_matches_pytorch_fp16(tmp_path):
    from nlconvert.runtime.onnx_export import export_onnx

    model = synthetic_model(get_arch("i3d_nonlocal_8x8"), seed=8)
    shape = (8, 3, 8, 224, 224)
    path = tmp_path / "fp16.onnx"
    export_onnx(model, path, fp16=True, check_shapes=[(1, 3, 8, 224, 224)], log=None)
    om = OnnxModel(path, providers=["CUDAExecutionProvider"])
    assert om.provider == "CUDAExecutionProvider"
    clip = seeded_clip(shape, 1)
    with torch.no_grad():
        ref = model(clip).numpy()
    out = om(clip.numpy())
    assert float(np.abs(out - ref).max() / np.abs(ref).max()) < 5e-2
    net = model.half().cuda()
    x = clip.half().cuda()

    def timed(fn) -> float:
        fn()
        ts = []
        for _ in range(5):
            start = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - start)
        return float(np.median(ts))

    def torch_run() -> None:
        with torch.no_grad():
            net(x)
        torch.cuda.synchronize()

    t_torch = timed(torch_run)
    t_ort = timed(lambda: om(clip.numpy()))
    # Speed is a benchmark's business (benchmarks/), not a test's: printed, not asserted.
    print(f"batch 8 fp16: pytorch {t_torch:.4f}s, onnxruntime-cuda {t_ort:.4f}s")
