"""A converted network as the start of training: :func:`create_model` and :func:`param_groups`.

The module returned is the inference network of :mod:`nlconvert.model` (same parameter names
as the model file, so :func:`~nlconvert.convert.save_model` writes it as any ``.pt``) with
norms in a training mode, dropout before the classifier, and the parts the file lacks
(a new classifier, non-local blocks inserted into a baseline) initialised as the official
code initialised them. In ``eval()`` it computes exactly what ``load_model`` computes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._version import __version__
from ..arch import ArchSpec, Head, default_class_names, get_arch
from ..convert.init import official_init
from ..convert.mapping import load_rules
from ..convert.pipeline import load_weights, model_from_state
from ..errors import ArchitectureError
from ..model import NLResNet
from .norms import NORM_MODES, NormMode, set_norm_mode

#: cfg.TRAIN.DROPOUT_RATE of every official training script.
DROPOUT_RATE = 0.5
#: cfg.SOLVER.WEIGHT_DECAY of every official config.
WEIGHT_DECAY = 1e-4
_HEAD = ("head.fc.weight", "head.fc.bias")


def _is_nonlocal(name: str) -> bool:
    return ".nonlocal_blocks." in name


def default_names(num_classes: int) -> list[str]:
    """Names of a new classifier's classes when none are given: ``class_0`` ... (Kinetics-400
    names are kept only for a 400-way classifier read from a file)."""
    return [f"class_{i}" for i in range(num_classes)]


def _check_names(num_classes: int | None, class_names: Sequence[str] | None) -> int | None:
    if class_names is None:
        return num_classes
    names = list(class_names)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError("class_names must be a non-empty list of non-empty strings")
    if len(set(names)) != len(names):
        raise ValueError("class_names must be distinct")
    if num_classes is not None and num_classes != len(names):
        raise ValueError(f"num_classes={num_classes} but {len(names)} class_names")
    return len(names)


def create_model(
    arch: str | None = None,
    *,
    pretrained: str | Path | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    norm: NormMode = "frozen",
    dropout: float = DROPOUT_RATE,
    insert_nonlocal: bool = False,
    head: Head = "clip",
    seed: int = 0,
) -> NLResNet:
    """The network of `arch`, ready to train (returned in ``train()`` mode).

    `pretrained`: any model file nlconvert reads (official ``.pkl``, flat pickle,
    ``init_net.pb``, converted ``.pt``/``.safetensors``), or None for the official
    initialisation of every tensor. `arch`: a zoo name (None: the file's). `num_classes`
    (or `class_names`): a new classifier, Gaussian std ``MODEL.FC_INIT_STD`` 0.01, zero bias;
    names default to ``class_0`` .... `norm`: ``"frozen"`` or ``"train"``
    (:mod:`nlconvert.training.norms`). `dropout`: rate before the classifier in ``train()``.
    `insert_nonlocal`: the non-local blocks of `arch` the file lacks start as identity with
    the official initialisation (without it a missing blob is an error). `seed`: the
    generator of every Gaussian initialisation.
    """
    if norm not in NORM_MODES:
        raise ValueError(f"norm must be one of {', '.join(NORM_MODES)}, not {norm!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), not {dropout}")
    num_classes = _check_names(num_classes, class_names)
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"num_classes must be positive, not {num_classes}")
    new_head = num_classes is not None
    inserted: set[str] = set()
    if pretrained is None:
        if arch is None:
            raise ArchitectureError("create_model needs an architecture or a pretrained file")
        spec = get_arch(arch)
        if spec.is_2d:
            raise ArchitectureError(f"{arch} is a 2D ImageNet network, not a video network")
        spec = dataclasses.replace(spec, num_classes=num_classes or spec.num_classes)
        values = official_init(spec, seed=seed)
        state = {name: t for name, (t, _) in values.items()}
        names = list(class_names) if class_names else (
            default_names(spec.num_classes) if new_head else default_class_names(spec.num_classes))
        provenance: dict[str, Any] = {"source_file": None,
                                      "initialised": {"*": "every tensor (pretrained=None)"}}
    else:
        def allowed(target: ArchSpec) -> dict[str, tuple[torch.Tensor, str]]:
            params = build_names(target)
            wanted = {p for p in params if (insert_nonlocal and _is_nonlocal(p))
                      or (new_head and p in _HEAD)}
            return official_init(target, seed=seed, names=wanted)

        weights = load_weights(pretrained, arch_name=arch,
                               init_for=allowed if (insert_nonlocal or new_head) else None,
                               skip_head=new_head)
        spec, state = weights.arch, dict(weights.state_dict)
        rules = load_rules()
        inserted = {p for p in state if _is_nonlocal(p)
                    and (rules.param_to_blob(p) or "") in weights.initialised}
        names = weights.class_names
        provenance = dict(weights.provenance)
        if num_classes is not None:  # a new head
            spec = dataclasses.replace(spec, num_classes=num_classes)
            fresh = official_init(spec, seed=seed, names=set(_HEAD))
            state.update({name: t for name, (t, _) in fresh.items()})
            names = list(class_names) if class_names else default_names(spec.num_classes)
    model = model_from_state(spec, state, head, names)
    provenance["training"] = {"created_by": f"nlconvert {__version__} create_model",
                              "pretrained": None if pretrained is None else Path(pretrained).name,
                              "new_head": new_head, "insert_nonlocal": insert_nonlocal,
                              "norm": norm, "dropout": dropout, "seed": seed}
    model.provenance = provenance
    # The BN of an inserted non-local block starts at scale 0: frozen, it could never learn.
    keep = {name.rsplit(".", 1)[0] for name in inserted if ".norm." in name}
    set_norm_mode(model, norm, keep_trainable=keep)
    model.head.dropout.p = dropout
    return model.train()


def build_names(arch: ArchSpec) -> list[str]:
    """State-dict names of the network of `arch` (built on the meta device: no memory)."""
    from ..model import build_model

    return list(build_model(arch, device="meta").state_dict())


def param_groups(model: nn.Module, weight_decay: float = WEIGHT_DECAY, *,
                 norm_weight_decay: float = 0.0, bias_decay: bool = True
                 ) -> list[dict[str, Any]]:
    """Optimizer parameter groups as the official solver: weight decay on every trainable
    parameter except the norm layers' scale and shift (``SOLVER.WEIGHT_DECAY_BN`` 0.0: the
    official code exempts every blob whose name holds ``_bn``, which includes the affine
    layers and the non-local BN). Biases of the non-local convolutions and the classifier
    are decayed, as officially; ``bias_decay=False`` exempts them too (the common modern
    recipe). Frozen tensors are buffers and never appear. Each group also lists its
    parameter ``names``.
    """
    rules = load_rules()
    decay: list[tuple[str, nn.Parameter]] = []
    exempt: list[tuple[str, nn.Parameter]] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        blob = rules.param_to_blob(name) or name
        if "_bn" in blob or (not bias_decay and name.endswith("bias")):
            exempt.append((name, param))
        else:
            decay.append((name, param))
    groups = [{"params": [p for _, p in decay], "weight_decay": weight_decay,
               "names": [n for n, _ in decay]},
              {"params": [p for _, p in exempt], "weight_decay": norm_weight_decay,
               "names": [n for n, _ in exempt]}]
    return [g for g in groups if g["params"]]
