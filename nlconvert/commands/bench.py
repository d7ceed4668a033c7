"""``nlconvert bench``: latency and errors of the backends on seeded clips."""

from __future__ import annotations

from pathlib import Path

import click

from ..arch import GRAPH_LAYOUTS
from .options import (
    BACKENDS,
    comma_list,
    debug_option,
    device_option,
    force_option,
    frames_option,
    head_option,
    human_stream,
    json_option,
    model_input,
    no_compile_option,
    size_option,
    threads_option,
)


def _ints(_ctx: click.Context, _param: click.Parameter, value: str) -> list[int]:
    try:
        values = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not values or min(values) < 1:
        raise click.BadParameter(f"expected positive integers, got {value!r}")
    return values


@click.command("bench", short_help="Time the backends and their errors against torch fp32.")
@click.argument("model", type=model_input())
@click.option("--backend", "backends", default=",".join(BACKENDS[1:]), show_default=True,
              callback=comma_list(BACKENDS[1:]), metavar="NAMES",
              help="Comma-separated backends to time (torch is always timed: the reference).")
@head_option()
@frames_option()
@size_option(default=224)
@click.option("--batch-sizes", default="1", show_default=True, callback=_ints, metavar="N,N",
              help="Batch sizes to time, e.g. 1,8.")
@threads_option
@device_option
@click.option("--runs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Timed runs per path.")
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True,
              help="Untimed runs per path.")
@click.option("--error-clips", type=click.IntRange(min=1), default=3, show_default=True,
              help="Seeded clips for the errors and top-1 agreement.")
@click.option("--int8", is_flag=True,
              help="Also time ONNX Runtime int8 (static quantisation calibrated on seeded clips; "
                   "approximate).")
@click.option("--layouts", default="frames", show_default=True,
              callback=comma_list(GRAPH_LAYOUTS), metavar="NAMES",
              help="ONNX graph layouts to time, comma-separated (frames, ncthw); the first is "
                   "the onnx backend's own, the others are exported for the benchmark.")
@no_compile_option
@json_option
@force_option
@debug_option
def command(model: Path, backends: list[str], head: str, frames: int | None, size: int,
            batch_sizes: list[int], threads: int | None, device: str, runs: int, warmup: int,
            error_clips: int, int8: bool, layouts: list[str], no_compile: bool,
            json_path: str | None, force: bool) -> int:
    """Time the backends (torch, onnx, fast; see --backend) on the same seeded clips: median
    and p90 latency, clips/s, speed-up against torch, and the max relative error and top-1
    agreement against torch fp32."""
    import tempfile

    from .._atomic import atomic_write_text, check_writable
    from ..runtime.bench import (
        bench_paths,
        format_table,
        machine_line,
        results_json,
        run_benchmark,
        torch_threads,
    )

    if json_path and json_path != "-":
        check_writable(json_path, force)
    human = human_stream(json_path)

    def say(line: str) -> None:
        print(line, file=human)

    results = []
    with torch_threads(threads), tempfile.TemporaryDirectory(prefix="nlconvert-bench-") as work:
        say(machine_line(threads))
        paths, arch = bench_paths(model, backends, head=head, device=device,  # type: ignore[arg-type]
                                  threads=threads, batch_size=max(batch_sizes),
                                  compile=not no_compile, layouts=layouts, int8=int8,
                                  calib_shape=(1, 3, frames or 0, size, size), workdir=work,
                                  log=say)
        for batch in batch_sizes:
            shape = (batch, 3, frames or arch.frames, size, size)
            arch.check_clip(shape, head)
            say(f"batch {batch}: {'x'.join(map(str, shape))}, {len(paths)} paths, "
                  f"{warmup} warm-up + {runs} timed runs each (round-robin)")
            results += run_benchmark(paths, shape, runs=runs, warmup=warmup,
                                     error_clips=error_clips)
    if json_path == "-":
        print(results_json(results), end="")
    else:
        print(format_table(results))
    if json_path and json_path != "-":
        atomic_write_text(json_path, results_json(results), force)
        print(f"wrote {json_path}")
    return 0
