"""Connecting to a Ray cluster and sizing a job on it.

The trap this avoids: model actors that take every CPU of a CPU-only cluster leave none for
the decoding tasks (or for rebuilding objects lost with a node), and the pipeline then waits
forever. Here actors ask for a fraction of a CPU by default, a layout that leaves decoding no
CPU is refused before anything starts, and a job that makes no progress for
``stall_timeout_s`` stops with an error instead of hanging.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import NLConvertError


class ClusterError(NLConvertError):
    """Ray is missing, the cluster cannot be reached, or the job cannot run on it."""


@dataclass(frozen=True)
class RayOptions:
    """How to run on Ray (the ``--ray`` options of ``evaluate`` and ``features``).

    `address`: ``auto`` (``RAY_ADDRESS`` or the cluster running on this machine), ``local``
    (start one in this process) or a cluster address. `actors`: model actors (default: one
    per GPU share, else one). `gpus_per_actor`: GPUs each actor takes (0: CPU actors).
    `cpus_per_actor`: CPUs each actor asks for (default 1 with GPUs, 0.5 without: a CPU
    actor's threads share cores with decoding). `decode_cpus`: CPUs per decoding task
    (default 1, less on nodes too small to hold an actor and a decoding task side by side, so
    that the job still progresses when it is down to one node).
    `max_attempts`: attempts of a video whose worker process dies while every node stays
    alive (a video that crashes its decoder or the model) before it is recorded as failed;
    a lost node, object or owner is never counted (see :mod:`.dispatch`).
    `stall_timeout_s`: stop with an error after this long without any progress (e.g. no live
    node fits the decoding tasks or the model actors).
    """

    address: str = "auto"
    actors: int | None = None
    gpus_per_actor: float = 0.0
    cpus_per_actor: float | None = None
    decode_cpus: float | None = None
    max_attempts: int = 3
    stall_timeout_s: float = 600.0
    local_cpus: int | None = None

    @property
    def actor_cpus(self) -> float:
        if self.cpus_per_actor is not None:
            return self.cpus_per_actor
        return 1.0 if self.gpus_per_actor > 0 else 0.5


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError("--ray needs Ray: pip install 'nlconvert[ray]'") from None
    return ray


def _probe(address: str) -> None:
    """Fail fast on an address nothing listens at (Ray itself would retry for minutes)."""
    host_port = address.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        return  # no port to try: let Ray resolve it
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ClusterError(f"cannot connect to a Ray cluster at {address}: nothing answers there "
                           f"({exc.strerror or exc}); start one with `ray start --head`, or use "
                           "--ray local") from None


@contextlib.contextmanager
def connected(options: RayOptions) -> Iterator[Any]:
    """Connect to (or start) the cluster; disconnect afterwards if this call connected."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": "ERROR"}
    if options.address == "local":
        kwargs["num_cpus"] = options.local_cpus or os.cpu_count()
    elif options.address == "auto":
        kwargs["address"] = os.environ.get("RAY_ADDRESS") or "auto"
    else:
        kwargs["address"] = options.address
    if "address" in kwargs:
        _probe(kwargs["address"])
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = options.address if options.address != "auto" else "RAY_ADDRESS or this machine"
        raise ClusterError(f"cannot connect to a Ray cluster at {where}: "
                           f"{' '.join(str(exc).split())[:300]} (start one with "
                           "`ray start --head`, or use --ray local)") from None
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class Layout:
    """The resources of one job: actors and what each asks for, the decoding tasks'."""

    actors: int
    actor_cpus: float
    actor_gpus: float
    decode_cpus: float
    cluster_cpus: float
    cluster_gpus: float

    def describe(self) -> str:
        gpus = f", {self.actor_gpus:g} GPU" if self.actor_gpus else ""
        return (f"{self.actors} model actor(s) of {self.actor_cpus:g} CPU{gpus}; decoding tasks "
                f"of {self.decode_cpus:g} CPU; cluster {self.cluster_cpus:g} CPUs, "
                f"{self.cluster_gpus:g} GPUs")


def plan_layout(options: RayOptions, nodes: list[dict[str, Any]]) -> Layout:
    """Size the job for the cluster's live `nodes` (``ray.nodes()``); refuse one that cannot
    make progress: an actor that fits no node, or actors that leave decoding no CPU."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    cpus = sum(float(r.get("CPU", 0)) for r in alive)
    gpus = sum(float(r.get("GPU", 0)) for r in alive)
    if options.gpus_per_actor > 0:
        if gpus < options.gpus_per_actor:
            raise ClusterError(f"--gpus-per-actor {options.gpus_per_actor:g}: the cluster has "
                               f"{gpus:g} GPUs")
        default_actors = max(1, int(gpus // options.gpus_per_actor))
    else:
        default_actors = 1
    actors = options.actors or default_actors
    decode_cpus = options.decode_cpus
    if decode_cpus is None:
        smallest = min((float(r.get("CPU", 0)) for r in alive if float(r.get("CPU", 0)) > 0),
                       default=1.0)
        decode_cpus = max(0.25, min(1.0, smallest - options.actor_cpus))
    layout = Layout(actors, options.actor_cpus, options.gpus_per_actor, decode_cpus, cpus, gpus)
    if actors < 1 or layout.actor_cpus < 0 or layout.decode_cpus <= 0:
        raise ClusterError("--actors must be at least 1, --decode-cpus more than 0")
    fits = [r for r in alive if float(r.get("CPU", 0)) >= layout.actor_cpus
            and float(r.get("GPU", 0)) >= layout.actor_gpus]
    if not fits:
        raise ClusterError(f"no node of the cluster can hold a model actor of "
                           f"{layout.actor_cpus:g} CPU and {layout.actor_gpus:g} GPU "
                           f"({layout.describe()})")
    if not any(float(r.get("CPU", 0)) >= layout.decode_cpus for r in alive):
        raise ClusterError(f"no node has {layout.decode_cpus:g} CPU for a decoding task "
                           f"(--decode-cpus; {layout.describe()})")
    left = cpus - actors * layout.actor_cpus
    if left >= layout.decode_cpus and not _decoding_fits_beside_actors(alive, layout):
        raise ClusterError(
            f"placed on the nodes, {actors} model actor(s) of {layout.actor_cpus:g} CPU leave no "
            f"node with {layout.decode_cpus:g} CPU for decoding ({layout.describe()}): the job "
            "could never finish; use fewer --actors, a smaller --cpus-per-actor or --decode-cpus")
    if left < layout.decode_cpus:
        raise ClusterError(
            f"{actors} model actor(s) of {layout.actor_cpus:g} CPU take {actors * layout.actor_cpus:g} "
            f"of the cluster's {cpus:g} CPUs and leave {max(left, 0):g} for decoding, which "
            f"needs {layout.decode_cpus:g}: the job could never finish; use fewer --actors, a "
            "smaller --cpus-per-actor or --decode-cpus, or a bigger cluster")
    if actors * layout.actor_gpus > gpus:
        raise ClusterError(f"{actors} actors of {layout.actor_gpus:g} GPU need "
                           f"{actors * layout.actor_gpus:g} GPUs; the cluster has {gpus:g}")
    return layout


def _decoding_fits_beside_actors(nodes: list[dict[str, Any]], layout: Layout) -> bool:
    """Place the actors first-fit on the nodes with the most CPUs free; then some node must
    still have room for one decoding task."""
    free = sorted(([float(r.get("CPU", 0)), float(r.get("GPU", 0))] for r in nodes),
                  key=lambda f: -f[0])
    for _ in range(layout.actors):
        slot = next((f for f in free if f[0] >= layout.actor_cpus and f[1] >= layout.actor_gpus),
                    None)
        if slot is None:
            return False
        slot[0] -= layout.actor_cpus
        slot[1] -= layout.actor_gpus
        free.sort(key=lambda f: -f[0])
    return any(f[0] >= layout.decode_cpus for f in free)
