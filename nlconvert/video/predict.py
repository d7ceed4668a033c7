"""Classify one video as the paper did: the sum of the softmaxes of its views."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .protocol import Views, normalize
from .scorer import Scorer, as_scorer
from .views import ViewPlan, load_view_pixels

DEFAULT_BATCH = 6  # views per forward pass (30 views = 5 batches)


@dataclass
class Prediction:
    """Scores of one video: `scores` = sum over views (official), `mean` = scores / V."""

    path: str
    scores: np.ndarray  # classes, sum of the views' softmaxes
    num_views: int
    plan: ViewPlan
    topk: list[tuple[int, str, float]] = field(default_factory=list)  # (index, name, mean prob)

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
            "topk": [{"index": i, "name": n, "prob": round(p, 6)} for i, n, p in self.topk],
        }


def score_views(scorer: Scorer, pixels: np.ndarray, batch: int | None = None) -> np.ndarray:
    """Probabilities (V x classes) of views given as uint8 pixels or normalised float32."""
    batch = batch or DEFAULT_BATCH
    out = []
    for i in range(0, pixels.shape[0], batch):
        chunk = pixels[i : i + batch]
        x = normalize(chunk) if chunk.dtype == np.uint8 else chunk.astype(np.float32, copy=False)
        probs = np.asarray(scorer(x), dtype=np.float32)
        if probs.ndim != 2 or probs.shape[0] != x.shape[0]:
            raise ValueError(f"scorer returned shape {probs.shape} for {x.shape[0]} views")
        out.append(probs)
    return np.concatenate(out)


def top_k(
    scores: np.ndarray, k: int, class_names: list[str] | None
) -> list[tuple[int, str, float]]:
    """The k best classes: (index, name or str(index), value), best first, ties by index."""
    order = np.lexsort((np.arange(scores.shape[0]), -scores))[:k]
    return [
        (int(i), class_names[i] if class_names else str(int(i)), float(scores[i])) for i in order
    ]


def predict_video(
    model_or_scorer: Any,
    path: str | Path,
    views: str | Views = "10x3",
    batch: int | None = None,
    frames: int | None = None,
    rate: int | None = None,
    k: int = 5,
) -> tuple[Prediction, np.ndarray]:
    """Decode, cut and score one video; returns the :class:`Prediction` and its uint8 views."""
    scorer = as_scorer(model_or_scorer)
    pixels, plan = load_view_pixels(path, frames or scorer.frames, rate or scorer.rate, views)
    probs = score_views(scorer, pixels, batch)
    scores = probs.astype(np.float64).sum(axis=0)
    pred = Prediction(str(path), scores, probs.shape[0], plan)
    pred.topk = top_k(pred.mean, k, scorer.class_names)
    return pred, pixels


def predict(
    model_or_scorer: Any,
    path: str | Path,
    views: str | Views = "10x3",
    batch: int | None = None,
    frames: int | None = None,
    rate: int | None = None,
) -> np.ndarray:
    """Class scores of a video: the SUM of its views' softmaxes (official scoring).

    Divide by the number of views for the mean probability. `frames`/`rate` override the
    model's training clip (L x rate).
    """
    return predict_video(model_or_scorer, path, views, batch, frames, rate)[0].scores
