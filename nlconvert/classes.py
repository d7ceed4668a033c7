"""Class names: Kinetics-400 in the order of the official class ids."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


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
