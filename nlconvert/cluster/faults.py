"""Why a Ray task failed: a lost node (retry without limit) or a process that died on a
video (the poison case, counted).

Ray reports a worker that disappears with its node as a :class:`~ray.exceptions.WorkerCrashedError`
(or an actor death) as long as the cluster has not yet noticed the node is gone, which takes
seconds to a minute. So the type of the error alone cannot tell a poisoned video from a lost
node; :func:`dead_nodes` asks the nodes themselves: a tiny task pinned to each node that
was alive when the attempt started. A node that does not answer within ``PROBE_TIMEOUT_S``
(or that Ray already marks dead) was lost, and the attempt is not held against the video.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

#: A lost node, a lost object or a dead owner: never the video's fault.
LOST = "lost"
#: A worker process or actor died: the video's fault if no node was lost meanwhile.
DIED = "died"
#: A Python error outside the code that records a video's errors: a property of the job.
ERROR = "error"

#: How long a live node may take to answer a probe (a worker process may have to start).
PROBE_TIMEOUT_S = 30.0


def classify(exc: BaseException) -> str:
    """:data:`LOST`, :data:`DIED` or :data:`ERROR` for an exception from ``ray.get``."""
    from ray import exceptions as rx

    lost = (rx.ObjectLostError, rx.NodeDiedError, rx.ActorUnavailableError,
            rx.TaskCancelledError, rx.ObjectStoreFullError, rx.OutOfDiskError,
            rx.LocalRayletDiedError, rx.RaySystemError, rx.RpcError, rx.TaskUnschedulableError,
            rx.ActorUnschedulableError)
    if isinstance(exc, lost):
        return LOST
    if isinstance(exc, rx.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, rx.RayError) and not isinstance(cause, rx.RayTaskError):
            return classify(cause)
        return ERROR
    # WorkerCrashedError, ActorDiedError, OutOfMemoryError (the memory monitor killed the
    # worker) and anything unforeseen: decided by whether a node was lost.
    return DIED


def alive_nodes(ray: Any) -> dict[str, dict[str, float]]:
    """The nodes Ray believes alive: node id -> resources."""
    return {n["NodeID"]: {k: float(v) for k, v in n.get("Resources", {}).items()}
            for n in ray.nodes() if n.get("Alive", False)}


_PROBE: dict[str, Any] = {}


def _probe_remote(ray: Any) -> Any:
    """A task that answers with the id of the node it ran on (defined once Ray is imported)."""
    if "probe" not in _PROBE:
        @ray.remote(num_cpus=0, max_retries=0)
        def node_id() -> str:
            import ray as worker_ray

            return str(worker_ray.get_runtime_context().get_node_id())

        _PROBE["probe"] = node_id
    return _PROBE["probe"]


def dead_nodes(ray: Any, nodes: Iterable[str], *, timeout_s: float = PROBE_TIMEOUT_S) -> set[str]:
    """Those of `nodes` that are dead: marked dead by Ray, or not answering a pinned task."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    wanted = set(nodes)
    alive = alive_nodes(ray)
    dead = {n for n in wanted if n not in alive}
    probe = _probe_remote(ray)
    refs = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False))
            .remote(): n for n in wanted - dead}
    if refs:
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        for ref in refs:
            node = refs[ref]
            if ref not in ready:
                dead.add(node)
                continue
            try:
                if ray.get(ref) != node:
                    dead.add(node)
            except Exception:  # noqa: BLE001 - a probe that fails is a node that is gone
                dead.add(node)
        for ref in set(refs) - set(ready):
            with contextlib.suppress(Exception):  # best effort: the node is gone anyway
                ray.cancel(ref, force=True)
    return dead
