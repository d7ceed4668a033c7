"""Latency benchmarks of the backends on the same seeded clips (``nlconvert bench``).

Every path is a :class:`~nlconvert.runtime.backends.Backend` (the ``torch`` backend first: the
reference of every error), plus optional extras: the other ONNX graph layout, an int8 ONNX
file and, on CUDA, PyTorch eager float16. Every path is first run on the error clips and
compared with the torch backend (max relative error scaled to the output magnitude, top-1
agreement), then warmed up, then timed: the timed runs go round-robin over the paths, so a
machine whose load changes during the benchmark slows every path alike.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..arch import ArchSpec, Head
from ..synthetic.clips import seeded_clip
from .backends import Backend, open_backend

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass
class BenchResult:
    """One row of the benchmark (the ``--json`` objects)."""

    path: str
    device: str
    precision: str
    batch: int
    median_s: float
    p90_s: float
    clips_per_s: float
    max_rel_err: float
    top1_agree: float


@dataclass
class BenchPath:
    """An inference path to time: a name, where and how precisely it runs, and its runner."""

    path: str
    device: str
    precision: str
    run: Runner


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with `threads` intra-op threads in PyTorch, then restore the previous number."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def backend_path(backend: Backend, head: Head, name: str | None = None) -> BenchPath:
    """A backend as a benchmark path: its first output (logits or probabilities)."""
    key = "logits" if head == "clip" else "probs"
    return BenchPath(name or backend.name, backend.info.device, backend.info.precision,
                     lambda x: backend.run(x, head)[key])


def cuda_fp16_path(backend: Backend, head: Head) -> BenchPath:
    """PyTorch eager float16 on the GPU: what the GPU targets compare against."""
    import copy

    source = backend.reference()
    assert hasattr(source, "model")
    net = copy.deepcopy(source.model).half().to(backend.info.device).eval()
    net.set_head(head)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = net(torch.from_numpy(x).to(backend.info.device).half())
            torch.cuda.synchronize()
            return out.float().cpu().numpy()

    return BenchPath("torch-fp16", backend.info.device, "fp16", run)


def _errors(out: Sequence[np.ndarray], ref: Sequence[np.ndarray]) -> tuple[float, float]:
    rel, agree, total = 0.0, 0, 0
    for o, r in zip(out, ref, strict=True):
        scale = max(float(np.abs(r).max()), 1e-12)
        rel = max(rel, float(np.abs(o.astype(np.float64) - r).max()) / scale)
        agree += int(np.sum(o.argmax(-1) == r.argmax(-1)))
        total += r.shape[0]
    return rel, agree / max(total, 1)


def run_benchmark(paths: Sequence[BenchPath], shape: Sequence[int], *, runs: int = 10,
                  warmup: int = 2, error_clips: int = 3, seed: int = 0, gap_s: float = 0.05,
                  log: Callable[[str], None] | None = None) -> list[BenchResult]:
    """Time each path on clips of `shape` (N x 3 x T x H x W); the first path is the reference.

    Errors are measured on `error_clips` seeded clips against the first path's outputs.
    Each timed call starts `gap_s` after the previous one ended, so the idle worker threads
    of one runtime (ONNX Runtime and OpenMP spin a while) do not steal the next path's cores.
    """
    clips = [seeded_clip(tuple(shape), seed + i).numpy() for i in range(error_clips)]
    ref = [paths[0].run(c) for c in clips]
    errors = {}
    for p in paths:
        outs = ref if p is paths[0] else [p.run(c) for c in clips]
        errors[p.path, p.device, p.precision] = _errors(outs, ref)
        for _ in range(warmup):
            p.run(clips[0])
        if log:
            log(f"  ready: {p.path} {p.device} {p.precision}")
    times: dict[tuple[str, str, str], list[float]] = {k: [] for k in errors}
    for r in range(runs):
        for p in paths:
            clip = clips[r % len(clips)]
            time.sleep(gap_s)  # let the previous path's worker threads stop spinning
            start = time.perf_counter()
            p.run(clip)
            times[p.path, p.device, p.precision].append(time.perf_counter() - start)
    batch = int(shape[0])
    results = []
    for key, ts in times.items():
        med = float(np.median(ts))
        rel, top1 = errors[key]
        results.append(BenchResult(key[0], key[1], key[2], batch, med,
                                   float(np.percentile(ts, 90)), batch / med, rel, top1))
    return results


def _speedups(results: Sequence[BenchResult], baseline: str) -> dict[int, float]:
    return {r.batch: r.clips_per_s for r in results
            if r.path == baseline and r.device == "cpu" and r.precision == "fp32"}


def format_table(results: Sequence[BenchResult], baseline: str = "torch") -> str:
    """A plain-text table; speed-up against the CPU torch fp32 row of the same batch."""
    head = (f"{'path':<16} {'device':<7} {'prec':<5} {'batch':>5} {'median s':>9} {'p90 s':>8} "
            f"{'clips/s':>8} {'speed-up':>8} {'max rel err':>11} {'top-1':>6}")
    lines = [head, "-" * len(head)]
    base = _speedups(results, baseline)
    for r in results:
        speed = f"{r.clips_per_s / base[r.batch]:.2f}x" if r.batch in base else "-"
        lines.append(
            f"{r.path:<16} {r.device:<7} {r.precision:<5} {r.batch:>5} {r.median_s:>9.4f} "
            f"{r.p90_s:>8.4f} {r.clips_per_s:>8.2f} {speed:>8} {r.max_rel_err:>11.2e} "
            f"{r.top1_agree:>6.0%}")
    return "\n".join(lines)


def format_markdown(results: Sequence[BenchResult], baseline: str = "torch") -> str:
    """The same table in Markdown."""
    base = _speedups(results, baseline)
    lines = ["| path | device | precision | batch | median s | p90 s | clips/s | speed-up "
             "| max rel err | top-1 agree |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        speed = f"{r.clips_per_s / base[r.batch]:.2f}x" if r.batch in base else "-"
        lines.append(f"| {r.path} | {r.device} | {r.precision} | {r.batch} | {r.median_s:.4f} "
                     f"| {r.p90_s:.4f} | {r.clips_per_s:.2f} | {speed} | {r.max_rel_err:.2e} "
                     f"| {r.top1_agree:.0%} |")
    return "\n".join(lines)


def results_json(results: Sequence[BenchResult]) -> str:
    """The results as a JSON list of objects."""
    return json.dumps([asdict(r) for r in results], indent=2) + "\n"


def machine_line(threads: int | None) -> str:
    """Where the numbers come from: CPU capability, threads, GPU if any, versions."""
    from .fast import cpu_bf16_support

    flags = ", ".join(k for k, v in cpu_bf16_support().items() if v) or "no bf16"
    parts = [f"torch {torch.__version__}", f"CPU {torch.backends.cpu.get_cpu_capability()} "
             f"({flags})", f"threads {threads or torch.get_num_threads()}"]
    with contextlib.suppress(ImportError):
        import onnxruntime

        parts.append(f"onnxruntime {onnxruntime.__version__}")
    if torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    return ", ".join(parts)


def bench_paths(model: str | Path, backends: Sequence[str], *, head: Head,
                device: str = "cpu", threads: int | None = None, batch_size: int = 1,
                compile: bool = True, layouts: Sequence[str] = ("frames",), int8: bool = False,
                calib_shape: Sequence[int] | None = None, workdir: str | Path,
                log: Callable[[str], None] | None = None) -> tuple[list[BenchPath], ArchSpec]:
    """The paths to time: ``torch`` first, then each of `backends`; with ``onnx``, one row
    per graph layout in `layouts` (the first is the cached export) and, with `int8`, an int8
    quantisation of it (calibrated on seeded clips of `calib_shape`, a 0 frame count meaning
    the training clip); on CUDA also eager fp16. Returns the paths and the architecture.
    """
    from .onnx_export import export_onnx

    reference = open_backend(model, "torch", device=device, threads=threads, batch_size=batch_size)
    paths = [backend_path(reference, head)]
    work = Path(workdir)
    n, c, t, h, w = calib_shape or (1, 3, 0, 224, 224)
    shape = (n, c, t or reference.arch.frames, h, w)  # the clips timed (and calibrated on)
    for name in backends:
        if name == "torch":
            continue
        backend = open_backend(model, name, device=device, threads=threads,
                               batch_size=batch_size, compile=compile, layout=layouts[0], log=log)
        paths.append(backend_path(backend, head))
        if name != "onnx" or str(model).endswith(".onnx"):
            continue
        assert hasattr(reference, "model")
        for layout in layouts[1:]:
            file = work / f"model_{head}_{layout}.onnx"
            if log:
                log(f"exporting {file}")
            export_onnx(reference.model, file, head=head, layout=layout, example_shape=shape,
                        force=True, log=None)
            other = open_backend(file, "onnx", device=device, threads=threads, batch_size=batch_size)
            paths.append(backend_path(other, head, f"onnx-{layout}"))
        if int8:
            from .backends import OnnxBackend
            from .int8 import quantize_int8

            assert isinstance(backend, OnnxBackend)
            file = work / f"model_{head}_int8.onnx"
            if log:
                log(f"quantising {file}")
            quantize_int8(backend.session(head).path, file, shape, force=True)
            quant = open_backend(file, "onnx", device=device, threads=threads, batch_size=batch_size)
            paths.append(backend_path(quant, head, "onnx-int8"))
    if device.startswith("cuda"):
        paths.append(cuda_fp16_path(reference, head))
    return paths, reference.arch
