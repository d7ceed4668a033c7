"""Shared by the benchmark scripts: generated Kinetics-like videos and a seeded model file."""

from __future__ import annotations

import os
import platform
from fractions import Fraction
from pathlib import Path

import numpy as np


def make_videos(folder: Path, count: int, width: int = 340, height: int = 256, frames: int = 300,
                rate: int = 30) -> list[Path]:
    """`count` H.264 videos with moving content (so the codec has real work): by default
    Kinetics-like clips of 10 s, 340 x 256 at 30 fps."""
    import av

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    yy, xx = np.mgrid[0:height, 0:width]
    for n in range(count):
        path = folder / f"bench_{n:04d}.mp4"
        if not path.exists():
            with av.open(str(path), "w") as c:
                s = c.add_stream("libx264", rate=rate)
                s.width, s.height, s.pix_fmt = width, height, "yuv420p"
                s.options = {"preset": "veryfast", "crf": "23"}
                s.codec_context.time_base = Fraction(1, rate)
                for i in range(frames):
                    img = np.stack([(xx + 3 * i + 40 * n) % 256, (yy + 2 * i) % 256,
                                    ((xx + yy) // 2 + i + 17 * n) % 256], axis=-1).astype(np.uint8)
                    f = av.VideoFrame.from_ndarray(img, format="rgb24")
                    f.pts = i
                    for p in s.encode(f):
                        c.mux(p)
                for p in s.encode():
                    c.mux(p)
        paths.append(path)
    return paths


def model_file(folder: Path, arch: str = "i3d_nonlocal_8x8", seed: int = 0) -> Path:
    """A seeded synthetic network (calibrated activations) saved as an nlconvert .pt."""
    from nlconvert.arch import get_arch
    from nlconvert.convert import save_model
    from nlconvert.synthetic.models import synthetic_model

    path = folder / f"{arch}_seed{seed}.pt"
    if not path.exists():
        save_model(synthetic_model(get_arch(arch), seed=seed, head="fully_conv"), path)
    return path


def machine() -> str:
    """CPU, cores, versions: where the numbers come from."""
    import torch

    from nlconvert.runtime.fast import cpu_bf16_support

    flags = ", ".join(k for k, v in cpu_bf16_support().items() if v) or "no bf16"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{cpu}, {os.cpu_count()} cores ({flags})", f"torch {torch.__version__}"]
    try:
        import onnxruntime

        parts.append(f"onnxruntime {onnxruntime.__version__}")
    except ImportError:
        pass
    if torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    return "; ".join(parts)
