"""Run one clip through the numpy Caffe2 reference, the PyTorch model and ONNX; compare.

The reference executes a Caffe2 ``NetDef`` (the user's ``predict_net.pb`` or the one
:mod:`nlconvert.reference.netdef_builder` writes) on the checkpoint's own blobs; it shares
no code with the PyTorch model it checks.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..arch import INPUT_MEAN, INPUT_STD, ArchSpec, Head, default_class_names, ranked
from ..attention.maps import BlockAttention, Query, block_attention, block_names
from ..convert.formats import is_model_path
from ..convert.pipeline import Conversion, model_from_state, prepare, prepare_model_file
from ..errors import InputShapeError, option
from ..io.caffe2_pb import arg_dict
from ..io.clip_file import load_clip_file
from ..model.resnet import NLResNet
from .compare import LayerComparison, Tolerance, compare_arrays
from .pairs import LayerPair, layer_pairs


@dataclass
class AttentionView:
    """One non-local block's attention on the parity clip, for the report's picture: the
    PyTorch model's weights, the query drawn, and their difference from the weights the
    numpy Caffe2 reference wrote in the same blob (None if it wrote none)."""

    block: BlockAttention
    query: Query
    clip: np.ndarray  # 3 x T x H x W, normalised: the frames under the heat map
    max_abs_err: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""
        q = self.query
        return {"block": self.block.name, "caffe2_blob": self.block.caffe2_blob,
                "shape": list(self.block.weights.shape), "query": [q.t, q.y, q.x],
                "entropy": float(self.block.entropy()[q.t, q.y, q.x]),
                "max_abs_err_vs_reference": self.max_abs_err}


@dataclass
class ParityResult:
    """Everything a parity report shows."""

    source: str
    arch: ArchSpec
    arch_reason: str
    head: str
    input_shape: tuple[int, ...]
    input_desc: str
    tolerance: Tolerance
    net_source: str
    rows: list[LayerComparison] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    topk: dict[str, list[list[int]]] = field(default_factory=dict)
    class_names: list[str] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    attention: AttentionView | None = None  # one block's attention, for the report's picture

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.ok for r in self.rows) and self.top1_agree

    @property
    def top1_agree(self) -> bool:
        ref = self.topk.get("reference")
        return all(
            [row[0] for row in other] == [row[0] for row in ref]
            for side, other in self.topk.items() if side != "reference" and ref is not None
        )

    def first_failure(self, side: str) -> LayerComparison | None:
        return next((r for r in self.rows if r.side == side and not r.ok), None)

    @property
    def sides(self) -> list[str]:
        return list(dict.fromkeys(r.side for r in self.rows))


def make_input(batch: int, frames: int, size: int, seed: int) -> np.ndarray:
    """A seeded clip of random pixels in [0, 255], normalised as the official loader does."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(batch, 3, frames, size, size)).astype(np.float32)
    return ((pixels - INPUT_MEAN) / INPUT_STD).astype(np.float32)


def _baked_batch(net: Any) -> int | None:
    """The batch size a Caffe2 net's non-local Reshapes were built for (None if none).

    Read off a res4 block when there is one: res3 blocks of the affine models are grouped,
    and their Reshape bakes batch x groups.
    """
    found: dict[bool, int] = {}
    for op in net.op:
        if op.type == "Reshape" and op.output and op.output[0].endswith("_theta"):
            shape = arg_dict(op).get("shape")
            if shape and int(shape[0]) > 0:
                found.setdefault(op.output[0].startswith("nonlocal_conv4_"), int(shape[0]))
    return found.get(True, found.get(False))


def _reference_net(conv: Conversion, user_net: Any, head: Head, clip: np.ndarray) -> tuple[Any, str]:
    from ..reference.netdef_builder import build_predict_net

    n, _, t, h, w = clip.shape
    arch = conv.arch
    if user_net is not None:
        baked = _baked_batch(user_net)
        if baked is not None and baked != n:
            raise InputShapeError(
                f"the predict_net's non-local Reshapes are built for batch {baked} (a Caffe2 "
                f"net computes wrong attention for another batch): pass --batch {baked}"
            )
        return user_net, "the given predict_net.pb"
    if head == "clip":
        if h != w:
            raise InputShapeError(f"the built reference net needs square frames, got {h}x{w}")
        # pool5 of the val net pools (Tp, 7, 7): at another clip size the equivalent is the
        # pool over the whole res5 map, which is what the PyTorch clip head computes.
        t5 = arch.temporal_sizes(t)["res5"]
        ref_arch = dataclasses.replace(arch, frames=t5 * arch.temporal_reduction)
        net = build_predict_net(ref_arch, "clip", n, crop_size=h,
                                pool5_spatial=ArchSpec.spatial_size(h))
    else:
        if arch.nonlocal_block.grouped_stages and arch.has_nonlocal and t != arch.frames:
            raise InputShapeError(
                f"{arch.name}: the Caffe2 test net bakes its non-local groups from the training "
                f"clip: run fully-conv parity with --frames {arch.frames}"
            )
        net = build_predict_net(arch, "fully_conv", n, crop_size=h)
    return net, "built by nlconvert from the architecture (official op order and names)"


def _run_reference(net: Any, blobs: Any, clip: np.ndarray) -> tuple[dict[str, np.ndarray], list[str]]:
    from .._progress import StepBar
    from ..reference.executor import run_net

    ws = {name: np.asarray(a, dtype=np.float32) for name, a in blobs.items()}
    ws["data"] = clip
    bar = StepBar(len(net.op), "numpy Caffe2 reference")
    try:
        out = run_net(net, ws, record=False, on_op=bar.step)
    finally:
        bar.close()
    written = [name for op in net.op for name in op.output]
    return dict(out), written


def _run_torch(model: NLResNet, clip: np.ndarray) -> OrderedDict[str, np.ndarray]:
    with torch.no_grad():
        out, taps = model.forward_intermediates(torch.from_numpy(clip))
    result = OrderedDict((k, v.numpy()) for k, v in taps.items())
    if model.head_mode == "clip":
        result["softmax"] = torch.softmax(out, dim=1).numpy()
    return result


class _Taps(torch.nn.Module):
    """Exports every named activation of a model as an ONNX output."""

    def __init__(self, model: NLResNet, names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, taps = self.model.forward_intermediates(x)
        if self.model.head_mode == "clip":
            taps["softmax"] = torch.softmax(out, dim=1)
        return tuple(taps[n] for n in self.names)


def _run_onnx_layers(model: NLResNet, clip: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "taps.onnx"
        torch.onnx.export(_Taps(model, names), (torch.from_numpy(clip),), str(path),
                          dynamo=False, opset_version=17, input_names=["clip"],
                          output_names=names)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        values = sess.run(names, {"clip": clip})
    return dict(zip(names, values, strict=True))


def _run_onnx_file(path: str | Path, clip: np.ndarray, head: str) -> dict[str, np.ndarray]:
    from ..runtime.onnx_session import OnnxModel

    model = OnnxModel(path, providers=["CPUExecutionProvider"])
    if model.head != head:
        raise InputShapeError(
            f"{path}: the ONNX file has the {model.head} head; run parity with --head {model.head}"
        )
    return {"logits" if head == "clip" else "probs": model(clip)}


def _topk(scores: np.ndarray, k: int = 5) -> list[list[int]]:
    return [ranked(row, k) for row in scores]


def run_parity(
    checkpoint: str | Path,
    *,
    predict_net: str | Path | None = None,
    arch_name: str | None = None,
    onnx_path: str | Path | None = None,
    onnx_layers: bool = False,
    frames: int | None = None,
    size: int | None = None,
    batch: int = 1,
    seed: int = 0,
    input_path: str | Path | None = None,
    head: Head = "clip",
    tolerance: Tolerance | None = None,
    keep_outputs: bool = False,
) -> ParityResult:
    """Convert `checkpoint`, run the same clip through every side, compare layer by layer."""
    tol = tolerance or Tolerance()
    timings: dict[str, float] = {}
    start = time.perf_counter()
    if is_model_path(checkpoint):
        if predict_net is not None or arch_name is not None:
            raise InputShapeError(f"{checkpoint}: a converted model file carries its architecture "
                                  f"and weights; {option('arch')} and {option('predict-net')} are "
                                  "for Caffe2 checkpoints")
        conv = prepare_model_file(checkpoint)
    else:
        conv = prepare(checkpoint, arch_name=arch_name, predict_net=predict_net)
    arch = conv.arch
    timings["convert_s"] = time.perf_counter() - start
    if input_path is not None:
        clip, desc = load_clip_file(input_path), f"{input_path}"
    else:
        frames = frames or arch.frames
        size = size or (arch.crop_size if head == "clip" else 256)
        clip, desc = make_input(batch, frames, size, seed), f"seeded random pixels (seed {seed})"
    # The model gets its own tensors so that the reference reads the checkpoint as it was.
    state = {k: v.clone() for k, v in conv.mapping.state_dict.items()}
    names = conv.meta.get("class_names") or default_class_names(arch.num_classes)
    model = model_from_state(arch, state, head, names)
    model.check_input(torch.from_numpy(clip))
    user_net = None
    if predict_net is not None:
        from ..io.netdef_io import read_netdef

        user_net = read_netdef(predict_net)
    net, net_source = _reference_net(conv, user_net, head, clip)

    t0 = time.perf_counter()
    ref, written = _run_reference(net, conv.blobs, clip)
    timings["reference_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sides: dict[str, dict[str, np.ndarray]] = {"torch": _run_torch(model, clip)}
    timings["torch_s"] = time.perf_counter() - t0
    pairs = layer_pairs(arch, head, written)
    if onnx_layers:
        t0 = time.perf_counter()
        names = [p.torch_name for p in pairs if p.torch_name in sides["torch"]]
        sides["onnx"] = _run_onnx_layers(model, clip, names)
        timings["onnx_layers_s"] = time.perf_counter() - t0
    if onnx_path is not None:
        t0 = time.perf_counter()
        sides["onnx_file"] = _run_onnx_file(onnx_path, clip, head)
        timings["onnx_file_s"] = time.perf_counter() - t0

    result = ParityResult(
        source=str(checkpoint), arch=arch, arch_reason=conv.arch_reason, head=head,
        input_shape=tuple(clip.shape), input_desc=desc, tolerance=tol, net_source=net_source,
        class_names=model.class_names, timings=timings,
    )
    _compare_all(result, pairs, ref, sides)
    final = "pred" if head == "clip" else "softmax"
    if final in ref:
        result.topk["reference"] = _topk(ref[final].reshape(clip.shape[0], -1))
    for side, values in sides.items():
        key = "logits" if head == "clip" else "probs"
        if key in values:
            result.topk[side] = _topk(values[key].reshape(clip.shape[0], -1))
    if keep_outputs:
        result.outputs = _named_outputs(pairs, ref, sides)
    result.attention = _attention_view(model, clip, ref)
    return result


def _attention_view(model: NLResNet, clip: np.ndarray, ref: dict[str, np.ndarray]
                    ) -> AttentionView | None:
    """The first non-local block's attention for the report (its most concentrated query)."""
    names = block_names(model)
    if not names:
        return None
    block = block_attention(model, clip[:1], blocks=names[:1])[names[0]]
    reference = ref.get(block.caffe2_blob)
    err = None
    if reference is not None:
        rows = block.weights.shape[0]  # the first clip's rows: the reference ran the batch
        err = float(np.abs(reference[:rows] - block.weights).max())
    return AttentionView(block, block.informative_queries(1)[0], clip[0], err)


def _compare_all(result: ParityResult, pairs: list[LayerPair], ref: dict[str, np.ndarray],
                 sides: dict[str, dict[str, np.ndarray]]) -> None:
    for side, values in sides.items():
        for pair in pairs:
            if pair.torch_name not in values:
                continue
            if pair.blob not in ref:
                result.skipped.append(f"{pair.blob} (not written by the reference net)")
                continue
            result.rows.append(
                compare_arrays(pair.blob, side, ref[pair.blob], values[pair.torch_name],
                               result.tolerance)
            )


def _named_outputs(pairs: list[LayerPair], ref: dict[str, np.ndarray],
                   sides: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {"reference": {}}
    for pair in pairs:
        if pair.blob in ref:
            out["reference"][pair.blob] = ref[pair.blob]
        for side, values in sides.items():
            if pair.torch_name in values:
                out.setdefault(side, {})[pair.blob] = values[pair.torch_name]
    return out
