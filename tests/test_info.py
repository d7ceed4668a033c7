"""`nlconvert info`: blobs, the detected architecture, and what is ignored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nlconvert.cli import main

MakeCheckpoint = Callable[..., Path]


def test_info_official_pkl(make_checkpoint: MakeCheckpoint, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = make_checkpoint("i3d_nonlocal_8x8")
    assert main(["info", str(ckpt), "--blobs"]) == 0
    out = capsys.readouterr().out
    assert "official_pkl" in out and "weight blobs: 327" in out
    assert "optimizer momentum" in out and "learning rate" in out and "iteration counter" in out
    assert "architecture: i3d_nonlocal_8x8" in out and "file name names" in out
    assert "nonlocal_conv3_1_theta_w 256x512x1x1x1 float32" in " ".join(out.split())
    assert "model_iter=400000" in out


def test_info_undecided_lists_candidates(make_checkpoint: MakeCheckpoint,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = make_checkpoint("c2d_baseline_8x8", name="mystery")
    assert main(["info", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "undecided" in out and "c2d_baseline_32x2" in out and "--arch" in out


def test_list_archs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--list-archs"]) == 0
    out = capsys.readouterr().out
    assert "i3d_baseline_8x8_IN_pretrain_600k_4gpu" in out and "r101_i3d_nonlocal_8x8" in out
    assert out.count("R101") >= 4
