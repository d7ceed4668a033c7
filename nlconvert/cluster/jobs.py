"""``evaluate`` and ``features`` as Ray Data pipelines, consumed by the driver.

The pipeline: the videos still to do -> decoding tasks (CPU, one video each, rows of uint8
views or windows) -> the model in an actor pool -> rows streamed back to the driver, which
alone writes: the SQLite database (evaluate) or the feature files and index (features),
through the same code as a local run, so a rerun or a killed driver resumes the same way.

Faults, as configured here (README, "Across machines"):

* decoding tasks: ``max_retries = max_attempts - 1`` (a task whose worker dies, or whose node
  is lost, runs again elsewhere; lost outputs are rebuilt the same way);
* model actors: restarted without limit (``max_restarts=-1``: a lost node must not end the
  job), each batch retried ``max_attempts - 1`` times;
* a task that fails ``max_attempts`` times fails its block; Ray Data's error budget
  (``max_errored_blocks = max_failed_tasks``) lets the job go on, and the driver records its
  videos as failed (kind ``worker crash``) with the reason; more failed tasks than the
  budget stop the job with an error (something systematic is wrong);
* no progress for ``stall_timeout_s``: an error (Ray Data's ``execution_no_progress_timeout_s``);
* results are idempotent by video key: a result seen twice is recorded once.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from .._progress import StepBar, interactive
from ..arch import ArchSpec
from ..errors import NLConvertError
from ..video.crops import CropSpec
from ..video.datalist import Entry
from ..video.evaluate import EvalSummary, check_view_shape, plan_work
from ..video.features import FeatureAssembler, VideoFeatures
from ..video.featurestore import FeatureStore
from ..video.protocol import Views
from ..video.resultsdb import ResultsDB
from ..video.stream import VideoSummary
from .layout import ClusterError, Layout, RayOptions, configure_data_context, connected, plan_layout
from .stages import (
    BackendSpec,
    Decoder,
    decode_views_task,
    decode_windows_task,
    model_actor_class,
    unpack,
)

LOST_KIND = "worker crash"


def _lost_reason(path: str, options: RayOptions) -> str:
    return (f"{path}: its tasks failed {options.max_attempts} times (the worker process died "
            "each time, or its node was lost); recorded as failed, not retried")


def _pipeline(ray: Any, items: list[dict[str, str]], decode: Any, decode_kwargs: dict[str, Any],
              spec: BackendSpec, actor_kwargs: dict[str, Any], layout: Layout,
              options: RayOptions) -> Any:
    attempts = max(options.max_attempts - 1, 0)
    ds = ray.data.from_items(items, override_num_blocks=max(len(items), 1))
    with warnings.catch_warnings():
        # Ray 2.60 deprecates passing Ray's remote options through map_batches but has no
        # named parameter for the retry and restart limits yet: these are they.
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(decode, fn_kwargs=decode_kwargs, batch_size=1,
                            num_cpus=layout.decode_cpus, max_retries=attempts)
        return ds.map_batches(
            model_actor_class(spec, **actor_kwargs),
            batch_size=spec.batch_size or 6, concurrency=layout.actors,
            num_cpus=layout.actor_cpus, num_gpus=layout.actor_gpus or None, max_restarts=-1,
            max_task_retries=attempts)


def _rows(ds: Any, options: RayOptions) -> Any:
    """The pipeline's result messages; Ray's failures become one-line errors."""
    try:
        for row in ds.iter_rows():
            message = unpack(row["msg"])
            if message[0] == "fatal":
                raise ClusterError(f"a model actor failed: {message[1]}")
            yield message
    except NLConvertError:
        raise
    except Exception as exc:  # Ray wraps worker errors in its own exception types
        from ray.data.exceptions import ExecutionTimeoutError

        text = " ".join(str(exc).split())
        if isinstance(exc, ExecutionTimeoutError):
            raise ClusterError(f"the Ray pipeline made no progress for {options.stall_timeout_s:g} s "
                               "(no free CPU for decoding? a node that never comes back?): "
                               f"{text[:200]}") from None
        raise ClusterError(f"the Ray pipeline failed: {type(exc).__name__}: {text[:400]}") from None


def _check_backend(tag: str, expected: str) -> None:
    if tag != expected:
        raise ClusterError(f"the model actors run backend {tag}, but this run records {expected} "
                           "(nodes with different hardware?); pass --backend explicitly")


def evaluate_on_ray(
    spec: BackendSpec,
    arch: ArchSpec,
    entries: list[Entry],
    db: ResultsDB,
    views: str | Views = "10x3",
    *,
    options: RayOptions,
    frames: int,
    rate: int,
    limit: int | None = None,
    progress: bool | None = None,
    after_video: Callable[[str], None] | None = None,
    log: Callable[[str], None] | None = None,
    decoder: Decoder | None = None,
    strict: bool = False,
) -> EvalSummary:
    """:func:`nlconvert.video.evaluate.evaluate` on a Ray cluster: the same database rows.

    `after_video(key)` runs after each video is recorded; `decoder` replaces the decoding of
    the views (see :func:`~nlconvert.cluster.stages.decode_views_task`).
    """
    v = str(Views.parse(views))
    check_view_shape(arch, frames)
    start = time.perf_counter()
    todo, already, pending_after = plan_work(entries, db.done_keys(), limit)
    summary = EvalSummary(len(entries), already, 0, 0, pending_after, 0.0)
    by_key = {e.key: e for e in todo}
    recorded: set[str] = set()
    bar = StepBar(len(todo), "evaluate (ray)", unit="video") if progress is not False else None

    def fail(e: Entry, kind: str, reason: str) -> None:
        if e.key in recorded:
            return
        db.record_failure(e.key, e.path, e.label, kind, reason, 0.0)
        recorded.add(e.key)
        summary.failed += 1
        summary.failures.append((e.key, reason))
        _tick(bar, after_video, e.key)

    for e in todo:
        if e.path is None:
            fail(e, "missing", f"{e.key}: listed video not found under the root folder")
    present = [e for e in todo if e.path is not None]
    if present:
        with connected(options) as ray:
            layout = plan_layout(options, ray.nodes())
            if log:
                log(f"ray: {layout.describe()}")
            configure_data_context(options, progress=interactive() and progress is not False)
            ds = _pipeline(ray, [{"key": e.key, "path": e.path or ""} for e in present],
                           decode_views_task,
                           {"frames": frames, "rate": rate, "views": v, "decoder": decoder,
                            "strict": strict},
                           spec, {"task": "scores"}, layout, options)
            probs: dict[str, dict[int, np.ndarray]] = {}
            for message in _rows(ds, options):
                e = by_key[message[1]]
                if e.key in recorded:
                    continue  # a retried task's duplicate
                if message[0] == "error":
                    fail(e, message[3], message[4])
                    continue
                _, _, index, total, row, tag, num_frames, *extra = message
                warnings = tuple(extra[0]) if extra else ()
                _check_backend(tag, db.config.backend)
                got = probs.setdefault(e.key, {})
                got[int(index)] = row
                if len(got) == total:
                    del probs[e.key]
                    scores = np.stack([got[i] for i in range(total)]).astype(np.float64).sum(axis=0)
                    db.record_ok(e.key, e.path or "", e.label, scores, num_frames, 0.0, warnings)
                    recorded.add(e.key)
                    summary.scored += 1
                    if warnings:
                        summary.warned.append((e.key, warnings))
                    _tick(bar, after_video, e.key)
        for e in present:
            if e.key not in recorded:
                fail(e, LOST_KIND, _lost_reason(e.path or e.key, options))
    if bar is not None:
        bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def features_on_ray(
    spec: BackendSpec,
    arch: ArchSpec,
    items: Sequence[tuple[str, str]],
    store: FeatureStore,
    *,
    options: RayOptions,
    layer: str,
    frames: int,
    rate: int,
    stride: int,
    fps: Fraction | None,
    crop: str | CropSpec,
    spatial: bool = False,
    on_video: Callable[[VideoFeatures], None] | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> None:
    """:func:`nlconvert.video.features.extract_features` on a Ray cluster, written by the
    driver into `store` (each video once); `on_video` sees every video as it is written."""
    crop = CropSpec.make(crop)
    arch.check_clip((1, 3, frames, crop.size or 256, crop.size or 256), "clip")
    paths = dict(items)
    written: set[str] = set()
    assembler = FeatureAssembler()

    def write(result: VideoFeatures) -> None:
        if result.video in written:
            return
        store.write(result.video, paths[result.video], result.features, result.windows)
        written.add(result.video)
        if on_video is not None:
            on_video(result)

    with connected(options) as ray:
        layout = plan_layout(options, ray.nodes())
        if log:
            log(f"ray: {layout.describe()}")
        configure_data_context(options, progress=interactive() and progress is not False)
        ds = _pipeline(ray, [{"key": k, "path": p} for k, p in items], decode_windows_task,
                       {"frames": frames, "rate": rate, "stride": stride, "fps": fps,
                        "crop": crop}, spec,
                       {"task": "features", "layer": layer, "spatial": spatial}, layout, options)
        for message in _rows(ds, options):
            if message[0] == "summary":
                for done in assembler.add_summary(message[2]):
                    write(done)
            elif message[0] == "feat":
                _, key, index, row, tag = message
                _check_backend(tag, store.settings.backend)
                for done in assembler.add_rows(key, [index], row[None]):
                    write(done)
    for key, path in items:
        if key not in written:
            write(VideoFeatures(key, None, VideoSummary(key, path, error=_lost_reason(path, options),
                                                        kind=LOST_KIND)))


def _tick(bar: StepBar | None, after_video: Callable[[str], None] | None, key: str) -> None:
    if bar is not None:
        bar.step()
    if after_video is not None:
        after_video(key)
