"""Options shared by the sub-commands, each defined once with one meaning everywhere.

Only click and torch-free parts of nlconvert are imported here: ``nlconvert --help`` and
every sub-command's ``--help`` load neither torch nor onnxruntime.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from ..arch import FEATURE_LAYERS, GRAPH_LAYOUTS, HEADS
from ..errors import ArchitectureError
from ..runtime.backends import BACKEND_NAMES  # torch-free at import

F = TypeVar("F", bound=Callable[..., Any])

BACKENDS = BACKEND_NAMES


_DEBUG = {"on": False}


def enable_debug(on: bool = True) -> None:
    """Show tracebacks of errors (``--debug``, before or after the sub-command)."""
    _DEBUG["on"] = on


def debug_enabled() -> bool:
    """Whether ``--debug`` was given."""
    return _DEBUG["on"]


def _set_debug(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        enable_debug()


#: ``--debug``: accepted before or after the sub-command.
debug_option = click.option(
    "--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
    help="Show the traceback of an error.")


def _check_arch(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from ..arch import get_arch

    try:
        get_arch(value)
    except ArchitectureError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _complete_arch(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    from ..arch import arch_names

    return [n for n in arch_names() if n.startswith(incomplete)]


def arch_option(default: str | None = None, help: str | None = None) -> Callable[[F], F]:
    """``--arch NAME``: an architecture of the zoo (checked before anything else runs)."""
    return click.option(
        "--arch", default=default, metavar="NAME", callback=_check_arch,
        shell_complete=_complete_arch, show_default=default is not None,
        help=help or "Architecture name (default: from the file name or the blobs; see "
                     "`nlconvert info --list-archs`).")


def head_option(default: str = "clip", help: str | None = None) -> Callable[[F], F]:
    """``--head clip|fully_conv``."""
    return click.option(
        "--head", type=click.Choice(HEADS), default=default, show_default=True,
        help=help or "clip: global mean + FC, N x classes logits; fully_conv: the official "
                     "test head, mean of per-position softmaxes (needs 224+ px and the "
                     "training clip length).")


force_option = click.option("--force", is_flag=True,
                            help="Overwrite existing output files.")
json_option = click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
    help="Also write the results as JSON to FILE ('-' for standard output).")


def frames_option(help: str = "Frames per clip (default: the model's training clip).") -> Callable[[F], F]:
    """``--frames N``."""
    return click.option("--frames", type=click.IntRange(min=1), metavar="N", help=help)


rate_option = click.option("--rate", type=click.IntRange(min=1), metavar="R",
                           help="Frame sampling rate (default: the model's, e.g. 8 for 8x8).")


def size_option(default: int | None = None, help: str | None = None) -> Callable[[F], F]:
    """``--size PIXELS``: height = width of generated clips."""
    return click.option("--size", type=click.IntRange(min=32), default=default, metavar="PIXELS",
                        show_default=default is not None,
                        help=help or "Height and width of the clip in pixels.")


def batch_size_option(help: str = "Clips per forward pass.", default: int | None = None
                      ) -> Callable[[F], F]:
    """``--batch-size N``: clips (views, windows) per forward pass, everywhere."""
    return click.option("--batch-size", type=click.IntRange(min=1), default=default, metavar="N",
                        show_default=default is not None, help=help)


threads_option = click.option(
    "--threads", type=click.IntRange(min=1), metavar="N",
    help="Intra-op threads of PyTorch and ONNX Runtime (default: their own choice).")


def _check_device(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if value == "cpu" or value == "cuda" or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise click.BadParameter(f"{value!r}: use cpu, cuda or cuda:N")


device_option = click.option(
    "--device", default="cpu", show_default=True, callback=_check_device, metavar="DEVICE",
    help="cpu, cuda or cuda:N.")
backend_option = click.option(
    "--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
    help="torch: exact eager fp32; onnx: ONNX Runtime (a .pt is exported once and cached); "
         "fast: reduced precision + torch.compile, error stated; auto: the fastest exact "
         "backend here (onnx when onnxruntime is installed).")
check_option = click.option(
    "--check", is_flag=True,
    help="Run the first batch on the torch backend too; exit 1 if the outputs differ beyond "
         "the backend's stated tolerance.")
no_compile_option = click.option(
    "--no-compile", is_flag=True, help="fast backend: skip torch.compile (quicker start).")
views_option = click.option(
    "--views", default="10x3", show_default=True, metavar="CLIPSxCROPS",
    help="Views per video: 10x3 (the paper), 10x1 or 1x1.")
workers_option = click.option(
    "--workers", type=click.IntRange(min=0), default=None, metavar="N",
    help="Decoding processes overlapped with inference (default: 1 if this machine has "
         "more than one core, else 0 = decode in the main process).")
layouts_choice = click.Choice(GRAPH_LAYOUTS)
layer_choice = click.Choice(FEATURE_LAYERS)


def runner_options(func: F) -> F:
    """The options of a command that runs a network on videos: --backend, --device,
    --threads, --no-compile, --check."""
    for option in (check_option, no_compile_option, threads_option, device_option, backend_option):
        func = option(func)
    return func


_RAY_OPTIONS = [
    click.option("--ray", "ray_address", metavar="auto|local|ADDRESS",
                 help="Run on a Ray cluster: auto (RAY_ADDRESS or the cluster on this machine), "
                      "local (start one here) or its address. Inputs, the model and outputs must "
                      "be on storage every node sees."),
    click.option("--actors", type=click.IntRange(min=1), metavar="N",
                 help="--ray: model actors (default: one per --gpus-per-actor share of the "
                      "cluster's GPUs, else 1)."),
    click.option("--gpus-per-actor", type=click.FloatRange(min=0), default=0.0, metavar="G",
                 help="--ray: GPUs per model actor (0: CPU actors)."),
    click.option("--cpus-per-actor", type=click.FloatRange(min=0), metavar="C",
                 help="--ray: CPUs each model actor asks for (default 1 with GPUs, else 0.5)."),
    click.option("--decode-cpus", type=click.FloatRange(min=0.01), metavar="C",
                 help="--ray: CPUs per decoding task, one video each (default 1, or what a node "
                      "holding an actor has left, if less)."),
    click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True,
                 metavar="N", help="--ray: attempts of a video whose worker process dies while "
                                   "every node is alive, before it is recorded as failed (a "
                                   "lost node is never counted)."),
    click.option("--stall-timeout", type=click.FloatRange(min=1), default=600.0,
                 show_default=True, metavar="S",
                 help="--ray: stop with an error after S seconds without progress (e.g. "
                      "no live node fits the decoding tasks or the model actors)."),
]


def ray_options(func: F) -> F:
    """The options of a run on a Ray cluster (evaluate, features)."""
    for option in reversed(_RAY_OPTIONS):
        func = option(func)
    return func


def ray_settings(ray_address: str | None, *, actors: int | None, gpus_per_actor: float,
                 cpus_per_actor: float | None, decode_cpus: float | None, max_attempts: int,
                 stall_timeout: float) -> Any:
    """The :class:`~nlconvert.cluster.layout.RayOptions` of the ``--ray`` options (None: local)."""
    if ray_address is None:
        return None
    from ..cluster.layout import RayOptions

    return RayOptions(address=ray_address, actors=actors, gpus_per_actor=gpus_per_actor,
                      cpus_per_actor=cpus_per_actor, decode_cpus=decode_cpus,
                      max_attempts=max_attempts, stall_timeout_s=stall_timeout)


def check_local_only(on_ray: Any, *, check: bool, workers: int | None) -> None:
    """--check and --workers belong to local runs; with --ray they would be silently ignored."""
    if on_ray is None:
        return
    if check:
        raise click.UsageError("--check runs on this machine: try it on a local run "
                               "(e.g. with --limit 1) before the --ray run")
    if workers is not None:
        raise click.UsageError("--workers is for local runs: with --ray, decoding runs in Ray "
                               "tasks (see --decode-cpus)")


def output_path(suffixes: Sequence[str]) -> Callable[[click.Context, click.Parameter, str | None], Path | None]:
    """A callback checking an output path's suffix (e.g. ``-o out.ckpt`` is refused)."""

    def check(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Path | None:
        if value is None:
            return None
        path = Path(value)
        if path.suffix.lower() not in suffixes:
            raise click.BadParameter(
                f"{value}: the output must end with {' or '.join(suffixes)}")
        return path

    return check


def comma_list(choices: Sequence[str]) -> Callable[[click.Context, click.Parameter, str], list[str]]:
    """A callback parsing ``a,b`` into a list of names from `choices`."""

    def parse(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
        names = [v.strip() for v in value.split(",") if v.strip()]
        if not names or any(n not in choices for n in names):
            raise click.BadParameter(
                f"expected a comma-separated subset of {','.join(choices)}, got {value!r}")
        return names

    return parse


def model_input() -> click.Path:
    """A ``click.Path`` for the model a command reads: an existing file (``.pt``,
    ``.safetensors``, ``.pkl``, ``.pb``, ``.onnx``) or a hub folder (``nlconvert export-hub``)."""
    return click.Path(exists=True, file_okay=True, dir_okay=True, readable=True, path_type=Path)


def existing_file(metavar: str = "FILE") -> click.Path:
    """A ``click.Path`` for an input file that must exist."""
    return click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


def human_stream(json_path: str | None) -> TextIO:
    """Where the human-readable lines go: standard output, unless ``--json -`` has it."""
    return sys.stderr if json_path == "-" else sys.stdout


def plural(n: int, word: str) -> str:
    """``1 view``, ``30 views``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
