"""Choosing the architecture: --arch, file name, predict_net, blobs; never a silent guess."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nlconvert.arch.detect import blob_facts, resolve_arch
from nlconvert.arch.zoo import arch_from_filename, arch_names, get_arch, released_checkpoints
from nlconvert.errors import ArchitectureError
from nlconvert.reference.netdef_builder import build_predict_net, expected_blob_shapes
from nlconvert.synthetic import random_blobs


def test_every_released_file_name_resolves() -> None:
    for ck in released_checkpoints():
        for where in ("", "some/dir/"):
            arch = arch_from_filename(f"{where}{ck.file}.pkl")
            assert arch is not None and arch.name == ck.arch
    assert arch_from_filename("r101_i3d_nonlocal_8x8.pkl").name == "r101_i3d_nonlocal_8x8"  # type: ignore[union-attr]
    assert arch_from_filename("i3d_baseline_8x8_IN_pretrain_600k_4gpu.pkl").name == "i3d_baseline_8x8"  # type: ignore[union-attr]
    assert arch_from_filename("model.pkl") is None
    assert arch_from_filename("xi3d_nonlocal_8x8.pkl") is None


def test_zoo_facts_match_the_official_code() -> None:
    a = get_arch("i3d_nonlocal_32x2")
    assert (a.stem, a.conv1_temporal_stride, a.pool1_kernel, a.pool5_temporal_kernel) == (
        "org", 2, (2, 3, 3), 4)
    assert a.nonlocal_after == (("res3", (1, 3)), ("res4", (1, 3, 5)))
    b = get_arch("r101_i3d_nonlocal_8x8")
    assert b.nonlocal_indices("res4") == (6, 13, 20)
    assert b.temporal_convs[2] == tuple(1 - (i % 2) for i in range(23))
    c = get_arch("i3d_nonlocal_128x1")
    assert c.norm == "affine" and c.is_grouped("res3") and not c.is_grouped("res4")
    assert not c.nonlocal_block.use_bn and c.temporal_sizes(128)["res3"] == 16


def shape_only_blobs(name: str) -> dict[str, np.ndarray]:
    """Blobs with the official names and shapes, as zero-memory views (facts need shapes only)."""
    shapes = expected_blob_shapes(get_arch(name))
    return {k: np.broadcast_to(np.float32(0), s) for k, s in shapes.items()}


VIDEO = [n for n in arch_names() if not get_arch(n).is_2d]


@pytest.mark.parametrize("name", VIDEO)
def test_blobs_and_predict_net_decide(name: str) -> None:
    arch = get_arch(name)
    blobs = shape_only_blobs(name)
    facts = blob_facts(blobs)
    assert facts.depth == arch.depth and facts.norm == arch.norm
    candidates = [n for n in VIDEO if blob_facts(shape_only_blobs(n)) == facts]
    if len(candidates) == 1:
        chosen, how = resolve_arch(Path("model.pkl"), blobs)
        assert chosen.name == name and "inferred" in how
    else:
        with pytest.raises(ArchitectureError) as err:
            resolve_arch(Path("model.pkl"), blobs)
        msg = str(err.value)
        assert "arch_name=" in msg and all(c in msg for c in candidates) and "\n" not in msg
    # The predict_net settles stem and clip length.
    net = build_predict_net(arch, "clip", 1)
    chosen, how = resolve_arch(Path("model.pkl"), blobs, predict_net=net)
    assert chosen.name == name and "predict_net" in how


def test_arch_flag_and_class_count() -> None:
    blobs = shape_only_blobs("c2d_baseline_8x8")
    blobs["pred_w"] = np.zeros((101, 2048), np.float32)  # e.g. fine-tuned on UCF-101
    blobs["pred_b"] = np.zeros(101, np.float32)
    chosen, how = resolve_arch(Path("model.pkl"), blobs, arch_name="c2d_baseline_8x8")
    assert chosen.num_classes == 101 and how == "given by arch_name"  # Python words (the CLI says --arch)


def test_2d_checkpoint_needs_inflate() -> None:
    blobs = random_blobs(get_arch("r50_imagenet_2d"))
    assert blobs["conv1_w"].ndim == 4
    with pytest.raises(ArchitectureError, match="inflate=True"):
        resolve_arch(Path("r50_pretrain_c2_model_iter450450_clean.pkl"), blobs)
    with pytest.raises(ArchitectureError, match="inflate=True"):
        resolve_arch(Path("whatever.pkl"), blobs)


def test_api_errors_speak_the_api_words(tmp_path) -> None:
    """A Python caller is told ``arch_name=`` and ``force=True``; the command line, ``--arch``
    and ``--force`` (the CLI sets which, for its own run only)."""
    import pytest

    from nlconvert._atomic import check_writable
    from nlconvert.arch.detect import resolve_arch
    from nlconvert.cli import main
    from nlconvert.errors import ArchitectureError, OutputExistsError
    from nlconvert.synthetic.blobs import random_blobs

    exists = tmp_path / "model.onnx"
    exists.write_bytes(b"x")
    with pytest.raises(OutputExistsError, match=r"pass force=True to overwrite it$"):
        check_writable(exists, force=False)
    blobs = random_blobs(get_arch("c2d_baseline_8x8"))
    with pytest.raises(ArchitectureError, match="pass arch_name= with one of them"):
        resolve_arch(tmp_path / "model.pkl", blobs)
    assert main(["info", "--list-archs", "--json", str(exists)]) == 2  # the CLI's words...
    with pytest.raises(OutputExistsError, match="force=True"):  # ...for its run only
        check_writable(exists, force=False)
