"""The video path with the real nlconvert models (.pt, .pkl, .onnx) through every backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import videos as V

from nlconvert.arch import default_class_names, get_arch
from nlconvert.convert import save_model
from nlconvert.model import build_model
from nlconvert.runtime.backends import open_backend
from nlconvert.runtime.onnx_export import export_onnx
from nlconvert.synthetic import write_synthetic_checkpoint
from nlconvert.video import load_views, predict

pytest.importorskip("av")

ARCH = "c2d_baseline_8x8"  # the cheapest zoo net: R50 C2D, 8 x 8 clips


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return V.make_video(tmp_path_factory.mktemp("m") / "clip.mp4", 320, 240, 30)


@pytest.fixture(scope="module")
def model():
    arch = get_arch(ARCH)
    torch.manual_seed(0)
    return build_model(arch, "fully_conv", default_class_names(arch.num_classes))


def _reference(model, video, views):
    with torch.inference_mode():
        x = torch.from_numpy(load_views(video, model.arch.frames, model.arch.sample_rate, views))
        return model(x).double().sum(0).numpy()


def test_pt_model(model, video, tmp_path):
    path = save_model(model, tmp_path / f"{ARCH}.pt")
    backend = open_backend(path, "torch")
    assert (backend.arch.frames, backend.arch.sample_rate) == (8, 8)
    assert backend.class_names[0] == "abseiling"
    scores = predict(backend, video, "1x1")
    assert scores.shape == (400,) and abs(scores.sum() - 1) < 1e-4
    np.testing.assert_allclose(scores, _reference(model, video, "1x1"), rtol=1e-4, atol=1e-6)


def test_pkl_checkpoint(video, tmp_path):
    path = write_synthetic_checkpoint(ARCH, tmp_path / f"{ARCH}_IN_pretrain_400k.pkl")
    backend = open_backend(path, "torch")
    scores = predict(backend, video, "1x1")
    assert scores.shape == (400,) and abs(scores.sum() - 1) < 1e-4
    np.testing.assert_allclose(scores, _reference(backend.model, video, "1x1"), rtol=1e-4)


@pytest.mark.slow
def test_onnx_model(model, video, tmp_path):
    path = tmp_path / f"{ARCH}.onnx"
    shape = (1, 3, 8, 256, 256)
    export_onnx(model, path, head="fully_conv", example_shape=shape, check_shapes=[shape], log=None)
    backend = open_backend(path, "onnx", batch_size=1)
    scores = predict(backend, video, "1x1")
    np.testing.assert_allclose(scores, _reference(model, video, "1x1"), rtol=1e-3, atol=1e-6)
