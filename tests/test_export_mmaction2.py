"""export-mmaction2 without mmaction2: the files it writes, their contents, refusals.

mmaction2 building and running these files is the `-m interop` suite
(tests/test_interop_mmaction2.py, in a venv with nlconvert[mmaction2])."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from nlconvert.arch import INPUT_MEAN, INPUT_STD
from nlconvert.arch.zoo import get_arch
from nlconvert.cli import main
from nlconvert.convert import save_model
from nlconvert.interop.mmaction2 import BACKBONE_MODULE, BACKBONE_TYPE, export_mmaction2, to_mmaction2
from nlconvert.synthetic.models import synthetic_model


@pytest.fixture(scope="module")
def small_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = synthetic_model(get_arch("c2d_baseline_8x8"), seed=3, calib_shape=(8, 32, 32))
    return save_model(model, tmp_path_factory.mktemp("mm") / "c2d_baseline_8x8.pt")


def _config(path: Path) -> dict[str, object]:
    """The config's top-level assignments, evaluated as literals (dict(...) calls too)."""
    values: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        assert isinstance(node, ast.Assign), ast.dump(node)
        name = node.targets[0].id  # type: ignore[attr-defined]
        values[name] = eval(compile(ast.Expression(node.value), str(path), "eval"), {"dict": dict})
    return values


def test_export_writes_config_and_checkpoint_in_mmaction2_names(small_pt: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mm"
    assert main(["export-mmaction2", str(small_pt), str(out)]) == 0
    cfg_path, pth_path = out / "c2d_baseline_8x8.py", out / "c2d_baseline_8x8.pth"
    assert f"wrote {cfg_path} and {pth_path}" in capsys.readouterr().out
    cfg = _config(cfg_path)
    assert cfg["default_scope"] == "mmaction"
    assert cfg["custom_imports"] == {"imports": [BACKBONE_MODULE], "allow_failed_imports": False}
    model = cfg["model"]
    assert isinstance(model, dict)
    assert model["type"] == "Recognizer3D"
    assert model["backbone"]["type"] == BACKBONE_TYPE
    assert model["backbone"]["arch"] == get_arch("c2d_baseline_8x8").to_dict()
    assert model["cls_head"]["type"] == "I3DHead" and model["cls_head"]["num_classes"] == 400
    pre = model["data_preprocessor"]
    assert pre["mean"] == [INPUT_MEAN] * 3 and pre["std"] == [INPUT_STD] * 3
    assert pre["format_shape"] == "NCTHW"
    sample = next(s for s in cfg["test_pipeline"] if s["type"] == "SampleFrames")  # type: ignore[union-attr]
    assert (sample["clip_len"], sample["frame_interval"], sample["num_clips"]) == (8, 8, 10)

    ckpt = torch.load(pth_path, weights_only=True)  # plain types and tensors only
    source = torch.load(small_pt, weights_only=True)
    want = {".".join(to_mmaction2(k)): v for k, v in source["state_dict"].items()}
    assert set(ckpt["state_dict"]) == set(want)
    for key, value in want.items():
        assert torch.equal(ckpt["state_dict"][key], value), key
    assert "backbone.layer1.0.conv1.conv.weight" in ckpt["state_dict"]
    assert "cls_head.fc_cls.bias" in ckpt["state_dict"]
    meta = ckpt["meta"]
    assert meta["dataset_meta"]["classes"] == source["class_names"]
    assert meta["arch"]["name"] == "c2d_baseline_8x8"
    assert meta["nlconvert"]["exported_from"] == "c2d_baseline_8x8.pt"
    assert meta["nlconvert"]["key_table"] == "weights_map/mmaction2.toml"


def test_existing_outputs_are_kept_without_force(small_pt: Path, tmp_path: Path) -> None:
    first = export_mmaction2(small_pt, tmp_path, name="model")
    before = first.checkpoint.read_bytes()
    assert main(["export-mmaction2", str(small_pt), str(tmp_path), "--name", "model"]) == 2
    assert first.checkpoint.read_bytes() == before
    again = export_mmaction2(small_pt, tmp_path, name="model", force=True)
    assert again.config == first.config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth", "model.py"]  # no temp files


def test_bad_model_file_is_one_line_and_writes_nothing(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "not_a_model.pt"
    bad.write_bytes(b"nonsense")
    out = tmp_path / "mm"
    assert main(["export-mmaction2", str(bad), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err
    assert not out.exists() or not any(out.iterdir())


def test_check_without_mmaction2_is_a_clear_error(small_pt: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import mmaction  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("mmaction2 is installed here: the -m interop suite covers --check")
    out = tmp_path / "mm"
    assert main(["export-mmaction2", str(small_pt), str(out), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'nlconvert[mmaction2]'" in err
    assert not out.exists()  # refused before anything was written


def test_export_from_a_hub_folder_equals_the_file(small_pt: Path, tmp_path: Path) -> None:
    """A hub folder goes wherever a model file goes: the same checkpoint as from the .pt."""
    import nlconvert

    folder = nlconvert.load_model(small_pt).save_pretrained(tmp_path / "hub")
    assert main(["export-mmaction2", str(folder), str(tmp_path / "a"), "--name", "m"]) == 0
    assert main(["export-mmaction2", str(small_pt), str(tmp_path / "b"), "--name", "m"]) == 0
    got, want = (torch.load(tmp_path / d / "m.pth", weights_only=True)["state_dict"] for d in "ab")
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
