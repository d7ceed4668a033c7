"""Backends: one interface to run a converted network, used by every bulk command.

A :class:`Backend` takes float32 clips ``V x 3 x T x H x W`` (normalised RGB) and returns
numpy outputs for one of the two heads:

* ``"fully_conv"``: ``{"probs": V x classes}``, the test protocol's mean of per-position
  softmaxes (``predict``, ``evaluate``);
* ``"clip"``: ``{"logits": V x classes, "pool5": V x 2048, "res4": V x 1024}``, the clip
  head and the features before it (``features``, ``run``, ``bench``).

The backends (same names on the command line, ``--backend``):

* ``torch``: the exact eager float32 model, the reference of every error;
* ``onnx``: ONNX Runtime with the best provider (CUDA, then CPU); a ``.pt``/``.pkl`` is
  exported once per head to the frame-major graph and cached (:mod:`.cache`);
* ``fast``: reduced precision (bfloat16 on CPUs with native bf16, else float32; float16 on
  CUDA), folded norms, SDPA non-local, channels-last and ``torch.compile``; batches are
  padded to a fixed size so the compiled graph never sees a new shape;
* ``auto``: the fastest backend that is exact (within 1e-4 of ``torch``) here: ``onnx``
  when onnxruntime is installed, else ``torch``. Reduced precision is never chosen by
  ``auto``.

Every backend states its error against ``torch`` (:attr:`BackendInfo.rtol`, the largest
``max|out - ref| / max|ref|`` of any output); :meth:`Backend.check` measures it on real clips.
"""

from __future__ import annotations

import hashlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._hashing import file_sha256
from ..arch import FEATURE_LAYERS, HEADS, SPATIAL_LAYERS, ArchSpec, Head, default_class_names
from ..convert.formats import is_model_path
from ..errors import InputShapeError, NLConvertError, ParityError
from .tolerances import EXACT_RTOL, REDUCED_RTOL

if TYPE_CHECKING:
    import torch

    from ..model import NLResNet
    from .onnx_session import OnnxModel

BACKEND_NAMES = ("auto", "torch", "onnx", "fast")
DEFAULT_BATCH_SIZE = 6  # 30 protocol views = 5 batches


#: Backends that run the network in PyTorch and so can give maps before pooling
#: (``features --spatial``); the ONNX graphs output pooled features only.
MAP_BACKENDS = ("torch", "fast")


def spatial_refusal(model: object, backend: str) -> str:
    """The one-line reason a backend cannot give ``--spatial`` maps."""
    return (f"{model}: the {backend} backend gives pooled features only; --spatial needs "
            f"--backend {' or '.join(MAP_BACKENDS)}")


class BackendError(NLConvertError):
    """A backend cannot run this model here (missing runtime, wrong file kind, no device)."""


@dataclass(frozen=True)
class BackendInfo:
    """What runs the network, and how far from the exact model its outputs may be."""

    name: str  # "torch", "onnx" or "fast"
    device: str  # "cpu", "cuda", "cuda:1"
    precision: str  # "fp32", "bf16", "fp16"
    engine: str  # e.g. "ONNX Runtime 1.23.2 (CPUExecutionProvider)"
    rtol: float  # stated max relative error against the torch backend

    @property
    def exact(self) -> bool:
        return self.rtol <= EXACT_RTOL

    def describe(self) -> str:
        err = "the reference" if self.rtol == 0 else (
            f"within {self.rtol:g} of torch" + ("" if self.exact else ", reduced precision"))
        return f"{self.name} ({self.engine}, {self.precision}, {self.device}; {err})"


@dataclass(frozen=True)
class BackendCheck:
    """A backend's outputs against the torch backend's on the same clips."""

    max_rel: float  # worst over the outputs, each relative to its own largest magnitude
    cosine: float  # lowest cosine similarity of any row of any output
    top1_agree: float  # fraction of clips whose best class is the same
    rtol: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_rel)) and self.max_rel <= self.rtol

    def describe(self) -> str:
        return (f"max rel err {self.max_rel:.3g} (stated {self.rtol:g}), min cosine "
                f"{self.cosine:.6f}, top-1 agreement {self.top1_agree:.0%}")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed in float64, returned as float32."""
    x = np.asarray(logits, dtype=np.float64)
    x = np.exp(x - x.max(axis=-1, keepdims=True))
    return (x / x.sum(axis=-1, keepdims=True)).astype(np.float32)


def compare(outs: dict[str, np.ndarray], refs: dict[str, np.ndarray], rtol: float) -> BackendCheck:
    """Errors of `outs` against `refs` (same keys; the first key holds the class scores)."""
    max_rel, cosine = 0.0, 1.0
    for name, ref in refs.items():
        r = np.asarray(ref, dtype=np.float64).reshape(ref.shape[0], -1)
        o = np.asarray(outs[name], dtype=np.float64).reshape(r.shape)
        scale = max(float(np.abs(r).max()), 1e-30)
        max_rel = max(max_rel, float(np.abs(o - r).max()) / scale)
        norms = np.linalg.norm(o, axis=1) * np.linalg.norm(r, axis=1)
        cos = (o * r).sum(axis=1) / np.maximum(norms, 1e-30)
        cosine = min(cosine, float(cos.min()))
    first = next(iter(refs))
    top1 = float(np.mean(np.argmax(outs[first], -1) == np.argmax(refs[first], -1)))
    return BackendCheck(max_rel, cosine, top1, rtol)


class Backend(ABC):
    """A converted network ready to run (see the module doc)."""

    def __init__(self, *, info: BackendInfo, arch: ArchSpec, class_names: list[str] | None,
                 model_path: Path | None, model_sha256: str, batch_size: int,
                 pad_batches: bool = False) -> None:
        if batch_size < 1:
            raise InputShapeError(f"batch size must be at least 1, got {batch_size}")
        self.info = info
        self.arch = arch
        self.class_names = class_names or default_class_names(arch.num_classes)
        self.model_path = model_path
        self.model_sha256 = model_sha256
        self.batch_size = batch_size
        self.pad_batches = pad_batches
        self.last_check: BackendCheck | None = None  # what the last check() measured

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def heads(self) -> tuple[Head, ...]:
        """The heads this backend can compute (an ONNX file has one)."""
        return HEADS

    def require(self, head: Head) -> None:
        """Raise a one-line :class:`BackendError` if this backend cannot compute `head`."""
        if head in self.heads:
            return
        what = ("the paper's test protocol needs the fully-convolutional head"
                if head == "fully_conv" else "features need the clip head")
        raise BackendError(
            f"{self.model_path}: this ONNX file has the {self.heads[0]} head; {what}: export it "
            f"with `nlconvert export-onnx MODEL --head {head}`, or pass the .pt/.pkl")

    def describe(self) -> str:
        """One line: which backend, engine, precision, device and stated error."""
        return self.info.describe()

    @abstractmethod
    def _forward(self, clips: np.ndarray, head: Head) -> dict[str, np.ndarray]:
        """One batch (at most ``batch_size`` clips) through the network."""

    def run(self, clips: np.ndarray, head: Head) -> dict[str, np.ndarray]:
        """All outputs of `head` for float32 clips V x 3 x T x H x W, in batches."""
        clips = np.asarray(clips)
        self.require(head)
        self.arch.check_clip(clips.shape, head)
        parts: list[dict[str, np.ndarray]] = []
        for chunk, n in self._batches(clips):
            out = self._forward(chunk, head)
            parts.append({k: np.asarray(v[:n], dtype=np.float32) for k, v in out.items()})
        if not parts:
            return {}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _batches(self, clips: np.ndarray) -> Iterator[tuple[np.ndarray, int]]:
        """Contiguous float32 batches of at most ``batch_size`` clips, each with its count of
        real clips (a short last batch is zero-padded when the backend needs fixed batches)."""
        clips = np.ascontiguousarray(clips, dtype=np.float32)
        for start in range(0, clips.shape[0], self.batch_size):
            chunk = clips[start:start + self.batch_size]
            n = chunk.shape[0]
            if self.pad_batches and n < self.batch_size:
                # A fixed batch shape: a compiled graph is specialised to it.
                pad = np.zeros((self.batch_size - n, *chunk.shape[1:]), np.float32)
                chunk = np.concatenate([chunk, pad])
            yield chunk, n

    def scores(self, clips: np.ndarray) -> np.ndarray:
        """The test protocol's scores: V x classes fully-convolutional probabilities."""
        return self.run(clips, "fully_conv")["probs"]

    def features(self, clips: np.ndarray, layers: Sequence[str] = ("pool5",)
                 ) -> dict[str, np.ndarray]:
        """The named layers (of ``FEATURE_LAYERS``) for each clip: V x channels each."""
        unknown = [name for name in layers if name not in FEATURE_LAYERS]
        if unknown:
            raise InputShapeError(f"unknown layer {unknown[0]!r}; layers: {', '.join(FEATURE_LAYERS)}")
        out = self.run(clips, "clip")
        values = {"pool5": out["pool5"], "res5": out["pool5"], "res4": out["res4"],
                  "logits": out["logits"]}
        if "probs" in layers:
            values["probs"] = softmax(out["logits"])
        return {name: values[name] for name in layers}

    def feature_maps(self, clips: np.ndarray, layer: str) -> np.ndarray:
        """The ``res4`` or ``res5`` activations before pooling, V x C x t x h x w float32
        (``features --spatial``); only backends that run the network in PyTorch have them."""
        raise BackendError(spatial_refusal(self.model_path, self.name))

    def _maps_in_batches(self, clips: np.ndarray, layer: str,
                         trunk: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
                         ) -> np.ndarray:
        """`layer`'s maps of every clip, ``trunk`` (one batch -> res4, res5) run in batches as
        :meth:`run` does (padded to the fixed batch when the backend needs one)."""
        if layer not in SPATIAL_LAYERS:
            raise InputShapeError(f"spatial maps exist for {', '.join(SPATIAL_LAYERS)}, not "
                                  f"{layer!r} (a pooled layer)")
        clips = np.asarray(clips)
        self.arch.check_clip(clips.shape, "clip")
        parts = []
        for chunk, n in self._batches(clips):
            res4, res5 = trunk(chunk)
            parts.append(np.asarray((res4 if layer == "res4" else res5)[:n], dtype=np.float32))
        return np.concatenate(parts)

    def reference(self) -> Backend:
        """The exact torch backend of the same model (what :meth:`check` compares with)."""
        raise BackendError(f"{self.model_path}: checking against torch needs the PyTorch model "
                           "(.pt/.safetensors/.pkl), not an ONNX file")

    def check(self, clips: np.ndarray, head: Head) -> BackendCheck:
        """Run `clips` here and on the torch backend; raise :class:`ParityError` (exit 1)
        when the error exceeds this backend's stated tolerance."""
        ref = self.reference()
        result = compare(self.run(clips, head), ref.run(clips, head), max(self.info.rtol, 1e-6))
        self.last_check = result
        if not result.ok:
            raise ParityError(f"backend {self.name} differs from torch beyond its stated "
                              f"tolerance on the first batch: {result.describe()}")
        return result

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release what the backend holds (sessions, compiled graphs)."""


# ----------------------------------------------------------------------------------- torch


class TorchBackend(Backend):
    """The exact eager float32 model (the reference)."""

    def __init__(self, model: NLResNet, *, device: str = "cpu", model_path: Path | None = None,
                 model_sha256: str = "", batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        import torch

        self.device = device
        self.model = model.to(device).eval()
        engine = f"PyTorch {torch.__version__} eager"
        super().__init__(info=BackendInfo("torch", device, "fp32", engine, 0.0), arch=model.arch,
                         class_names=model.class_names, model_path=model_path,
                         model_sha256=model_sha256, batch_size=batch_size)

    def _forward(self, clips: np.ndarray, head: Head) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(clips).to(self.device)
            if head == "clip":
                return _named_features(self.model.forward_features(x))
            return {"probs": self.model.head.fully_conv(self.model.trunk(x)[1]).float().cpu().numpy()}

    def feature_maps(self, clips: np.ndarray, layer: str) -> np.ndarray:
        import torch

        def trunk(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            with torch.inference_mode():
                res4, res5 = self.model.trunk(torch.from_numpy(chunk).to(self.device))
                return res4.float().cpu().numpy(), res5.float().cpu().numpy()

        return self._maps_in_batches(clips, layer, trunk)

    def reference(self) -> Backend:
        return self


def _named_features(values: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
    from ..arch import FEATURE_OUTPUTS

    return {name: t.float().cpu().numpy() for name, t in zip(FEATURE_OUTPUTS, values, strict=True)}


# ------------------------------------------------------------------------------------ fast


class FastBackend(Backend):
    """Folded norms, SDPA non-local, reduced precision, channels-last, torch.compile."""

    def __init__(self, model: NLResNet, *, device: str = "cpu", compile: bool = True,
                 model_path: Path | None = None, model_sha256: str = "",
                 batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        import torch

        from .fast import optimize

        if compile:
            from .cache import use_compile_cache

            use_compile_cache()
        self.device = device
        self.source = model
        self.fast = optimize(model, compile=compile, device=device)
        precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.fast.dtype, "fp32")
        engine = f"PyTorch {torch.__version__} " + ("inductor" if compile else "eager")
        rtol = REDUCED_RTOL.get(precision, EXACT_RTOL)
        super().__init__(info=BackendInfo("fast", device, precision, engine, rtol),
                         arch=model.arch, class_names=model.class_names, model_path=model_path,
                         model_sha256=model_sha256, batch_size=batch_size, pad_batches=compile)

    def _forward(self, clips: np.ndarray, head: Head) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(clips).to(self.device)
            if head == "clip":
                return _named_features(self.fast.features(x))
            return {"probs": self.fast.probs(x).cpu().numpy()}

    def feature_maps(self, clips: np.ndarray, layer: str) -> np.ndarray:
        import torch

        def trunk(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            with torch.inference_mode():
                res4, res5 = self.fast.maps(torch.from_numpy(chunk).to(self.device))
                return res4.cpu().numpy(), res5.cpu().numpy()

        return self._maps_in_batches(clips, layer, trunk)

    def reference(self) -> Backend:
        return TorchBackend(self.source, device=self.device, model_path=self.model_path,
                            model_sha256=self.model_sha256, batch_size=self.batch_size)


# ------------------------------------------------------------------------------------ onnx


class OnnxBackend(Backend):
    """ONNX Runtime, best provider first; one session per head, opened on first use."""

    def __init__(self, *, arch: ArchSpec, class_names: list[str] | None, model_path: Path | None,
                 model_sha256: str, sessions: dict[str, Callable[[], Path]],
                 device: str = "cpu", threads: int | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, precision: str = "fp32",
                 torch_model: Callable[[], NLResNet] | None = None) -> None:
        from .onnx_session import PREFERRED_PROVIDERS, available_providers

        self.threads = threads
        self.device_id = int(device.split(":")[1]) if device.startswith("cuda:") else 0
        self._files = sessions  # head -> how to get the file (a path, or an export to the cache)
        self._sessions: dict[str, OnnxModel] = {}
        self._torch_model = torch_model
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in available_providers():
                raise BackendError("--device cuda: this onnxruntime has no CUDA provider "
                                   "(install 'nlconvert[onnx-gpu]')")
            self.providers: list[str] = list(PREFERRED_PROVIDERS)
        else:
            self.providers = ["CPUExecutionProvider"]
        import onnxruntime

        provider = self.providers[0]
        engine = f"ONNX Runtime {onnxruntime.__version__} ({provider})"
        rtol = EXACT_RTOL if precision == "fp32" else REDUCED_RTOL[precision]
        super().__init__(info=BackendInfo("onnx", device, precision, engine, rtol), arch=arch,
                         class_names=class_names, model_path=model_path,
                         model_sha256=model_sha256, batch_size=batch_size)

    @property
    def heads(self) -> tuple[Head, ...]:
        return tuple(h for h in HEADS if h in self._files)

    def session(self, head: Head) -> OnnxModel:
        """The session computing `head` (exported to the cache on first use for a .pt)."""
        if head not in self._sessions:
            self.require(head)
            from .onnx_session import OnnxModel

            self._sessions[head] = OnnxModel(self._files[head](), providers=self.providers,
                                             threads=self.threads, device_id=self.device_id)
        return self._sessions[head]

    def _forward(self, clips: np.ndarray, head: Head) -> dict[str, np.ndarray]:
        session = self.session(head)
        if head == "fully_conv":
            return {"probs": session(clips)}
        from ..arch import FEATURE_OUTPUTS

        return session.run(clips, FEATURE_OUTPUTS)

    def reference(self) -> Backend:
        if self._torch_model is None:
            return super().reference()
        return TorchBackend(self._torch_model(), model_path=self.model_path,
                            model_sha256=self.model_sha256, batch_size=self.batch_size)

    def close(self) -> None:
        self._sessions.clear()


# ----------------------------------------------------------------------------------- open


def onnxruntime_available() -> bool:
    """True when onnxruntime can be imported."""
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_backend_name(name: str, *, device: str = "cpu", model_is_onnx: bool = False) -> str:
    """The backend ``auto`` means here (other names unchanged): the fastest exact one."""
    if name not in BACKEND_NAMES:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if name != "auto":
        return name
    if model_is_onnx or onnxruntime_available():
        if device.startswith("cuda") and not model_is_onnx:
            from .onnx_session import available_providers

            if "CUDAExecutionProvider" not in available_providers():
                return "torch"  # a CUDA torch beats ONNX Runtime on the CPU
        return "onnx"
    return "torch"


def check_device(device: str) -> str:
    """`device` if this machine has it; a one-line :class:`BackendError` otherwise."""
    if device == "cpu":
        return device
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        import torch

        if not torch.cuda.is_available():
            raise BackendError(f"--device {device}: no CUDA device is available here "
                               "(torch.cuda.is_available() is False); use --device cpu")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise BackendError(f"--device {device}: this machine has "
                               f"{torch.cuda.device_count()} CUDA device(s)")
        return device
    raise BackendError(f"--device {device!r}: use cpu, cuda or cuda:N")


def state_sha256(model: NLResNet) -> str:
    """SHA-256 of a model's architecture and weights (the cache key of an in-memory model)."""
    h = hashlib.sha256(model.arch.to_json().encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def open_backend(model: str | Path | NLResNet, backend: str = "auto", *, device: str = "cpu",
                 threads: int | None = None, batch_size: int | None = None,
                 compile: bool = True, layout: str = "frames",
                 log: Callable[[str], None] | None = None) -> Backend:
    """A :class:`Backend` for a model file (``.pt``, ``.safetensors``, ``.pkl``, ``.pb``,
    ``.onnx``), a hub folder (``nlconvert export-hub``) or an in-memory
    :class:`~nlconvert.model.NLResNet` (see the module doc).

    `threads`: intra-op threads of PyTorch / ONNX Runtime. `batch_size`: clips per forward
    pass. `compile` (``fast``): use ``torch.compile``. `layout` (``onnx`` of a PyTorch model):
    the exported graph. `log` receives progress messages (an export on first use).
    """
    device = check_device(device)
    path = None if _is_model(model) else Path(model)  # type: ignore[arg-type]
    if path is not None and not path.exists():
        raise BackendError(f"{path}: no such model file or hub folder")
    is_onnx = path is not None and path.suffix.lower() == ".onnx"
    name = resolve_backend_name(backend, device=device, model_is_onnx=is_onnx)
    if is_onnx and name != "onnx":
        raise BackendError(f"{path}: an ONNX file runs with --backend onnx (or auto); "
                           f"--backend {name} needs the .pt/.pkl")
    size = batch_size or DEFAULT_BATCH_SIZE
    if threads:
        import torch

        torch.set_num_threads(threads)
    if name == "onnx" and not onnxruntime_available():
        raise BackendError("--backend onnx needs onnxruntime: pip install 'nlconvert[onnx]'")
    if is_onnx:
        assert path is not None
        return _onnx_file_backend(path, device=device, threads=threads, batch_size=size)

    sha = _model_sha256(path) if path is not None else state_sha256(model)  # type: ignore[arg-type]
    loaded: list[NLResNet] = []

    def load() -> NLResNet:
        if not loaded:
            if path is None:
                loaded.append(model)  # type: ignore[arg-type]
            else:
                from ..convert import load_model

                loaded.append(load_model(path, head="fully_conv"))
        return loaded[0]

    if name == "torch":
        return TorchBackend(load(), device=device, model_path=path, model_sha256=sha,
                            batch_size=size)
    if name == "fast":
        return FastBackend(load(), device=device, compile=compile, model_path=path,
                           model_sha256=sha, batch_size=size)
    from .cache import cached_onnx_export

    def exported(head: Head) -> Callable[[], Path]:
        return lambda: cached_onnx_export(sha, load, head=head, layout=layout, log=log)

    arch, class_names = _arch_and_classes(path, load)
    return OnnxBackend(arch=arch, class_names=class_names, model_path=path, model_sha256=sha,
                       sessions={"clip": exported("clip"), "fully_conv": exported("fully_conv")},
                       device=device, threads=threads, batch_size=size, torch_model=load)


def _model_sha256(path: Path) -> str:
    """The cache key of a model on disk: its file's hash (a hub folder: config and weights)."""
    if is_model_path(path):
        from ..convert.modelfile import model_file_sha256

        return model_file_sha256(path)
    return file_sha256(path)


def _is_model(model: Any) -> bool:
    return hasattr(model, "arch") and hasattr(model, "state_dict")


def _arch_and_classes(path: Path | None, load: Callable[[], NLResNet]
                      ) -> tuple[ArchSpec, list[str] | None]:
    """Architecture and class names without loading a model file's weights when possible."""
    if path is not None and is_model_path(path):
        from ..convert.modelfile import read_model_info

        info = read_model_info(path)
        return info.arch, info.class_names
    model = load()
    return model.arch, model.class_names


def _onnx_file_backend(path: Path, *, device: str, threads: int | None,
                       batch_size: int) -> OnnxBackend:
    from .onnx_session import OnnxModel

    probe = OnnxModel(path, providers=["CPUExecutionProvider"], threads=1)
    fixed_batch = probe.static_shape[0] if probe.static_shape is not None else None
    if fixed_batch is not None:
        batch_size = fixed_batch  # a static file takes exactly its batch
    backend = OnnxBackend(arch=probe.arch, class_names=probe.class_names, model_path=path,
                          model_sha256=file_sha256(path), sessions={probe.head: lambda: path},
                          device=device, threads=threads, batch_size=batch_size,
                          precision=probe.precision)
    backend.pad_batches = fixed_batch is not None  # a last, smaller batch is padded to it
    if not device.startswith("cuda"):
        backend._sessions[probe.head] = OnnxModel(path, providers=backend.providers,
                                                  threads=threads, device_id=backend.device_id)
    return backend


@dataclass(frozen=True)
class BackendPlan:
    """What a backend will be, known without loading the weights (a Ray driver's view)."""

    info: BackendInfo
    arch: ArchSpec
    class_names: list[str] | None
    model_sha256: str


def plan_backend(model: str | Path, backend: str = "auto", *, device: str = "cpu") -> BackendPlan:
    """The backend :func:`open_backend` would give on a machine like this one with `device`
    (for a driver that only coordinates: the weights stay where they are)."""
    path = Path(model)
    if not path.exists():
        raise BackendError(f"{path}: no such model file or hub folder")
    is_onnx = path.suffix.lower() == ".onnx"
    name = resolve_backend_name(backend, device=device, model_is_onnx=is_onnx)
    if is_onnx:
        from .onnx_session import OnnxModel

        probe = OnnxModel(path, providers=["CPUExecutionProvider"], threads=1)
        arch, class_names, precision = probe.arch, probe.class_names, probe.precision
    else:
        def load() -> NLResNet:
            from ..convert import load_model

            return load_model(path, head="fully_conv")

        arch, class_names = _arch_and_classes(path, load)
        precision = "fp32"
        if name == "fast":
            if device.startswith("cuda"):
                precision = "fp16"
            else:
                from .fast import bf16_is_fast

                precision = "bf16" if bf16_is_fast() else "fp32"
    rtol = EXACT_RTOL if precision == "fp32" else REDUCED_RTOL[precision]
    info = BackendInfo(name, device, precision, "planned", 0.0 if name == "torch" else rtol)
    return BackendPlan(info, arch, class_names or default_class_names(arch.num_classes),
                       _model_sha256(path))


def describe_choice(requested: str, backend: Backend) -> str:
    """The line every command prints about the backend it took."""
    why = " (auto: the fastest exact backend here)" if requested == "auto" else ""
    return f"backend: {backend.describe()}{why}"


__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendCheck",
    "BackendError",
    "BackendInfo",
    "FastBackend",
    "OnnxBackend",
    "TorchBackend",
    "BackendPlan",
    "check_device",
    "plan_backend",
    "describe_choice",
    "open_backend",
    "resolve_backend_name",
]
