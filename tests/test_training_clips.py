"""TrainingClips: the official training sampling, checked on videos whose frames show their index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import videos as V

from nlconvert.errors import VideoError
from nlconvert.video import TrainingClips
from nlconvert.video.decode import decode_frames
from nlconvert.video.protocol import normalize, resize_frame

pytest.importorskip("av")


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A list of two labelled frame-index videos: 60 frames (landscape) and 10 frames (short)."""
    folder = tmp_path_factory.mktemp("train-videos")
    V.make_video(folder / "long.mp4", 320, 240, 60)
    V.make_video(folder / "short.mp4", 320, 240, 10)
    (folder / "train.txt").write_text("long.mp4 1\nshort.mp4 0\n")
    return folder / "train.txt"


def _manual(path: Path, frames: tuple[int, ...], side: int, crop: tuple[int, int], size: int,
            flip: bool) -> np.ndarray:
    decoded = decode_frames(path, lambda n: frames, resize=False)
    clip = np.stack([resize_frame(decoded.frames[i], side) for i in frames])
    view = clip[:, crop[0]:crop[0] + size, crop[1]:crop[1] + size]
    return np.ascontiguousarray((view[:, :, ::-1] if flip else view).transpose(3, 0, 1, 2))


def test_train_clip_frames_and_crop(listed: Path) -> None:
    # A 224 side with a 224 crop keeps the whole short side: the bands tell the frame index.
    ds = TrainingClips(listed, frames=4, rate=3, jitter_scales=(224, 224), crop_size=224, seed=0)
    assert len(ds) == 2 and ds.labels == [1, 0]
    pixels, plan = ds.sample(0)
    start = plan.frames[0]
    assert 0 <= start <= 60 - 4 * 3 and list(plan.frames) == [start + 3 * k for k in range(4)]
    assert V.read_view_indices(pixels, portrait=False) == list(plan.frames)
    assert pixels.shape == (3, 4, 224, 224) and plan.side == 224
    path = listed.parent / "long.mp4"
    np.testing.assert_array_equal(pixels, _manual(path, plan.frames, 224, plan.crop, 224,
                                                  plan.flip))
    clip, label = ds[0]
    assert label == 1 and clip.dtype == torch.float32
    np.testing.assert_array_equal(clip.numpy(), normalize(pixels))


def test_short_video_wraps(listed: Path) -> None:
    ds = TrainingClips(listed, frames=4, rate=4, jitter_scales=(224, 224), crop_size=224, seed=3)
    pixels, plan = ds.sample(1)  # 10 frames < 4 x 4: start 0, then wrap as the test protocol
    assert plan.frames == (0, 4, 8, 2)
    assert V.read_view_indices(pixels, portrait=False) == [0, 4, 8, 2]


def test_jitter_crop_and_flip_draws(listed: Path) -> None:
    ds = TrainingClips(listed, frames=8, rate=8, seed=0)  # [256, 320] and 224: the official
    sides, flips, h_offs, w_offs, starts = set(), set(), set(), set(), set()
    for epoch in range(400):
        ds.set_epoch(epoch)
        plan = ds.plan(ds.draws(0), 300, 240, 320)
        h = plan.side
        w = int(np.float32(320) * (np.float32(h) / np.float32(240)))
        assert 256 <= h <= 320 and 0 <= plan.crop[0] <= h - 224 and 0 <= plan.crop[1] <= w - 224
        assert 0 <= plan.frames[0] <= 300 - 64
        sides.add(h)
        flips.add(plan.flip)
        h_offs.add(plan.crop[0])
        w_offs.add(plan.crop[1])
        starts.add(plan.frames[0])
    assert {256, 320} <= sides and len(sides) > 40  # both ends of the range are drawn
    assert flips == {False, True} and 0 in h_offs and len(w_offs) > 100 and len(starts) > 100


def test_val_mode_is_centre(listed: Path) -> None:
    ds = TrainingClips(listed, frames=4, rate=3, train=False, seed=0)
    pixels, plan = ds.sample(0)
    # The centre clip (the test protocol's one-clip rule), TEST.SCALE 256, centre 224 crop.
    assert plan.frames[0] == (60 - 12) // 2 and plan.side == 256 and not plan.flip
    assert plan.crop == ((256 - 224) // 2, (341 - 224) // 2)
    ds.set_epoch(5)
    assert ds.sample(0)[1] == plan
    np.testing.assert_array_equal(
        pixels, _manual(listed.parent / "long.mp4", plan.frames, 256, plan.crop, 224, False))


def test_seeded_reproducible_and_in_workers(listed: Path) -> None:
    a = TrainingClips(listed, frames=4, rate=3, seed=7)
    b = TrainingClips(listed, frames=4, rate=3, seed=7)
    assert a.draws(0) == b.draws(0) and a.draws(0) != a.draws(1)
    b.set_epoch(1)
    assert a.draws(0) != b.draws(0)
    first = torch.stack([a[i][0] for i in range(2)])
    loader = torch.utils.data.DataLoader(a, batch_size=2, num_workers=1)
    clips, labels = next(iter(loader))
    assert torch.equal(clips, first) and labels.tolist() == [1, 0]
    # Without a seed: torch's generator, reproducible with torch.manual_seed.
    c = TrainingClips(listed, frames=4, rate=3)
    torch.manual_seed(0)
    one = c.draws(0)
    torch.manual_seed(0)
    assert c.draws(0) == one


def test_bad_videos_name_the_file(listed: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all")
    (tmp_path / "list.txt").write_text("bad.mp4 0\n")
    ds = TrainingClips(tmp_path / "list.txt", frames=4, rate=2)
    with pytest.raises(VideoError, match="bad.mp4"):
        ds[0]
    (tmp_path / "missing.txt").write_text("gone.mp4 0\n")
    with pytest.raises(VideoError, match="1 listed videos not found .first: gone.mp4"):
        TrainingClips(tmp_path / "missing.txt", frames=4, rate=2)
    with pytest.raises(ValueError, match="arch= or positive frames"):
        TrainingClips(listed)
