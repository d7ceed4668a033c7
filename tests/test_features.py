"""``nlconvert features``: the window contract, exactness against the model, resumability.

Frame indices are read back from the pixels of videos whose frame i shows i (tests/videos.py)
and compared with indices computed here from the rules as README states them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import videos as V

from nlconvert.arch import get_arch
from nlconvert.cli import main
from nlconvert.convert import save_model
from nlconvert.runtime import backends
from nlconvert.runtime.backends import open_backend
from nlconvert.synthetic.models import synthetic_model
from nlconvert.video.decode import decode_frames
from nlconvert.video.features import extract_features
from nlconvert.video.protocol import crop_offsets, normalize
from nlconvert.video.stream import VideoSummary, Window, stream_windows
from nlconvert.video.windows import WindowSpec, resample

pytest.importorskip("av")
TESTS = Path(__file__).parent


def expected_windows(n: int, frames: int, rate: int, stride: int) -> list[list[int]]:
    """The README's rule, written out: start k*S while the last frame is inside; a short
    video gives one window at 0 wrapping around."""
    span = (frames - 1) * rate + 1
    if n < span:
        return [[(i * rate) % n for i in range(frames)]]
    out, start = [], 0
    while start + (frames - 1) * rate <= n - 1:
        out.append([start + i * rate for i in range(frames)])
        start += stride
    return out


def pixel_indices(window: Window) -> list[int]:
    return V.read_view_indices(window.pixels, portrait=False)


def cut(path: Path, spec: WindowSpec, **kw) -> tuple[list[Window], VideoSummary]:
    items = list(stream_windows("v", path, spec, **kw))
    *windows, summary = items
    assert isinstance(summary, VideoSummary) and summary.ok, summary.error
    return windows, summary


# ----------------------------------------------------------------------------- the rules


@pytest.mark.parametrize("n,frames,rate,stride", [(100, 8, 8, 16), (57, 8, 8, 16), (56, 8, 8, 16),
                                                  (1, 8, 8, 16), (30, 4, 3, 5), (9, 4, 3, 1)])
def test_window_starts_and_indices(n, frames, rate, stride):
    spec = WindowSpec(frames, rate, stride)
    expected = expected_windows(n, frames, rate, stride)
    assert [spec.indices(s, n) for s in spec.starts(n)] == expected


def test_resample_takes_the_last_frame_at_or_before_each_time():
    times = [Fraction(t, 100) for t in (0, 7, 30, 31, 95)]
    # output j at j/10 s: 0 -> 0, .1 -> 1 (.07), .2 -> 1, .3 -> 2 (.30 exactly), ... .9 -> 3
    assert resample(times, Fraction(10)) == [0, 1, 1, 2, 3, 3, 3, 3, 3, 3]


# ----------------------------------------------------------------- windows from real videos


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fv")
    return {
        "long": V.make_video(folder / "long.mp4", 320, 240, 70),
        "short": V.make_video(folder / "short.mkv", 320, 240, 7),
        "vfr": V.make_video(folder / "vfr.mkv", 320, 240, 40, vfr=True),
        "portrait": V.make_video(folder / "tall.mp4", 240, 320, 20),
    }


def test_window_frames_follow_the_rule(videos):
    spec = WindowSpec(4, 3, 5)
    windows, summary = cut(videos["long"], spec)
    assert summary.frames == 70 and summary.windows == len(windows)
    assert [pixel_indices(w) for w in windows] == expected_windows(70, 4, 3, 5)
    assert [w.start for w in windows] == summary.starts
    assert windows[0].pixels.shape == (3, 4, 256, 256)
    # times: 25 fps; end = the last frame taken + one frame period
    assert summary.start_s[1] == pytest.approx(5 / 25)
    assert summary.end_s[1] == pytest.approx((5 + 9 + 1) / 25)


def test_a_short_video_gives_one_wrapped_window(videos):
    windows, summary = cut(videos["short"], WindowSpec(4, 3, 5))
    assert summary.frames == 7 and summary.windows == 1
    assert [pixel_indices(w) for w in windows] == [[0, 3, 6, 2]]


def test_fps_resampling_of_a_variable_frame_rate_video(videos):
    import av

    with av.open(str(videos["vfr"])) as container:  # the timestamps, read independently
        stream = container.streams.video[0]
        times = [Fraction(f.pts) * stream.time_base for f in container.decode(stream)]
    times = [t - times[0] for t in times]
    fps = Fraction(12)
    count = int(times[-1] * fps) + 1
    source = [max(i for i, t in enumerate(times) if t <= Fraction(j) / fps) for j in range(count)]
    spec = WindowSpec(3, 2, 4)
    windows, summary = cut(videos["vfr"], spec, fps=fps)
    assert summary.frames == count and summary.decoded_frames == len(times)
    expected = [[source[j] for j in w] for w in expected_windows(count, 3, 2, 4)]
    assert [pixel_indices(w) for w in windows] == expected
    assert summary.start_s[1] == pytest.approx(4 / 12)


def test_crop_none_keeps_the_whole_resized_frame(videos):
    windows, _ = cut(videos["portrait"], WindowSpec(2, 2, 8), crop="none")
    assert windows[0].pixels.shape == (3, 2, 341, 256)
    assert V.read_view_indices(windows[1].pixels, portrait=True) == [8, 10]


def test_memory_holds_one_window_span_not_the_video(tmp_path):
    long = V.make_video(tmp_path / "long.mp4", 96, 64, 400)
    spec = WindowSpec(4, 4, 6)  # span 13 frames
    windows, summary = cut(long, spec)
    assert summary.windows == len(expected_windows(400, 4, 4, 6))
    assert summary.max_kept_frames <= spec.span  # fails if the frames piled up


# ----------------------------------------------------- features against the model itself


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    model = synthetic_model(get_arch("c2d_baseline_8x8"), seed=4, calib_shape=(2, 64, 64))
    return save_model(model, tmp_path_factory.mktemp("fm") / "c2d.pt")


def assert_close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-5) -> None:
    """Equal up to float32 rounding: the batch a clip runs in changes the order of sums."""
    assert np.abs(got - want).max() <= rtol * np.abs(want).max()


def independent_clip(path: Path, indices: list[int]) -> np.ndarray:
    """The window built here: protocol frames, centre 256 crop, normalised, 1 x 3 x L x H x W."""
    frames = decode_frames(path, lambda n: set(indices)).frames
    clip = np.stack([frames[i] for i in indices])  # L x H x W x 3
    (h_off, w_off), = crop_offsets(clip.shape[1], clip.shape[2], 1)
    view = clip[:, h_off:h_off + 256, w_off:w_off + 256].transpose(3, 0, 1, 2)
    return normalize(view)[None]


def test_pool5_and_logits_equal_the_model_on_the_same_clips(videos, model_file):
    backend = open_backend(model_file, "torch", batch_size=2)
    model = backend.model
    results = {}
    for layer in ("pool5", "logits", "res4"):
        (item,) = extract_features(backend, [videos["short"]], layer=layer, frames=2, rate=3,
                                   stride=4)
        results[layer] = item.features
    (item,) = extract_features(backend, [videos["long"]], frames=2, rate=3, stride=25)
    assert item.windows.starts == [0, 25, 50]
    for k, start in enumerate(item.windows.starts):
        clip = torch.from_numpy(independent_clip(videos["long"], [start, start + 3]))
        with torch.inference_mode():
            logits, pool5, _ = model.forward_features(clip)
        assert_close(item.features[k], pool5[0].numpy())
    clip = torch.from_numpy(independent_clip(videos["short"], [0, 3]))
    with torch.inference_mode():
        model.set_head("clip")
        logits = model(clip)  # the clip head itself
        model.set_head("fully_conv")
        _, pool5, res4 = model.forward_features(clip)
    assert_close(results["logits"][0], logits[0].numpy())
    assert_close(results["pool5"][0], pool5[0].numpy())
    assert_close(results["res4"][0], res4[0].numpy())


def test_onnx_and_fast_features_against_torch(videos, model_file):
    ref = open_backend(model_file, "torch", batch_size=4)
    (expected,) = extract_features(ref, [videos["long"]], frames=2, rate=3, stride=30)
    onnx = open_backend(model_file, "onnx", batch_size=4)
    (got,) = extract_features(onnx, [videos["long"]], frames=2, rate=3, stride=30)
    scale = np.abs(expected.features).max()
    assert np.abs(got.features - expected.features).max() <= 1e-4 * scale
    fast = open_backend(model_file, "fast", batch_size=4, compile=False)
    (approx,) = extract_features(fast, [videos["long"]], frames=2, rate=3, stride=30)
    assert np.abs(approx.features - expected.features).max() <= fast.info.rtol * scale


# ------------------------------------------------------------------------ the command line


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr(backends, "open_backend", V.stand_in_factory(frames=4, rate=2))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A folder of videos in sub-folders, with a broken one."""
    root = tmp_path_factory.mktemp("lib")
    (root / "a").mkdir()
    (root / "b" / "c").mkdir(parents=True)
    V.make_video(root / "a" / "one.mp4", 320, 240, 30)
    V.make_video(root / "a" / "two.webm", 240, 320, 12)
    V.make_video(root / "b" / "c" / "three.mkv", 320, 180, 3)
    (root / "b" / "broken.mp4").write_bytes(b"\x00" * 100)
    return root


def _index(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    return {r["key"]: r for r in rows}


def test_features_command_writes_one_file_per_video_and_an_index(library, tmp_path, stand_in, capsys):
    out = tmp_path / "feats"
    model = tmp_path / "m.pt"
    model.write_bytes(b"stand-in")
    assert main(["features", str(model), str(library), "--out", str(out), "--stride", "5",
                 "--workers", "0"]) == 3  # broken.mp4 failed: the bulk failure contract
    index = _index(out)
    assert set(index) == {"a/one.mp4", "a/two.webm", "b/c/three.mkv", "b/broken.mp4"}
    one = np.load(out / "a" / "one.npy")
    assert one.dtype == np.float32 and one.shape == (len(expected_windows(30, 4, 2, 5)), 48)
    assert index["a/one.mp4"]["window_start_frame"] == [0, 5, 10, 15, 20]
    assert index["b/c/three.mkv"]["windows"] == 1  # 3 frames < one window: wrapped
    broken = index["b/broken.mp4"]
    assert broken["status"] == "failed" and "broken.mp4" in broken["error"]
    assert not (out / "b" / "broken.npy").exists()
    settings = json.loads((out / "features.json").read_text())
    assert (settings["layer"], settings["stride"], settings["frames"]) == ("pool5", 5, 4)
    assert "3 extracted now" in capsys.readouterr().out


def test_rerun_skips_what_is_done_and_other_settings_are_refused(library, tmp_path, monkeypatch, capsys):
    made = []

    def factory(path, backend="auto", **options):
        made.append(V.StandInBackend(frames=4, rate=2, model_sha256="1" * 64))
        return made[-1]

    monkeypatch.setattr(backends, "open_backend", factory)
    model = tmp_path / "m.pt"
    model.write_bytes(b"stand-in")
    out = tmp_path / "feats"
    args = ["features", str(model), str(library), "--out", str(out), "--workers", "0"]
    assert main(args) == 3  # b/broken.mp4 failed, the rest was extracted
    first = {p: p.read_bytes() for p in out.rglob("*.npy")}
    (out / "a" / "two.npy").unlink()  # partly deleted
    assert main(args) == 3  # broken.mp4 is still recorded as failed: named again, exit 3
    assert made[1].views_scored == 1  # two.webm: 12 frames, one window of 4x2 at stride 16
    assert {p: p.read_bytes() for p in out.rglob("*.npy")} == first
    assert main(args) == 3 and made[2].views_scored == 0
    capsys.readouterr()
    assert main([*args, "--stride", "8"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "stride: 16 -> 8" in err and "--force" in err
    assert main([*args, "--stride", "8", "--force"]) == 3
    assert json.loads((out / "features.json").read_text())["stride"] == 8


def test_h5_format_and_float16(library, tmp_path, stand_in):
    h5py = pytest.importorskip("h5py")
    out = tmp_path / "h5"
    model = tmp_path / "m.pt"
    model.write_bytes(b"stand-in")
    assert main(["features", str(model), str(library / "a"), "--out", str(out), "--format", "h5",
                 "--dtype", "float16", "--workers", "0"]) == 0
    with h5py.File(out / "features.h5") as f:
        assert f["one.mp4"].dtype == np.float16 and f["one.mp4"].shape[1] == 48
        assert list(f["one.mp4"].attrs["window_start_frame"]) == [0, 16]
    assert not (out / ".parts").exists()


_KILLABLE = """
import sys, time
sys.path.insert(0, {tests!r})
import videos as V
from nlconvert.cli import main
from nlconvert.runtime import backends

class Slow(V.StandInBackend):
    def _forward(self, clips, head):
        time.sleep(0.4)
        return super()._forward(clips, head)

backends.open_backend = lambda path, backend="auto", **kw: Slow(frames=4, rate=2, batch_size=1)
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_then_resume_recomputes_nothing_done(tmp_path, monkeypatch):
    folder = tmp_path / "vids"
    folder.mkdir()
    for i in range(6):
        V.make_video(folder / f"v{i}.mp4", 160, 120, 24 + i)
    model = tmp_path / "m.pt"
    model.write_bytes(b"stand-in")
    out = tmp_path / "feats"
    script = tmp_path / "run.py"
    script.write_text(_KILLABLE.format(tests=str(TESTS)))
    args = ["features", str(model), str(folder), "--out", str(out), "--stride", "4", "--workers", "0"]
    proc = subprocess.Popen([sys.executable, str(script), *args], env={**os.environ})
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "index.jsonl").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = set(_index(out)) if (out / "index.jsonl").exists() else set()
    assert 0 < len(done_before) < 6
    made = []

    def factory(path, backend="auto", **options):
        made.append(V.StandInBackend(frames=4, rate=2, batch_size=1, model_sha256="0" * 64))
        return made[-1]

    monkeypatch.setattr(backends, "open_backend", factory)
    assert main(args) == 0
    index = _index(out)
    assert len(index) == 6 and all(r["status"] == "ok" for r in index.values())
    todo = [k for k in index if k not in done_before]
    assert made[0].views_scored == sum(index[k]["windows"] for k in todo)
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    # the resumed folder equals a clean run's
    clean = tmp_path / "clean"
    assert main([*args[:4], str(clean), *args[5:]]) == 0
    for key in index:
        stem = Path(key).with_suffix(".npy")
        np.testing.assert_array_equal(np.load(out / stem), np.load(clean / stem))


def test_linked_videos_keep_their_place_under_the_root(tmp_path):
    from nlconvert.video.featurestore import output_key

    store = tmp_path / "store"
    store.mkdir()
    (store / "abc.mp4").write_bytes(b"x")
    (tmp_path / "root" / "cls").mkdir(parents=True)
    link = tmp_path / "root" / "cls" / "x.mp4"
    link.symlink_to(store / "abc.mp4")
    assert output_key(link, tmp_path / "root") == "cls/x.mp4"


def test_same_fps_spelled_differently_is_the_same_setting(library, tmp_path, stand_in):
    model = tmp_path / "m.pt"
    model.write_bytes(b"stand-in")
    args = ["features", str(model), str(library / "a"), "--out", str(tmp_path / "f"),
            "--workers", "0"]
    assert main([*args, "--fps", "12"]) == 0
    assert main([*args, "--fps", "12.0"]) == 0  # not "other settings"
    assert json.loads((tmp_path / "f" / "features.json").read_text())["fps"] == "12"


def test_force_removes_only_what_the_folder_wrote(library, tmp_path, stand_in, capsys):
    model = tmp_path / "m.pt"
    model.write_bytes(b"stand-in")
    out = tmp_path / "f"
    outside = tmp_path / "precious.npy"
    np.save(outside, np.zeros(3))
    args = ["features", str(model), str(library / "a"), "--out", str(out), "--workers", "0"]
    assert main(args) == 0
    with open(out / "index.jsonl", "a") as f:  # a forged line pointing outside the folder
        f.write(json.dumps({"key": "z", "status": "ok", "feature_file": str(outside)}) + "\n")
    (out / "features.json").write_text("{not json")  # and a broken settings file
    assert main(args) == 2
    assert "features.json" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert outside.exists() and (out / "one.npy").exists()


def test_local_only_options_are_refused_with_ray(tmp_path, capsys):
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    assert main(["features", str(model), str(tmp_path), "--out", str(tmp_path / "o"),
                 "--ray", "local", "--check"]) == 2
    assert "--check runs on this machine" in capsys.readouterr().err


def test_an_unreachable_cluster_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray")
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    listing = tmp_path / "list.txt"
    listing.write_text("a.mp4 0\n")
    db = tmp_path / "r.sqlite"
    plan = backends.BackendPlan(backends.BackendInfo("torch", "cpu", "fp32", "", 0.0),
                                get_arch("c2d_baseline_8x8"), None, "0" * 64)
    monkeypatch.setattr(backends, "plan_backend", lambda *a, **k: plan)  # no model to load
    assert main(["evaluate", str(model), "--list", str(listing), "--db", str(db),
                 "--ray", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "127.0.0.1:1" in err[0] and "nothing answers" in err[0]
    assert not db.exists()
