"""``evaluate`` and ``features`` on a Ray cluster, written by the driver.

:class:`~.dispatch.Dispatcher` runs each video still to do through a decoding task and the
model actors and owns every retry (see there and README, "Across machines"); this module
turns its outcomes into what a local run writes: the SQLite database (evaluate) or the
feature files and index (features), through the same code, so a rerun or a killed driver
resumes the same way. Results are idempotent by video key: a video is written once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from .._progress import StepBar
from ..arch import ArchSpec
from ..video.crops import CropSpec
from ..video.datalist import Entry
from ..video.evaluate import EvalSummary, check_view_shape, plan_work
from ..video.features import VideoFeatures
from ..video.featurestore import FeatureStore
from ..video.protocol import Views
from ..video.resultsdb import ResultsDB
from ..video.stream import VideoSummary
from .dispatch import Dispatcher, Done, Failed
from .layout import ClusterError, RayOptions, connected, plan_layout
from .stages import BackendSpec, Decoder, decode_views_task, decode_windows_task


def _outcomes(items: list[tuple[str, str]], *, decode: Callable[..., Any],
              decode_kwargs: dict[str, Any], spec: BackendSpec, actor_kwargs: dict[str, Any],
              options: RayOptions, log: Callable[[str], None] | None
              ) -> Iterator[Done | Failed]:
    """One outcome per item, from a dispatcher on the (connected) cluster."""
    with connected(options) as ray:
        layout = plan_layout(options, ray.nodes())
        if log:
            log(f"ray: {layout.describe()}")
        dispatcher = Dispatcher(ray, items, decode=decode, decode_kwargs=decode_kwargs,
                                spec=spec, actor_kwargs=actor_kwargs, layout=layout,
                                options=options, log=log)
        try:
            yield from dispatcher.run()
        finally:
            dispatcher.close()


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
    the views (see :func:`~nlconvert.cluster.stages.decode_views_task`); with `strict`, a video
    with decode warnings is recorded as failed.
    """
    v = str(Views.parse(views))
    check_view_shape(arch, frames)
    start = time.perf_counter()
    todo, already, pending_after = plan_work(entries, db.done_keys(), limit)
    summary = EvalSummary(len(entries), already, 0, 0, pending_after, 0.0)
    by_key = {e.key: e for e in todo}
    recorded: set[str] = set()
    bar = StepBar(len(todo), "evaluate (ray)", unit="video") if progress is not False else None

    def fail(e: Entry, kind: str, reason: str, seconds: float = 0.0) -> None:
        db.record_failure(e.key, e.path, e.label, kind, reason, seconds)
        recorded.add(e.key)
        summary.failed += 1
        summary.failures.append((e.key, reason))
        _tick(bar, after_video, e.key)

    for e in todo:
        if e.path is None:
            fail(e, "missing", f"{e.key}: listed video not found under the root folder")
    present = [(e.key, e.path) for e in todo if e.path is not None]
    try:
        if present:
            for outcome in _outcomes(
                    present, decode=decode_views_task,
                    decode_kwargs={"frames": frames, "rate": rate, "views": v, "decoder": decoder,
                                   "strict": strict},
                    spec=spec, actor_kwargs={"task": "scores"}, options=options, log=log):
                e = by_key[outcome.key]
                if e.key in recorded:
                    continue  # never twice (the dispatcher hands each video out once)
                if isinstance(outcome, Failed):
                    fail(e, outcome.kind, outcome.reason)
                    continue
                decoded = outcome.meta  # the Decoded record, without its pixels
                if outcome.values is None:
                    fail(e, decoded.kind or "error", decoded.reason or "", outcome.seconds)
                    continue
                _check_backend(outcome.backend, db.config.backend)
                scores = outcome.values.astype(np.float64).sum(axis=0)
                summary.record_scored(db, e, scores, num_frames=decoded.num_frames,
                                      seconds=outcome.seconds, warnings=decoded.warnings)
                recorded.add(e.key)
                _tick(bar, after_video, e.key)
    finally:
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
    log: Callable[[str], None] | None = None,
) -> None:
    """:func:`nlconvert.video.features.extract_features` on a Ray cluster, written by the
    driver into `store` (each video once); `on_video` sees every video as it is written."""
    crop = CropSpec.make(crop)
    arch.check_clip((1, 3, frames, crop.size or 256, crop.size or 256), "clip")
    paths = dict(items)
    written: set[str] = set()
    for outcome in _outcomes(
            list(paths.items()), decode=decode_windows_task,
            decode_kwargs={"frames": frames, "rate": rate, "stride": stride, "fps": fps,
                           "crop": crop,
                           # a chunk holds about as many clips as without crops (bounded objects)
                           "rows_per_chunk": max(1, spec.rows_per_chunk // crop.count)},
            spec=spec, actor_kwargs={"task": "features", "layer": layer, "spatial": spatial},
            options=options,
            log=log):
        if outcome.key in written:
            continue
        path = paths[outcome.key]
        if isinstance(outcome, Failed):
            result = VideoFeatures(outcome.key, None, VideoSummary(
                outcome.key, path, error=outcome.reason, kind=outcome.kind))
        else:
            summary: VideoSummary = outcome.meta
            feats = None
            if summary.ok:
                _check_backend(outcome.backend, store.settings.backend)
                feats = _window_rows(outcome, summary)
            result = VideoFeatures(outcome.key, feats, summary)
        store.write(result.video, path, result.features, result.windows)
        written.add(result.video)
        if on_video is not None:
            on_video(result)


def _window_rows(outcome: Done, summary: VideoSummary) -> np.ndarray:
    """The video's float32 features, one row per window in order (``windows x [crops x]
    channels [x t x h x w]``)."""
    count = 0 if outcome.values is None else len(outcome.values)
    if count != summary.windows or outcome.values is None:
        raise ClusterError(f"{summary.path}: {count} window features came back for "
                           f"{summary.windows} windows")
    return outcome.values.astype(np.float32)


def _check_backend(tag: str | None, expected: str) -> None:
    if tag != expected:
        raise ClusterError(f"the model actors run backend {tag}, but this run records {expected} "
                           "(nodes with different hardware?); pass --backend explicitly")


def _tick(bar: StepBar | None, after_video: Callable[[str], None] | None, key: str) -> None:
    if bar is not None:
        bar.step()
    if after_video is not None:
        after_video(key)
