"""Shared fixtures: seeded checkpoints with the official blob names, shapes and file formats."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nlconvert.synthetic import release_file_name, write_synthetic_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared"
TINY = SHARED / "data" / "caffe2_tiny"

MakeCheckpoint = Callable[..., Path]


@pytest.fixture
def make_checkpoint(tmp_path: Path) -> MakeCheckpoint:
    """Write a seeded checkpoint of `arch_name` in an official format; returns its path.

    fmt: "official" (Python-2 cPickle protocol 2 with momentum, lr, model_iter), "flat"
    (protocol 0 flat dict) or "pb" (init_net.pb). `name` overrides the file name;
    `mutate` edits the blob dict before writing.
    """

    def make(
        arch_name: str,
        fmt: str = "official",
        seed: int = 0,
        name: str | None = None,
        mutate: Callable[[dict[str, Any]], None] | None = None,
    ) -> Path:
        stem = name or release_file_name(arch_name)
        suffix = "_init_net.pb" if fmt == "pb" else ".pkl"
        return write_synthetic_checkpoint(arch_name, tmp_path / f"{stem}{suffix}", seed, fmt,
                                          mutate)

    return make
