"""The output folder of ``nlconvert features``: one file per video, an index, resumability.

Layout of ``DIR``:

* ``features.json``: the settings every file in the folder was made with (model SHA-256,
  layer, window, fps, crop and crop size, spatial, dtype, format, backend; with layer
  ``logits``/``probs``, the ``class_names`` of their channels). A run with other settings is refused
  unless ``--force``, which clears what an earlier run wrote (and only that).
* ``<relative path>.npy`` per video (``a/b.mp4`` under a folder or root -> ``DIR/a/b.npy``;
  a file given directly -> ``DIR/b.npy``): ``windows x channels``, float32 or float16,
  written atomically; ``windows x crops x channels`` with ``--crop three|ten``; with
  ``--spatial`` each clip's ``channels x t x h x w`` instead of ``channels``. With
  ``--format h5`` they are kept under ``DIR/.parts/`` and gathered into ``DIR/features.h5``
  (one dataset per video path, the window starts and times, and the crops as JSON, as its
  attributes) when the run ends.
* ``index.jsonl``: one JSON object per line and video, appended (and flushed to disk) after
  the video's file is in place: ``path``, ``key``, ``status`` (``ok``/``failed``),
  ``feature_file``, ``frames``, ``decoded_frames``, ``fps``, ``windows``,
  ``window_start_frame``, ``window_start_s``, ``window_end_s``, ``channels``, ``shape``,
  ``crops`` (each crop's ``name``, ``h_off``, ``w_off`` and ``flip``, in the order of the
  crops axis), ``layer``, ``backend``, ``model_sha256``, ``warnings`` (signs of a truncated
  or damaged file, empty when clean), ``error`` and ``kind``. The last line for a key wins.
  With ``strict``, a video with warnings is recorded as failed (kind ``damaged (--strict)``)
  and its features not kept.

A video counts as done when the index has its line (and, when it succeeded, its file is
there); a rerun after a crash, Ctrl-C or SIGKILL skips those and computes the rest. A line
torn by a kill is dropped when the index is read again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_output, atomic_write_text
from ..errors import NLConvertError, OutputExistsError, option
from .decode import DAMAGED_KIND, strict_reason
from .stream import VideoSummary

SETTINGS = "features.json"
INDEX = "index.jsonl"
H5_FILE = "features.h5"
PARTS = ".parts"
FORMATS = ("npy", "h5")
DTYPES = ("float32", "float16")


class FeatureDirError(NLConvertError):
    """The output folder holds features of other settings, or cannot be used."""


@dataclass(frozen=True)
class FeatureSettings:
    """What the features of a folder were computed with; a folder holds one setting."""

    model_sha256: str
    arch: str
    layer: str
    frames: int
    rate: int
    stride: int
    fps: str | None  # exact, as given ("29.97"), or None
    crop: str
    dtype: str
    format: str
    backend: str  # name/precision, e.g. "onnx/fp32"
    # Added with multi-crop and spatial features; a folder written before has the defaults.
    crop_size: int | None = 256  # None with crop "none"
    spatial: bool = False
    # What the channels of layer logits/probs mean (the model's classes, e.g. a fine-tuned
    # head's); a description, not a setting: the model's sha256 already tells the model.
    class_names: list[str] | None = field(default=None, compare=False)

    def differences(self, other: FeatureSettings) -> list[str]:
        """``name: theirs -> ours`` for each setting that differs."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{k}: {theirs[k]} -> {mine[k]}" for k in mine
                if k != "class_names" and mine[k] != theirs.get(k)]


def output_key(path: Path, root: Path | None) -> str:
    """The key of a video in the folder: its path relative to `root` (POSIX), or its name.

    Paths are made absolute without following links: a linked video keeps the name and
    folder it has under `root`.
    """
    if root is not None:
        try:
            return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
        except ValueError:
            pass
    return path.name


class FeatureStore:
    """An output folder opened for one setting (see the module doc)."""

    def __init__(self, folder: str | Path, settings: FeatureSettings, *, force: bool = False,
                 strict: bool = False) -> None:
        if settings.format not in FORMATS:
            raise FeatureDirError(f"--format must be one of {', '.join(FORMATS)}")
        if settings.dtype not in DTYPES:
            raise FeatureDirError(f"--dtype must be one of {', '.join(DTYPES)}")
        self.folder = Path(folder)
        self.settings = settings
        self.strict = strict
        if settings.format == "h5":
            try:
                import h5py  # noqa: F401 - needed at the end of the run: fail before it
            except ImportError:
                raise FeatureDirError("--format h5 needs h5py: pip install 'nlconvert[h5]'") from None
        if self.folder.exists() and not self.folder.is_dir():
            raise FeatureDirError(f"{self.folder}: exists and is not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            old = self._read_settings()
        except FeatureDirError:
            if not force:
                raise
            old = None
            self.clear()
        if old is not None and old != settings:
            if not force:
                raise FeatureDirError(
                    f"{self.folder} holds features made with other settings "
                    f"({'; '.join(settings.differences(old))}): pass {option('force')} to replace them, "
                    "or use another --out")
            self.clear()
        elif old is None and self._index_path.exists():
            if not force:
                raise FeatureDirError(f"{self.folder}: has an index but no {SETTINGS}; pass "
                                      f"{option('force')} to start over")
            self.clear()
        if not (self.folder / SETTINGS).exists():
            atomic_write_text(self.folder / SETTINGS,
                              json.dumps(asdict(settings), indent=2) + "\n", force=True)
        self.rows = self._read_index()
        self._h5_keys = self._assembled_keys()

    def _assembled_keys(self) -> set[str]:
        """The videos already gathered into features.h5 by an earlier run."""
        target = self.folder / H5_FILE
        if self.settings.format != "h5" or not target.exists():
            return set()
        import h5py

        try:
            with h5py.File(target, "r") as f:
                return set(_datasets(f))
        except OSError as exc:
            raise FeatureDirError(f"{target}: not a readable HDF5 file ({exc})") from None

    @property
    def _index_path(self) -> Path:
        return self.folder / INDEX

    def _read_settings(self) -> FeatureSettings | None:
        path = self.folder / SETTINGS
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and "crop_size" not in data:  # written before --crop-size
                data["crop_size"] = None if data.get("crop") == "none" else 256
            return FeatureSettings(**data)
        except (ValueError, TypeError) as exc:
            raise FeatureDirError(f"{path}: not a features settings file ({exc})") from None

    def _read_index(self) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        path = self._index_path
        if not path.exists():
            return rows
        data = path.read_bytes()
        good = 0
        for line in data.splitlines(keepends=True):
            try:
                row = json.loads(line)
            except ValueError:
                break  # a line torn by a kill, and anything after it
            if not line.endswith(b"\n"):
                break
            if not isinstance(row, dict) or not isinstance(row.get("key"), str):
                raise FeatureDirError(f"{path}: not a features index (a line without a key)")
            rows[row["key"]] = row
            good += len(line)
        if good != len(data):
            with open(path, "r+b") as f:
                f.truncate(good)
        return rows

    def clear(self) -> None:
        """Remove what an earlier run of any setting wrote here (its files only: those its
        index names inside this folder, its temporary files, then folders left empty)."""
        root = self.folder.resolve()
        try:
            rows = self._read_index().values()
        except FeatureDirError:
            rows = []  # type: ignore[assignment]
        for row in rows:
            name = row.get("feature_file")
            if not name or row.get("status") != "ok" or name.startswith(H5_FILE):
                continue
            target = (self.folder / name).resolve()
            if target.is_relative_to(root) and target.suffix == ".npy":
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
        shutil.rmtree(self.folder / PARTS, ignore_errors=True)
        for name in (INDEX, SETTINGS, H5_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.folder / name).unlink()
        for tmp in self.folder.rglob(".*.tmp"):  # left by a kill between write and rename
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        for folder in sorted((d for d in self.folder.rglob("*") if d.is_dir()), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty

    def feature_path(self, key: str) -> Path:
        """Where the array of `key` goes (``.parts`` with the h5 format)."""
        rel = Path(key).with_suffix(".npy")
        return self.folder / PARTS / rel if self.settings.format == "h5" else self.folder / rel

    def done(self, key: str, *, retry_failed: bool = False) -> bool:
        """Whether `key` needs no work: its line is in the index (and its file is there)."""
        row = self.rows.get(key)
        if row is None:
            return False
        if row["status"] != "ok":
            return not retry_failed
        if self.settings.format == "h5":
            return self.feature_path(key).exists() or key in self._h5_keys
        return self.feature_path(key).exists()

    def write(self, key: str, path: str, features: np.ndarray | None, summary: VideoSummary) -> None:
        """Store one video: its array atomically, then its index line (flushed to disk).

        With ``strict``, a video with decode warnings is stored as failed (no array)."""
        if self.strict and summary.ok and summary.warnings:
            summary.error = strict_reason(path, summary.warnings)
            summary.kind = DAMAGED_KIND
        ok = features is not None and summary.ok
        feature_file = None
        if ok:
            assert features is not None
            target = self.feature_path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            array = np.ascontiguousarray(features, dtype=self.settings.dtype)
            with atomic_output(target, force=True) as tmp, open(tmp, "wb") as f:
                np.save(f, array)
                f.flush()
                os.fsync(f.fileno())  # on disk before the index line that says it is
            feature_file = (f"{H5_FILE}#{key}" if self.settings.format == "h5"
                            else target.relative_to(self.folder).as_posix())
        row = {
            "key": key, "path": path, "status": "ok" if ok else "failed",
            "feature_file": feature_file, "frames": summary.frames,
            "decoded_frames": summary.decoded_frames, "fps": summary.fps,
            "windows": summary.windows if ok else 0,
            "window_start_frame": summary.starts if ok else [],
            "window_start_s": [round(t, 6) for t in summary.start_s] if ok else [],
            "window_end_s": [round(t, 6) for t in summary.end_s] if ok else [],
            "channels": _channels(features, self.settings) if ok else None,
            "shape": list(features.shape) if ok and features is not None else None,
            "crops": summary.crops if ok else [],
            "layer": self.settings.layer, "backend": self.settings.backend,
            "model_sha256": self.settings.model_sha256,
            "warnings": list(summary.warnings),
            "error": None if ok else " ".join((summary.error or "no features").split()),
            "kind": None if ok else summary.kind, "seconds": round(summary.seconds, 3),
        }
        line = json.dumps(row) + "\n"
        with open(self._index_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.rows[key] = row

    def finish(self) -> Path | None:
        """With the h5 format, gather the parts (and an earlier features.h5) into one file."""
        if self.settings.format != "h5":
            return None
        parts = self.folder / PARTS
        target = self.folder / H5_FILE
        if not parts.exists():
            return target if target.exists() else None
        import h5py

        with atomic_output(target, force=True) as tmp, h5py.File(tmp, "w") as out:
            out.attrs["settings"] = json.dumps(asdict(self.settings))
            if target.exists():
                with h5py.File(target, "r") as old:
                    for key in _datasets(old):
                        old.copy(old[key], out, name=key)
            for key, row in self.rows.items():
                part = self.feature_path(key)
                if row["status"] != "ok" or not part.exists():
                    continue
                if key in out:
                    del out[key]
                ds = out.create_dataset(key, data=np.load(part))
                for name in ("window_start_frame", "window_start_s", "window_end_s"):
                    ds.attrs[name] = np.asarray(row[name])
                ds.attrs["fps"] = row["fps"]
                ds.attrs["path"] = row["path"]
                if row.get("crops"):
                    ds.attrs["crops"] = json.dumps(row["crops"])
        shutil.rmtree(parts, ignore_errors=True)
        return target


def _channels(features: np.ndarray | None, settings: FeatureSettings) -> int | None:
    """The channels of a ``windows x [crops x] channels [x t x h x w]`` array."""
    if features is None:
        return None
    stacked = settings.crop in ("three", "ten")
    return int(features.shape[2 if stacked else 1])


def _datasets(group: Any, prefix: str = "") -> Iterator[str]:
    for name, item in group.items():
        key = f"{prefix}{name}"
        if hasattr(item, "shape"):
            yield key
        else:
            yield from _datasets(item, f"{key}/")


def check_outputs_unique(items: list[tuple[str, str]]) -> None:
    """Two inputs must not write the same file (``a/x.mp4`` and ``b/x.mp4`` given directly)."""
    seen: dict[str, str] = {}
    for key, path in items:
        stem = str(Path(key).with_suffix(""))
        if stem in seen and seen[stem] != path:
            raise OutputExistsError(f"{seen[stem]} and {path} would both be written to "
                                    f"{stem}.npy: give their common folder instead")
        seen[stem] = path
