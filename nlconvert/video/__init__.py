"""Video input for the converted models: the paper's exact test protocol (SPEC.md section 6)
and dense clip features.

Data flow: :mod:`.decode` (PyAV, BT.601 RGB) -> :mod:`.protocol` (resize, clips, crops,
normalisation; pure functions) -> :mod:`.views` -> :mod:`.predict` (one video) ->
:mod:`.evaluate` (a whole list, resumable SQLite results, report). Features:
:mod:`.windows` (which frames each window takes; pure) and :mod:`.crops` (which crops; pure)
-> :mod:`.stream` (decode, resample and cut windows with bounded memory) -> :mod:`.features`
(batches across videos through a backend) -> :mod:`.featurestore` (one file per video, the index, resumability).
Every model runs through a :class:`~nlconvert.runtime.backends.Backend`. Training:
:mod:`.training_clips` (:class:`TrainingClips`, the official training sampling; loads torch
on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .predict import Prediction, predict, predict_video, score_views
from .protocol import Views
from .views import ViewPlan, load_view_pixels, load_views, load_views_with_plan

if TYPE_CHECKING:
    from .training_clips import TrainingClips

__all__ = [
    "Prediction",
    "TrainingClips",
    "ViewPlan",
    "Views",
    "load_view_pixels",
    "load_views",
    "load_views_with_plan",
    "predict",
    "predict_video",
    "score_views",
]


def __getattr__(name: str) -> Any:
    # TrainingClips is a torch Dataset: torch is loaded only when it is asked for.
    if name == "TrainingClips":
        from .training_clips import TrainingClips

        return TrainingClips
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
