"""export-caffe2 then caffe2-to-torch on the pb pair gives the model the pkl gives; parity on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from nlconvert.cli import main

MakeCheckpoint = Callable[..., Path]


@pytest.mark.parametrize(
    "name", [pytest.param("i3d_nonlocal_32x4", marks=pytest.mark.slow), "c2d_nonlocal_8x8"]
)
def test_pb_pair_round_trip(name: str, make_checkpoint: MakeCheckpoint, tmp_path: Path) -> None:
    pkl = make_checkpoint(name, seed=5)
    assert main(["caffe2-to-torch", str(pkl), "-o", str(tmp_path / "from_pkl.pt")]) == 0
    out_dir = tmp_path / "caffe2"
    assert main(["export-caffe2", str(pkl), "-o", str(out_dir)]) == 0
    init, predict = out_dir / "init_net.pb", out_dir / "predict_net.pb"
    # The predict_net tells the architecture: no file-name hint, no --arch.
    assert main(["caffe2-to-torch", str(init), "--predict-net", str(predict),
                 "-o", str(tmp_path / "from_pb.pt")]) == 0
    a = torch.load(tmp_path / "from_pkl.pt", weights_only=True)
    b = torch.load(tmp_path / "from_pb.pt", weights_only=True)
    assert a["arch"] == b["arch"] and a["arch"]["name"] == name
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    # The exported predict_net runs as the reference net (built for batch 1, crop 224).
    frames = "32" if name == "i3d_nonlocal_32x4" else "8"  # groups baked from the training clip
    assert main(["parity", str(init), "--predict-net", str(predict), "--frames", frames,
                 "--size", "224"]) == 0
