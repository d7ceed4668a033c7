"""The conversion pipeline: checkpoint file -> blobs -> architecture -> mapped state dict -> model or file.

The lean path (:func:`convert_file`) never instantiates the network with its own weights:
expected shapes come from a model built on the ``meta`` device, blob arrays become the
tensors of the state dict without copies, and what is not a weight is dropped while the
pickle is read. Peak memory stays near the size of the weights.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .._atomic import check_writable
from .._hashing import FileHash
from .._version import __version__
from ..arch import ArchSpec, Head, default_class_names
from ..arch.detect import filename_conflict, resolve_arch
from ..errors import CheckpointFormatError
from ..io.checkpoint import read_checkpoint
from ..model.resnet import NLResNet, build_model
from .formats import CHECKPOINT_SUFFIXES, default_output
from .init import official_init
from .mapping import (
    MappedBlob,
    MappingResult,
    blobs_from_state_dict,
    map_blobs,
    recorded_initialised,
)
from .modelfile import model_file_sha256, model_payload, read_model_file, write_model_file

#: What a caller may initialise when the file lacks it: arch -> {parameter: (tensor, how)}.
InitFor = Callable[[ArchSpec], Mapping[str, tuple[torch.Tensor, str]]]


@dataclass
class Conversion:
    """Everything a conversion found out, before a model or a file is made."""

    source: Path
    blobs: Mapping[str, Any]  # the checkpoint's weight blobs (numpy), as read
    arch: ArchSpec
    arch_reason: str
    mapping: MappingResult
    source_format: str
    source_sha256: str
    ignored: dict[str, str]
    meta: dict[str, Any]
    warnings: list[str] = field(default_factory=list)  # e.g. the arch contradicts the file name

    def provenance(self) -> dict[str, Any]:
        """Where the weights came from, stored in the output file."""
        out: dict[str, Any] = {
            "source_file": self.source.name,
            "source_sha256": self.source_sha256,
            "source_format": self.source_format,
            "arch_reason": self.arch_reason,
            "nlconvert_version": __version__,
            "torch_version": str(torch.__version__),
            "converted_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "model_iter": self.meta.get("model_iter"),
            "ignored_blobs": len(self.ignored),
        }
        initialised = self.mapping.initialised()
        if initialised:  # blobs not in the source file, with how each was initialised
            out["initialised"] = initialised
        return out


def prepare(
    path: str | Path,
    *,
    arch_name: str | None = None,
    predict_net: str | Path | None = None,
    inflate: bool = False,
    allow_nonfinite: bool = False,
    file_hash: FileHash | None = None,
    init_for: InitFor | None = None,
    skip_head: bool = False,
) -> Conversion:
    """Read a Caffe2 checkpoint, choose its architecture and map every blob (strictly).

    `file_hash`: the provenance hash of `path`, if the caller started it early. `init_for`:
    the tensors that may be missing from the file and their initial values (``--inflate``:
    whatever a 2D checkpoint lacks). `skip_head`: the file's classifier is not read.
    """
    source = Path(path)
    ckpt = read_checkpoint(source, predict_net, allow_nonfinite, file_hash)
    if not ckpt.blobs:
        raise CheckpointFormatError(f"{source}: holds no weight blobs")
    arch, reason = resolve_arch(source, ckpt.blobs, arch_name, ckpt.predict_net, inflate)
    target = build_model(arch, device="meta").state_dict()
    if init_for is None and inflate:
        init_for = _inflate_init
    init = init_for(arch) if init_for is not None else None
    mapping = map_blobs(ckpt.blobs, target, str(source), arch.name, inflate, init,
                        skip_head=skip_head)
    conflict = filename_conflict(source, arch, inflate) if arch_name else None
    return Conversion(
        warnings=[conflict] if conflict else [],
        source=source,
        blobs=ckpt.blobs,
        arch=arch,
        arch_reason=reason,
        mapping=mapping,
        source_format=ckpt.format,
        source_sha256=ckpt.sha256,
        ignored=dict(ckpt.ignored),
        meta=dict(ckpt.meta),
    )


def _inflate_init(arch: ArchSpec) -> dict[str, tuple[torch.Tensor, str]]:
    # What a 2D ImageNet checkpoint cannot give: any tensor may come from the official init.
    return official_init(arch)


def prepare_model_file(path: str | Path) -> Conversion:
    """A :class:`Conversion` of a converted model file (``.pt``/``.safetensors``/hub folder): its own
    weights, with the Caffe2 blob names they came from, so that a converted file can be
    checked against the numpy reference of those same weights."""
    source = Path(path)
    loaded = read_model_file(source)
    blobs = blobs_from_state_dict(loaded.state_dict, str(source))
    rows = [MappedBlob("", blob, param, tuple(t.shape))
            for (param, t), blob in zip(loaded.state_dict.items(), blobs, strict=True)]
    return Conversion(
        source=source, blobs=blobs, arch=loaded.arch,
        arch_reason=f"stored in the model file ({loaded.arch.name})",
        mapping=MappingResult(dict(loaded.state_dict), rows),
        source_format="nlconvert_model", source_sha256=model_file_sha256(source), ignored={},
        meta={"provenance": loaded.provenance, "class_names": loaded.class_names},
    )


def model_from_state(
    arch: ArchSpec,
    state_dict: Mapping[str, torch.Tensor],
    head: Head = "clip",
    class_names: list[str] | None = None,
) -> NLResNet:
    """An eval-mode model whose parameters ARE the given tensors (no copy)."""
    model = build_model(arch, head, class_names, device="meta")
    model.load_state_dict(dict(state_dict), strict=True, assign=True)
    return model.eval()


def convert_checkpoint(
    path: str | Path,
    *,
    arch_name: str | None = None,
    head: Head = "clip",
    predict_net: str | Path | None = None,
    inflate: bool = False,
    allow_nonfinite: bool = False,
) -> NLResNet:
    """Convert a Caffe2 checkpoint (``.pkl`` or ``init_net.pb``) into a model, in memory."""
    conv = prepare(path, arch_name=arch_name, predict_net=predict_net, inflate=inflate,
                   allow_nonfinite=allow_nonfinite)
    model = model_from_state(conv.arch, conv.mapping.state_dict, head,
                             default_class_names(conv.arch.num_classes))
    model.provenance = conv.provenance()
    return model


def save_conversion(conv: Conversion, out: str | Path, force: bool = False) -> Path:
    """Write a ``.pt`` (``torch.load(weights_only=True)``-safe) or ``.safetensors`` file."""
    payload = model_payload(conv.arch, default_class_names(conv.arch.num_classes),
                            conv.provenance(), conv.mapping.state_dict)
    return write_model_file(payload, out, force=force)


def convert_file(
    path: str | Path,
    out: str | Path | None = None,
    *,
    arch_name: str | None = None,
    predict_net: str | Path | None = None,
    inflate: bool = False,
    allow_nonfinite: bool = False,
    force: bool = False,
    file_hash: FileHash | None = None,
) -> tuple[Path, Conversion]:
    """Convert a checkpoint file into a model file; returns its path and the conversion."""
    target = Path(out) if out else default_output(path)
    check_writable(target, force)  # fail before the (long) read
    conv = prepare(path, arch_name=arch_name, predict_net=predict_net, inflate=inflate,
                   allow_nonfinite=allow_nonfinite, file_hash=file_hash)
    return save_conversion(conv, target, force), conv


@dataclass
class Weights:
    """The tensors of a model, as read from any model file nlconvert reads."""

    arch: ArchSpec
    state_dict: dict[str, torch.Tensor]
    class_names: list[str] | None
    provenance: dict[str, Any]
    initialised: dict[str, str]  # blob -> how, for tensors the file did not hold


def load_weights(
    path: str | Path,
    *,
    arch_name: str | None = None,
    init_for: InitFor | None = None,
    skip_head: bool = False,
    **convert_kw: Any,
) -> Weights:
    """The weights of any model file nlconvert reads: a converted ``.pt``/``.safetensors``,
    or a Caffe2 checkpoint (``.pkl``/``.pb``, converted in memory; `convert_kw` as
    :func:`prepare`). The one reader under :func:`load_model` and the training stage.

    `arch_name` places the weights into another architecture of the zoo (e.g. the non-local
    network of a baseline); `init_for` gives the tensors that may be missing then (anything
    else missing is an error); `skip_head`: the file's classifier is not read.
    """
    p = Path(path)
    if p.suffix.lower() in CHECKPOINT_SUFFIXES:
        conv = prepare(p, arch_name=arch_name, init_for=init_for, skip_head=skip_head,
                       **convert_kw)
        return Weights(conv.arch, conv.mapping.state_dict,
                       default_class_names(conv.arch.num_classes), conv.provenance(),
                       conv.mapping.initialised())
    loaded = read_model_file(p)
    if arch_name is None and init_for is None and not skip_head:
        return Weights(loaded.arch, loaded.state_dict, loaded.class_names,
                       dict(loaded.provenance), {})
    arch = loaded.arch
    if arch_name is not None:
        from ..arch import get_arch

        arch = replace(get_arch(arch_name), num_classes=loaded.arch.num_classes)
    # The same strict mapper as for Caffe2 files: the stored weights as their blobs.
    blobs = blobs_from_state_dict(loaded.state_dict, str(p))
    target = build_model(arch, device="meta").state_dict()
    mapping = map_blobs(blobs, target, str(p), arch.name, False,
                        init_for(arch) if init_for is not None else None, skip_head=skip_head)
    provenance = dict(loaded.provenance)
    if mapping.initialised():
        provenance["initialised"] = {**recorded_initialised(provenance),
                                     **mapping.initialised()}
    return Weights(arch, mapping.state_dict, loaded.class_names, provenance,
                   mapping.initialised())


def load_model(path: str | Path, head: Head = "clip", **convert_kw: Any) -> NLResNet:
    """Load a converted model (``.pt``/``.safetensors`` or a hub folder) in eval mode.

    An original Caffe2 checkpoint (``.pkl``/``.pb``) is converted in memory instead
    (`convert_kw` as :func:`convert_checkpoint`). ``head="fully_conv"`` selects the official
    fully-convolutional test head.
    """
    weights = load_weights(path, **convert_kw)
    model = model_from_state(weights.arch, weights.state_dict, head, weights.class_names)
    model.provenance = dict(weights.provenance)
    return model
