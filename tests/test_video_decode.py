"""Decoding real videos: frame counts, the frames and crops of every view, BT.601 colour."""

from __future__ import annotations

import numpy as np
import pytest
import videos as V

from nlconvert.video import decode as D
from nlconvert.video import load_views, load_views_with_plan
from nlconvert.video.decode import VideoFileError, decode_frames
from nlconvert.video.views import load_view_pixels

pytest.importorskip("av")

# name -> (file name, width, height, frames, make_video options)
CASES = {
    "landscape_mp4": ("land.mp4", 320, 240, 40, {}),
    "portrait_mp4": ("port.mp4", 180, 320, 30, {}),
    "odd_width_mkv": ("odd.mkv", 333, 201, 23, {}),
    "height300_webm": ("h300.webm", 400, 300, 26, {}),
    "portrait_avi": ("port.avi", 240, 320, 33, {}),
    "short_wraps_mp4": ("short.mp4", 320, 256, 7, {}),
    "vfr_mp4": ("vfr.mp4", 320, 240, 29, {"vfr": True}),
    "bt709_mp4": ("bt709.mp4", 320, 240, 12, {"colorspace_709": True, "chroma": (100, 170)}),
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    out = {}
    for name, (fname, w, h, n, kw) in CASES.items():
        if V.codec_for("." + fname.rsplit(".", 1)[1]) is None:
            continue
        out[name] = V.make_video(folder / fname, w, h, n, **kw)
    return out


def _expected_size(h, w):
    short = w if h > w else h
    ratio = np.float32(256.0) / np.float32(short)
    return int(np.float32(h) * ratio), int(np.float32(w) * ratio)


def _expected_offsets(h, w, crops):
    ho, wo = int((h - 256) / 2), int((w - 256) / 2)
    if crops == 1:
        return [(ho, wo)]
    return [(ho * c, wo) if ho > 0 else (ho, wo * c) for c in range(3)]


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("views,frames,rate", [("10x3", 4, 3), ("1x1", 8, 8), ("10x1", 8, 2)])
def test_every_view_shows_the_right_frames(made, name, views, frames, rate):
    if name not in made:
        pytest.skip("codec not available")
    _, w, h, n, _ = CASES[name]
    pixels, plan = load_view_pixels(made[name], frames, rate, views)
    clips, crops = (int(x) for x in views.split("x"))
    # the rules, computed here
    if clips == 1:
        starts = [max(n - frames * rate, 0) // 2]
    else:
        starts = [j * n // clips for j in range(clips)]
    expected_clips = [[(s + k * rate) % n for k in range(frames)] for s in starts]
    rh, rw = _expected_size(h, w)
    assert plan.num_frames == n
    assert plan.source_size == (h, w)
    assert plan.resized_size == (rh, rw)
    assert [list(c) for c in plan.clips] == expected_clips
    assert [tuple(c) for c in plan.crops] == _expected_offsets(rh, rw, crops)
    assert pixels.shape == (clips * crops, 3, frames, 256, 256) and pixels.dtype == np.uint8
    for j, clip in enumerate(expected_clips):
        for c in range(crops):
            shown = V.read_view_indices(pixels[j * crops + c], portrait=h > w)
            assert shown == clip, (j, c)


@pytest.mark.parametrize("name", ["landscape_mp4", "portrait_avi", "odd_width_mkv"])
def test_views_are_crops_of_resized_frames(made, name):
    if name not in made:
        pytest.skip("codec not available")
    _, w, h, n, _ = CASES[name]
    full = decode_frames(made[name], lambda n: range(n), resize=False)
    assert full.num_frames == n and full.frames[0].shape == (h, w, 3)
    try:
        import cv2

        def resize(img):
            rh, rw = _expected_size(h, w)
            return cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR)
    except ImportError:
        from nlconvert.video.protocol import resize_frame as resize
    pixels, plan = load_view_pixels(made[name], 4, 5, "10x3")
    rh, rw = _expected_size(h, w)
    for j, clip in enumerate(plan.clips):
        for c, (ho, wo) in enumerate(_expected_offsets(rh, rw, 3)):
            for k, idx in enumerate(clip):
                big = resize(full.frames[idx])
                assert big.shape == (rh, rw, 3)
                np.testing.assert_array_equal(
                    pixels[j * 3 + c][:, k], big[ho : ho + 256, wo : wo + 256].transpose(2, 0, 1)
                )


def test_load_views_normalised(made):
    views = load_views(made["landscape_mp4"], frames=4, rate=2, views="10x3")
    assert views.shape == (30, 3, 4, 256, 256) and views.dtype == np.float32
    pixels, _ = load_view_pixels(made["landscape_mp4"], 4, 2, "10x3")
    np.testing.assert_allclose(views[::7], (pixels[::7] - 114.75) / 57.375, atol=1e-5)
    again, plan = load_views_with_plan(made["landscape_mp4"], 4, 2, "10x3")
    np.testing.assert_array_equal(views, again)


def _bt601(y, u, v):
    y, u, v = (np.asarray(a, np.float64) for a in (y, u, v))
    c, d, e = y - 16, u - 128, v - 128
    r = 1.164383 * c + 1.596027 * e
    g = 1.164383 * c - 0.391762 * d - 0.812968 * e
    b = 1.164383 * c + 2.017232 * d
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255)


def _bt709(y, u, v):
    y, u, v = (np.asarray(a, np.float64) for a in (y, u, v))
    c, d, e = y - 16, u - 128, v - 128
    r = 1.164383 * c + 1.792741 * e
    g = 1.164383 * c - 0.213249 * d - 0.532909 * e
    b = 1.164383 * c + 2.112402 * d
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255)


def test_bt709_tagged_video_is_converted_with_bt601(made):
    import av

    path = made["bt709_mp4"]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.colorspace == 1  # really tagged BT.709
        planes = []
        for frame in container.decode(stream):
            assert frame.format.name == "yuv420p"
            h, w = frame.height, frame.width
            yuv = frame.to_ndarray()  # (h*3/2) x w: Y, then U and V quarter planes
            y = yuv[:h]
            u = yuv[h : h + h // 4].reshape(h // 2, w // 2)
            v = yuv[h + h // 4 :].reshape(h // 2, w // 2)
            planes.append((y, u, v))
    decoded = decode_frames(path, lambda n: range(n), resize=False)
    assert decoded.num_frames == len(planes)
    for i, (y, u, v) in enumerate(planes):
        up = lambda p: np.repeat(np.repeat(p, 2, axis=0), 2, axis=1)  # noqa: E731
        expected = _bt601(y, up(u), up(v))
        got = decoded.frames[i].astype(np.float64)
        # swscale's fast unscaled yuv420p->rgb24 converter (the path the official decoder's
        # SWS_FAST_BILINEAR context took) rounds coarsely: within 3 levels of the exact formula
        assert np.abs(got - expected).max() <= 3.0, i
        assert np.abs(got - expected).mean() <= 1.5, i
        # and it is not what a BT.709 conversion gives (the test can tell them apart)
        assert np.abs(got - _bt709(y, up(u), up(v))).max() > 6


def test_wrong_frame_count_hint_takes_a_second_pass(made, monkeypatch):
    path = made["landscape_mp4"]
    good, plan = load_view_pixels(path, 4, 3, "10x3")
    assert plan.passes == 1
    for hint in (17, 400, None):
        monkeypatch.setattr(D, "_hint", lambda container, hint=hint: hint)
        pixels, plan2 = load_view_pixels(path, 4, 3, "10x3")
        assert plan2.passes == 2 and plan2.num_frames == 40
        np.testing.assert_array_equal(pixels, good)


def test_only_needed_frames_are_kept(made):
    wanted = lambda n: {0, n // 2, n - 1}  # noqa: E731
    decoded = decode_frames(made["landscape_mp4"], wanted)
    assert set(decoded.frames) == {0, 20, 39}
    assert all(f.shape == (256, 341, 3) for f in decoded.frames.values())


def test_frame_cap(made):
    decoded = decode_frames(made["landscape_mp4"], lambda n: {n - 1}, max_frames=25)
    assert decoded.num_frames == 25 and set(decoded.frames) == {24}
    assert V.read_index(decoded.frames[24], portrait=False) == 24
    assert D.count_frames(made["landscape_mp4"]) == 40


@pytest.fixture(scope="module")
def bad(made, tmp_path_factory):
    return V.make_bad_files(tmp_path_factory.mktemp("bad"), made["landscape_mp4"])


@pytest.mark.parametrize(
    "which,kind",
    [("zero", "empty file"), ("truncated", "unreadable"), ("audio", "no video stream"),
     ("text", "unreadable")],
)
def test_bad_files_raise_with_a_reason(bad, which, kind):
    with pytest.raises(VideoFileError) as info:
        load_view_pixels(bad[which], 4, 2, "10x3")
    assert info.value.kind == kind
    assert str(bad[which]) in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(VideoFileError, match="no such file") as info:
        load_view_pixels(tmp_path / "nope.mp4")
    assert info.value.kind == "missing"


def test_video_with_audio_uses_the_video_stream(tmp_path):
    path = V.make_video(tmp_path / "with_audio.mp4", 320, 240, 12, audio=True)
    pixels, plan = load_view_pixels(path, 4, 3, "10x1")
    assert plan.num_frames == 12
    assert V.read_view_indices(pixels[0], False) == [0, 3, 6, 9]


def test_one_frame_video_is_refused_like_the_official_reader(tmp_path):
    # DecodeClipFromVideoFileFlex: CAFFE_ENFORCE_LT(1, sampledFrames.size())
    path = V.make_video(tmp_path / "one.mkv", 320, 240, 1)
    with pytest.raises(VideoFileError, match="1 frame decoded") as info:
        load_view_pixels(path, 4, 2, "10x3")
    assert info.value.kind == "too few frames"
    two = V.make_video(tmp_path / "two.mkv", 320, 240, 2)
    pixels, plan = load_view_pixels(two, 4, 3, "10x3")
    assert plan.clips[0] == (0, 1, 0, 1) and V.read_view_indices(pixels[0], False) == [0, 1, 0, 1]
