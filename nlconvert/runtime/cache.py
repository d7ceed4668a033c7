"""Artefacts kept between runs: ONNX exports of model files and torch.compile's code.

Everything lives under one folder: ``$NLCONVERT_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/nlconvert``, else ``~/.cache/nlconvert``. An ONNX export is keyed by the
SHA-256 of the model file's bytes (its first 32 hex digits, 128 bits, in the file name; new
weights, new key), the head, the graph layout, the precision and the nlconvert version (a
newer exporter writes a new file). Files appear atomically, so processes sharing the cache
(decoding workers, Ray actors on one node) never read half an export. The temporary file of
an export killed midway (``.<name>.onnx.<random>.tmp``) is removed by a later run once it is
older than :data:`STALE_TMP_SECONDS`: a temporary file that young may be another run's export
still in progress.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .._version import __version__

if TYPE_CHECKING:
    from ..model import NLResNet


def cache_root() -> Path:
    """The cache folder (see the module doc); not created."""
    if os.environ.get("NLCONVERT_CACHE_DIR"):
        return Path(os.environ["NLCONVERT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nlconvert"


#: A temporary file of the cache older than this is left over by a killed run (an export of
#: the largest zoo model, verification included, takes a few minutes).
STALE_TMP_SECONDS = 3600.0


def remove_stale_temporaries(folder: Path, *, older_than: float = STALE_TMP_SECONDS) -> list[Path]:
    """Remove the temporary files (``.*.tmp``) in `folder` last written more than
    `older_than` seconds ago; returns them. Younger ones may be concurrent runs' work."""
    removed = []
    limit = time.time() - older_than
    with contextlib.suppress(OSError):
        for tmp in folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):  # gone already: another run removed it
                if tmp.is_file() and tmp.stat().st_mtime < limit:
                    tmp.unlink()
                    removed.append(tmp)
    return removed


def onnx_cache_path(model_sha256: str, *, head: str, layout: str, precision: str) -> Path:
    """Where the export of a model file with these settings is kept."""
    name = f"{model_sha256[:32]}-{head}-{layout}-{precision}-v{__version__}.onnx"
    return cache_root() / "onnx" / name


def cached_onnx_export(model_sha256: str, load: Callable[[], NLResNet], *, head: str,
                       layout: str = "frames", fp16: bool = False,
                       log: Callable[[str], None] | None = None) -> Path:
    """The cached ONNX export of a model file, exported (and verified) on first use.

    `load` builds the PyTorch model only when the file is not in the cache yet.
    """
    path = onnx_cache_path(model_sha256, head=head, layout=layout,
                           precision="fp16" if fp16 else "fp32")
    remove_stale_temporaries(path.parent)
    if path.is_file():
        return path
    from .onnx_export import export_onnx

    model = load()
    if log:
        log(f"exporting the {head} head to ONNX once ({layout} graph, cached in {path.parent})")
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = model.arch.frames
    if head == "clip":  # any size: verify small, at two shapes (another batch, T, H, W)
        shapes = [(1, 3, frames, 128, 128), (2, 3, 2 * frames, 160, 144)]
    else:  # the test head needs the training clip and 224+ pixels
        shapes = [(1, 3, frames, 224, 224), (2, 3, frames, 256, 240)]
    export_onnx(model, path, head=head, layout=layout, fp16=fp16,  # type: ignore[arg-type]
                example_shape=shapes[0], check_shapes=shapes[1:], force=True, log=None)
    return path


def use_compile_cache() -> Path:
    """Point torch.compile's on-disk caches (inductor, FX graphs) into the cache folder.

    A user's own ``TORCHINDUCTOR_CACHE_DIR`` is respected. Returns the folder in use.
    """
    folder = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not folder:
        folder = str(cache_root() / "inductor")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder)
