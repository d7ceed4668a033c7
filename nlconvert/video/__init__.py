"""Video input for the converted models: the paper's exact test protocol (SPEC.md section 6)
and dense clip features.

Data flow: :mod:`.decode` (PyAV, BT.601 RGB) -> :mod:`.protocol` (resize, clips, crops,
normalisation; pure functions) -> :mod:`.views` -> :mod:`.predict` (one video) ->
:mod:`.evaluate` (a whole list, resumable SQLite results, report). Features:
:mod:`.windows` (which frames each window takes; pure) and :mod:`.crops` (which crops; pure)
-> :mod:`.stream` (decode, resample and cut windows with bounded memory) -> :mod:`.features`
(batches across videos through a backend) -> :mod:`.featurestore` (one file per video, the index, resumability).
Every model runs through a :class:`~nlconvert.runtime.backends.Backend`.
"""

from __future__ import annotations

from .predict import Prediction, predict, predict_video, score_views
from .protocol import Views
from .views import ViewPlan, load_view_pixels, load_views, load_views_with_plan

__all__ = [
    "Prediction",
    "ViewPlan",
    "Views",
    "load_view_pixels",
    "load_views",
    "load_views_with_plan",
    "predict",
    "predict_video",
    "score_views",
]
