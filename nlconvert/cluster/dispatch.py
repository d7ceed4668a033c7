"""The driver's scheduler: every video through a decoding task and the model actors, with
the retry policy owned here (not by Ray), so that a lost node never fails a good video.

Each video is an *attempt*: a decoding task (a Ray generator task, no Ray retries) whose
chunks go, as they come, to the least busy model actor (at most ``CALLS_PER_ACTOR`` calls
queued per actor); the attempt is done when the task has ended and every chunk is back.
When anything of an attempt fails, the whole video starts again, by this policy:

* a lost node, a lost object, a dead owner (:data:`~.faults.LOST`), and a dead worker or
  actor while any node the attempt could have used is lost (:func:`~.faults.dead_nodes`):
  again without limit, after a backoff of ``BACKOFF_S`` doubling up to ``MAX_BACKOFF_S``;
* a dead worker while every node is alive (a video that crashes its process): counted;
  after ``max_attempts`` such deaths the video is handed back as :class:`Failed` (kind
  ``worker crash``). An actor's death is held against the video it was running (its oldest
  call); the videos queued behind it start again, uncounted;
* a Python error escaping a task, a model error (``fatal``), an actor that cannot load the
  model, or nothing done for ``stall_timeout_s`` (e.g. no live node fits a task): a
  :class:`~.layout.ClusterError` that ends the job.

Model actors are created here (no Ray restarts); a dead one is replaced at once and Ray
places the new one on any node that fits, including a node that joined mid-run.

Memory: at most one video per decoding slot plus one per actor is in flight, and no new
video starts while ``WAITING_PER_ACTOR`` chunks per actor wait for the model.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .faults import DIED, ERROR, LOST, alive_nodes, classify, dead_nodes
from .layout import ClusterError, Layout, RayOptions
from .stages import BackendSpec, ChunkResult, ModelActor

#: Calls queued at once on one model actor (the next chunk is there when one ends).
CALLS_PER_ACTOR = 2
#: Decoded chunks waiting for an actor, per actor, beyond which no new video starts: when
#: the model is the bottleneck, decoding must not fill the object store.
WAITING_PER_ACTOR = 8
#: First wait before a video hit by a node loss starts again; doubled each time, capped.
BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
#: How often the driver re-reads the cluster's nodes.
NODES_EVERY_S = 1.0
#: Model actors in a row that die while loading on live nodes before the job stops.
ACTOR_START_FAILURES = 3

CRASH_KIND = "worker crash"


@dataclass
class Done:
    """A video through the model: `values` are its rows in clip order (None: no clips, e.g.
    the decoding failed, which `meta` then says), `seconds` its decoding and model time."""

    key: str
    meta: Any
    values: np.ndarray | None
    backend: str | None
    seconds: float


@dataclass
class Failed:
    """A video whose process died `max_attempts` times on live nodes."""

    key: str
    path: str
    kind: str
    reason: str


@dataclass
class _Video:
    key: str
    path: str
    crashes: int = 0
    losses: int = 0
    not_before: float = 0.0


@dataclass(eq=False)
class _Attempt:
    video: _Video
    gen: Any  # the decoding task's ObjectRefGenerator; None once it has ended
    nodes: frozenset[str]  # the nodes alive when it started
    started: float
    waiting: list[Any] = field(default_factory=list)  # chunk refs not yet sent to an actor
    calls: int = 0  # chunks on an actor
    results: list[ChunkResult] = field(default_factory=list)
    live: bool = True


@dataclass(eq=False)
class _Failure:
    attempt: _Attempt
    error: BaseException
    suspect: bool  # whether the attempt itself may have killed the process
    node: str | None = None  # the actor's node, when an actor died
    actor_died: bool = False


@dataclass(eq=False)
class _Actor:
    handle: Any
    ready_ref: Any
    node: str | None = None
    tag: str | None = None
    calls: list[Any] = field(default_factory=list)  # call refs, oldest first
    dead: bool = False


class Dispatcher:
    """Runs `decode` (a generator task of :mod:`.stages`) and the model on `items`; iterate
    :meth:`run` for one :class:`Done` or :class:`Failed` per video, in completion order."""

    def __init__(self, ray: Any, items: list[tuple[str, str]], *, decode: Callable[..., Any],
                 decode_kwargs: dict[str, Any], spec: BackendSpec, actor_kwargs: dict[str, Any],
                 layout: Layout, options: RayOptions,
                 log: Callable[[str], None] | None = None) -> None:
        self.ray = ray
        self.videos = [_Video(k, p) for k, p in items]
        self.todo: list[_Video] = list(reversed(self.videos))  # popped from the end
        self.layout = layout
        self.options = options
        self.log = log
        self.decode = ray.remote(decode).options(num_cpus=layout.decode_cpus, max_retries=0,
                                                 num_returns="streaming")
        # a job may size its chunks itself (several crops per window: fewer windows)
        self.decode_kwargs = {"rows_per_chunk": spec.rows_per_chunk, **decode_kwargs}
        self.actor_class = ray.remote(ModelActor).options(
            num_cpus=layout.actor_cpus, num_gpus=layout.actor_gpus or None, max_restarts=0,
            max_task_retries=0)
        self.spec = spec
        self.actor_kwargs = actor_kwargs
        self.actors: list[_Actor] = []
        self.attempts: list[_Attempt] = []
        self.owner: dict[Any, tuple[str, Any]] = {}  # waitable -> ("gen"|"call"|"ready", who)
        self.call_attempt: dict[Any, _Attempt] = {}
        self.nodes: dict[str, dict[str, float]] = {}
        self.first_seen: dict[str, float] = {}  # node id -> when this driver first saw it
        self.nodes_at = 0.0
        self.progress_at = time.monotonic()
        self.actor_start_failures = 0
        self.out: list[Done | Failed] = []

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> Iterator[Done | Failed]:
        self._refresh_nodes(force=True)
        for _ in range(self.layout.actors):
            self._start_actor()
        while self.todo or self.attempts:
            now = time.monotonic()
            self._refresh_nodes()
            self._check_stall(now)
            self._start_attempts(now)
            self._send_chunks()
            waitables = list(self.owner)
            if waitables:
                ready, rest = self.ray.wait(waitables, num_returns=1, timeout=0.5)
                if ready and rest:
                    more, _ = self.ray.wait(rest, num_returns=len(rest), timeout=0)
                    ready += more
                failures: list[_Failure] = []
                for item in ready:
                    self._handle(item, failures)
                self._settle(failures)
            else:
                time.sleep(0.2)
            yield from self.out
            self.out = []

    def close(self) -> None:
        """Stop the actors and whatever still runs (the job is over, or failed)."""
        for attempt in self.attempts:
            self._cancel(attempt)
        for actor in self.actors:
            with contextlib.suppress(Exception):  # an actor that is gone already
                self.ray.kill(actor.handle, no_restart=True)

    # -- cluster state ----------------------------------------------------------------------

    def _refresh_nodes(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.nodes_at >= NODES_EVERY_S:
            self.nodes = alive_nodes(self.ray)
            self.nodes_at = now
            for node in self.nodes:
                self.first_seen.setdefault(node, now)

    def _fits(self, cpus: float, gpus: float) -> bool:
        return any(r.get("CPU", 0.0) >= cpus and r.get("GPU", 0.0) >= gpus
                   for r in self.nodes.values())

    def _check_stall(self, now: float) -> None:
        idle = now - self.progress_at
        if idle < self.options.stall_timeout_s:
            return
        layout = self.layout
        if not self._fits(layout.decode_cpus, 0.0) or not self._fits(layout.actor_cpus,
                                                                     layout.actor_gpus):
            raise ClusterError(
                f"no live Ray node can run a decoding task ({layout.decode_cpus:g} CPU) and a "
                f"model actor ({layout.actor_cpus:g} CPU, {layout.actor_gpus:g} GPU) for "
                f"{idle:.0f} s (--stall-timeout; every worker node lost?): "
                f"{len(self.attempts) + len(self.todo)} video(s) not done")
        raise ClusterError(f"the Ray job made no progress for {idle:.0f} s (--stall-timeout): "
                           f"{len(self.attempts) + len(self.todo)} video(s) not done")

    def _progress(self) -> None:
        self.progress_at = time.monotonic()

    # -- actors -----------------------------------------------------------------------------

    def _start_actor(self) -> None:
        handle = self.actor_class.remote(self.spec, **self.actor_kwargs)
        actor = _Actor(handle, handle.ready.remote())
        self.actors.append(actor)
        self.owner[actor.ready_ref] = ("ready", actor)

    def _actor_died(self, actor: _Actor, exc: BaseException | None,
                    failures: list[_Failure]) -> None:
        """Replace a dead actor; its oldest call's video is the suspect, the others start
        again uncounted."""
        if actor.dead:
            return
        actor.dead = True
        self.actors.remove(actor)
        self.owner.pop(actor.ready_ref, None)
        error = exc or RuntimeError("model actor died")
        for i, ref in enumerate(actor.calls):
            self.owner.pop(ref, None)
            attempt = self.call_attempt.pop(ref, None)
            if attempt is not None and attempt.live:
                failures.append(_Failure(attempt, error, i == 0, actor.node, actor_died=True))
        actor.calls = []
        with contextlib.suppress(Exception):  # it is gone already
            self.ray.kill(actor.handle, no_restart=True)
        self._start_actor()

    def _idle_actor(self) -> _Actor | None:
        ready = [a for a in self.actors if a.node is not None and len(a.calls) < CALLS_PER_ACTOR]
        return min(ready, key=lambda a: len(a.calls), default=None)

    # -- attempts ---------------------------------------------------------------------------

    def _capacity(self) -> int:
        """Videos in flight at once: one per decoding slot, plus one per actor (a video whose
        chunks are all decoded stays in flight until the model has them all)."""
        cpus = sum(r.get("CPU", 0.0) for r in self.nodes.values())
        free = cpus - self.layout.actors * self.layout.actor_cpus
        return max(1, int(free // self.layout.decode_cpus)) + self.layout.actors

    def _start_attempts(self, now: float) -> None:
        waiting_chunks = sum(len(a.waiting) for a in self.attempts)
        if waiting_chunks >= WAITING_PER_ACTOR * self.layout.actors:
            return
        while len(self.attempts) < self._capacity():
            waiting = [v for v in self.todo if v.not_before <= now]
            if not waiting:
                return
            video = waiting[-1]
            self.todo.remove(video)
            gen = self.decode.remote(video.key, video.path, **self.decode_kwargs)
            attempt = _Attempt(video, gen, frozenset(self.nodes), now)
            self.attempts.append(attempt)
            self.owner[gen] = ("gen", attempt)

    def _send_chunks(self) -> None:
        for attempt in self.attempts:
            while attempt.waiting:
                actor = self._idle_actor()
                if actor is None:
                    return
                ref = actor.handle.run.remote(attempt.waiting.pop(0))
                actor.calls.append(ref)
                attempt.calls += 1
                self.owner[ref] = ("call", actor)
                self.call_attempt[ref] = attempt

    def _handle(self, item: Any, failures: list[_Failure]) -> None:
        if item not in self.owner:
            return  # dropped meanwhile (its actor died in this round)
        what, who = self.owner[item]
        if what == "gen":
            attempt: _Attempt = who
            try:
                ref = next(item)
            except StopIteration:
                del self.owner[item]
                attempt.gen = None
                self._maybe_done(attempt)
                return
            attempt.waiting.append(ref)
            self._progress()
        elif what == "ready":
            actor: _Actor = who
            del self.owner[item]
            try:
                actor.node, actor.tag = self.ray.get(item)
            except Exception as exc:  # noqa: BLE001 - classified below
                self._actor_start_failed(actor, exc, failures)
                return
            self.actor_start_failures = 0
            self._progress()
            if self.log:
                self.log(f"ray: model actor ready on node {actor.node[:12]}")
        else:
            actor = who
            try:
                result: ChunkResult = self.ray.get(item)
            except Exception as exc:  # noqa: BLE001 - classified below
                from ray.exceptions import RayActorError

                if isinstance(exc, RayActorError):
                    self._actor_died(actor, exc, failures)  # all its calls, oldest first
                    return
                result = None  # type: ignore[assignment]
                error = exc
            del self.owner[item]
            actor.calls.remove(item)
            owner = self.call_attempt.pop(item)
            if result is None:
                if owner.live:
                    failures.append(_Failure(owner, error, True))
                return
            if result.fatal is not None:
                raise ClusterError(f"a model actor failed: {result.fatal}")
            if owner.live:
                owner.calls -= 1
                owner.results.append(result)
                self._progress()
                self._maybe_done(owner)

    def _actor_start_failed(self, actor: _Actor, exc: BaseException,
                            failures: list[_Failure]) -> None:
        text = " ".join(str(exc).split())[:300]
        if getattr(exc, "actor_init_failed", False) or classify(exc) == ERROR:
            raise ClusterError(f"a model actor could not load the model: {text}")
        if classify(exc) == DIED and not dead_nodes(self.ray, self.nodes):
            self.actor_start_failures += 1
            if self.actor_start_failures >= ACTOR_START_FAILURES:
                raise ClusterError(f"model actors died {ACTOR_START_FAILURES} times while "
                                   f"loading the model on live nodes: {text}")
        self._actor_died(actor, exc, failures)

    def _maybe_done(self, attempt: _Attempt) -> None:
        if attempt.gen is not None or attempt.waiting or attempt.calls or not attempt.live:
            return
        last = [r for r in attempt.results if r.meta is not None]
        if not last:  # the task ended without its record: it failed
            self._settle([_Failure(attempt, RuntimeError("decoding ended early"), True)])
            return
        self._retire(attempt)
        rows = {i: v for r in attempt.results if r.values is not None
                for i, v in zip(r.indices, r.values, strict=True)}
        values = np.stack([rows[i] for i in sorted(rows)]) if rows else None
        self.out.append(Done(attempt.video.key, last[0].meta, values, last[0].backend,
                             sum(r.seconds for r in attempt.results)))

    def _retire(self, attempt: _Attempt) -> None:
        attempt.live = False
        if attempt in self.attempts:
            self.attempts.remove(attempt)

    def _cancel(self, attempt: _Attempt) -> None:
        self._retire(attempt)
        if attempt.gen is not None:
            self.owner.pop(attempt.gen, None)
            with contextlib.suppress(Exception):  # best effort: it may be gone with its node
                self.ray.cancel(attempt.gen)
            attempt.gen = None
        attempt.waiting = []

    # -- the retry policy -------------------------------------------------------------------

    def _settle(self, failures: list[_Failure]) -> None:
        """Decide each failed attempt's fate (see the module doc)."""
        dead: set[str] | None = None
        now = time.monotonic()
        settled: set[int] = set()
        for failure in failures:
            attempt = failure.attempt
            if id(attempt) in settled:
                continue  # two of its chunks failed in this round
            settled.add(id(attempt))
            self._cancel(attempt)
            video, error = attempt.video, failure.error
            # An actor's death is a crash or a lost node whatever Ray calls it (it may say
            # "unavailable" for either): the probe decides.
            kind = DIED if failure.actor_died else classify(error)
            if kind == ERROR:
                raise ClusterError(f"a Ray task of {video.path} failed: {type(error).__name__}: "
                                   f"{' '.join(str(error).split())[:300]}")
            if kind == DIED and failure.suspect:
                if dead is None:  # one probe of the nodes for the whole round
                    dead = dead_nodes(self.ray, set().union(*(self._used(f) for f in failures)))
                    self._refresh_nodes(force=True)
                    if self.log and dead:
                        self.log(f"ray: node(s) lost: {', '.join(sorted(n[:12] for n in dead))}")
                if not self._used(failure) & dead:
                    self._crashed(video, error)
                    continue
            if kind == LOST or failure.suspect:
                video.losses += 1
                wait = min(BACKOFF_S * 2 ** (video.losses - 1), MAX_BACKOFF_S)
                video.not_before = now + wait
                self._say(f"{video.path}: {type(error).__name__} (a node, an object or an actor "
                          f"was lost): again in {wait:g} s")
            else:
                self._say(f"{video.path}: queued on a model actor that died: again")
            self.todo.append(video)

    def _say(self, line: str) -> None:
        if self.log:
            self.log(f"ray: {line}")

    def _used(self, failure: _Failure) -> set[str]:
        """The nodes an attempt may have run on: those alive when it started or seen since,
        and the node of the actor that died with it."""
        attempt = failure.attempt
        nodes = set(attempt.nodes)
        nodes.update(n for n, seen in self.first_seen.items() if seen >= attempt.started)
        if failure.node is not None:
            nodes.add(failure.node)
        return nodes

    def _crashed(self, video: _Video, exc: BaseException) -> None:
        video.crashes += 1
        self._progress()
        self._say(f"{video.path}: its worker process died ({type(exc).__name__}) while every "
                  f"node answered: attempt {video.crashes} of {self.options.max_attempts}")
        if video.crashes < self.options.max_attempts:
            self.todo.append(video)
            return
        self.out.append(Failed(
            video.key, video.path, CRASH_KIND,
            f"{video.path}: its worker process died on each of {video.crashes} attempts while "
            f"every node stayed alive (last: {type(exc).__name__}); recorded as failed"))
