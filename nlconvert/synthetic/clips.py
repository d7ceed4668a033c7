"""Seeded clips of normalised pixels, for checks, benchmarks and calibration without videos."""

from __future__ import annotations

import torch


def seeded_clip(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A float32 clip of normalised pixels (about N(0, 1)), the same for the same seed.

    Smooth random blobs that move over time plus a little pixel noise: unlike white noise,
    clips differ in what a network sees after pooling, so their top classes differ.
    """
    gen = torch.Generator().manual_seed(seed)
    if len(shape) != 5:
        return torch.randn(shape, generator=gen)
    n, c, t, h, w = shape
    coarse = torch.randn((n, c, max(2, t // 4), max(2, h // 16), max(2, w // 16)), generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, size=(t, h, w), mode="trilinear",
                                             align_corners=False)
    smooth = smooth / smooth.std().clamp_min(1e-6)
    return (0.9 * smooth + 0.3 * torch.randn(shape, generator=gen)).contiguous()
