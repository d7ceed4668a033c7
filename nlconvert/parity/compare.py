"""Compare two tensors: errors, cosine similarity, and a tolerance scaled to their magnitude."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DEFAULT_RTOL = 1e-4  # relative to the largest magnitude of the reference tensor
DEFAULT_ATOL = 1e-6  # absolute floor, for tensors that are (nearly) all zero


@dataclass(frozen=True)
class Tolerance:
    """Pass when ``max|test - ref| <= atol + rtol * max|ref|``."""

    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL

    def limit(self, ref_scale: float) -> float:
        return self.atol + self.rtol * ref_scale

    def describe(self) -> str:
        return f"max|err| <= {self.atol:g} + {self.rtol:g} * max|ref|"


@dataclass(frozen=True)
class LayerComparison:
    """The result of comparing one tensor of one side against the reference."""

    name: str  # the Caffe2 blob name
    side: str  # "torch" or "onnx"
    shape: tuple[int, ...]
    max_abs_err: float
    max_rel_err: float  # max|err| / max|ref|
    cosine: float
    ref_scale: float  # max|ref|
    limit: float
    ok: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


def compare_arrays(name: str, side: str, ref: np.ndarray, test: np.ndarray,
                   tol: Tolerance) -> LayerComparison:
    """Compare `test` with `ref` (same number of elements; singleton dims may differ)."""
    ref64 = np.asarray(ref, dtype=np.float64)
    test64 = np.asarray(test, dtype=np.float64)
    if ref64.size != test64.size:
        return LayerComparison(name, side, tuple(ref64.shape), float("inf"), float("inf"),
                               0.0, 0.0, 0.0, False,
                               f"shape {tuple(test64.shape)} vs reference {tuple(ref64.shape)}")
    note = ""
    if ref64.shape != test64.shape:
        note = f"{side} shape {tuple(test64.shape)}"
        test64 = test64.reshape(ref64.shape)
    finite = bool(np.isfinite(test64).all())
    diff = np.abs(test64 - ref64)
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(ref64).max()) if ref64.size else 0.0
    rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    denom = float(np.linalg.norm(ref64) * np.linalg.norm(test64))
    cosine = float((ref64 * test64).sum() / denom) if denom > 0 else (1.0 if max_abs == 0 else 0.0)
    limit = tol.limit(scale)
    ok = finite and max_abs <= limit
    if not finite:
        note = (note + "; " if note else "") + "non-finite values"
    return LayerComparison(name, side, tuple(ref64.shape), max_abs, rel, cosine, scale, limit,
                           ok, note)
