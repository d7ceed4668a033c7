"""The fast path (folded norms, SDPA non-local, bf16) and the benchmark harness."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nlconvert.arch.zoo import get_arch
from nlconvert.runtime.backends import open_backend
from nlconvert.runtime.bench import (
    backend_path,
    format_markdown,
    format_table,
    results_json,
    run_benchmark,
)
from nlconvert.runtime.fast import bf16_is_fast, fold_norms, optimize
from nlconvert.synthetic.clips import seeded_clip
from nlconvert.synthetic.models import synthetic_model


@pytest.fixture(scope="module", params=["i3d_nonlocal_8x8", "i3d_nonlocal_32x4"])
def model(request):
    # BN + standard non-local; affine + grouped non-local.
    return synthetic_model(get_arch(request.param), seed=3, calib_shape=(8, 32, 32))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b).abs().max() / b.abs().max())


def test_fast_fp32_is_the_same_function(model):
    clip = seeded_clip((2, 3, 8, 32, 32), 4)
    with torch.no_grad():
        ref = model(clip)
        out = optimize(model, dtype=torch.float32)(clip)
    # Folding (in float64), SDPA and channels_last change only the rounding; the synthetic
    # network amplifies rounding (channels_last_3d alone moves its logits by ~1e-4).
    assert _rel(out, ref) < 1e-3
    assert not any(type(m).__name__ == "FrozenBatchNorm3d" for m in fold_norms(
        optimize(model, dtype=torch.float32).net).modules())


def test_fast_leaves_the_model_alone(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimize(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.skipif(not bf16_is_fast(), reason="CPU without AVX512-BF16/AMX")
def test_fast_bf16_close(model):
    clip = seeded_clip((1, 3, 8, 32, 32), 5)
    with torch.no_grad():
        ref = model(clip)
        out = optimize(model)(clip)
    assert out.dtype == torch.float32
    assert _rel(out, ref) < 0.2


def test_run_benchmark_rows_and_json(model, tmp_path):
    paths = [backend_path(open_backend(model, "torch"), "clip"),
             backend_path(open_backend(model, "fast", compile=False), "clip")]
    results = run_benchmark(paths, (1, 3, 8, 32, 32), runs=2, warmup=1, error_clips=2)
    assert [r.path for r in results] == ["torch", "fast"]
    assert results[0].max_rel_err == 0.0 and results[0].top1_agree == 1.0
    assert all(r.median_s > 0 and r.clips_per_s > 0 for r in results)
    assert "fast" in format_table(results) and "| torch |" in format_markdown(results)
    rows = json.loads(results_json(results))
    assert set(rows[0]) == {"path", "device", "precision", "batch", "median_s", "p90_s",
                            "clips_per_s", "max_rel_err", "top1_agree"}
    assert np.isfinite(rows[1]["max_rel_err"])


@pytest.mark.slow
def test_fast_compiled_close(model):
    clip = seeded_clip((1, 3, 8, 32, 32), 6)
    with torch.no_grad():
        ref = model(clip)
        out = optimize(model, compile=True)(clip)
    assert _rel(out, ref) < 0.2 if bf16_is_fast() else _rel(out, ref) < 1e-3
