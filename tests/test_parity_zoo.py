"""Whole networks: every zoo architecture, PyTorch against the numpy Caffe2 reference."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from zoo_cases import VIDEO, small_frames

from nlconvert.arch.zoo import get_arch
from nlconvert.parity.run import run_parity

MakeCheckpoint = Callable[..., Path]


@pytest.mark.parametrize("name", VIDEO)
def test_clip_head_matches_reference(name: str, make_checkpoint: MakeCheckpoint) -> None:
    ckpt = make_checkpoint(name, seed=11)
    result = run_parity(ckpt, frames=small_frames(name), size=64, batch=2)
    bad = [(r.name, r.max_rel_err) for r in result.rows if not r.ok]
    assert result.ok, bad
    assert len(result.rows) >= 2 + sum(get_arch(name).blocks_per_stage) + 4
    assert result.topk["torch"] == result.topk["reference"]


@pytest.mark.parametrize("name", ["c2d_nonlocal_8x8"])
def test_fully_conv_head_matches_reference(name: str, make_checkpoint: MakeCheckpoint) -> None:
    ckpt = make_checkpoint(name, seed=12)
    result = run_parity(ckpt, size=224, batch=1, head="fully_conv")
    assert result.ok, [(r.name, r.max_rel_err) for r in result.rows if not r.ok]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["i3d_nonlocal_32x4", "i3d_nonlocal_8x8", "c2d_nonlocal_32x2"])
def test_fully_conv_head_at_256(name: str, make_checkpoint: MakeCheckpoint) -> None:
    ckpt = make_checkpoint(name, seed=13)
    result = run_parity(ckpt, size=256, batch=1, head="fully_conv")
    assert result.ok, [(r.name, r.max_rel_err) for r in result.rows if not r.ok]


@pytest.mark.slow
@pytest.mark.parametrize("name", VIDEO)
def test_training_clip_at_224(name: str, make_checkpoint: MakeCheckpoint) -> None:
    ckpt = make_checkpoint(name, seed=14)
    result = run_parity(ckpt, size=224, batch=1)
    assert result.ok, [(r.name, r.max_rel_err) for r in result.rows if not r.ok]
