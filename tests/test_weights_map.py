"""The weight-name tables of weights_map/: they load, cover every weight of every zoo network
both ways, and the engine that applies them refuses a malformed table."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nlconvert.arch.zoo import arch_names, get_arch
from nlconvert.convert.mapping import load_rules
from nlconvert.errors import MappingError
from nlconvert.interop.mmaction2 import from_mmaction2, mmaction2_state_dict, to_mmaction2
from nlconvert.keymap import load_table, tables_dir
from nlconvert.model.resnet import build_model

VIDEO_ARCHS = [n for n in arch_names() if not get_arch(n).is_2d]
REPO = Path(__file__).resolve().parents[1]


def test_tables_are_read_from_the_top_level_folder() -> None:
    assert Path(str(tables_dir())).resolve() == (REPO / "weights_map").resolve()
    for name in ("caffe2_blobs.toml", "mmaction2.toml"):
        table = load_table(name)
        assert table.rules, name
    assert not (REPO / "nlconvert" / "data" / "blob_rules.toml").exists()  # one copy of the facts


@pytest.mark.parametrize("arch_name", VIDEO_ARCHS)
def test_every_blob_and_parameter_is_covered_both_ways(arch_name: str) -> None:
    arch = get_arch(arch_name)
    params = build_model(arch, device="meta").state_dict()
    rules = load_rules()
    blobs = {rules.param_to_blob(p) for p in params}
    assert None not in blobs and len(blobs) == len(params)  # one distinct blob per parameter
    for param in params:  # the same rule runs forwards (the test of real files: test_convert)
        found = rules.blob_to_param(str(rules.param_to_blob(param)))
        assert found is not None and found[1] == param
    mm = mmaction2_state_dict({p: torch.zeros(1) for p in params})
    assert len(mm) == len(params)  # no two parameters share an mmaction2 key
    for param in params:
        module, key = to_mmaction2(param)
        assert f"{module}.{key}" in mm
        assert from_mmaction2(module, key) == param
        assert from_mmaction2("cls_head" if module == "backbone" else "backbone", key) is None


def test_mmaction2_keys_follow_mmaction2_resnet3d_names() -> None:
    # Spot checks against mmaction2's own ResNet3d/NonLocal3d/I3DHead module names.
    assert to_mmaction2("stem.conv.weight") == ("backbone", "conv1.conv.weight")
    assert to_mmaction2("res2.blocks.0.shortcut.norm.running_var") == (
        "backbone", "layer1.0.downsample.bn.running_var")
    assert to_mmaction2("res4.blocks.5.conv_b.weight") == ("backbone", "layer3.5.conv2.conv.weight")
    assert to_mmaction2("res3.nonlocal_blocks.1.out.weight") == (
        "backbone", "layer2.1.non_local_block.conv_out.conv.weight")
    assert to_mmaction2("res3.nonlocal_blocks.1.norm.bias") == (
        "backbone", "layer2.1.non_local_block.conv_out.bn.bias")
    assert to_mmaction2("head.fc.weight") == ("cls_head", "fc_cls.weight")
    with pytest.raises(MappingError, match="no mmaction2 key"):
        to_mmaction2("res6.blocks.0.conv_a.weight")


def test_a_malformed_table_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nlconvert.keymap import table as table_module

    (tmp_path / "broken.toml").write_text('[table]\nleft = "a"\nright = "b"\n[[rule]]\na = "x"\n')
    monkeypatch.setattr(table_module, "tables_dir", lambda: tmp_path)
    with pytest.raises(MappingError, match=r"broken\.toml: not a readable weight-name table"):
        table_module.load_table.__wrapped__("broken.toml")


@pytest.mark.slow
def test_the_wheel_ships_the_tables(tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w",
                    str(tmp_path)], check=True)
    (wheel,) = tmp_path.glob("nlconvert-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"weights_map/caffe2_blobs.toml", "weights_map/mmaction2.toml"} <= names


def test_subsampled_nonlocal_keys_are_mmcv_sequential_names() -> None:
    assert to_mmaction2("res4.nonlocal_blocks.3.g.bias") == (
        "backbone", "layer3.3.non_local_block.g.0.conv.bias")
    assert to_mmaction2("res4.nonlocal_blocks.3.phi.weight") == (
        "backbone", "layer3.3.non_local_block.phi.0.conv.weight")
    assert to_mmaction2("res4.nonlocal_blocks.3.theta.weight") == (
        "backbone", "layer3.3.non_local_block.theta.conv.weight")
