"""Generated checkpoints in the official file formats, from seeded random numbers.

The official checkpoints cannot be downloaded everywhere (CI, air-gapped machines); these
files have the official blob names, shapes and byte formats, so every path of nlconvert can
be exercised on them. The numbers are random: the predictions mean nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..arch import get_arch, published_accuracy
from ..io.netdef_io import write_init_net
from ..io.py2pickle import write_flat_pkl, write_official_pkl
from .blobs import random_blobs


def release_file_name(arch_name: str) -> str:
    """The released checkpoint name of an architecture (its own name if none was released)."""
    released = published_accuracy(arch_name)
    return released[0].file if released else arch_name


def write_synthetic_checkpoint(
    arch_name: str,
    path: str | Path,
    *,
    seed: int = 0,
    fmt: str = "official",
    mutate: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Write a seeded checkpoint of `arch_name`: ``official`` pkl (Python-2 cPickle protocol
    2 with momentum, lr, model_iter), ``flat`` pkl (protocol 0) or ``pb`` (init_net.pb)."""

    blobs: dict[str, Any] = dict(random_blobs(get_arch(arch_name), seed=seed))
    if mutate is not None:
        mutate(blobs)  # tests break the blobs on purpose
    path = Path(path)
    if fmt == "official":
        write_official_pkl(path, blobs, model_iter=400000, lr=1e-4)
    elif fmt == "flat":
        write_flat_pkl(path, blobs, lr=0.01)
    elif fmt == "pb":
        write_init_net(blobs, path)
    else:
        raise ValueError(f"unknown checkpoint format {fmt!r}")
    return path
