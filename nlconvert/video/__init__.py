"""Video input for the converted models: the paper's exact test protocol (SPEC.md section 6).

Data flow: :mod:`.decode` (PyAV, BT.601 RGB) -> :mod:`.protocol` (resize, clips, crops,
normalisation; pure functions) -> :mod:`.views` -> :mod:`.predict` (a :class:`Scorer`) ->
:mod:`.evaluate` (a whole list, resumable SQLite results, report).
"""

from __future__ import annotations

from .predict import Prediction, predict, predict_video, score_views, top_k
from .protocol import Views
from .scorer import Scorer, as_scorer, open_scorer
from .views import ViewPlan, load_view_pixels, load_views, load_views_with_plan

__all__ = [
    "Prediction",
    "Scorer",
    "ViewPlan",
    "Views",
    "as_scorer",
    "load_view_pixels",
    "load_views",
    "load_views_with_plan",
    "open_scorer",
    "predict",
    "predict_video",
    "score_views",
    "top_k",
]
