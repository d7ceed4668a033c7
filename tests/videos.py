"""Real test videos made with PyAV whose pixels say which frame they are.

Frame i carries the bits of i as bands across the frame's short side (horizontal bands in a
landscape frame, vertical in a portrait one): band b is bright (Y=220) if bit b of i is set,
dark (Y=40) otherwise. A 256 crop of the resized frame always spans the whole short side, so
every view shows every band whatever its crop offset; big flat bands survive lossy codecs.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from nlconvert.arch import get_arch
from nlconvert.arch.spec import ArchSpec
from nlconvert.runtime.backends import Backend, BackendInfo

BITS = 10  # up to 1023 frames
DARK, BRIGHT = 40, 220

# container extension -> (codec, pixel format) tried in order
CODECS = {
    ".mp4": [("libx264", "yuv420p"), ("h264", "yuv420p"), ("mpeg4", "yuv420p")],
    ".webm": [("libvpx-vp9", "yuv420p"), ("libvpx", "yuv420p")],
    ".mkv": [("ffv1", "yuv420p"), ("libx264", "yuv420p")],
    ".avi": [("mpeg4", "yuv420p"), ("mjpeg", "yuvj420p")],
}


def codec_for(ext: str) -> tuple[str, str] | None:
    """The first codec of `ext` this PyAV build can encode, or None."""
    import av

    for codec, pix in CODECS[ext]:
        try:
            av.codec.Codec(codec, "w")
        except Exception:  # noqa: BLE001 - not built into this FFmpeg
            continue
        return codec, pix
    return None


def stand_in_factory(**kw):
    """An ``open_backend`` replacement giving a :class:`StandInBackend` per model file (its
    SHA-256 is the file's, so two files are two models)."""

    def open_stand_in(path, backend="auto", **options):
        from nlconvert._hashing import file_sha256

        size = options.get("batch_size") or 6
        return StandInBackend(model_sha256=file_sha256(path), batch_size=size, **kw)

    return open_stand_in


def index_luma(index: int, height: int, width: int, bits: int = BITS) -> np.ndarray:
    """The Y plane (H x W uint8) of frame `index`."""
    portrait = height > width
    short = width if portrait else height
    edges = [round(b * short / bits) for b in range(bits + 1)]
    line = np.empty(short, np.uint8)
    for b in range(bits):
        line[edges[b] : edges[b + 1]] = BRIGHT if (index >> b) & 1 else DARK
    return np.tile(line[None, :], (height, 1)) if portrait else np.tile(line[:, None], (1, width))


def read_index(picture: np.ndarray, portrait: bool, bits: int = BITS) -> int:
    """Frame index shown by an RGB picture (H x W x 3 or 3 x H x W uint8) of the pattern."""
    if picture.shape[0] == 3 and picture.shape[-1] != 3:
        picture = picture.transpose(1, 2, 0)
    grey = picture.astype(np.float64).mean(axis=2)
    profile = grey.mean(axis=0) if portrait else grey.mean(axis=1)
    short = profile.shape[0]
    value = 0
    for b in range(bits):
        lo, hi = b * short / bits, (b + 1) * short / bits
        centre = profile[int(lo + (hi - lo) * 0.3) : int(lo + (hi - lo) * 0.7) + 1].mean()
        if centre > (DARK + BRIGHT) / 2:
            value |= 1 << b
    return value


def read_view_indices(view: np.ndarray, portrait: bool) -> list[int]:
    """Frame indices of a view (3 x T x H x W uint8)."""
    return [read_index(view[:, t], portrait) for t in range(view.shape[1])]


def _yuv_frame(av, y: np.ndarray, u: np.ndarray, v: np.ndarray, pix_fmt: str):
    h, w = y.shape
    if pix_fmt in ("yuv420p", "yuvj420p"):
        frame = av.VideoFrame(w, h, pix_fmt)
        for plane, data in zip(frame.planes, (y, u, v), strict=True):
            buf = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            buf[: data.shape[0], : data.shape[1]] = data
        return frame
    raise ValueError(pix_fmt)


def make_video(
    path: str | Path,
    width: int = 320,
    height: int = 240,
    frames: int = 40,
    *,
    rate: int = 25,
    vfr: bool = False,
    colorspace_709: bool = False,
    chroma: tuple[int, int] = (128, 128),
    codec: tuple[str, str] | None = None,
    audio: bool = False,
) -> Path:
    """Encode a video whose frame i shows i (see the module doc). Returns its path.

    `vfr` gives irregular timestamps; `colorspace_709` tags the stream BT.709 (the pixels
    are the same pattern; `chroma` sets the flat U, V planes so colour conversions differ).
    """
    import av

    path = Path(path)
    chosen = codec or codec_for(path.suffix)
    if chosen is None:
        raise RuntimeError(f"no encoder for {path.suffix} in this PyAV")
    name, pix_fmt = chosen
    container = av.open(str(path), mode="w")
    stream = container.add_stream(name, rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    if name in ("libx264", "h264"):
        stream.options = {"crf": "12", "preset": "ultrafast", "bframes": "2"}
    elif name.startswith("libvpx"):
        stream.options = {"crf": "10", "b": "0", "deadline": "realtime", "cpu-used": "8"}
    elif name in ("mpeg4", "mjpeg"):
        stream.options = {"qscale": "2"}
        stream.codec_context.qmin = 1
    if vfr:
        stream.codec_context.time_base = Fraction(1, 1000)
    if colorspace_709:
        stream.codec_context.colorspace = 1  # AVCOL_SPC_BT709
        stream.codec_context.color_range = 1  # MPEG
    audio_stream = container.add_stream("aac", rate=16000) if audio else None
    rng = np.random.default_rng(frames * 7 + width)
    cw, ch = (width + 1) // 2, (height + 1) // 2
    pts = 0
    for i in range(frames):
        y = index_luma(i, height, width)
        u = np.full((ch, cw), chroma[0], np.uint8)
        v = np.full((ch, cw), chroma[1], np.uint8)
        frame = _yuv_frame(av, y, u, v, pix_fmt)
        if colorspace_709:
            frame.colorspace = 1
            frame.color_range = 1
        if vfr:
            frame.pts = pts
            frame.time_base = Fraction(1, 1000)
            pts += int(rng.choice([10, 33, 40, 90, 200]))
        else:
            frame.pts = i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    if audio_stream is not None:
        _write_audio(av, container, audio_stream, seconds=0.2)
    container.close()
    return path


def _write_audio(av, container, stream, seconds: float) -> None:
    samples = int(stream.rate * seconds)
    tone = (0.1 * np.sin(np.arange(samples) / 5.0)).astype(np.float32)[None, :]
    frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
    frame.sample_rate = stream.rate
    frame.pts = 0
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def make_audio_only(path: str | Path) -> Path:
    """An .mp4 (AAC in MP4) with an audio stream and no video stream."""
    import av

    path = Path(path)
    container = av.open(str(path), mode="w", format="mp4")
    stream = container.add_stream("aac", rate=16000)
    _write_audio(av, container, stream, seconds=0.5)
    container.close()
    return path


def make_truncated(src: str | Path, dst: str | Path, keep: float = 0.5) -> Path:
    """Copy the first `keep` fraction of `src`'s bytes (an mp4 loses its index, the moov)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep)])
    return Path(dst)


def make_bad_files(folder: str | Path, good: str | Path) -> dict[str, Path]:
    """Zero-byte, truncated, audio-only and text-renamed-.mp4 files, by reason name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    zero = folder / "zero.mp4"
    zero.write_bytes(b"")
    text = folder / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    return {
        "zero": zero,
        "truncated": make_truncated(good, folder / "truncated.mp4", 0.6),
        "audio": make_audio_only(folder / "audio_only.mp4"),
        "text": text,
    }


class _AnyClipArch(ArchSpec):
    """An architecture record for the stand-in: it takes clips of any shape."""

    def check_clip(self, shape, head, static_shape=None) -> None:  # noqa: D102
        return None


class StandInBackend(Backend):
    """A tiny deterministic model behind the real Backend interface: the softmax of a fixed
    projection of 4x4-pooled frame means.

    Counts the clips it scores so tests can prove nothing is scored twice. Its "features"
    (clip head) are the 48 pooled means (pool5), their first half (res4) and the logits.
    """

    def __init__(self, num_classes: int = 400, frames: int = 4, rate: int = 2, seed: int = 0,
                 batch_size: int = 6, model_sha256: str = "0" * 64):
        rng = np.random.default_rng(seed)
        self.weights = rng.standard_normal((48, num_classes)).astype(np.float32)
        arch = _AnyClipArch(**{**get_arch("c2d_baseline_8x8").__dict__, "name": "stand-in",
                               "frames": frames, "sample_rate": rate, "num_classes": num_classes})
        info = BackendInfo("torch", "cpu", "fp32", "stand-in", 0.0)
        super().__init__(info=info, arch=arch, class_names=None, model_path=None,
                         model_sha256=model_sha256, batch_size=batch_size)
        self.calls = 0
        self.views_scored = 0

    def _forward(self, clips: np.ndarray, head) -> dict[str, np.ndarray]:
        assert clips.dtype == np.float32 and clips.ndim == 5 and clips.shape[1] == 3
        self.calls += 1
        self.views_scored += clips.shape[0]
        v, c, t, h, w = clips.shape
        pooled = clips.mean(axis=2).reshape(v, c, 4, h // 4, 4, w // 4).mean(axis=(3, 5))
        pooled = pooled.reshape(v, 48)
        logits = pooled @ self.weights * 2.0
        if head == "clip":
            return {"logits": logits, "pool5": pooled, "res4": pooled[:, :24]}
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return {"probs": (e / e.sum(axis=1, keepdims=True)).astype(np.float32)}

    def probs(self, clips: np.ndarray) -> np.ndarray:
        """What :meth:`scores` gives, computed directly (for expected values in tests)."""
        return self._forward(np.ascontiguousarray(clips, dtype=np.float32), "fully_conv")["probs"]


def make_faststart(src: str | Path, dst: str | Path) -> Path:
    """Remux an .mp4 with its index (moov) first, as web downloads are: a copy cut short
    then still opens, and decodes its first part without a single decode error."""
    import av

    with av.open(str(src)) as source, av.open(str(dst), "w",
                                              options={"movflags": "faststart"}) as out:
        stream = source.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for packet in source.demux(stream):
            if packet.dts is None:  # the demuxer's final flush packet
                continue
            packet.stream = copy
            out.mux(packet)
    return Path(dst)
