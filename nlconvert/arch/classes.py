"""Class names of a network's outputs, and the ranking of classes by score.

Kinetics-400 names come in the order of the official class ids (sorted names,
``nlconvert/data/kinetics400_classids.json``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

import numpy as np


@lru_cache(maxsize=1)
def kinetics400_names() -> tuple[str, ...]:
    """The 400 Kinetics class names, index = the official class id (sorted names)."""
    text = resources.files("nlconvert").joinpath("data/kinetics400_classids.json").read_text()
    ids: dict[str, int] = json.loads(text)
    names = [""] * len(ids)
    for quoted, index in ids.items():
        names[int(index)] = quoted.strip('"')
    return tuple(names)


def default_class_names(num_classes: int) -> list[str] | None:
    """Kinetics-400 names for a 400-class model, else None (indices are shown)."""
    return list(kinetics400_names()) if num_classes == 400 else None


def ranked(scores: np.ndarray, k: int) -> list[int]:
    """Indices of the `k` highest of a 1-D array of scores, best first; equal scores by index."""
    scores = np.asarray(scores)
    order = np.lexsort((np.arange(scores.shape[0]), -scores))
    return [int(i) for i in order[:k]]


def top_k(scores: np.ndarray, k: int, class_names: Sequence[str] | None
          ) -> list[tuple[int, str, float]]:
    """The `k` best classes of one score vector: (index, name or str(index), score), best first."""
    return [(i, class_names[i] if class_names else str(i), float(scores[i]))
            for i in ranked(scores, k)]
