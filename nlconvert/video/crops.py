"""Which spatial crops a feature window takes (``features --crop``): pure rules, no decoding.

Every crop is cut from the resized frames (short side 256, the test protocol's rule):

* ``center`` (default size 256): one crop at the protocol's centre offset
  (``(H-S)/2, (W-S)/2`` in C integer division, SPEC.md section 6);
* ``three`` (default 256): the protocol's three crops (SPEC.md section 6, ClipTransformFlex):
  the centre offsets with the h offset multiplied by c = 0, 1, 2 if it is positive, else the
  w offset (at 256: along the long side);
* ``ten`` (default 224): top-left ``(0, 0)``, top-right ``(0, W-S)``, bottom-left ``(H-S, 0)``,
  bottom-right ``(H-S, W-S)``, centre ``((H-S)//2, (W-S)//2)``, then the same five positions
  of the horizontally mirrored frame, in that order (torchvision ``TenCrop``'s order);
* ``none``: the whole resized frame (no size).

``center`` and ``none`` give one clip per window (features ``[windows, channels]``); ``three``
and ``ten`` give ``crops`` clips per window (features ``[windows, crops, channels]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import VideoError
from .protocol import CROP, crop_clip, crop_offsets

#: ``--crop`` choices.
CROP_KINDS = ("center", "three", "ten", "none")
#: The crop size of each kind when ``--crop-size`` is not given.
DEFAULT_CROP_SIZE = {"center": CROP, "three": CROP, "ten": 224}
#: Names of the ten crops, in their order.
TEN_CROP_NAMES = ("top_left", "top_right", "bottom_left", "bottom_right", "center",
                  "flip_top_left", "flip_top_right", "flip_bottom_left", "flip_bottom_right",
                  "flip_center")


@dataclass(frozen=True)
class CropBox:
    """One crop of a resized frame: its offsets in the (mirrored, if `flip`) frame."""

    name: str
    h_off: int
    w_off: int
    flip: bool = False

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (the features index records each video's boxes)."""
        return {"name": self.name, "h_off": self.h_off, "w_off": self.w_off, "flip": self.flip}


@dataclass(frozen=True)
class CropSpec:
    """A ``--crop`` kind and its size (None for ``none``)."""

    kind: str = "center"
    size: int | None = CROP

    @classmethod
    def make(cls, kind: str | CropSpec, size: int | None = None) -> CropSpec:
        """Check `kind` and `size` (one-line :class:`VideoError`); the kind's default size."""
        if isinstance(kind, CropSpec):
            return kind
        if kind not in CROP_KINDS:
            raise VideoError(f"--crop must be one of {', '.join(CROP_KINDS)}, not {kind!r}")
        if kind == "none":
            if size is not None:
                raise VideoError("--crop-size needs --crop center, three or ten (none keeps "
                                 "the whole frame)")
            return cls(kind, None)
        if size is not None and not 1 <= size <= CROP:
            raise VideoError(f"--crop-size must be between 1 and {CROP} (the resized frame's "
                             f"short side), not {size}")
        return cls(kind, DEFAULT_CROP_SIZE[kind] if size is None else size)

    @property
    def count(self) -> int:
        """Clips per window."""
        return {"three": 3, "ten": 10}.get(self.kind, 1)

    @property
    def stacked(self) -> bool:
        """Whether a window's features have a crops axis (``three``, ``ten``)."""
        return self.kind in ("three", "ten")

    def boxes(self, height: int, width: int) -> list[CropBox]:
        """The crops of a resized frame of `height` x `width`, in output order."""
        if self.size is None:
            return [CropBox("full", 0, 0)]
        s = self.size
        if self.kind == "ten":
            if height < s or width < s:
                raise VideoError(f"--crop ten needs frames of at least {s} x {s} after resizing, "
                                 f"got {height} x {width}: use a smaller --crop-size")
            corners = [(0, 0), (0, width - s), (height - s, 0), (height - s, width - s),
                       ((height - s) // 2, (width - s) // 2)]
            return [CropBox(name, h, w, flip=i >= 5)
                    for i, (name, (h, w)) in enumerate(zip(TEN_CROP_NAMES, corners * 2, strict=True))]
        offsets = crop_offsets(height, width, self.count, s)
        names = ["center"] if self.kind == "center" else [f"crop{c}" for c in range(3)]
        return [CropBox(n, h, w) for n, (h, w) in zip(names, offsets, strict=True)]

    def cut(self, clip: np.ndarray) -> tuple[np.ndarray, list[CropBox]]:
        """Crop a clip of resized frames (L x H x W x 3 uint8): ``3 x L x S x S`` for one crop
        (``3 x L x H x W`` for ``none``), ``K x 3 x L x S x S`` for ``three``/``ten``; and the
        boxes used."""
        _, h, w, _ = clip.shape
        boxes = self.boxes(h, w)
        if self.size is None:
            return np.ascontiguousarray(clip.transpose(3, 0, 1, 2)), boxes
        mirrored = clip[:, :, ::-1] if any(b.flip for b in boxes) else clip
        views = [crop_clip(mirrored if b.flip else clip, b.h_off, b.w_off, self.size)
                 for b in boxes]
        return (np.stack(views) if self.stacked else views[0]), boxes

    def __str__(self) -> str:
        return self.kind if self.size is None else f"{self.kind}{self.size}"
