"""Labelled training clips sampled as the official training sampled them.

The official data layer (``customized_video_input_op.h``, ``customized_video_io.cc``): decode
every frame (BT.601, as at test time); a random clip start, uniform over
``[0, N - frames * rate]`` (0 when the video is shorter, the clip then wraps to the start as
the test protocol wraps); frame k is ``(start + k * rate) mod N``; the short side scaled to
a side drawn uniformly from ``TRAIN.JITTER_SCALES`` (both ends included, the float32 ratio
and truncation of the test protocol, bilinear on uint8); a crop of ``TRAIN.CROP_SIZE`` at an
offset uniform over every position; a horizontal flip with probability 0.5; then
``(x - 114.75) / 57.375``. The draws happen in that order. ``train=False``: the centre clip,
the short side scaled to ``TEST.SCALE`` 256 and the centre crop.

Randomness: with ``seed`` each item's draws come from a generator seeded with
``(seed, epoch, index)``, so a sample is the same in any ``DataLoader`` worker and run
(:meth:`TrainingClips.set_epoch` moves to the next epoch); without it they come from
torch's default generator, which ``DataLoader`` seeds per worker (reproducible with
``torch.manual_seed`` or the loader's ``generator=``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..arch import ArchSpec
from ..errors import VideoError
from .datalist import Entry, read_list
from .decode import decode_frames
from .protocol import (
    SCALE,
    clip_frame_indices,
    clip_starts,
    normalize,
    resize_frame,
    resized_size,
)

#: cfg.TRAIN.JITTER_SCALES of the Kinetics configs (the 4-GPU 300k config used [256, 256]).
JITTER_SCALES = (256, 320)
#: cfg.TRAIN.CROP_SIZE (and TEST.CROP_SIZE of a validation clip).
CROP_SIZE = 224


@dataclass(frozen=True)
class ClipPlan:
    """Everything drawn for one sample: which frames, the scaled short side, the crop, the flip."""

    frames: tuple[int, ...]  # decoded-frame indices, in clip order
    side: int  # the short side after scaling
    crop: tuple[int, int]  # (h_off, w_off) in the scaled frame
    flip: bool


#: Raw draws per sample (start, side, h offset, w offset, flip), each uniform on [0, 2**62);
#: a value uniform on 0..k is ``raw % (k + 1)`` (bias below 2**-40 for any video).
_DRAWS = 5
_RAW_HIGH = 2**62


class TrainingClips(Dataset[tuple[torch.Tensor, int]]):
    """``(clip, label)`` pairs of a labelled list: clip float32 3 x T x crop x crop, normalised.

    `list_file`: a ``vallist.txt``/``trainlist.txt`` (``<path> <label>`` per line) or a
    Kinetics CSV, resolved under `root` as ``evaluate`` resolves it (`class_names` name the
    CSV labels' indices). `arch` gives the clip length and rate (its training clip, e.g.
    8 x 8); `frames`/`rate` override them. `jitter_scales`, `crop_size` and `test_scale` (the
    short side of ``train=False``) default to the official 256-320, 224 and 256. A listed
    video that is not found is an error when the set is made; a video that cannot be decoded
    raises
    :class:`~nlconvert.errors.VideoError` naming the file when its sample is read.
    """

    def __init__(
        self,
        list_file: str | Path,
        *,
        root: str | Path | None = None,
        arch: ArchSpec | None = None,
        frames: int | None = None,
        rate: int | None = None,
        train: bool = True,
        jitter_scales: tuple[int, int] = JITTER_SCALES,
        crop_size: int = CROP_SIZE,
        test_scale: int = SCALE,
        class_names: list[str] | None = None,
        seed: int | None = None,
    ) -> None:
        self.frames = frames or (arch.frames if arch else 0)
        self.rate = rate or (arch.sample_rate if arch else 0)
        if self.frames < 1 or self.rate < 1:
            raise ValueError("TrainingClips needs arch= or positive frames= and rate=")
        low, high = int(jitter_scales[0]), int(jitter_scales[1])
        if not crop_size <= low <= high:
            raise ValueError(f"jitter_scales {jitter_scales} must be ordered and >= crop_size "
                             f"{crop_size}")
        self.jitter_scales = (low, high)
        self.crop_size = int(crop_size)
        if test_scale < crop_size:
            raise ValueError(f"test_scale {test_scale} must be >= crop_size {crop_size}")
        self.test_scale = int(test_scale)
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.entries: list[Entry] = read_list(list_file, root, class_names)
        missing = [e for e in self.entries if e.path is None]
        if missing:
            raise VideoError(f"{list_file}: {len(missing)} listed videos not found "
                             f"(first: {missing[0].key})")

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        """Draw other clips, scales, crops and flips (with a `seed`; like DistributedSampler)."""
        self.epoch = int(epoch)

    @property
    def labels(self) -> list[int]:
        """The label of every sample, in order."""
        return [e.label for e in self.entries]

    def draws(self, index: int) -> tuple[int, ...]:
        """The raw random numbers of item `index`: from `seed`, the epoch and the index, or
        from torch's default generator (seeded per ``DataLoader`` worker)."""
        if self.seed is None:
            return tuple(int(v) for v in torch.randint(0, _RAW_HIGH, (_DRAWS,)).tolist())
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return tuple(int(v) for v in rng.integers(0, _RAW_HIGH, _DRAWS))

    def clip_frames(self, draws: tuple[int, ...], num_frames: int) -> tuple[int, ...]:
        """Decoded-frame indices of the clip for a video of `num_frames` frames."""
        span = self.frames * self.rate
        if not self.train:
            start = clip_starts(num_frames, 1, self.frames, self.rate)[0]
        else:  # uniform over 0..N - span (official: 0 when the video is not longer)
            start = draws[0] % (num_frames - span + 1) if num_frames > span else 0
        return tuple(clip_frame_indices(start, num_frames, self.frames, self.rate))

    def plan(self, draws: tuple[int, ...], num_frames: int, height: int, width: int
             ) -> ClipPlan:
        """The sample that `draws` give for a video of `num_frames` frames of `height` x
        `width` pixels (as decoded)."""
        size = self.crop_size
        if self.train:
            low, high = self.jitter_scales
            side = low + draws[1] % (high - low + 1)
        else:
            side = self.test_scale
        h, w = resized_size(height, width, side)
        if h < size or w < size:
            raise VideoError(f"a {height}x{width} video scaled to {h}x{w} is smaller than the "
                             f"{size} crop")
        if self.train:
            crop = (draws[2] % (h - size + 1), draws[3] % (w - size + 1))
            flip = draws[4] % 2 == 1
        else:
            crop = (int((h - size) / 2), int((w - size) / 2))  # C division, as ClipTransformFlex
            flip = False
        return ClipPlan(self.clip_frames(draws, num_frames), side, crop, flip)

    def sample(self, index: int) -> tuple[np.ndarray, ClipPlan]:
        """Item `index` as uint8 3 x T x crop x crop RGB (before normalisation), and its plan."""
        path = str(self.entries[index].path)
        draws = self.draws(index)
        # One decoding pass: the frames needed depend only on the true frame count.
        decoded = decode_frames(path, lambda n: self.clip_frames(draws, n), resize=False)
        height, width = decoded.source_size
        try:
            plan = self.plan(draws, decoded.num_frames, height, width)
        except VideoError as exc:
            raise VideoError(f"{path}: {exc}") from None
        clip = np.stack([resize_frame(decoded.frames[i], plan.side) for i in plan.frames])
        (h0, w0), size = plan.crop, self.crop_size
        view = clip[:, h0:h0 + size, w0:w0 + size, :]
        if plan.flip:
            view = view[:, :, ::-1, :]
        return np.ascontiguousarray(view.transpose(3, 0, 1, 2)), plan

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        pixels, _ = self.sample(index)
        return torch.from_numpy(normalize(pixels)), self.entries[index].label

