"""The backend layer: one interface, exact or with a stated error, the ONNX cache."""

from __future__ import annotations

import numpy as np
import pytest

from nlconvert.arch import get_arch
from nlconvert.convert import save_model
from nlconvert.errors import ParityError
from nlconvert.runtime import backends as B
from nlconvert.runtime.backends import BackendError, open_backend
from nlconvert.runtime.cache import onnx_cache_path
from nlconvert.runtime.onnx_export import export_onnx
from nlconvert.synthetic.clips import seeded_clip
from nlconvert.synthetic.models import synthetic_model

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("be")
    model = synthetic_model(get_arch("i3d_nonlocal_8x8"), seed=2, calib_shape=(8, 64, 64))
    return save_model(model, folder / "m.pt"), model


def _clips(n=2, size=64):
    return seeded_clip((n, 3, 8, size, size), 5).numpy()


def test_auto_takes_the_fastest_exact_backend_and_says_so(small):
    path, _ = small
    backend = open_backend(path)  # onnxruntime is installed: auto means onnx
    assert backend.name == "onnx" and backend.info.exact
    line = B.describe_choice("auto", backend)
    assert "onnx" in line and "auto" in line and "within 0.0001 of torch" in line


def test_every_backend_agrees_with_torch_within_its_stated_error(small):
    path, _ = small
    clips = _clips()
    ref = open_backend(path, "torch").run(clips, "clip")
    for name, options in (("onnx", {}), ("fast", {"compile": False})):
        backend = open_backend(path, name, batch_size=2, **options)
        got = backend.run(clips, "clip")
        assert set(got) == {"logits", "pool5", "res4"}
        check = B.compare(got, ref, backend.info.rtol)
        assert check.ok, (name, check.describe())
        assert backend.check(clips, "clip").ok


def test_batches_are_padded_to_a_fixed_size_when_compiled(small):
    path, model = small
    backend = open_backend(path, "torch", batch_size=4)
    backend.pad_batches = True  # what the compiled fast backend does
    seen = []
    inner = backend._forward

    def spy(clips, head):
        seen.append(clips.shape[0])
        return inner(clips, head)

    backend._forward = spy  # type: ignore[method-assign]
    out = backend.run(_clips(5), "clip")
    assert seen == [4, 4] and out["logits"].shape[0] == 5
    ref = open_backend(path, "torch").run(_clips(5), "clip")
    assert np.abs(out["pool5"] - ref["pool5"]).max() <= 1e-5 * np.abs(ref["pool5"]).max()


def test_check_fails_beyond_the_stated_tolerance(small, monkeypatch):
    path, _ = small
    backend = open_backend(path, "onnx")
    monkeypatch.setattr(backend, "info", B.BackendInfo("onnx", "cpu", "fp32", "test", 1e-12))
    monkeypatch.setattr(backend, "_forward", lambda c, h: {
        k: v * 1.01 for k, v in B.TorchBackend._forward(backend.reference(), c, h).items()})
    with pytest.raises(ParityError, match="stated tolerance"):
        backend.check(_clips(), "clip")


def test_onnx_export_is_cached_and_keyed_by_the_weights(tmp_path):
    arch = get_arch("c2d_baseline_8x8")
    path = save_model(synthetic_model(arch, seed=2, calib_shape=(8, 32, 32)), tmp_path / "a.pt")
    first = open_backend(path, "onnx")
    first.run(_clips(1), "clip")
    cached = onnx_cache_path(first.model_sha256, head="clip", layout="frames", precision="fp32")
    assert cached.is_file()
    stamp = cached.stat().st_mtime_ns
    second = open_backend(path, "onnx")
    second.run(_clips(1), "clip")
    assert cached.stat().st_mtime_ns == stamp  # reused, not exported again
    assert second.session("clip").path == cached
    # new weights, new key: the old export is not used
    changed = synthetic_model(arch, seed=3, calib_shape=(8, 32, 32))
    other_path = save_model(changed, tmp_path / "b.pt")
    other = open_backend(other_path, "onnx")
    assert other.model_sha256 != first.model_sha256
    got = other.run(_clips(1), "clip")["logits"]
    want = open_backend(other_path, "torch").run(_clips(1), "clip")["logits"]
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert other.session("clip").path != cached


def test_an_onnx_file_with_the_clip_head_cannot_do_the_protocol(small, tmp_path):
    _, model = small
    onnx = tmp_path / "clip.onnx"
    export_onnx(model, onnx, head="clip", example_shape=(1, 3, 8, 64, 64),
                check_shapes=[(1, 3, 8, 64, 64)], log=None)
    backend = open_backend(onnx)
    assert backend.heads == ("clip",)
    with pytest.raises(BackendError, match="fully-convolutional head.*--head fully_conv"):
        backend.scores(seeded_clip((1, 3, 8, 224, 224), 1).numpy())
    with pytest.raises(BackendError, match="needs the .pt"):
        open_backend(onnx, "torch")


def test_bad_devices_are_one_line_errors():
    with pytest.raises(BackendError, match="use cpu, cuda or cuda:N"):
        B.check_device("gpu")
    if not _has_cuda():
        with pytest.raises(BackendError, match="no CUDA device"):
            B.check_device("cuda")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_stale_temporary_exports_are_removed_from_the_cache(tmp_path, monkeypatch):
    """A killed export leaves ``.<name>.onnx.<random>.tmp``: a later run removes it once it is
    old; a young one (another run's export in progress) is left alone."""
    import os
    import time

    from nlconvert.runtime import cache

    monkeypatch.setenv("NLCONVERT_CACHE_DIR", str(tmp_path))
    target = cache.onnx_cache_path("ab" * 32, head="clip", layout="frames", precision="fp32")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"cached")  # a cache hit: nothing is exported
    old = target.parent / f".{target.name}.x1y2.tmp"
    young = target.parent / f".{target.name}.z3w4.tmp"
    old.write_bytes(b"half an export")
    young.write_bytes(b"in progress")
    past = time.time() - cache.STALE_TMP_SECONDS - 60
    os.utime(old, (past, past))

    def never():
        raise AssertionError("a cached export is not rebuilt")

    assert cache.cached_onnx_export("ab" * 32, never, head="clip") == target
    assert not old.exists() and young.exists() and target.exists()
