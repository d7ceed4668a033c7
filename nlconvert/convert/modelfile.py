"""The nlconvert model file: a converted network with the metadata that says how to use it.

One payload, written as ``.pt`` (a dict of plain types and tensors, safe for
``torch.load(weights_only=True)``) or ``.safetensors`` (tensors; the rest as JSON metadata):
the architecture, class names, input normalisation, provenance and the state dict.

This is the one reader of model files: a folder given where a model file goes is a hub
folder (``config.json`` + ``model.safetensors``, :mod:`nlconvert.model.hubfolder`), so every
command and API that reads a model through here takes hub folders too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_output
from .._hashing import file_sha256
from ..arch import NORMALIZATION, ArchSpec
from ..errors import CheckpointFormatError
from ..model import hubfolder
from ..model.resnet import NLResNet, build_model

FILE_FORMAT = "nlconvert-model"
FILE_FORMAT_VERSION = 1


@dataclass
class ModelFile:
    """What a model file holds."""

    arch: ArchSpec
    class_names: list[str] | None
    provenance: dict[str, Any]
    state_dict: dict[str, torch.Tensor]


def model_payload(arch: ArchSpec, class_names: list[str] | None, provenance: Mapping[str, Any],
                  state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The payload of a model file (the one builder for ``.pt`` and ``.safetensors``)."""
    return {
        "format": FILE_FORMAT,
        "format_version": FILE_FORMAT_VERSION,
        "arch": arch.to_dict(),
        "class_names": class_names,
        "normalization": dict(NORMALIZATION),
        "provenance": dict(provenance),
        "state_dict": dict(state_dict),
    }


def write_model_file(payload: Mapping[str, Any], out: str | Path, *, force: bool = False) -> Path:
    """Write `payload` atomically: ``.safetensors`` by suffix, else ``.pt``."""
    out = Path(out)
    with atomic_output(out, force) as tmp:
        if out.suffix == ".safetensors":
            from safetensors.torch import save_file

            meta = {k: json.dumps(v) for k, v in payload.items() if k != "state_dict"}
            # safetensors refuses tensors that share memory or are not contiguous.
            tensors = {k: v.contiguous() for k, v in payload["state_dict"].items()}
            save_file(tensors, str(tmp), metadata=meta)
        else:
            torch.save(dict(payload), tmp)
    return out


def _unreadable(path: Path, exc: BaseException) -> CheckpointFormatError:
    """The one-line error of a model file torch or safetensors cannot read: a file cut
    short (a torch zip without its central directory, a safetensors file shorter than its
    header says) is called truncated, with its size."""
    import zipfile

    size = path.stat().st_size if path.exists() else 0
    with open(path, "rb") as f:
        head = f.read(8)
    cut = False
    if head.startswith(b"PK\x03\x04"):  # a zip (torch.save) whose end is missing
        cut = not zipfile.is_zipfile(path)
    elif path.suffix == ".safetensors" and len(head) == 8:
        cut = size < 8 + int.from_bytes(head, "little")
    if cut:
        return CheckpointFormatError(f"{path}: truncated at byte {size} (the file ends early; "
                                     "download or copy it again)")
    return CheckpointFormatError(
        f"{path}: not a readable nlconvert model file ({exc.__class__.__name__})")


def _read_payload(path: Path) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            payload: dict[str, Any] = {k: json.loads(v) for k, v in meta.items()}
            payload["state_dict"] = load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise _unreadable(path, exc) from exc
        return payload
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointFormatError(f"{path}: no such file") from None
    except Exception as exc:  # torch raises many types for a foreign or broken file
        raise _unreadable(path, exc) from exc
    return payload if isinstance(payload, dict) else {}


def read_model_info(path: str | Path) -> ModelFile:
    """Architecture, class names and provenance of a model file or hub folder; the weights
    are not read (a ``.pt`` is memory-mapped and its tensors left untouched)."""
    p = Path(path)
    if hubfolder.is_hub_folder(p):
        hub = hubfolder.read_hub_config(p)
        return ModelFile(hub.arch, hub.class_names, hub.provenance, {})
    if p.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(p), framework="pt") as f:
                payload: dict[str, Any] = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
        except Exception as exc:  # safetensors raises its own error types
            raise _unreadable(p, exc) from exc
        payload["state_dict"] = {}
    else:
        try:
            payload = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # a file torch cannot map: read it the ordinary way for the error
            payload = _read_payload(p)
        if not isinstance(payload, dict):
            payload = {}
    if payload.get("format") != FILE_FORMAT or "state_dict" not in payload:
        raise CheckpointFormatError(f"{p}: not an nlconvert model file (convert it first)")
    return ModelFile(ArchSpec.from_dict(payload["arch"]), payload.get("class_names"),
                     dict(payload.get("provenance") or {}), {})


def read_model_file(path: str | Path) -> ModelFile:
    """Read a ``.pt``/``.safetensors`` model file or a hub folder, its weights checked against
    its architecture; one-line error for anything else."""
    p = Path(path)
    if hubfolder.is_hub_folder(p):
        hub = hubfolder.read_hub_folder(p)
        loaded = ModelFile(hub.arch, hub.class_names, hub.provenance, hub.state_dict)
    else:
        payload = _read_payload(p)
        if payload.get("format") != FILE_FORMAT or "state_dict" not in payload:
            raise CheckpointFormatError(f"{p}: not an nlconvert model file (convert it first)")
        loaded = ModelFile(ArchSpec.from_dict(payload["arch"]), payload.get("class_names"),
                           dict(payload.get("provenance") or {}), dict(payload["state_dict"]))
    # A meta-device model costs no memory; its state dict is the list of what must be there.
    expected = build_model(loaded.arch, device="meta").state_dict()
    hubfolder.check_shapes(expected, loaded.state_dict, p, loaded.arch.name)
    return loaded


def model_file_sha256(path: str | Path) -> str:
    """SHA-256 identifying a model (a cache key): the file's; for a hub folder, that of its
    config's and weights' hashes (class names live in the config)."""
    p = Path(path)
    if not hubfolder.is_hub_folder(p):
        return file_sha256(p)
    import hashlib

    hubfolder.read_hub_config(p)  # the folder's one-line errors before any hashing
    parts = (file_sha256(p / hubfolder.CONFIG_NAME), file_sha256(hubfolder.weights_file(p)))
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def save_model(model: NLResNet, out: str | Path, provenance: Mapping[str, Any] | None = None,
               force: bool = False) -> Path:
    """Write a model (e.g. one built in memory) as a model file (``.pt`` or ``.safetensors``)."""
    payload = model_payload(model.arch, model.class_names,
                            provenance if provenance is not None else (model.provenance or {}),
                            model.state_dict())
    return write_model_file(payload, out, force=force)
