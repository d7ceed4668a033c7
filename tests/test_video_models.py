"""The video path with the real nlconvert models (.pt, .pkl, .onnx); skipped where absent."""

from __future__ import annotations

import numpy as np
import pytest
import videos as V

from nlconvert.video import load_views, open_scorer, predict

pytest.importorskip("av")
torch = pytest.importorskip("torch")

ARCH = "c2d_baseline_8x8"  # the cheapest zoo net: R50 C2D, 8 x 8 clips


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return V.make_video(tmp_path_factory.mktemp("m") / "clip.mp4", 320, 240, 30)


@pytest.fixture(scope="module")
def model():
    resnet = pytest.importorskip("nlconvert.model.resnet")
    from nlconvert.classes import default_class_names
    from nlconvert.zoo import get_arch

    arch = get_arch(ARCH)
    torch.manual_seed(0)
    return resnet.build_model(arch, "fully_conv", default_class_names(arch.num_classes))


def _reference(model, video, views):
    with torch.inference_mode():
        x = torch.from_numpy(load_views(video, model.arch.frames, model.arch.sample_rate, views))
        return model(x).double().sum(0).numpy()


def test_pt_model(model, video, tmp_path):
    convert = pytest.importorskip("nlconvert.convert")
    if not hasattr(convert, "save_model"):
        pytest.skip("nlconvert.convert.save_model not available")
    path = convert.save_model(model, tmp_path / f"{ARCH}.pt")
    scorer = open_scorer(path)
    assert (scorer.frames, scorer.rate) == (8, 8) and scorer.class_names[0] == "abseiling"
    scores = predict(scorer, video, "1x1")
    assert scores.shape == (400,) and abs(scores.sum() - 1) < 1e-4
    np.testing.assert_allclose(scores, _reference(model, video, "1x1"), rtol=1e-4, atol=1e-6)


def test_pkl_checkpoint(video, tmp_path):
    synthetic = pytest.importorskip("nlconvert.synthetic")
    pytest.importorskip("nlconvert.convert")
    path = synthetic.write_synthetic_checkpoint(
        ARCH, tmp_path / f"{ARCH}_IN_pretrain_400k.pkl", 0, "official", None
    )
    scorer = open_scorer(path)
    scores = predict(scorer, video, "1x1")
    assert scores.shape == (400,) and abs(scores.sum() - 1) < 1e-4
    np.testing.assert_allclose(scores, _reference(scorer.model, video, "1x1"), rtol=1e-4)


@pytest.mark.slow
def test_onnx_model(model, video, tmp_path):
    pytest.importorskip("onnxruntime")
    export = pytest.importorskip("nlconvert.onnx_export")
    pytest.importorskip("nlconvert.onnx_runtime")
    path = tmp_path / f"{ARCH}.onnx"
    shape = (1, 3, 8, 256, 256)
    export.export_onnx(model, path, head="fully_conv", example_shape=shape,
                       check_shapes=[shape], log=None)
    scorer = open_scorer(path)
    scores = predict(scorer, video, "1x1", batch=1)
    np.testing.assert_allclose(scores, _reference(model, video, "1x1"), rtol=1e-3, atol=1e-6)
