"""Export an :class:`~nlconvert.model.NLResNet` to ONNX, then prove the file right.

The steps: trace the network with the TorchScript exporter (``dynamo=False``, see below),
by default in its frame-major form (:mod:`nlconvert.runtime.frame_major`: norms folded,
2-D convolutions over ``(N*T) x C x H x W``, which ONNX Runtime's CPU kernels run much faster
than 3-D ones) or, with ``layout="ncthw"``, literally (one ``Conv`` 3-D per Caffe2 conv, norms
as ``BatchNormalization`` / ``Mul`` + ``Add``),
declare batch, frames, height and width dynamic (unless ``static``), store the architecture,
head, class names, version and provenance in ``metadata_props``, optionally convert weights
and compute to float16, then check the file (``onnx.checker`` full check, shape inference)
and run it in ONNX Runtime against the PyTorch model at the export size and at a second
size. Nothing is left at the output path unless every check passed (:func:`atomic_output`).

Why the TorchScript exporter: it reads ``x.shape`` in the non-local reshapes as ``Shape``
ops, so every zoo network exports with dynamic batch/T/H/W and no size of the example input
baked in; the dynamo exporter (torch 2.13's default) fixes each size the example has unless
it is declared with a ``Dim`` whose multiple fits every stride, and may silently produce a
different opset than asked (SPEC.md section 5). Both risks are checked here anyway: the opset
of the file is verified and the file is run at a second shape.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._atomic import atomic_output
from .._version import __version__
from ..arch import GRAPH_LAYOUTS, HEADS, INPUT_MEAN, INPUT_STD, NORMALIZATION, Head
from ..errors import InputShapeError, NLConvertError, ParityError
from ..model.resnet import NLResNet
from .onnx_format import DYNAMIC_AXES, INPUT_NAME, OUTPUT_NAMES, OnnxMetadata
from .tolerances import REDUCED_RTOL

DEFAULT_OPSET = 17
FP32_RTOL = 1e-4  # max |onnx - torch| / max |torch| for a float32 file, clip head (logits)
# The fully-convolutional head outputs probabilities: softmax turns an absolute logit error e
# into a relative probability error of about e, and logits are O(10), so 1e-4 relative on
# the logits is about 1e-3 relative on the probabilities.
FP32_RTOL_PROBS = 1e-3
FP16_RTOL = REDUCED_RTOL["fp16"]  # the same bound for a float16 file (weights and compute in half)
DEFAULT_LAYOUT = GRAPH_LAYOUTS[0]


class ExportError(NLConvertError):
    """The exporter failed or produced a file that does not pass the ONNX checks."""


@dataclass(frozen=True)
class ParityCheck:
    """One ONNX Runtime run of the exported file against the PyTorch model (float32)."""

    shape: tuple[int, ...]
    max_abs: float
    max_rel: float  # max abs error / max |reference|
    top1_agree: float  # fraction of clips whose top-1 class is the same
    top5_agree: float  # fraction of clips whose top-5 sets are the same

    def describe(self) -> str:
        dims = "x".join(map(str, self.shape))
        return (f"{dims}: max abs err {self.max_abs:.3g}, max rel err {self.max_rel:.3g}, "
                f"top-1 agree {self.top1_agree:.0%}, top-5 agree {self.top5_agree:.0%}")


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and measured."""

    path: Path
    opset: int
    head: str
    precision: str
    dynamic: bool
    layout: str = DEFAULT_LAYOUT
    checks: list[ParityCheck] = field(default_factory=list)
    tolerance: float = FP32_RTOL
    size_bytes: int = 0


def compare_outputs(outs: Sequence[np.ndarray], refs: Sequence[np.ndarray], shape: Sequence[int]
                    ) -> ParityCheck:
    """Errors of the outputs `outs` against the references `refs` (the first: N x classes).

    The relative error is the worst over the outputs, each scaled by its own magnitude; top-1
    and top-5 agreement are those of the first output (the scores).
    """
    max_abs = max_rel = 0.0
    for o, r in zip(outs, refs, strict=True):
        o64, r64 = np.asarray(o, dtype=np.float64), np.asarray(r, dtype=np.float64)
        if not r64.size:
            continue
        err = float(np.abs(o64 - r64).max())
        max_abs = max(max_abs, err)
        max_rel = max(max_rel, err / max(float(np.abs(r64).max()), 1e-12))
    out = np.asarray(outs[0], dtype=np.float64)
    ref = np.asarray(refs[0], dtype=np.float64)
    top1 = float(np.mean(out.argmax(-1) == ref.argmax(-1))) if ref.size else 1.0
    k = min(5, ref.shape[-1])
    o5 = np.sort(np.argsort(-out, axis=-1)[:, :k], axis=-1)
    r5 = np.sort(np.argsort(-ref, axis=-1)[:, :k], axis=-1)
    top5 = float(np.mean(np.all(o5 == r5, axis=-1))) if ref.size else 1.0
    return ParityCheck(tuple(int(s) for s in shape), max_abs, max_rel, top1, top5)


def doc_string(model: NLResNet, head: str, dynamic: bool, fp16: bool,
               layout: str = DEFAULT_LAYOUT) -> str:
    """The ONNX ``doc_string``: inputs, outputs and the shapes the network can take."""
    arch = model.arch
    if head == "clip":
        outputs = ("Outputs: 'logits' (N x classes), 'pool5' (N x 2048, the global mean of res5, "
                   "the input of the classifier), 'res4' (N x 1024, the global mean of res4).")
    else:
        outputs = ("Output 'probs': float32 mean over positions of the per-position softmax "
                   "(N x classes probabilities).")
    lines = [
        f"nlconvert {__version__}: {arch.describe()}.",
        f"Input '{INPUT_NAME}': float32 N x 3 x T x H x W, RGB, "
        f"(pixel - {INPUT_MEAN}) / {INPUT_STD}.",
        outputs,
        ("Batch, frames, height and width are dynamic." if dynamic
         else "Static shapes: the input must have exactly the export shape."),
        f"Frames: at least {arch.temporal_reduction}; H, W at least 32.",
    ]
    if any(arch.is_grouped(s) for s in arch.nonlocal_block.grouped_stages):
        g = arch.nonlocal_block.group_size
        lines.append(
            f"Grouped non-local in {', '.join(arch.nonlocal_block.grouped_stages)}: T at res3 "
            f"must be divisible by {g}, i.e. frames a multiple of {g * arch.temporal_reduction}; "
            "other lengths give wrong shapes or an error."
        )
    if head == "fully_conv":
        lines.append(
            f"Fully-convolutional head: needs at least {arch.frames} frames and 224x224 pixels "
            f"(it pools {arch.pool5_temporal_kernel}x7x7 at res5)."
        )
    if fp16:
        lines.append("Weights and compute in float16; softmaxes in float32; input/output float32.")
    if layout == "frames":
        lines.append("Graph: frame-major ((N*T) x C x H x W) 2-D convolutions, norms folded; "
                     "same function as the Caffe2 network up to float32 rounding.")
    lines.append("Check inputs with nlconvert.runtime.onnx_session.OnnxModel (reads the metadata).")
    return "\n".join(lines)


class HeadOutputs(torch.nn.Module):
    """The outputs an export of `net` (an NLResNet or a FrameMajorNet) has for `head`:
    ``FEATURE_OUTPUTS`` for the clip head, the probabilities for the fully-convolutional one."""

    def __init__(self, net: torch.nn.Module, head: Head) -> None:
        super().__init__()
        self.net = net
        self.head = head

    def forward(self, x: torch.Tensor) -> Any:
        if self.head == "clip":
            return self.net.forward_features(x)  # type: ignore[operator]
        return self.net(x)


def _trace(model: torch.nn.Module, example: torch.Tensor, opset: int, dynamic: bool,
           out_names: Sequence[str]) -> bytes:
    buf: Any = io.BytesIO()  # the TorchScript exporter writes to file objects too
    axes: dict[str, dict[int, str]] | None = None
    if dynamic:
        axes = {INPUT_NAME: dict(DYNAMIC_AXES), **{name: {0: "batch"} for name in out_names}}
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo; chosen on purpose.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model, (example,), buf, dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=list(out_names), dynamic_axes=axes,
                do_constant_folding=True,
            )
        except Exception as exc:  # the exporter raises many types
            raise ExportError(f"ONNX export failed: {exc.__class__.__name__}: {exc}") from exc
    return buf.getvalue()


def build_proto(model: NLResNet, *, head: Head | None = None, opset: int = DEFAULT_OPSET,
                dynamic: bool = True, fp16: bool = False,
                example_shape: Sequence[int] | None = None,
                provenance: dict[str, Any] | None = None,
                layout: str = DEFAULT_LAYOUT) -> Any:
    """The ``onnx.ModelProto`` of `model` (not written, not verified)."""
    import onnx

    head = head or model.head_mode
    if head not in HEADS:
        raise ExportError(f"head must be one of {', '.join(HEADS)}, not {head!r}")
    if layout not in GRAPH_LAYOUTS:
        raise ExportError(f"layout must be one of {', '.join(GRAPH_LAYOUTS)}, not {layout!r}")
    if opset < 17:
        raise ExportError(f"opset {opset}: nlconvert exports opset 17 or newer")
    previous = model.head_mode
    model.set_head(head)
    try:
        shape = tuple(example_shape or default_export_shape(model))
        example = torch.zeros(shape)
        model.check_input(example)
        net: torch.nn.Module = model.eval()
        if layout == "frames":
            from .frame_major import FrameMajorNet

            net = FrameMajorNet(model)
        proto = onnx.load_from_string(
            _trace(HeadOutputs(net, head), example, opset, dynamic, OUTPUT_NAMES[head]))
        del net
    finally:
        model.set_head(previous)
    got = {o.domain: o.version for o in proto.opset_import}.get("", 0)
    if got != opset:  # SPEC 5: a requested opset may silently become another
        raise ExportError(f"asked for opset {opset}, the exporter wrote opset {got}")
    if fp16:
        from .fp16 import convert_float16

        proto = convert_float16(proto)
    proto.producer_name = "nlconvert"
    proto.producer_version = __version__
    proto.doc_string = doc_string(model, head, dynamic, fp16, layout)
    prov = dict(provenance if provenance is not None else model.provenance or {})
    prov.setdefault("exporter", f"torch.onnx TorchScript (dynamo=False), torch {torch.__version__}")
    meta = OnnxMetadata(arch=model.arch, head=head, class_names=model.class_names,
                        precision="fp16" if fp16 else "fp32", version=__version__, layout=layout,
                        provenance=prov).to_props(normalization=NORMALIZATION, dynamic=dynamic)
    onnx.helper.set_model_props(proto, meta)
    return proto


def default_export_shape(model: NLResNet) -> tuple[int, int, int, int, int]:
    """Batch 1, the training clip length, the training crop (224)."""
    arch = model.arch
    return (1, 3, arch.frames, arch.crop_size, arch.crop_size)


def second_shape(model: NLResNet, export_shape: Sequence[int]) -> tuple[int, int, int, int, int]:
    """Another valid shape for the dynamic check: batch 2, twice the frames, 32 more pixels.

    Twice a valid length stays valid for the grouped non-local (a multiple of the group).
    """
    _, c, t, h, w = (int(s) for s in export_shape)
    return (2, c, 2 * t, h + 32, w + 32)


def verify_file(path: str | Path, model: NLResNet, head: str,
                shapes: Sequence[Sequence[int]], seed: int = 0) -> list[ParityCheck]:
    """Run the file in ONNX Runtime (CPU) and the PyTorch model on seeded clips of each shape."""
    import onnx

    from ..synthetic.clips import seeded_clip
    from .onnx_session import open_session

    try:
        # full_check runs strict shape inference over the whole graph too.
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # onnx raises ValidationError / InferenceError / RuntimeError
        raise ExportError(f"exported file fails the ONNX checks: {exc}") from exc
    session, _ = open_session(path, providers=["CPUExecutionProvider"])
    previous = model.head_mode
    model.set_head(head)  # type: ignore[arg-type]
    checks = []
    try:
        for i, shape in enumerate(shapes):
            clip = seeded_clip(tuple(shape), seed + i)
            model.check_input(clip)
            with torch.no_grad():
                expected = model.forward_features(clip) if head == "clip" else (model(clip),)
            refs = [t.numpy() for t in expected]
            outs = session.run(None, {INPUT_NAME: clip.numpy()})
            for out, ref in zip(outs, refs, strict=True):
                if out.shape != ref.shape:
                    raise ExportError(f"ONNX output shape {out.shape} != PyTorch {ref.shape}")
            checks.append(compare_outputs(outs, refs, shape))
    finally:
        model.set_head(previous)
    return checks


def export_onnx(
    model: NLResNet,
    out: str | Path,
    *,
    head: Head | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic: bool = True,
    fp16: bool = False,
    example_shape: Sequence[int] | None = None,
    check_shapes: Sequence[Sequence[int]] | None = None,
    tolerance: float | None = None,
    provenance: dict[str, Any] | None = None,
    layout: str = DEFAULT_LAYOUT,
    force: bool = False,
    log: Callable[[str], None] | None = print,
) -> ExportReport:
    """Export `model` to `out` (one file, weights inside) and verify it; see the module doc.

    `layout`: ``"frames"`` (default; the frame-major graph of
    :mod:`nlconvert.runtime.frame_major`, fastest in ONNX Runtime on CPU) or ``"ncthw"`` (the
    network's own N x C x T x H x W graph, 3-D convolutions, norms unfolded).

    `example_shape` (default batch 1, training frames, 224 px) is traced; the file is then run
    at that shape and at `check_shapes` (default :func:`second_shape`; a static file only at
    its own shape) on seeded clips, in ONNX Runtime (CPU) and in PyTorch. Raises
    :class:`ParityError` (exit code 1) when the relative error exceeds `tolerance` (float32:
    1e-4 on logits, 1e-3 on the fully-convolutional head's probabilities; float16: 5e-2);
    the output file is then not written.
    """
    head = head or model.head_mode
    shape = tuple(int(s) for s in (example_shape or default_export_shape(model)))
    if len(shape) != 5:
        raise InputShapeError(f"example shape must be N x 3 x T x H x W, got {shape}")
    # Always the export shape first; a static file runs at no other shape.
    if not dynamic:
        check_shapes = [shape]
    elif check_shapes is None:
        check_shapes = [shape, second_shape(model, shape)]
    else:
        extra = [tuple(int(d) for d in s) for s in check_shapes]
        check_shapes = [shape] + [s for s in extra if s != shape]
    if tolerance is not None:
        tol = tolerance
    elif fp16:
        tol = FP16_RTOL
    else:
        tol = FP32_RTOL_PROBS if head == "fully_conv" else FP32_RTOL
    import onnx

    with atomic_output(out, force) as tmp:
        proto = build_proto(model, head=head, opset=opset, dynamic=dynamic, fp16=fp16,
                            example_shape=shape, provenance=provenance, layout=layout)
        # One self-contained file: no external data, so no temporary data-file name inside.
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
        del proto
        checks = verify_file(tmp, model, head, check_shapes)
        report = ExportReport(Path(out), opset, head, "fp16" if fp16 else "fp32", dynamic,
                              layout, checks, tol, tmp.stat().st_size)
        for check in checks:
            if log:
                log(f"onnxruntime vs pytorch at {check.describe()}")
        worst = max(c.max_rel for c in checks)
        if not np.isfinite(worst) or worst > tol:
            raise ParityError(
                f"ONNX output differs from PyTorch: max rel err {worst:.3g} > {tol:g} "
                f"({report.precision}); {out} not written"
            )
    return report
