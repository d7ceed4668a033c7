"""mmaction2's own init_recognizer on export-mmaction2 files equals nlconvert's network.

Run with ``python -m pytest -q -m interop`` in a venv with ``nlconvert[mmaction2]`` (README,
"Loading these checkpoints elsewhere"; .ci/run makes one). mmaction2 missing there is a
failure, not a skip. Small clips keep it fast; the arithmetic is the same at any size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from nlconvert.arch import INPUT_MEAN, INPUT_STD
from nlconvert.arch.zoo import get_arch
from nlconvert.cli import main
from nlconvert.convert import load_model, save_model
from nlconvert.interop.mmaction2 import export_mmaction2
from nlconvert.synthetic import release_file_name, write_synthetic_checkpoint
from nlconvert.synthetic.models import synthetic_model

pytestmark = pytest.mark.interop

#: A BN non-local network, a 32-frame one (org stem), an affine grouped one, and C2D.
ARCHS = ["i3d_nonlocal_8x8", "i3d_nonlocal_32x2", "i3d_nonlocal_32x4", "c2d_baseline_8x8"]
TOLERANCE = 1e-5  # relative, on logits


@pytest.fixture(scope="module")
def mmaction() -> Any:
    try:
        from mmaction import apis, structures
    except ImportError as exc:
        pytest.fail(f"the interop suite needs mmaction2 (pip install 'nlconvert[mmaction2]'): {exc}")
    return apis, structures


def _exported(arch_name: str, folder: Path) -> tuple[Path, Path, Path]:
    model = synthetic_model(get_arch(arch_name), seed=5, calib_shape=(min(get_arch(arch_name).frames, 32), 64, 64))
    pt = save_model(model, folder / f"{arch_name}.pt")
    done = export_mmaction2(pt, folder / "mm")
    return pt, done.config, done.checkpoint


def _mm_logits(mmaction: Any, recognizer: Any, pixels: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """Logits of every view and the predict-mode score, through mmaction2's own preprocessor."""
    _, structures = mmaction
    with torch.no_grad():
        data = recognizer.data_preprocessor(
            {"inputs": [pixels], "data_samples": [structures.ActionDataSample()]}, False)
        inputs = data["inputs"]
        logits = recognizer.cls_head(recognizer.backbone(inputs.reshape((-1,) + inputs.shape[2:])))
        predicted = recognizer(**data, mode="predict")[0].pred_score
    return logits, predicted


@pytest.mark.parametrize("arch_name", ARCHS)
def test_init_recognizer_equals_nlconvert(arch_name: str, tmp_path: Path, mmaction: Any) -> None:
    apis, _ = mmaction
    pt, config, checkpoint = _exported(arch_name, tmp_path)
    recognizer = apis.init_recognizer(str(config), str(checkpoint), device="cpu")
    # Every key loaded (mmengine only warns on a mismatch): the state dict round-trips.
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    state = recognizer.state_dict()
    assert set(state) == set(saved)
    for key, value in saved.items():
        assert torch.equal(state[key], value), key

    frames = min(get_arch(arch_name).frames, 32)
    pixels = torch.rand((2, 3, frames, 64, 64), generator=torch.Generator().manual_seed(1)) * 255
    logits, predicted = _mm_logits(mmaction, recognizer, pixels)
    reference = load_model(pt)
    with torch.no_grad():
        want = reference((pixels - INPUT_MEAN) / INPUT_STD)
    assert logits.shape == want.shape
    rel = float((logits - want).abs().max() / want.abs().max())
    assert rel <= TOLERANCE, rel
    # mmaction2's 'prob' averaging over the two views: the mean of the clip softmaxes.
    assert torch.allclose(predicted, torch.softmax(want, dim=1).mean(0), atol=1e-6)


def test_fully_convolutional_test_views(tmp_path: Path, mmaction: Any) -> None:
    """At the official 256x256 test crop the prediction is the official fully-convolutional
    head's (mean of per-position softmaxes), averaged over the views."""
    apis, _ = mmaction
    pt, config, checkpoint = _exported("c2d_baseline_8x8", tmp_path)
    recognizer = apis.init_recognizer(str(config), str(checkpoint), device="cpu")
    pixels = torch.rand((2, 3, 8, 256, 256), generator=torch.Generator().manual_seed(2)) * 255
    logits, predicted = _mm_logits(mmaction, recognizer, pixels)
    assert logits.shape == (2 * 4, 400)  # 2 views x 2x2 positions
    reference = load_model(pt, head="fully_conv")
    with torch.no_grad():
        want = reference((pixels - INPUT_MEAN) / INPUT_STD).mean(0)
        clip_head = torch.softmax(reference.set_head("clip")((pixels - INPUT_MEAN) / INPUT_STD), 1).mean(0)
    assert torch.allclose(predicted, want, atol=1e-6)
    assert not torch.allclose(predicted, clip_head, atol=1e-6)  # the heads differ at 256


def test_cli_check_on_an_official_format_checkpoint(tmp_path: Path, mmaction: Any,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pkl = write_synthetic_checkpoint("i3d_nonlocal_8x8",
                                     tmp_path / f"{release_file_name('i3d_nonlocal_8x8')}.pkl", seed=0)
    assert main(["export-mmaction2", str(pkl), str(tmp_path / "mm"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "mmaction2 init_recognizer vs nlconvert" in out and "relative" in out
