"""Read any Caffe2 video checkpoint into one :class:`Checkpoint` of float32 weight blobs.

Three layouts are accepted: the official training ``.pkl`` (``{'blobs': {...}}``, with
optimizer state), the converted flat ``.pkl``, and a Caffe2 ``init_net.pb``. Optimizer
state (``*_momentum``) is dropped while reading, so it never occupies memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._hashing import FileHash
from ..errors import CheckpointFormatError, NonFiniteWeightError
from . import netdef_io
from .messages import quoted
from .numpy_rebuild import Dropped
from .safe_pickle import load_pickle
from .sniff import PICKLE, sniff

# Non-parameter entries of the official checkpoints -> why they are left out.
NON_PARAMETERS = {"lr": "learning rate", "model_iter": "iteration counter", "epoch": "epoch"}
MOMENTUM_SUFFIX = "_momentum"
_FILL_TYPES = frozenset(netdef_io.GIVEN_FILLS) | {"ConstantFill"}


@dataclass
class Checkpoint:
    """The weights of one checkpoint file and what was left out of them.

    ``format`` is "official_pkl" (``{'blobs': {...}}``), "flat_pkl" or "init_net";
    ``blobs`` holds the weight blobs only (float32, C-contiguous); ``ignored`` maps each
    left-out entry to the reason; ``meta`` holds ``model_iter``/``lr``/``epoch`` when
    present; ``sha256`` is of the file bytes.
    """

    path: Path
    format: str
    blobs: dict[str, np.ndarray[Any, Any]]
    ignored: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    predict_net: Any | None = None


def _reason(name: str) -> str | None:
    if name.endswith(MOMENTUM_SUFFIX):
        return "optimizer momentum"
    return NON_PARAMETERS.get(name)


def keep_blob(key: str) -> bool:
    """The ``keep`` predicate used while reading: drop optimizer state and counters."""
    return _reason(key) is None


def _scalar(value: Any) -> float | int | None:
    """A plain number from an int/float or a one-element array (lr is a 0-d float32)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, np.ndarray | np.generic) and np.size(value) == 1:
        if np.issubdtype(value.dtype, np.integer):
            return int(np.asarray(value).reshape(-1)[0])
        if np.issubdtype(value.dtype, np.floating):
            return float(np.asarray(value).reshape(-1)[0])
    return None


def _weight(name: str, value: Any, where: str, allow_nonfinite: bool) -> np.ndarray[Any, Any]:
    """Validate one weight blob and return it as C-contiguous float32."""
    if not isinstance(value, np.ndarray):
        kind = "skipped data" if isinstance(value, Dropped) else type(value).__name__
        raise CheckpointFormatError(f"{where}: blob {quoted(name)} is a {kind}, not a numpy array")
    if value.dtype.kind == "f" and value.dtype.itemsize in (2, 8):
        value = value.astype(np.float32)
    elif value.dtype != np.float32:
        raise CheckpointFormatError(
            f"{where}: blob {quoted(name)} has dtype {value.dtype}; weights must be floating point"
        )
    value = np.ascontiguousarray(value, dtype=np.float32)
    if not allow_nonfinite:
        bad = int(np.count_nonzero(~np.isfinite(value)))
        if bad:
            raise NonFiniteWeightError(
                f"{where}: blob {quoted(name)} holds {bad} NaN/Inf value(s); "
                f"the checkpoint is corrupt (allow_nonfinite=True converts it anyway)"
            )
    return value


def _split(
    entries: dict[Any, Any], where: str, allow_nonfinite: bool
) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, str], dict[str, Any]]:
    blobs: dict[str, np.ndarray[Any, Any]] = {}
    ignored: dict[str, str] = {}
    meta: dict[str, Any] = {}
    for key, value in entries.items():
        if not isinstance(key, str):
            raise CheckpointFormatError(f"{where}: a blob name is a {type(key).__name__}, not a string")
        reason = _reason(key)
        if reason is not None:
            ignored[key] = reason
            number = _scalar(value) if key in NON_PARAMETERS else None
            if number is not None:
                meta[key] = number
            continue
        blobs[key] = _weight(key, value, where, allow_nonfinite)
    return blobs, ignored, meta


def _read_pickle(path: Path, allow_nonfinite: bool) -> tuple[str, dict[str, Any], dict[str, str], dict[str, Any]]:
    where = str(path)
    obj = load_pickle(path, keep=keep_blob)
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{where}: the pickle holds a {type(obj).__name__}, not a dict of blobs")
    extra: dict[str, str] = {}
    if isinstance(obj.get("blobs"), dict):
        fmt, entries = "official_pkl", obj["blobs"]
        extra = {str(k): "outside 'blobs'" for k in obj if k != "blobs"}
    else:
        fmt, entries = "flat_pkl", obj
    blobs, ignored, meta = _split(entries, where, allow_nonfinite)
    ignored.update(extra)
    return fmt, blobs, ignored, meta


def _read_init_net(
    path: Path, predict_net: Any | None, allow_nonfinite: bool
) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, str]]:
    where = str(path)
    net = netdef_io.read_netdef(path)
    if len(net.op) and not any(op.type in _FILL_TYPES for op in net.op):
        raise CheckpointFormatError(
            f"{where}: this NetDef holds the network's operators (a predict_net), not weights: pass the init_net.pb"
        )
    arrays = netdef_io.blobs_from_init_net(net, path, predict_net)
    blobs, ignored, _ = _split(arrays, where, allow_nonfinite)
    ignored.update(netdef_io.data_placeholders(net, predict_net))
    return blobs, ignored


def read_checkpoint(
    path: str | os.PathLike[str],
    predict_net_path: str | os.PathLike[str] | None = None,
    allow_nonfinite: bool = False,
    file_hash: FileHash | None = None,
) -> Checkpoint:
    """Read a checkpoint (official or flat ``.pkl``, or ``init_net.pb``) safely.

    ``predict_net_path`` (a predict_net.pb) is parsed and kept; for an init_net it also
    tells data placeholders from weights. ``file_hash`` is a hash of `path` the caller
    started earlier (one is started here otherwise). Raises :class:`CheckpointFormatError`
    (one line, naming the file and the blob) for anything unreadable, unsafe or non-finite.
    """
    p = Path(path)
    predict_net = netdef_io.read_netdef(predict_net_path) if predict_net_path else None
    kind = sniff(p)
    digest = file_hash if file_hash is not None and file_hash.path == p else FileHash(p)
    if kind == PICKLE:
        fmt, blobs, ignored, meta = _read_pickle(p, allow_nonfinite)
    else:
        fmt, meta = "init_net", {}
        blobs, ignored = _read_init_net(p, predict_net, allow_nonfinite)
    sha256 = digest.result()
    if not blobs:
        raise CheckpointFormatError(f"{p}: no weight blobs found in the checkpoint")
    return Checkpoint(
        path=p,
        format=fmt,
        blobs=blobs,
        ignored=ignored,
        meta=meta,
        sha256=sha256,
        predict_net=predict_net,
    )
