"""Latency benchmarks of the inference paths on the same seeded clips.

Paths: PyTorch eager float32 (the reference), PyTorch bfloat16 autocast with
``channels_last_3d`` (CPUs with AVX512-BF16/AMX), the fast path of
:mod:`nlconvert.deploy.fast` (``fast=True``), ONNX Runtime CPU float32 and int8, and on a CUDA
machine PyTorch eager float16 and ONNX Runtime CUDA float32/float16. Every path is first run
on the error clips and compared with eager float32 (max relative error scaled to the output
magnitude, top-1 agreement), then warmed up, then timed: the timed runs go round-robin over
the paths, so a machine whose load changes during the benchmark slows every path alike.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .deploy.synthetic import seeded_clip
from .model import NLResNet

Runner = Callable[[torch.Tensor], np.ndarray]


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


def _torch_runner(fn: Callable[[torch.Tensor], torch.Tensor], device: str = "cpu") -> Runner:
    def run(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            out = fn(x.to(device, non_blocking=True))
            if device != "cpu":
                torch.cuda.synchronize()
            return out.float().cpu().numpy()

    return run


def eager_path(model: NLResNet) -> BenchPath:
    """PyTorch eager float32 on the CPU: the exact model, the reference of every error."""
    return BenchPath("pytorch-eager", "cpu", "fp32", _torch_runner(model))


def autocast_bf16_path(model: NLResNet) -> BenchPath:
    """PyTorch eager with bfloat16 autocast and channels_last_3d (a copy of the model)."""
    import copy

    net = copy.deepcopy(model).to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]

    def fn(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net(x.contiguous(memory_format=torch.channels_last_3d))

    return BenchPath("pytorch-autocast-cl3d", "cpu", "bf16", _torch_runner(fn))


def fast_path(model: NLResNet, compile: bool = False) -> BenchPath:
    """:func:`nlconvert.deploy.fast.optimize`: folded norms, SDPA non-local, bf16, cl3d."""
    from .deploy.fast import optimize

    fast = optimize(model, compile=compile)
    precision = "bf16" if fast.dtype == torch.bfloat16 else "fp32"
    name = "pytorch-fast-compiled" if compile else "pytorch-fast"
    return BenchPath(name, "cpu", precision, _torch_runner(fast))


def cuda_fp16_path(model: NLResNet) -> BenchPath:
    """PyTorch eager float16 on the GPU (a copy of the model)."""
    import copy

    net = copy.deepcopy(model).half().cuda()
    return BenchPath("pytorch-eager", "cuda", "fp16", _torch_runner(lambda x: net(x.half()), "cuda"))


def onnx_path(onnx_file: str | Path, provider: str, threads: int | None,
              name: str = "onnxruntime") -> BenchPath:
    """An ONNX file in ONNX Runtime on `provider` ("cpu" or "cuda")."""
    from .onnx_runtime import OnnxModel

    prov = "CUDAExecutionProvider" if provider == "cuda" else "CPUExecutionProvider"
    om = OnnxModel(onnx_file, providers=[prov], threads=threads)  # ORT's default spinning
    if om.provider != prov:
        raise RuntimeError(f"{onnx_file}: got {om.provider}, not {prov}")
    return BenchPath(name, provider, om.precision, lambda x: om(x.numpy()))


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
    clips = [seeded_clip(tuple(shape), seed + i) for i in range(error_clips)]
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


def format_table(results: Sequence[BenchResult], baseline: str = "pytorch-eager") -> str:
    """A plain-text table; speed-up against the CPU eager fp32 row of the same batch."""
    head = (f"{'path':<24} {'device':<6} {'prec':<5} {'batch':>5} {'median s':>9} {'p90 s':>8} "
            f"{'clips/s':>8} {'speed-up':>8} {'max rel err':>11} {'top-1':>6}")
    lines = [head, "-" * len(head)]
    base = {r.batch: r.clips_per_s for r in results
            if r.path == baseline and r.device == "cpu" and r.precision == "fp32"}
    for r in results:
        speed = f"{r.clips_per_s / base[r.batch]:.2f}x" if r.batch in base else "-"
        lines.append(
            f"{r.path:<24} {r.device:<6} {r.precision:<5} {r.batch:>5} {r.median_s:>9.4f} "
            f"{r.p90_s:>8.4f} {r.clips_per_s:>8.2f} {speed:>8} {r.max_rel_err:>11.2e} "
            f"{r.top1_agree:>6.0%}")
    return "\n".join(lines)


def format_markdown(results: Sequence[BenchResult], baseline: str = "pytorch-eager") -> str:
    """The same table in Markdown."""
    base = {r.batch: r.clips_per_s for r in results
            if r.path == baseline and r.device == "cpu" and r.precision == "fp32"}
    lines = ["| path | device | precision | batch | median s | p90 s | clips/s | speed-up "
             "| max rel err | top-1 agree |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        speed = f"{r.clips_per_s / base[r.batch]:.2f}x" if r.batch in base else "-"
        lines.append(f"| {r.path} | {r.device} | {r.precision} | {r.batch} | {r.median_s:.4f} "
                     f"| {r.p90_s:.4f} | {r.clips_per_s:.2f} | {speed} | {r.max_rel_err:.2e} "
                     f"| {r.top1_agree:.0%} |")
    return "\n".join(lines)


def write_json(results: Sequence[BenchResult], path: str | Path, force: bool = True) -> None:
    """The results as a JSON list of objects (atomically)."""
    from .atomic import atomic_write_text

    atomic_write_text(path, json.dumps([asdict(r) for r in results], indent=2) + "\n", force)


def machine_line(threads: int | None) -> str:
    """Where the numbers come from: CPU capability, threads, GPU if any, versions."""
    from .deploy.fast import cpu_bf16_support

    flags = ", ".join(k for k, v in cpu_bf16_support().items() if v) or "no bf16"
    parts = [f"torch {torch.__version__}", f"CPU {torch.backends.cpu.get_cpu_capability()} "
             f"({flags})", f"threads {threads or torch.get_num_threads()}"]
    with contextlib.suppress(ImportError):
        import onnxruntime

        parts.append(f"onnxruntime {onnxruntime.__version__}")
    if torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    return ", ".join(parts)


def standard_paths(model: NLResNet, *, onnx_file: str | Path | None = None,
                   threads: int | None = None, fast: bool = False, compile: bool = False,
                   int8: bool = False, calib_shape: Sequence[int] | None = None,
                   workdir: str | Path | None = None, layouts: Sequence[str] = ("frames",),
                   exported: dict[str, Path] | None = None,
                   log: Callable[[str], None] | None = None) -> list[BenchPath]:
    """The paths this machine can run, eager fp32 first.

    `onnx_file`: a float32 export to time (exported into `workdir` when missing and
    onnxruntime is installed, once per graph layout in `layouts`, see
    :func:`nlconvert.onnx_export.export_onnx`; the first is the one quantised and run on
    CUDA). `fast`/`compile`: add :mod:`nlconvert.deploy.fast`. `int8`: also quantise the
    ONNX file (static, calibrated on seeded clips of `calib_shape`). `exported`: a dict that
    remembers the files made (exports per precision and layout, the int8 file), so that
    calls for other batch sizes reuse them.
    """
    from .deploy.fast import bf16_is_fast

    paths = [eager_path(model)]
    if bf16_is_fast():
        paths.append(autocast_bf16_path(model))
    if fast:
        paths.append(fast_path(model))
    if compile:
        paths.append(fast_path(model, compile=True))
    try:
        import onnxruntime
    except ImportError:
        return paths
    work = Path(workdir or tempfile.mkdtemp(prefix="nlconvert-bench-"))
    shape = tuple(calib_shape or (1, 3, model.arch.frames, 224, 224))
    files = {} if exported is None else exported

    def export(layout: str, fp16: bool = False) -> Path:
        key = f"{'fp16' if fp16 else 'fp32'}_{layout}"
        if key not in files:
            from .onnx_export import export_onnx

            files[key] = work / f"model_{key}.onnx"
            if log:
                log(f"exporting {files[key]}")
            export_onnx(model, files[key], head=model.head_mode, example_shape=shape,
                        check_shapes=[shape], layout=layout, fp16=fp16, force=True, log=log)
        return files[key]

    def row_name(i: int, layout: str) -> str:
        return "onnxruntime" if i == 0 else f"onnxruntime-{layout}"

    if onnx_file is None:
        for i, layout in enumerate(layouts):
            paths.append(onnx_path(export(layout), "cpu", threads, name=row_name(i, layout)))
        onnx_file = export(layouts[0])
    else:
        paths.append(onnx_path(onnx_file, "cpu", threads))
    if int8:
        if "int8" not in files:
            from .deploy.int8 import quantize_int8

            files["int8"] = work / "model_int8.onnx"
            if log:
                log(f"quantising {files['int8']}")
            quantize_int8(onnx_file, files["int8"], shape, force=True)
        paths.append(onnx_path(files["int8"], "cpu", threads, name="onnxruntime-int8"))
    if torch.cuda.is_available() and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        paths.append(cuda_fp16_path(model))
        paths.append(onnx_path(onnx_file, "cuda", threads))
        # The fastest graph on a GPU need not be the fastest on a CPU: time each layout.
        for i, layout in enumerate(layouts):
            paths.append(onnx_path(export(layout, fp16=True), "cuda", threads,
                                   name=row_name(i, layout)))
    return paths
