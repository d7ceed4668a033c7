"""ONNX export: dynamic shapes, metadata, verification, fp16, static, atomic output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from nlconvert.arch.zoo import get_arch  # noqa: E402
from nlconvert.errors import InputShapeError, OutputExistsError, ParityError  # noqa: E402
from nlconvert.runtime.onnx_export import FP32_RTOL, FP32_RTOL_PROBS, export_onnx  # noqa: E402
from nlconvert.runtime.onnx_session import OnnxModel  # noqa: E402
from nlconvert.synthetic.clips import seeded_clip  # noqa: E402
from nlconvert.synthetic.models import synthetic_model  # noqa: E402

SMALL = (1, 3, 8, 32, 32)


def _torch_out(model, clip: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(clip).numpy()


def _rel(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(out - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def c2d_model():
    return synthetic_model(get_arch("c2d_baseline_8x8"), seed=1, calib_shape=(8, 32, 32))


@pytest.fixture(scope="module")
def c2d(tmp_path_factory, c2d_model):
    """C2D (BN, no non-local), exported at 8x32x32, verified also at 2x16x48x48."""
    model = c2d_model
    path = tmp_path_factory.mktemp("c2d") / "c2d.onnx"
    report = export_onnx(model, path, example_shape=SMALL,
                         check_shapes=[SMALL, (2, 3, 16, 48, 48)], log=None)
    return model, path, report


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """I3D, affine norms, grouped non-local in res3 (needs frames a multiple of 8)."""
    model = synthetic_model(get_arch("i3d_nonlocal_32x4"), seed=2, calib_shape=(8, 32, 32))
    path = tmp_path_factory.mktemp("grouped") / "i3d_nl_32x4.onnx"
    report = export_onnx(model, path, example_shape=SMALL,
                         check_shapes=[SMALL, (2, 3, 16, 32, 48)], log=None)
    return model, path, report


def test_c2d_export_checks_and_metadata(c2d):
    model, path, report = c2d
    assert [c.shape for c in report.checks] == [SMALL, (2, 3, 16, 48, 48)]
    assert all(c.max_rel <= FP32_RTOL and c.top1_agree == 1.0 for c in report.checks)
    proto = onnx.load(str(path))
    assert {o.domain: o.version for o in proto.opset_import}[""] >= 17
    assert [i.name for i in proto.graph.input] == ["clip"]
    # the clip head's file gives the logits first, then the features before them
    assert [o.name for o in proto.graph.output] == ["logits", "pool5", "res4"]
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "frames", "height", "width"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["nlconvert.arch"])["name"] == "c2d_baseline_8x8"
    assert meta["nlconvert.head"] == "clip"
    assert len(json.loads(meta["nlconvert.class_names"])) == 400
    assert meta["nlconvert.version"]
    assert "exporter" in json.loads(meta["nlconvert.provenance"])
    assert "Input 'clip'" in proto.doc_string
    # One self-contained file: no external data, nothing else written beside it.
    assert not any(init.external_data for init in proto.graph.initializer)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.parametrize("arch", ["i3d_nonlocal_8x8", "i3d_nonlocal_32x4", "c2d_nonlocal_32x2"])
def test_layouts_agree_and_frames_graph_is_2d(tmp_path, arch):
    """Both graph layouts match the exact model; the default one has only 2-D convolutions."""
    spec = get_arch(arch)
    t = min(spec.frames, 16)
    model = synthetic_model(spec, seed=4, calib_shape=(t, 32, 32))
    shape = (1, 3, t, 32, 32)
    other = (2, 3, 2 * t, 48, 32)
    clip = seeded_clip(other, 5)
    ref = _torch_out(model, clip)
    ranks = {}
    for layout in ("frames", "ncthw"):
        path = tmp_path / f"{layout}.onnx"
        report = export_onnx(model, path, example_shape=shape, check_shapes=[shape, other],
                             layout=layout, log=None)
        assert report.layout == layout and all(c.max_rel <= FP32_RTOL for c in report.checks)
        assert _rel(OnnxModel(path)(clip.numpy()), ref) <= FP32_RTOL
        proto = onnx.load(str(path))
        weights = {i.name: len(i.dims) for i in proto.graph.initializer}
        ranks[layout] = {weights[n.input[1]] for n in proto.graph.node if n.op_type == "Conv"}
        assert {p.key: p.value for p in proto.metadata_props}["nlconvert.layout"] == layout
    assert ranks == {"frames": {4}, "ncthw": {5}}


def test_odd_clip_lengths_through_the_frames_graph(tmp_path):
    """The shift matrices and temporal pools follow T: export at 8 frames, run at odd lengths."""
    model = synthetic_model(get_arch("i3d_nonlocal_32x2"), seed=6, calib_shape=(16, 32, 32))
    path = tmp_path / "org_stem.onnx"  # conv1 and pool1 with temporal stride 2
    export_onnx(model, path, example_shape=(1, 3, 8, 32, 32), check_shapes=[], log=None)
    om = OnnxModel(path)
    for t in (9, 15, 23):
        clip = seeded_clip((1, 3, t, 32, 40), t)
        assert _rel(om(clip.numpy()), _torch_out(model, clip)) <= FP32_RTOL, t


def test_unknown_layout_refused(tmp_path, c2d_model):
    from nlconvert.runtime.onnx_export import ExportError

    with pytest.raises(ExportError, match="layout"):
        export_onnx(c2d_model, tmp_path / "x.onnx", layout="nhwc", log=None)
    assert list(tmp_path.iterdir()) == []


def test_dynamic_shapes_other_size_matches_pytorch(c2d):
    model, path, _ = c2d
    om = OnnxModel(path, threads=2)
    assert om.arch.name == "c2d_baseline_8x8" and om.head == "clip"
    clip = seeded_clip((3, 3, 24, 40, 56), 11)  # batch, T, H, W all unlike the export
    assert _rel(om(clip.numpy()), _torch_out(model, clip)) <= FP32_RTOL


def test_bad_inputs_one_line_errors(c2d):
    _, path, _ = c2d
    om = OnnxModel(path)
    for bad in (np.zeros((3, 8, 32, 32), np.float32), np.zeros((1, 4, 8, 32, 32), np.float32),
                np.zeros((1, 3, 1, 32, 32), np.float32), np.zeros((1, 3, 8, 16, 32), np.float32)):
        with pytest.raises(InputShapeError) as info:
            om(bad)
        assert "\n" not in str(info.value)


def test_grouped_nonlocal_export_and_runtime_check(grouped):
    model, path, report = grouped
    assert all(c.max_rel <= FP32_RTOL for c in report.checks)
    proto = onnx.load(str(path), load_external_data=False)
    assert "multiple of 8" in proto.doc_string
    om = OnnxModel(path)
    with pytest.raises(InputShapeError, match="divisible by 4") as info:
        om(np.zeros((1, 3, 12, 32, 32), np.float32))
    assert "\n" not in str(info.value)
    clip = seeded_clip((1, 3, 24, 32, 32), 3)  # another valid length
    assert _rel(om(clip.numpy()), _torch_out(model, clip)) <= FP32_RTOL


@pytest.mark.parametrize("layout", ["frames", "ncthw"])
def test_fp16_export_error_bounds(tmp_path, layout):
    model = synthetic_model(get_arch("i3d_nonlocal_8x8"), seed=3, calib_shape=(8, 32, 32))
    path = tmp_path / "fp16.onnx"
    report = export_onnx(model, path, example_shape=SMALL, fp16=True, layout=layout,
                         check_shapes=[SMALL, (2, 3, 16, 48, 48)], log=None)
    assert report.precision == "fp16"
    worst = max(c.max_rel for c in report.checks)
    assert 1e-6 < worst <= 5e-2  # really half precision, and close to fp32
    proto = onnx.load(str(path))
    graph = proto.graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    conv_w = [i for i in graph.initializer if len(i.dims) == (4 if layout == "frames" else 5)]
    assert len(conv_w) > 50 and all(i.data_type == onnx.TensorProto.FLOAT16 for i in conv_w)
    types = {v.name: v.type.tensor_type.elem_type for v in graph.value_info}
    softmax_in = [n.input[0] for n in graph.node if n.op_type == "Softmax"]
    assert len(softmax_in) == 5 and all(types[v] == onnx.TensorProto.FLOAT for v in softmax_in)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["nlconvert.precision"] == "fp16"
    assert meta["nlconvert.layout"] == layout


def test_fully_conv_head_at_224(tmp_path, c2d_model):
    path = tmp_path / "fc.onnx"
    shape = (1, 3, 8, 224, 224)
    report = export_onnx(c2d_model, path, head="fully_conv", example_shape=shape,
                         check_shapes=[shape, (1, 3, 8, 256, 224)], log=None)
    assert report.head == "fully_conv" and c2d_model.head_mode == "clip"
    assert all(c.max_rel <= FP32_RTOL_PROBS for c in report.checks)
    om = OnnxModel(path)
    assert om.output_names == ["probs"] and om.head == "fully_conv"
    with pytest.raises(InputShapeError, match="224x224"):
        om(np.zeros((1, 3, 8, 112, 112), np.float32))
    probs = om(seeded_clip(shape, 9).numpy())
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-4)


def test_static_export(tmp_path, c2d_model):
    model = c2d_model
    path = tmp_path / "static.onnx"
    report = export_onnx(model, path, example_shape=SMALL, dynamic=False, log=None)
    assert [c.shape for c in report.checks] == [SMALL]
    proto = onnx.load(str(path), load_external_data=False)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == list(SMALL)
    om = OnnxModel(path)
    with pytest.raises(InputShapeError, match="static"):
        om(np.zeros((1, 3, 16, 32, 32), np.float32))
    assert om(seeded_clip(SMALL, 1).numpy()).shape == (1, 400)


def test_failed_check_leaves_no_file(tmp_path, c2d_model):
    model = c2d_model
    path = tmp_path / "out.onnx"
    with pytest.raises(ParityError) as info:  # tolerance 0: any rounding fails the check
        export_onnx(model, path, example_shape=(1, 3, 8, 32, 32), tolerance=0.0, log=None)
    assert info.value.exit_code == 1
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary file
    path.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        export_onnx(model, path, example_shape=(1, 3, 8, 32, 32), log=None)
    assert path.read_bytes() == b"old"


def test_interrupted_export_leaves_no_file(tmp_path, monkeypatch, c2d_model):
    import nlconvert.runtime.onnx_export as ox

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ox, "verify_file", boom)
    model = c2d_model
    with pytest.raises(KeyboardInterrupt):
        export_onnx(model, tmp_path / "x.onnx", example_shape=(1, 3, 8, 32, 32), log=None)
    assert list(tmp_path.iterdir()) == []


def test_opset_below_17_refused(tmp_path, c2d_model):
    from nlconvert.runtime.onnx_export import ExportError

    model = c2d_model
    with pytest.raises(ExportError, match="opset"):
        export_onnx(model, tmp_path / "x.onnx", opset=13, log=None)
    assert list(tmp_path.iterdir()) == []

