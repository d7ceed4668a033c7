"""How the bulk commands get their network: a backend opened here, or (``--ray``) the plan of
the backend the Ray actors will open, with the same one-line announcement either way."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, TextIO

from ..arch import Head


def get_runner(model: Path, backend: str, *, head: Head, device: str, threads: int | None,
               batch_size: int | None, compile: bool, on_ray: Any = None,
               out: TextIO | None = None) -> tuple[Any, Any]:
    """The backend (or its plan) and, with `on_ray`, the spec the actors open it from.

    Loading shows a status line on a terminal; which backend was taken is printed to `out`
    (default standard output).
    """
    from .._progress import status
    from ..runtime.backends import describe_choice, open_backend, plan_backend

    if on_ray is not None:
        from ..cluster.stages import BackendSpec

        if on_ray.gpus_per_actor > 0:
            device = "cuda"
        plan = plan_backend(model, backend, device=device)
        print(f"backend: {plan.info.name} ({plan.info.precision}) in Ray actors", file=out)
        spec = BackendSpec(str(model.resolve()), plan.info.name, device, threads, batch_size, compile)
        return plan, spec
    with status(f"loading {model}") as st:
        runner = open_backend(model, backend, device=device, threads=threads,
                              batch_size=batch_size, compile=compile, log=st.log)
    runner.require(head)
    print(describe_choice(backend, runner), file=out)
    return runner, None


def print_check(runner: Any, out: TextIO | None = None) -> None:
    """After a run with ``--check`` that passed: what the check measured (it is silent only
    when no check ran)."""
    result = getattr(runner, "last_check", None)
    if result is not None:
        print(f"check passed: {runner.name} against torch on the first batch: "
              f"{result.describe()}", file=out)


def cluster_session(on_ray: Any) -> contextlib.AbstractContextManager[Any]:
    """Connected to the Ray cluster for the whole command (``--ray``), before any output is
    created, so a cluster that cannot be reached leaves nothing behind; else nothing."""
    if on_ray is None:
        return contextlib.nullcontext()
    from ..cluster.layout import connected

    return connected(on_ray)
