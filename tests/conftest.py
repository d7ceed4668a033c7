"""Shared fixtures: seeded checkpoints with the official blob names, shapes and file formats,
and the authentic Caffe2 samples."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nlconvert.synthetic import release_file_name, write_synthetic_checkpoint

#: Authentic files written by the real Caffe2 runtime (a copy of shared/data/caffe2_tiny; its
#: README says how they were made). The only check of the reference against real Caffe2.
CAFFE2_TINY = Path(__file__).resolve().parent / "data" / "caffe2_tiny"


@pytest.fixture(scope="session")
def caffe2_tiny() -> Path:
    """The folder of the authentic Caffe2 samples. Missing: a skip, or a failure when
    NLCONVERT_STRICT_SAMPLES is set (as in .ci/run), so CI can never skip them silently."""
    if not (CAFFE2_TINY / "tiny_caffe2_outputs.npz").is_file():
        message = f"the authentic Caffe2 samples are missing from {CAFFE2_TINY}"
        if os.environ.get("NLCONVERT_STRICT_SAMPLES"):
            pytest.fail(message)
        pytest.skip(message)
    return CAFFE2_TINY

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
        return write_synthetic_checkpoint(arch_name, tmp_path / f"{stem}{suffix}", seed=seed,
                                          fmt=fmt, mutate=mutate)

    return make


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Exports and compile artefacts of the tests go to a folder of their own, not ~/.cache."""
    folder = tmp_path_factory.mktemp("nlconvert-cache")
    previous = os.environ.get("NLCONVERT_CACHE_DIR")
    os.environ["NLCONVERT_CACHE_DIR"] = str(folder)
    yield
    if previous is None:
        os.environ.pop("NLCONVERT_CACHE_DIR", None)
    else:
        os.environ["NLCONVERT_CACHE_DIR"] = previous
