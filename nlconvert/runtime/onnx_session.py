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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..arch import ArchSpec, Head, top_k
from ..errors import CheckpointFormatError, InputShapeError, NLConvertError
from .onnx_format import OnnxMetadata

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
                 threads: int | None = None, spin: bool = True, device_id: int = 0
                 ) -> tuple[Any, str]:
    """An ``InferenceSession`` for `path` and the name of the provider it got.

    `providers`: names to try in order (default CUDA then CPU, only those available).
    `threads`: intra-op threads (default: onnxruntime's choice, the physical cores).
    `spin`: let idle worker threads spin (lower latency; ``False`` when other work, e.g. a
    benchmark of PyTorch, shares the cores between runs). `device_id`: the CUDA device.
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
        with_options = [(p, {"device_id": device_id}) if p == "CUDAExecutionProvider" else p
                        for p in chosen]
        session = ort.InferenceSession(str(path), sess_options=opts, providers=with_options)
    except Exception as exc:  # onnxruntime raises its own exception classes
        if not Path(path).exists():
            raise CheckpointFormatError(f"{path}: no such file") from exc
        raise CheckpointFormatError(f"{path}: onnxruntime cannot load it: {exc}") from exc
    return session, session.get_providers()[0]


class OnnxModel:
    """An exported nlconvert network: ``model(clip) -> N x classes`` with checked inputs.

    ``arch``, ``head``, ``class_names``, ``precision``, ``layout`` come from the file's
    metadata; ``provider`` says where it runs; ``output_names`` lists the outputs (a clip-head
    file has ``logits``, ``pool5``, ``res4``; older files only ``logits``). ``clip`` is float32
    N x 3 x T x H x W (normalised RGB).
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None,
                 threads: int | None = None, spin: bool = True, device_id: int = 0) -> None:
        self.path = Path(path)
        self.device_id = device_id
        self.session, self.provider = open_session(path, providers, threads, spin, device_id)
        meta = OnnxMetadata.from_props(self.session.get_modelmeta().custom_metadata_map)
        if meta is None:
            raise CheckpointFormatError(
                f"{path}: not an nlconvert ONNX file (no nlconvert.arch metadata)")
        self.metadata = meta
        self.arch: ArchSpec = meta.arch
        self.head: Head = meta.head
        self.class_names = meta.class_names
        self.precision = meta.precision
        self.version = meta.version
        self.provenance = meta.provenance
        inp = self.session.get_inputs()[0]
        self.input_name: str = inp.name
        self.output_names: list[str] = [o.name for o in self.session.get_outputs()]
        dims = [d if isinstance(d, int) else None for d in inp.shape]
        self.static_shape: list[int | None] | None = (
            dims if any(d is not None for d in dims[2:]) else None)

    def check(self, clip: np.ndarray) -> None:
        """Raise :class:`InputShapeError` if `clip` cannot go through this network."""
        self.arch.check_clip(clip.shape, self.head, self.static_shape)

    def __call__(self, clip: np.ndarray) -> np.ndarray:
        """Run one batch: float32 N x 3 x T x H x W -> float32 N x classes (the first output)."""
        return self.run(clip, self.output_names[:1])[self.output_names[0]]

    def run(self, clip: np.ndarray, outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run one batch; the named outputs (default: all) by name."""
        clip = np.asarray(clip)
        self.check(clip)
        clip = np.ascontiguousarray(clip, dtype=np.float32)
        names = list(outputs or self.output_names)
        missing = [n for n in names if n not in self.output_names]
        if missing:
            raise InputShapeError(
                f"{self.path}: the file has no output {', '.join(missing)} (it has "
                f"{', '.join(self.output_names)}; the {self.head} head)")
        if self.provider == "CUDAExecutionProvider":
            values = self._run_bound(clip, names)
        else:
            values = self.session.run(names, {self.input_name: clip})
        return {n: np.asarray(v) for n, v in zip(names, values, strict=True)}

    def _run_bound(self, clip: np.ndarray, names: Sequence[str]) -> list[np.ndarray]:
        # IO binding: the clip is copied to the GPU once and the outputs stay there until
        # read, instead of onnxruntime staging both through its own buffers.
        ort = _ort()
        binding = self.session.io_binding()
        value = ort.OrtValue.ortvalue_from_numpy(clip, "cuda", self.device_id)
        binding.bind_ortvalue_input(self.input_name, value)
        for name in names:
            binding.bind_output(name, "cuda", self.device_id)
        self.session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())

    def topk(self, scores: np.ndarray, k: int = 5) -> list[list[tuple[int, str, float]]]:
        """The `k` best classes of each clip: (index, name, score)."""
        return [top_k(row, k, self.class_names) for row in scores]

    def __repr__(self) -> str:
        return (f"OnnxModel({self.path.name}: {self.arch.name}, head={self.head}, "
                f"{self.precision}, {self.provider})")
