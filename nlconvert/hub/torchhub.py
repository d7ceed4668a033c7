"""What the repository's ``hubconf.py`` calls: a torch.hub entry per zoo architecture.

``pretrained=True`` downloads the official Caffe2 checkpoint from the address the zoo table
gives (``$NLCONVERT_HUB_BASE_URL/<file>.pkl`` instead when that is set: a mirror, or a test
server) into torch.hub's cache (``torch.hub.get_dir()/checkpoints``) with a progress bar,
converts it once and keeps only the converted ``<file>.pt`` there; later calls load that.
A download is written to a temporary file and renamed only when every announced byte has
arrived, so an interrupted one is never used (the next call starts it again).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from .._atomic import atomic_output
from ..arch import Head, ZooCheckpoint, get_arch, published_accuracy
from ..convert import convert_file, load_model
from ..convert.formats import CHECKPOINT_SUFFIXES
from ..errors import ArchitectureError, HubError
from ..model import NLResNet
from ..training import create_model

#: Environment variable replacing the base address of the official downloads.
BASE_URL_ENV = "NLCONVERT_HUB_BASE_URL"
_CHUNK = 1 << 20


def official_checkpoint_of(arch_name: str) -> ZooCheckpoint:
    """The released checkpoint of a zoo architecture (its first, if several)."""
    released = published_accuracy(arch_name)
    if not released or get_arch(arch_name).is_2d:
        raise HubError(f"{arch_name}: the official zoo released no video checkpoint for it; "
                       "pass weights=FILE_OR_FOLDER")
    return released[0]


def download_url(checkpoint: ZooCheckpoint) -> str:
    """Where `checkpoint` is downloaded from: the official address, or the overriding base."""
    base = os.environ.get(BASE_URL_ENV)
    return f"{base.rstrip('/')}/{checkpoint.file}.pkl" if base else checkpoint.url


def cache_folder() -> Path:
    """torch.hub's checkpoint cache (``$TORCH_HOME/hub/checkpoints`` by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def download(url: str, dst: Path, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download `url` to `dst` through a temporary file renamed only once complete.

    Complete means every byte of the announced Content-Length: a connection that drops early
    (which ``urllib`` reports as a normal end) is an error, and nothing is left at `dst`.
    """
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    try:
        # atomic_output: the temporary file beside `dst` is removed on any error (Ctrl-C too)
        with atomic_output(dst, force=True) as tmp, tmp.open("wb") as out, \
                urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
            done = 0
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=dst.name, disable=not progress) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
            if total is not None and done != total:
                raise HubError(f"{url}: download interrupted after {done} of {total} bytes; "
                               "nothing was kept (run again to retry)")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise HubError(f"{url}: download failed ({exc.__class__.__name__}: {reason}); "
                       f"nothing was kept (set {BASE_URL_ENV} to use a mirror)") from None
    return dst


def pretrained_file(arch_name: str, *, progress: bool = True) -> Path:
    """The converted official checkpoint of `arch_name` in torch.hub's cache, downloading
    and converting it on first use."""
    checkpoint = official_checkpoint_of(arch_name)
    folder = cache_folder()
    converted = folder / f"{checkpoint.file}.pt"
    if converted.is_file():
        return converted
    pkl = folder / f"{checkpoint.file}.pkl"
    if not pkl.is_file():
        download(download_url(checkpoint), pkl, progress=progress)
    try:
        convert_file(pkl, converted, arch_name=arch_name, force=True)
    finally:
        # Converted once: the .pt keeps the pickle's sha256; a pickle that failed to convert
        # is dropped too, so that the next call downloads it again.
        with contextlib.suppress(FileNotFoundError):
            pkl.unlink()
    return converted


def hub_model(arch_name: str, *, pretrained: bool = False, weights: str | Path | None = None,
              head: Head = "clip", num_classes: int | None = None,
              progress: bool = True) -> NLResNet:
    """The network of a torch.hub entry (see ``hubconf.py``), in eval mode. `num_classes`: a
    fresh classifier of that size on the given weights (:func:`nlconvert.create_model`'s)."""
    arch = get_arch(arch_name)
    if pretrained and weights is not None:
        raise HubError(f"{arch_name}: pass pretrained=True or weights=..., not both")
    source: Path | None = None
    if weights is not None:
        source = Path(weights)
        if not source.exists():
            raise HubError(f"{source}: no such weights file or hub folder")
    elif pretrained:
        source = pretrained_file(arch_name, progress=progress)
    caffe2 = source is None or source.suffix.lower() in CHECKPOINT_SUFFIXES
    if source is not None and num_classes is None:
        # the entry names the architecture of a Caffe2 file; a model file says its own
        model = load_model(source, head=head, **({"arch_name": arch.name} if caffe2 else {}))
    else:
        try:  # the official initialisation of whatever the weights do not give
            model = create_model(arch.name if caffe2 else None, pretrained=source,
                                 num_classes=num_classes, head=head)
        except ValueError as exc:  # e.g. num_classes=0: one line, as every hub error
            raise HubError(str(exc)) from None
    if model.arch.name != arch.name:
        raise ArchitectureError(f"{source}: holds {model.arch.name}, not {arch.name}; "
                                f"load it with the {model.arch.name} entry")
    return model.eval()


