"""Run an exported nlconvert ONNX file in ONNX Runtime, with its metadata and input checks.

:func:`open_session` picks the best provider actually available (CUDA, then CPU), turns on
every graph optimisation and sets the intra-op threads; :class:`OnnxModel` wraps a session
with the architecture, head and class names stored in the file, checks each clip against
the architecture before running it (a grouped non-local needs T divisible by its groups)
and uses IO binding on CUDA.

Install ``nlconvert[onnx]`` (onnxruntime, CPU) or, on a CUDA machine, ``nlconvert[onnx-gpu]``
(onnxruntime-gpu, which also runs on CPU); not both: the two wheels share a module name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .arch import ArchSpec
from .errors import CheckpointFormatError, InputShapeError, NLConvertError

PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


class RuntimeUnavailableError(NLConvertError):
    """ONNX Runtime (or the requested provider) is not installed."""


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeUnavailableError(
            "onnxruntime is not installed: pip install 'nlconvert[onnx]' "
            "(or 'nlconvert[onnx-gpu]' on a CUDA machine)"
        ) from exc
    return onnxruntime


def available_providers() -> list[str]:
    """The execution providers this onnxruntime build can use, best first."""
    ort = _ort()
    have = set(ort.get_available_providers())
    return [p for p in PREFERRED_PROVIDERS if p in have]


def open_session(path: str | Path, providers: Sequence[str] | None = None,
                 threads: int | None = None, spin: bool = True) -> tuple[Any, str]:
    """An ``InferenceSession`` for `path` and the name of the provider it got.

    `providers`: names to try in order (default CUDA then CPU, only those available).
    `threads`: intra-op threads (default: onnxruntime's choice, the physical cores).
    `spin`: let idle worker threads spin (lower latency; ``False`` when other work, e.g. a
    benchmark of PyTorch, shares the cores between runs).
    """
    ort = _ort()
    have = set(ort.get_available_providers())
    wanted = list(providers) if providers else list(PREFERRED_PROVIDERS)
    chosen = [p for p in wanted if p in have]
    if not chosen:
        raise RuntimeUnavailableError(
            f"none of the providers {wanted} is available (this onnxruntime has "
            f"{sorted(have)}); for CUDA install 'nlconvert[onnx-gpu]'"
        )
    if "CPUExecutionProvider" not in chosen and "CPUExecutionProvider" in have:
        chosen.append("CPUExecutionProvider")  # fallback for nodes the GPU lacks
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = int(threads)
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # warnings about unused initialisers etc. are noise here
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own exception classes
        if not Path(path).exists():
            raise CheckpointFormatError(f"{path}: no such file") from exc
        raise CheckpointFormatError(f"{path}: onnxruntime cannot load it: {exc}") from exc
    return session, session.get_providers()[0]


def check_clip_shape(arch: ArchSpec, head: str, shape: Sequence[int],
                     static_shape: Sequence[int | None] | None = None) -> None:
    """Raise :class:`InputShapeError` (one line) for a clip shape the network cannot take."""
    if len(shape) != 5 or shape[1] != 3:
        raise InputShapeError(
            f"expected a float32 clip N x 3 x T x H x W, got shape {tuple(shape)}")
    _, _, t, h, w = (int(s) for s in shape)
    if static_shape is not None:
        for got, fixed in zip(shape, static_shape, strict=True):
            if fixed is not None and int(got) != fixed:
                dims = "x".join("?" if d is None else str(d) for d in static_shape)
                raise InputShapeError(
                    f"this file was exported with static shapes {dims}; got "
                    f"{'x'.join(map(str, shape))} (export without --static for other sizes)")
    arch.check_input(t, h, w)
    if head == "fully_conv":
        t5 = arch.temporal_sizes(t)["res5"]
        h5, w5 = arch.spatial_size(h), arch.spatial_size(w)
        if t5 < arch.pool5_temporal_kernel or h5 < 7 or w5 < 7:
            raise InputShapeError(
                f"{arch.name}: the fully-convolutional head pools "
                f"{arch.pool5_temporal_kernel}x7x7 at res5, but {t}x{h}x{w} input leaves "
                f"{t5}x{h5}x{w5} there (use at least {arch.frames} frames and 224x224 pixels)")


class OnnxModel:
    """An exported nlconvert network: ``model(clip) -> N x classes`` with checked inputs.

    ``arch``, ``head``, ``class_names``, ``precision`` come from the file's metadata;
    ``provider`` says where it runs. ``clip`` is float32 N x 3 x T x H x W (normalised RGB).
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None,
                 threads: int | None = None, spin: bool = True) -> None:
        self.path = Path(path)
        self.session, self.provider = open_session(path, providers, threads, spin)
        meta = self.session.get_modelmeta().custom_metadata_map
        if "nlconvert.arch" not in meta:
            raise CheckpointFormatError(
                f"{path}: not an nlconvert ONNX file (no nlconvert.arch metadata)")
        self.arch = ArchSpec.from_json(meta["nlconvert.arch"])
        self.head: str = meta.get("nlconvert.head", "clip")
        names = json.loads(meta.get("nlconvert.class_names", "null"))
        self.class_names: list[str] | None = list(names) if names else None
        self.precision: str = meta.get("nlconvert.precision", "fp32")
        self.version: str = meta.get("nlconvert.version", "")
        self.provenance: dict[str, Any] = json.loads(meta.get("nlconvert.provenance", "{}"))
        inp = self.session.get_inputs()[0]
        out = self.session.get_outputs()[0]
        self.input_name: str = inp.name
        self.output_name: str = out.name
        dims = [d if isinstance(d, int) else None for d in inp.shape]
        self.static_shape: list[int | None] | None = (
            dims if any(d is not None for d in dims[2:]) else None)

    def check(self, clip: np.ndarray) -> None:
        """Raise :class:`InputShapeError` if `clip` cannot go through this network."""
        check_clip_shape(self.arch, self.head, clip.shape, self.static_shape)

    def __call__(self, clip: np.ndarray) -> np.ndarray:
        """Run one batch: float32 N x 3 x T x H x W -> float32 N x classes."""
        clip = np.asarray(clip)
        self.check(clip)
        clip = np.ascontiguousarray(clip, dtype=np.float32)
        if self.provider == "CUDAExecutionProvider":
            return self._run_bound(clip)
        return np.asarray(self.session.run([self.output_name], {self.input_name: clip})[0])

    def _run_bound(self, clip: np.ndarray) -> np.ndarray:
        # IO binding: the clip is copied to the GPU once and the output stays there until
        # read, instead of onnxruntime staging both through its own buffers.
        ort = _ort()
        binding = self.session.io_binding()
        value = ort.OrtValue.ortvalue_from_numpy(clip, "cuda", 0)
        binding.bind_ortvalue_input(self.input_name, value)
        binding.bind_output(self.output_name, "cuda", 0)
        self.session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0])

    def topk(self, scores: np.ndarray, k: int = 5) -> list[list[tuple[int, str, float]]]:
        """The `k` best classes of each clip: (index, name, score)."""
        k = min(k, scores.shape[-1])
        result = []
        for row in scores:
            order = np.argsort(-row)[:k]
            result.append([(int(i), self.class_names[i] if self.class_names else str(int(i)),
                            float(row[i])) for i in order])
        return result

    def __repr__(self) -> str:
        return (f"OnnxModel({self.path.name}: {self.arch.name}, head={self.head}, "
                f"{self.precision}, {self.provider})")
