"""Clips saved with ``numpy.save``: the input of ``nlconvert run`` and ``parity --input``."""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputShapeError

_NPY_MAGIC = b"\x93NUMPY"


def load_clip_file(path: str | os.PathLike[str]) -> np.ndarray:
    """A normalised float32 clip from an ``.npy`` file, N x 3 x T x H x W.

    A single clip without the batch axis (3 x T x H x W) gets one. Raises
    :class:`~nlconvert.errors.InputShapeError` (one line) for an unreadable file, a pickled
    object array, or another shape or dtype.
    """
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise InputShapeError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if magic != _NPY_MAGIC:  # numpy would try it as a pickle and advise allow_pickle
        raise InputShapeError(f"{path}: not an .npy file (no NUMPY header; {len(magic)}+ bytes of "
                              "something else): save clips with numpy.save")
    try:
        clip = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):  # an object array: Python objects, never loaded
            raise InputShapeError(f"{path}: holds pickled Python objects, not a numeric array "
                                  "(they are not loaded)") from None
        raise InputShapeError(f"{path}: not a readable .npy array ({exc})") from None
    except OSError as exc:
        raise InputShapeError(f"{path}: not a readable .npy array ({exc})") from None
    if clip.ndim == 4 and clip.shape[0] == 3:
        clip = clip[None]
    if clip.ndim != 5 or clip.shape[1] != 3:
        raise InputShapeError(f"{path}: expected N x 3 x T x H x W, got shape {clip.shape}")
    if not np.issubdtype(clip.dtype, np.floating):
        raise InputShapeError(f"{path}: expected float32 values, got {clip.dtype}")
    return np.ascontiguousarray(clip, dtype=np.float32)
