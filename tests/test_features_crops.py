"""``features --crop three|ten``, ``--crop-size`` and ``--spatial``.

Crop positions are checked on frames whose pixels say where they are (row, column, frame),
against positions written out here from the rules README states; features against the
model run here on crops built here.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import videos as V

from nlconvert.arch import get_arch
from nlconvert.cli import main
from nlconvert.convert import save_model
from nlconvert.errors import InputShapeError
from nlconvert.model.resnet import build_model
from nlconvert.runtime import backends
from nlconvert.runtime.backends import FastBackend, TorchBackend
from nlconvert.video.crops import CropSpec
from nlconvert.video.decode import decode_frames
from nlconvert.video.features import extract_features
from nlconvert.video.protocol import normalize
from nlconvert.video.stream import VideoSummary, Window, stream_windows
from nlconvert.video.windows import WindowSpec

pytest.importorskip("av")


def coordinate_clip(frames: int, height: int, width: int) -> np.ndarray:
    """L x H x W x 3 uint8: red = row, green = column, blue = frame (every pixel distinct)."""
    y, x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([np.stack([y, x, np.full_like(y, t)], axis=-1) for t in range(frames)]
                    ).astype(np.uint8)


def ten_crop_by_hand(clip: np.ndarray, s: int) -> list[np.ndarray]:
    """TenCrop as the issue states it: TL, TR, BL, BR, centre, then the same on the mirror."""
    h, w = clip.shape[1:3]
    positions = [(0, 0), (0, w - s), (h - s, 0), (h - s, w - s), ((h - s) // 2, (w - s) // 2)]
    out = []
    for frame_set in (clip, clip[:, :, ::-1]):
        for top, left in positions:
            out.append(frame_set[:, top:top + s, left:left + s].transpose(3, 0, 1, 2))
    return out


@pytest.mark.parametrize("height,width,size", [(20, 31, 8), (31, 20, 7), (16, 16, 16)])
def test_ten_crop_positions_and_mirror_order(height, width, size):
    clip = coordinate_clip(2, height, width)
    pixels, boxes = CropSpec.make("ten", size).cut(clip)
    assert pixels.shape == (10, 3, 2, size, size)
    for got, want in zip(pixels, ten_crop_by_hand(clip, size), strict=True):
        np.testing.assert_array_equal(got, want)
    # the first five are unmirrored (column grows to the right), the last five mirrored
    assert [b.flip for b in boxes] == [False] * 5 + [True] * 5
    assert all(p[1, 0, 0, 1] == p[1, 0, 0, 0] + 1 for p in pixels[:5])
    assert all(p[1, 0, 0, 1] == p[1, 0, 0, 0] - 1 for p in pixels[5:] if size > 1)
    assert pixels[1][1, 0, 0, -1] == width - 1 and pixels[5][1, 0, 0, 0] == width - 1


@pytest.mark.parametrize("height,width", [(256, 341), (455, 256)])
def test_three_crops_follow_the_protocol_offsets(height, width):
    clip = coordinate_clip(1, height, width)
    pixels, boxes = CropSpec.make("three").cut(clip)
    # SPEC.md section 6: centre offset (H-256)/2, (W-256)/2, times c along the long side
    if height > width:
        expected = [(c * ((height - 256) // 2), 0) for c in range(3)]
    else:
        expected = [(0, c * ((width - 256) // 2)) for c in range(3)]
    assert [(b.h_off, b.w_off) for b in boxes] == expected
    for view, (top, left) in zip(pixels, expected, strict=True):
        np.testing.assert_array_equal(view, clip[:, top:top + 256, left:left + 256].transpose(3, 0, 1, 2))


def test_crop_options_are_checked():
    assert CropSpec.make("ten").size == 224 and CropSpec.make("three").size == 256
    assert CropSpec.make("center", 224).count == 1
    for kind, size in (("none", 224), ("ten", 300), ("eleven", None)):
        with pytest.raises(Exception, match="--crop"):
            CropSpec.make(kind, size)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return V.make_video(tmp_path_factory.mktemp("cv") / "v.mp4", 320, 240, 9)


def test_stream_cuts_ten_crops_of_the_decoded_frames(video):
    *windows, summary = stream_windows("v", video, WindowSpec(2, 3, 4), crop="ten")
    assert isinstance(summary, VideoSummary) and summary.ok and len(windows) == 2
    frames = decode_frames(video, lambda n: set(range(n))).frames  # resized, short side 256
    for window in windows:
        assert isinstance(window, Window) and window.pixels.shape == (10, 3, 2, 224, 224)
        clip = np.stack([frames[window.start], frames[window.start + 3]])
        for got, want in zip(window.pixels, ten_crop_by_hand(clip, 224), strict=True):
            np.testing.assert_array_equal(got, want)
    assert [c["name"] for c in summary.crops][:2] == ["top_left", "top_right"]
    assert summary.crops[1]["w_off"] == 341 - 224 and summary.crops[9]["flip"]


@pytest.fixture(scope="module")
def c2d():
    torch.manual_seed(0)
    return build_model(get_arch("c2d_baseline_8x8"), "clip")


def _by_hand(video: Path, starts: list[int], rate: int, size: int) -> np.ndarray:
    frames = decode_frames(video, lambda n: set(range(n))).frames
    return np.stack([np.stack(ten_crop_by_hand(np.stack([frames[s], frames[s + rate]]), size))
                     for s in starts])  # windows x 10 x 3 x L x S x S


def test_ten_crop_features_equal_the_model_on_crops_built_here(video, c2d):
    backend = TorchBackend(c2d, batch_size=4)  # 20 clips: crops of two windows mixed in batches
    (item,) = extract_features(backend, [video], frames=2, rate=3, stride=4,
                               crop=CropSpec.make("ten", 64))
    assert item.features.shape == (2, 10, 2048)
    pixels = _by_hand(video, [0, 4], 3, 64)
    with torch.inference_mode():
        _, pool5, _ = c2d.forward_features(torch.from_numpy(normalize(pixels.reshape(20, 3, 2, 64, 64))))
    want = pool5.numpy().reshape(2, 10, 2048)
    assert np.abs(item.features - want).max() <= 1e-5 * np.abs(want).max()


def test_spatial_maps_equal_the_models_taps(video, c2d):
    backend = TorchBackend(c2d, batch_size=3)
    (item,) = extract_features(backend, [video], layer="res4", spatial=True, frames=2, rate=3,
                               stride=4, crop=CropSpec.make("three", 64))
    assert item.features.shape == (2, 3, 1024, 1, 4, 4)  # pool2 halves the 2 frames
    frames = decode_frames(video, lambda n: set(range(n))).frames
    clip = np.stack([frames[4], frames[7]])
    views, _ = CropSpec.make("three", 64).cut(clip)
    with torch.inference_mode():
        _, taps = c2d.forward_intermediates(torch.from_numpy(normalize(views)))
    res4 = taps[[k for k in taps if k.startswith("res4.")][-1]].numpy()
    assert np.abs(item.features[1] - res4).max() <= 1e-5 * np.abs(res4).max()
    (pooled,) = extract_features(backend, [video], layer="res4", frames=2, rate=3, stride=4,
                                 crop=CropSpec.make("three", 64))
    np.testing.assert_allclose(item.features.mean(axis=(3, 4, 5)), pooled.features, rtol=1e-4, atol=1e-5)
    fast = FastBackend(copy.deepcopy(c2d), compile=False, batch_size=4)
    maps = fast.feature_maps(normalize(views), "res4")
    assert maps.shape == res4.shape
    assert np.abs(maps - res4).max() <= fast.info.rtol * np.abs(res4).max()
    with pytest.raises(InputShapeError, match="not 'pool5'"):
        backend.feature_maps(normalize(views), "pool5")


def test_features_command_with_crops_h5_and_resume(video, c2d, tmp_path, capsys):
    h5py = pytest.importorskip("h5py")
    model = save_model(c2d, tmp_path / "c2d.pt")
    out = tmp_path / "feats"
    args = ["features", str(model), str(video), "--out", str(out), "--frames", "2", "--rate", "3",
            "--stride", "4", "--crop", "ten", "--crop-size", "64", "--backend", "torch",
            "--format", "h5", "--workers", "0"]
    assert main(args) == 0
    with h5py.File(out / "features.h5") as f:
        data = f["v.mp4"][()]
        crops = json.loads(f["v.mp4"].attrs["crops"])
    assert data.shape == (2, 10, 2048) and [c["name"] for c in crops][4:6] == ["center", "flip_top_left"]
    pixels = _by_hand(video, [0, 4], 3, 64)
    with torch.inference_mode():
        _, pool5, _ = c2d.forward_features(torch.from_numpy(normalize(pixels.reshape(20, 3, 2, 64, 64))))
    assert np.abs(data - pool5.numpy().reshape(2, 10, 2048)).max() <= 1e-4
    (row,) = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert row["channels"] == 2048 and row["shape"] == [2, 10, 2048] and len(row["crops"]) == 10
    settings = json.loads((out / "features.json").read_text())
    assert settings["crop"] == "ten" and settings["crop_size"] == 64
    capsys.readouterr()
    assert main(args) == 0  # resume: nothing to do
    assert "0 extracted now" in capsys.readouterr().out
    assert main([*args[:-4], "--crop-size", "32", "--format", "h5", "--workers", "0"]) == 2
    assert "crop_size: 64 -> 32" in capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--spatial"], "--spatial keeps the positions of res4 or res5"),
    (["--crop", "none", "--crop-size", "224"], "--crop-size needs --crop center, three or ten"),
    (["--layer", "res5", "--spatial", "--backend", "onnx"],
     "the onnx backend gives pooled features only; --spatial needs --backend torch or fast"),
])
def test_bad_combinations_are_one_line_errors(video, tmp_path, capsys, extra, message):
    model = tmp_path / "m.pt"
    model.write_bytes(b"never read")
    assert main(["features", str(model), str(video), "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_the_ray_stages_carry_crops_and_maps(video, monkeypatch):
    """The decoding task and the model actor of ``features --ray``, run here without Ray."""
    from nlconvert.cluster import stages

    monkeypatch.setattr(backends, "open_backend", V.stand_in_factory(frames=2, rate=3))
    chunks = list(stages.decode_windows_task("v", str(video), frames=2, rate=3, stride=4,
                                             fps=None, crop=CropSpec.make("ten", 64)))
    actor = stages.ModelActor(stages.BackendSpec(str(video)), "features", "pool5")
    results = [actor.run(chunk) for chunk in chunks]
    assert all(r.fatal is None for r in results)
    indices = [i for r in results for i in r.indices]
    feats = np.concatenate([r.values for r in results if r.values is not None])
    assert indices == [0, 1] and feats.shape == (2, 10, 48)
    summary = results[-1].meta
    assert len(summary.crops) == 10


def test_class_names_describe_the_folder_without_being_a_setting(tmp_path):
    """The names of logits/probs channels are written with the settings, but a rerun is
    judged by the settings (the model's sha256 already names the model)."""
    from dataclasses import replace

    from nlconvert.video.featurestore import FeatureSettings, FeatureStore

    base = FeatureSettings(model_sha256="0" * 64, arch="c2d_baseline_8x8", layer="probs", frames=8,
                           rate=8, stride=16, fps=None, crop="center", dtype="float32",
                           format="npy", backend="torch/fp32", class_names=["a", "b"])
    FeatureStore(tmp_path, base).finish()
    assert json.loads((tmp_path / "features.json").read_text())["class_names"] == ["a", "b"]
    renamed = replace(base, class_names=None)
    assert renamed == base and renamed.differences(base) == []
    FeatureStore(tmp_path, renamed).finish()  # reopens the folder: not another setting
    assert base.differences(replace(base, layer="logits")) == ["layer: logits -> probs"]
