"""Reading drops optimizer momentum unread: peak memory ~ the kept weights, not the file."""

from __future__ import annotations

import gc
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from nlconvert.io import read_checkpoint, write_official_pkl

# ~100 MB of parameters, ~200 MB of file with momentum (an R50 official pkl is ~280 MB).
N_BLOBS = 24
BLOB_ELEMS = 1 << 20  # 4 MiB of float32 each


def _measure_read(path: Path) -> tuple[int, float, int]:
    gc.collect()
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        ckpt = read_checkpoint(path)
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kept = sum(a.nbytes for a in ckpt.blobs.values())
    assert len(ckpt.blobs) == N_BLOBS
    assert sum(v == "optimizer momentum" for v in ckpt.ignored.values()) == N_BLOBS
    return peak, elapsed, kept


def test_peak_memory_is_the_kept_weights(tmp_path: Path) -> None:
    path = tmp_path / "c2_model_iter400000.pkl"
    blobs = {f"res{i}_branch2a_w": np.full(BLOB_ELEMS, i, dtype=np.float32) for i in range(N_BLOBS)}
    write_official_pkl(path, blobs, 400000, 0.01)
    del blobs
    size = path.stat().st_size
    peak, elapsed, kept = _measure_read(path)
    assert size > 2 * kept * 0.99
    # Momentum (half the file) never occupies memory; only small buffers on top.
    assert peak < 0.75 * size, (peak, size)
    assert peak < kept + (16 << 20), (peak, kept)
    assert elapsed < 30


@pytest.mark.parametrize("claim", [1 << 40, (1 << 63) - 1])
def test_claimed_sizes_are_not_allocated(tmp_path: Path, claim: int) -> None:
    from nlconvert.errors import CheckpointFormatError

    path = tmp_path / "claim.pkl"
    # BINBYTES8 claiming far more bytes than the file holds.
    path.write_bytes(b"\x80\x04}\x8c\x01w\x8e" + claim.to_bytes(8, "little") + b"\0" * 64)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointFormatError, match="truncated"):
            read_checkpoint(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
