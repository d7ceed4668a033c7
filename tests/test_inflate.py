"""--inflate: a 2D ImageNet checkpoint becomes the initialisation of a 3D video network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from nlconvert.cli import main

MakeCheckpoint = Callable[..., Path]


def test_inflate_r50_into_i3d_nonlocal(make_checkpoint: MakeCheckpoint, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from nlconvert.io.checkpoint import read_checkpoint

    src = make_checkpoint("r50_imagenet_2d", fmt="flat")
    assert src.name == "r50_pretrain_c2_model_iter450450_clean.pkl"
    out = tmp_path / "i3d_init.pt"
    # Without --inflate: a clear error, no output.
    assert main(["caffe2-to-torch", str(src), "-o", str(out)]) == 2
    assert "--inflate" in capsys.readouterr().err and not out.exists()
    assert main(["caffe2-to-torch", str(src), "-o", str(out), "--inflate",
                 "--arch", "i3d_nonlocal_8x8", "-v"]) == 0
    table = capsys.readouterr().out
    assert "inflated (64, 3, 7, 7) -> (64, 3, 5, 7, 7)" in table
    assert "official initialisation" in table
    # Said without -v too: how many blobs were read, which were initialised and how.
    assert main(["caffe2-to-torch", str(src), "-o", str(out), "--inflate", "--force",
                 "--arch", "i3d_nonlocal_8x8"]) == 0
    summary = capsys.readouterr().out
    assert "mapped 265 blobs from the file" in summary
    assert "initialised 62 blobs that are not in the file" in summary
    assert "nonlocal_conv*_*_theta_w (5): N(0, 0.01)" in summary
    assert "nonlocal_conv*_*_bn_s (5): zero" in summary and "pred_w (1): N(0, 0.01)" in summary
    assert main(["info", str(out)]) == 0
    assert "initialised 62 blobs" in capsys.readouterr().out
    state = torch.load(out, weights_only=True)["state_dict"]
    blobs = read_checkpoint(src).blobs
    conv1 = state["stem.conv.weight"].numpy()
    assert conv1.shape == (64, 3, 5, 7, 7)
    for t in range(5):  # repeated along time and divided by kt
        np.testing.assert_allclose(conv1[:, :, t], blobs["conv1_w"] / 5, rtol=1e-6)
    # A 1x1 temporal kernel (C2D block of I3D res3_1) is copied as is.
    np.testing.assert_array_equal(state["res3.blocks.1.conv_a.weight"].numpy()[:, :, 0],
                                  blobs["res3_1_branch2a_w"])
    # The non-local blocks start from the official init: BN scale 0, so z = x at first.
    assert torch.count_nonzero(state["res3.nonlocal_blocks.1.norm.weight"]) == 0
    # The 1000-class ImageNet classifier is not transferred to 400 classes.
    assert state["head.fc.weight"].shape == (400, 2048)
