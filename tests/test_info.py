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


def test_info_checks_the_given_arch_against_the_blobs(make_checkpoint: MakeCheckpoint,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """--arch is checked, as the help says: blobs that do not fit are an error (exit 2, one
    line naming the first wrong blob), as caffe2-to-torch with the same --arch."""
    ckpt = make_checkpoint("c2d_baseline_8x8", name="mystery")
    assert main(["info", str(ckpt), "--arch", "c2d_baseline_32x2"]) == 0
    assert "(given by --arch); the blobs fit it" in capsys.readouterr().out
    assert main(["info", str(ckpt), "--arch", "i3d_baseline_8x8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(ckpt) in err[0] and "do not fit --arch i3d_baseline_8x8" in err[0]
    assert "conv1_w is 64x3x1x7x7, i3d_baseline_8x8 needs 64x3x5x7x7" in err[0]


def test_info_refuses_an_existing_json_before_describing(make_checkpoint: MakeCheckpoint,
                                                         tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = make_checkpoint("c2d_baseline_8x8", name="mystery")
    exists = tmp_path / "exists.json"
    exists.write_text("{}")
    assert main(["info", str(ckpt), "--json", str(exists)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "exists.json: output exists" in captured.err
