"""Classify one video as the paper did: the sum of the softmaxes of its views."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import StepBar
from ..arch import top_k
from ..runtime.backends import Backend
from .protocol import Views, normalize
from .views import ViewPlan, load_view_pixels


@dataclass
class Prediction:
    """Scores of one video: `scores` = sum over views (official), `mean` = scores / V."""

    path: str
    scores: np.ndarray  # classes, sum of the views' softmaxes
    num_views: int
    plan: ViewPlan
    topk: list[tuple[int, str, float]] = field(default_factory=list)  # (index, name, mean prob)
    head: str = "fully_conv"
    backend: str = ""

    @property
    def mean(self) -> np.ndarray:
        """Mean of the views' softmaxes (what is displayed; same ranking as `scores`)."""
        return self.scores / self.num_views

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (scores are not included; top-k are)."""
        return {
            "path": self.path,
            "num_frames": self.plan.num_frames,
            "views": self.plan.views,
            "head": self.head,
            "backend": self.backend,
            "topk": [{"index": i, "name": n, "prob": round(p, 6)} for i, n, p in self.topk],
            "warnings": list(self.plan.warnings),
        }


def score_views(backend: Backend, pixels: np.ndarray, bar: StepBar | None = None) -> np.ndarray:
    """Protocol probabilities (V x classes) of views given as uint8 pixels or normalised
    float32, normalised and scored one backend batch at a time (so memory holds one batch
    of float32 views)."""
    out = []
    for i in range(0, pixels.shape[0], backend.batch_size):
        chunk = pixels[i:i + backend.batch_size]
        x = normalize(chunk) if chunk.dtype == np.uint8 else chunk.astype(np.float32, copy=False)
        probs = backend.scores(x)
        if probs.ndim != 2 or probs.shape[0] != x.shape[0]:
            raise ValueError(f"backend returned shape {probs.shape} for {x.shape[0]} views")
        out.append(probs)
        if bar is not None:
            bar.step(n=x.shape[0])
    return np.concatenate(out)


def predict_video(
    backend: Backend,
    path: str | Path,
    views: str | Views = "10x3",
    *,
    frames: int | None = None,
    rate: int | None = None,
    k: int = 5,
    show_progress: bool = False,
    check: bool = False,
) -> tuple[Prediction, np.ndarray]:
    """Decode, cut and score one video; returns the :class:`Prediction` and its uint8 views.

    `frames`/`rate` override the model's training clip (L x rate). With `show_progress`, a
    bar counts the views on a terminal. `check`: run the first batch on the torch backend
    too (:meth:`~nlconvert.runtime.backends.Backend.check`).
    """
    v = Views.parse(views)
    backend.require("fully_conv")
    pixels, plan = load_view_pixels(path, frames or backend.arch.frames,
                                    rate or backend.arch.sample_rate, v)
    if check:
        backend.check(normalize(pixels[:backend.batch_size]), "fully_conv")
    bar = StepBar(pixels.shape[0], Path(path).name, unit="view") if show_progress else None
    try:
        probs = score_views(backend, pixels, bar)
    finally:
        if bar is not None:
            bar.close()
    scores = probs.astype(np.float64).sum(axis=0)
    pred = Prediction(str(path), scores, probs.shape[0], plan, head="fully_conv",
                      backend=backend.name)
    pred.topk = top_k(pred.mean, k, backend.class_names)
    return pred, pixels


def predict(
    backend: Backend,
    path: str | Path,
    views: str | Views = "10x3",
    *,
    frames: int | None = None,
    rate: int | None = None,
) -> np.ndarray:
    """Class scores of a video: the SUM of its views' softmaxes (official scoring).

    Divide by the number of views for the mean probability. `frames`/`rate` override the
    model's training clip (L x rate).
    """
    return predict_video(backend, path, views, frames=frames, rate=rate)[0].scores
