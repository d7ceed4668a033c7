"""The pure rules of SPEC.md section 6, checked against numbers computed here."""

from __future__ import annotations

import numpy as np
import pytest

from nlconvert.errors import VideoError
from nlconvert.video import protocol as P


def _expected_size(h: int, w: int) -> tuple[int, int]:
    # ScaleTransform: ratio = (float)256 / (float)short; new = (int)((float)side * ratio)
    short = w if h > w else h
    ratio = np.float32(256.0) / np.float32(short)
    return int(np.float32(h) * ratio), int(np.float32(w) * ratio)


@pytest.mark.parametrize(
    "h,w,expected",
    [
        (256, 340, (256, 340)),  # already 256: unchanged
        (240, 320, (256, 341)),  # 341.33 truncated
        (360, 640, (256, 455)),  # 455.11 truncated
        (1080, 1920, (256, 455)),
        (320, 180, (455, 256)),  # portrait
        (201, 333, (256, 424)),  # odd width
        (300, 400, (256, 341)),
        (256, 256, (256, 256)),
        (200, 110, (465, 255)),  # float32 truncation leaves 255 (the official code did too)
    ],
)
def test_resized_size(h, w, expected):
    assert P.resized_size(h, w) == expected == _expected_size(h, w)


def test_resized_size_matches_float32_rule_everywhere():
    for h in range(100, 700, 7):
        for w in (h - 3, h + 1, 2 * h + 5, (h * 16) // 9):
            if w > 0:
                assert P.resized_size(h, w) == _expected_size(h, w)


def test_clip_starts_are_floor_j_n_over_10():
    for n in list(range(1, 400)) + [999, 1000, 1001, 4321, 9999, 10000]:
        assert P.clip_starts(n, 10, 8, 8) == [(j * n // 10) % n for j in range(10)]


def test_one_clip_is_centred():
    assert P.clip_starts(300, 1, 8, 8) == [(300 - 64) // 2]
    assert P.clip_starts(40, 1, 8, 8) == [0]  # shorter than the clip: from the start


def test_frames_wrap_around():
    assert P.clip_frame_indices(35, 40, 8, 3) == [(35 + 3 * k) % 40 for k in range(8)]
    assert P.clip_frame_indices(0, 5, 8, 8) == [0, 3, 1, 4, 2, 0, 3, 1]


@pytest.mark.parametrize(
    "h,w,crops,expected",
    [
        (256, 341, 3, [(0, 0), (0, 42), (0, 84)]),
        (256, 455, 3, [(0, 0), (0, 99), (0, 198)]),
        (455, 256, 3, [(0, 0), (99, 0), (198, 0)]),
        (256, 455, 1, [(0, 99)]),
        (256, 256, 3, [(0, 0), (0, 0), (0, 0)]),
        (256, 257, 3, [(0, 0), (0, 0), (0, 0)]),  # (257-256)//2 = 0
        (256, 258, 3, [(0, 0), (0, 1), (0, 2)]),
        (465, 255, 3, [(0, 0), (104, 0), (208, 0)]),  # w: C's -1/2 == 0
    ],
)
def test_crop_offsets(h, w, crops, expected):
    assert P.crop_offsets(h, w, crops) == expected


def test_views_parse():
    assert P.Views.parse("10x3") == P.Views(10, 3)
    assert P.Views.parse("1x1").count == 1
    assert str(P.Views.parse(" 4X3 ")) == "4x3"
    for bad in ("10x2", "0x3", "ten", "10", "10x3x1"):
        with pytest.raises(VideoError):
            P.Views.parse(bad)


def test_normalize():
    x = np.array([0, 114, 115, 255], np.uint8)
    got = P.normalize(x)
    assert got.dtype == np.float32
    expected = (x.astype(np.float32) - np.float32(114.75)) * (np.float32(1) / np.float32(57.375))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(got, (x - 114.75) / 57.375, rtol=1e-6)


def test_crop_within_frame_is_a_slice():
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (4, 256, 300, 3), dtype=np.uint8)
    view = P.crop_clip(clip, 0, 44)
    np.testing.assert_array_equal(view, clip[:, :, 44:300].transpose(3, 0, 1, 2))


def test_crop_of_short_frame_reads_like_the_cpp_loop():
    # a 7-wide clip cropped to 8: data_index = ((c*L + l)*H + h_off + h)*W + w_off + w
    rng = np.random.default_rng(1)
    t, h, w, size = 2, 12, 7, 8
    clip = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    buf = clip.transpose(3, 0, 1, 2).reshape(-1)
    h_off = 2
    expected = np.empty((3, t, size, size), np.uint8)
    for c in range(3):
        for ll in range(t):
            for hh in range(size):
                for ww in range(size):
                    i = ((c * t + ll) * h + h_off + hh) * w + 0 + ww
                    expected[c, ll, hh, ww] = buf[min(i, buf.size - 1)]
    np.testing.assert_array_equal(P.crop_clip(clip, h_off, 0, size), expected)


def test_resize_unchanged_at_256():
    frame = np.random.default_rng(2).integers(0, 256, (256, 300, 3), dtype=np.uint8)
    assert P.resize_frame(frame) is frame


def test_resize_constant_image_stays_constant():
    frame = np.full((240, 320, 3), 77, np.uint8)
    out = P.resize_frame(frame)
    assert out.shape == (256, 341, 3) and (out == 77).all()


def test_resize_bilinear_half_pixel_centres():
    # a horizontal ramp resized 2x: each output is the half-pixel-centred interpolation
    src = np.tile((np.arange(20, dtype=np.uint8) * 10)[None, :, None], (4, 1, 3))
    out = P.resize_linear(src, 4, 40)[0, :, 0].astype(float)
    x = (np.arange(40) + 0.5) / 2 - 0.5
    expected = np.interp(x, np.arange(20), np.arange(20) * 10.0)
    assert np.abs(out - expected).max() <= 1


@pytest.mark.parametrize(
    "h,w", [(240, 320), (360, 640), (1080, 1920), (320, 180), (201, 333), (100, 150), (200, 110)]
)
def test_resize_matches_opencv(h, w):
    cv2 = pytest.importorskip("cv2")
    frame = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    nh, nw = _expected_size(h, w)
    expected = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(P.resize_frame(frame), expected)


def test_build_views_order_is_clip_major_crop_minor():
    frames = {i: np.full((256, 300, 3), i, np.uint8) for i in range(6)}
    for i in frames:
        frames[i][:, 100:, :] = 200 + i  # tell the crops apart
    plan = [[0, 1], [2, 3], [4, 5]]
    views = P.build_views(frames, plan, 3)
    assert views.shape == (9, 3, 2, 256, 256) and views.dtype == np.uint8
    for j, clip in enumerate(plan):
        for c, w_off in enumerate((0, 22, 44)):
            v = views[j * 3 + c]
            for k, idx in enumerate(clip):
                np.testing.assert_array_equal(v[0, k], frames[idx][:, w_off : w_off + 256, 0])
