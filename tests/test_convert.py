"""caffe2-to-torch on generated official-format checkpoints of every zoo architecture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from nlconvert.arch.zoo import arch_names, get_arch
from nlconvert.cli import main
from nlconvert.convert import load_model
from nlconvert.convert.mapping import load_rules

MakeCheckpoint = Callable[..., Path]
VIDEO_ARCHS = [n for n in arch_names() if not get_arch(n).is_2d]
R50 = [n for n in VIDEO_ARCHS if get_arch(n).depth == 50]
R101 = [n for n in VIDEO_ARCHS if get_arch(n).depth == 101]


def _check_file(out: Path, ckpt: Path, arch_name: str) -> None:
    from nlconvert.io.checkpoint import read_checkpoint

    payload = torch.load(out, weights_only=True)  # must be loadable without pickle code
    assert payload["arch"]["name"] == arch_name
    assert len(payload["provenance"]["source_sha256"]) == 64
    blobs = read_checkpoint(ckpt).blobs
    rules = load_rules()
    state = payload["state_dict"]
    assert len(state) == len(blobs)  # every blob used, every parameter filled
    for blob, array in blobs.items():
        found = rules.blob_to_param(blob)
        assert found is not None
        np.testing.assert_array_equal(state[found[1]].numpy(), array)


@pytest.mark.parametrize("arch_name", R50 + R101[:1])
def test_convert_every_r50_arch_by_release_name(
    arch_name: str, make_checkpoint: MakeCheckpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = make_checkpoint(arch_name)
    assert main(["caffe2-to-torch", str(ckpt)]) == 0
    out = ckpt.with_suffix(".pt")
    _check_file(out, ckpt, arch_name)
    assert f"wrote {out}" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("arch_name", R101)
def test_convert_r101(arch_name: str, make_checkpoint: MakeCheckpoint) -> None:
    ckpt = make_checkpoint(arch_name)
    assert main(["caffe2-to-torch", str(ckpt), "-o", str(ckpt.with_suffix(".pt"))]) == 0
    _check_file(ckpt.with_suffix(".pt"), ckpt, arch_name)


def test_flat_protocol0_and_safetensors(make_checkpoint: MakeCheckpoint, tmp_path: Path) -> None:
    ckpt = make_checkpoint("c2d_baseline_8x8", fmt="flat", name="my_model")
    out = tmp_path / "m.safetensors"
    assert main(["caffe2-to-torch", str(ckpt), "-o", str(out), "--arch", "c2d_baseline_8x8"]) == 0
    m1 = load_model(out)
    assert m1.arch.name == "c2d_baseline_8x8"
    pt = tmp_path / "m.pt"
    assert main(["caffe2-to-torch", str(ckpt), "-o", str(pt), "--arch", "c2d_baseline_8x8"]) == 0
    m2 = load_model(pt, head="fully_conv")
    assert m2.head_mode == "fully_conv"
    for (k1, v1), (k2, v2) in zip(m1.state_dict().items(), m2.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)


def test_init_net_pb(make_checkpoint: MakeCheckpoint, tmp_path: Path) -> None:
    ckpt = make_checkpoint("i3d_nonlocal_8x8", fmt="pb", name="weights")
    out = tmp_path / "x.pt"
    assert main(["caffe2-to-torch", str(ckpt), "-o", str(out), "--arch", "i3d_nonlocal_8x8"]) == 0
    _check_file(out, ckpt, "i3d_nonlocal_8x8")


def test_load_model_heads_and_batches(make_checkpoint: MakeCheckpoint) -> None:
    ckpt = make_checkpoint("i3d_nonlocal_32x4")  # affine + grouped non-local
    assert main(["caffe2-to-torch", str(ckpt)]) == 0
    model = load_model(ckpt.with_suffix(".pt"))
    assert not model.training
    clip = torch.randn(3, 3, 16, 64, 64)
    with torch.no_grad():
        batch = model(clip)
        singles = torch.cat([model(clip[i : i + 1]) for i in range(3)])
    assert batch.shape == (3, 400)
    torch.testing.assert_close(batch, singles, rtol=1e-4, atol=1e-4)  # any batch size
    assert model.class_names is not None and model.class_names[290] == "sharpening knives"


def test_existing_output_needs_force(make_checkpoint: MakeCheckpoint,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = make_checkpoint("c2d_baseline_8x8")
    out = ckpt.with_suffix(".pt")
    out.write_bytes(b"keep me")
    assert main(["caffe2-to-torch", str(ckpt)]) == 2
    assert out.read_bytes() == b"keep me"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--force" in err[0]
    assert main(["caffe2-to-torch", str(ckpt), "--force"]) == 0
    assert out.read_bytes() != b"keep me"


def test_verbose_prints_grouped_table(make_checkpoint: MakeCheckpoint,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = make_checkpoint("c2d_nonlocal_8x8")
    assert main(["caffe2-to-torch", str(ckpt), "-v"]) == 0
    out = capsys.readouterr().out
    for group in ("[stem]", "[res2]", "[res5]", "[nonlocal]", "[head]"):
        assert group in out
    assert "nonlocal_conv4_5_theta_w -> res4.nonlocal_blocks.5.theta.weight" in " ".join(out.split())


def test_arch_contradicting_the_released_file_name_is_warned(
        make_checkpoint: MakeCheckpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """8x8 and 32x2 weights are the same blobs: only the file name tells. A --arch that
    contradicts a released file name converts (the user may know better), with a warning."""
    from nlconvert.synthetic import release_file_name

    ckpt = make_checkpoint("c2d_baseline_8x8")
    out = tmp_path / "as32.pt"
    assert main(["caffe2-to-torch", str(ckpt), "-o", str(out), "--arch", "c2d_baseline_32x2"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"nlconvert: warning: {release_file_name('c2d_baseline_8x8')}.pkl: the file "
                   "name names c2d_baseline_8x8, but the architecture given is c2d_baseline_32x2 "
                   "(the weights fit both: is the name or the choice wrong?)"]
    assert main(["info", str(ckpt), "--arch", "c2d_baseline_32x2"]) == 0
    assert "file name names c2d_baseline_8x8" in capsys.readouterr().err
    assert main(["info", str(ckpt), "--arch", "c2d_baseline_8x8"]) == 0  # agreeing: silent
    assert capsys.readouterr().err == ""


def test_existing_output_is_refused_before_reading_or_importing_torch(
        make_checkpoint: MakeCheckpoint, tmp_path: Path) -> None:
    import subprocess
    import sys

    ckpt = make_checkpoint("c2d_baseline_8x8")
    exists = tmp_path / "exists.pt"
    exists.write_bytes(b"keep")
    code = ("import sys\nfrom nlconvert.cli import main\n"
            f"rc = main(['caffe2-to-torch', {str(ckpt)!r}, '-o', {str(exists)!r}])\n"
            "print(rc, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["2", "False"]
    assert "exists.pt: output exists" in done.stderr and exists.read_bytes() == b"keep"
