"""`nlconvert parity`: exit 0 on a correct conversion, 1 and the first diverging layer on faults."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nlconvert.parity.run as parity_run
from nlconvert.cli import main
from nlconvert.model.resnet import NLResNet

MakeCheckpoint = Callable[..., Path]
SMALL = ["--frames", "8", "--size", "64", "--batch-size", "2"]


@pytest.fixture(scope="module")
def nl_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nlconvert.arch.zoo import get_arch
    from nlconvert.io.py2pickle import write_official_pkl
    from nlconvert.synthetic import random_blobs

    path = tmp_path_factory.mktemp("parity") / "i3d_nonlocal_8x8_IN_pretrain_400k.pkl"
    write_official_pkl(path, random_blobs(get_arch("i3d_nonlocal_8x8"), seed=3),
                       model_iter=400000, lr=1e-4)
    return path


def test_parity_passes_and_writes_reports(nl_checkpoint: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    md, js, npz, page = (tmp_path / n for n in ("p.md", "p.json", "out.npz", "p.html"))
    rc = main(["parity", str(nl_checkpoint), *SMALL, "--report", str(md), "--json", str(js),
               "--save-outputs", str(npz)])
    assert rc == 0, capsys.readouterr()
    text = md.read_text()
    assert "(PASS)" in text and "| nonlocal_conv4_5_sum | torch |" in text
    assert "max|err| <= 1e-06 + 0.0001 * max|ref|" in text
    report = json.loads(js.read_text())
    assert report["ok"] and report["first_failure"] == {"torch": None}
    assert len(report["layers"]) == 2 + 16 + 5 + 1 + 1 + 2  # stem, pool1, blocks, NL, pool2, pool5, pred, softmax
    with np.load(npz) as z:
        assert {"reference/pred", "torch/pred", "reference/softmax", "torch/pool1"} <= set(z.files)
        np.testing.assert_allclose(z["torch/pred"], z["reference/pred"], rtol=1e-4, atol=1e-4)
    attention = report["attention"]  # the torch weights against the numpy reference's blob
    assert attention["block"] == "nonlocal_conv3_1"
    assert attention["caffe2_blob"] == "nonlocal_conv3_1_affinity_prob"
    assert attention["max_abs_err_vs_reference"] <= 1e-5
    assert main(["parity", str(nl_checkpoint), *SMALL, "--report", str(page)]) == 0
    html = page.read_text()
    assert "<svg" in html and "PASS" in html
    picture = html.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(picture).startswith(b"\x89PNG\r\n\x1a\n")
    assert "nonlocal_conv3_1_affinity_prob" in html
    # the HTML page says what each series is and has the Markdown's timings
    assert "side torch: the converted PyTorch model" in html
    assert "timings (seconds): " in html and "timings (seconds): " in text


def _stem_riv_inverted(m: NLResNet) -> None:
    m.stem.norm.running_var.copy_(1.0 / m.stem.norm.running_var)


def _pool1_padded(m: NLResNet) -> None:
    stem = m.stem

    def forward(x: torch.Tensor, taps: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        x = F.relu(stem.norm(stem.conv(x)))
        if taps is not None:
            taps["stem"] = x
        return F.max_pool3d(x, stem.pool_kernel, stem.pool_stride, padding=(0, 1, 1))

    stem.forward = forward  # type: ignore[method-assign]


def _theta_phi_swapped(m: NLResNet) -> None:
    block = m.res3.nonlocal_blocks["1"]
    theta = {k: v.clone() for k, v in block.theta.state_dict().items()}
    block.theta.load_state_dict(block.phi.state_dict())
    block.phi.load_state_dict(theta)


def _bn_eps_wrong(m: NLResNet) -> None:
    m.res4.blocks[2].norm_b.eps = 1e-1


def _nonlocal_scale_dropped(m: NLResNet) -> None:
    m.res4.nonlocal_blocks["3"].scale = 1.0


def _temporal_kernel_reversed(m: NLResNet) -> None:
    conv = m.res2.blocks[1].conv_a
    conv.weight.copy_(conv.weight.flip(2))


FAULTS: list[tuple[str, Callable[[NLResNet], None], str]] = [
    ("riv read as inverse variance", _stem_riv_inverted, "res_conv1_bn"),
    ("padded pool1", _pool1_padded, "pool1"),
    ("theta and phi swapped", _theta_phi_swapped, "nonlocal_conv3_1_sum"),
    ("wrong BN epsilon", _bn_eps_wrong, "res4_2_branch2c_bn"),
    ("non-local scale dropped", _nonlocal_scale_dropped, "nonlocal_conv4_3_sum"),
    ("temporal kernel reversed", _temporal_kernel_reversed, "res2_1_branch2c_bn"),
]


@pytest.mark.parametrize("what,fault,first_bad", FAULTS, ids=[f[0] for f in FAULTS])
def test_injected_fault_fails_at_its_layer(
    what: str, fault: Callable[[NLResNet], None], first_bad: str, nl_checkpoint: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    build = parity_run.model_from_state

    def broken(*args: object, **kwargs: object) -> NLResNet:
        model = build(*args, **kwargs)  # type: ignore[arg-type]
        with torch.no_grad():
            fault(model)
        return model

    monkeypatch.setattr(parity_run, "model_from_state", broken)
    js = tmp_path / "p.json"
    assert main(["parity", str(nl_checkpoint), *SMALL, "--json", str(js)]) == 1
    out = capsys.readouterr().out
    assert f"first layer out of tolerance: {first_bad} " in out
    report = json.loads(js.read_text())
    assert not report["ok"] and report["first_failure"]["torch"] == first_bad
    earlier = [r for r in report["layers"] if r["name"] == first_bad]
    assert earlier and not earlier[0]["ok"]


def test_bad_input_exits_2(nl_checkpoint: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    clip = tmp_path / "clip.npy"
    np.save(clip, np.zeros((1, 3, 8, 64), np.float32))
    assert main(["parity", str(nl_checkpoint), "--input", str(clip)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "N x 3 x T x H x W" in err[0]
