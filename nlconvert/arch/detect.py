"""Choose the architecture of a checkpoint: flag, file name, predict_net, or the blobs.

Order (never a silent guess): ``--arch``; the file name when it names a released checkpoint
or an architecture; the ``predict_net.pb`` when given; else what the blobs tell (depth,
C2D/I3D, non-local positions, BN/affine, classes). When the evidence leaves more than one
zoo architecture (the blobs of the short and org stems are identical), the error lists the
candidates and the flag to pass.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArchitectureError, option
from ..io.caffe2_pb import arg_dict
from .spec import STAGE_NAMES, ArchSpec
from .zoo import arch_from_filename, arch_names, get_arch

_BLOCK = re.compile(r"res([2-5])_(\d+)_branch2a_w")
_NONLOCAL = re.compile(r"nonlocal_conv([34])_(\d+)_theta_w")


@dataclass(frozen=True)
class BlobFacts:
    """What the weight blobs say about the network."""

    is_2d: bool
    depth: int | None
    temporal: tuple[tuple[int, ...], ...] | None  # u per block, res2..res5
    conv1_temporal: int | None
    norm: str  # "bn" or "affine"
    nonlocal_after: tuple[tuple[str, tuple[int, ...]], ...]
    nonlocal_bn: bool
    num_classes: int | None

    def describe(self) -> str:
        nl = ", ".join(f"{s}{list(i)}" for s, i in self.nonlocal_after) or "none"
        fam = "?" if self.conv1_temporal is None else ("I3D" if self.conv1_temporal else "C2D")
        dims = "2D" if self.is_2d else "3D"
        return (f"R{self.depth or '?'} {fam} {dims}, {self.norm.upper()}, non-local {nl}, "
                f"{self.num_classes or '?'} classes")


def blob_facts(blobs: Mapping[str, np.ndarray]) -> BlobFacts:
    """Read depth, temporal kernels, norm, non-local positions and classes off the blobs."""
    conv1 = blobs.get("conv1_w")
    is_2d = conv1 is not None and conv1.ndim == 4
    per_stage: dict[int, dict[int, int]] = {}
    for name, arr in blobs.items():
        m = _BLOCK.fullmatch(name)
        if m:
            kt = int(arr.shape[2]) if arr.ndim == 5 else 1
            per_stage.setdefault(int(m.group(1)), {})[int(m.group(2))] = (kt - 1) // 2
    depth = None
    temporal = None
    if all(s in per_stage for s in (2, 3, 4, 5)):
        counts = [max(per_stage[s]) + 1 for s in (2, 3, 4, 5)]
        depths: dict[tuple[int, ...], int] = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101}
        depth = depths.get(tuple(counts))
        temporal = tuple(
            tuple(per_stage[s].get(i, -1) for i in range(counts[k]))
            for k, s in enumerate((2, 3, 4, 5))
        )
    conv1_t = None
    if conv1 is not None:
        conv1_t = (int(conv1.shape[2]) - 1) // 2 if conv1.ndim == 5 else 0
    positions: dict[str, list[int]] = {}
    for name in blobs:
        m = _NONLOCAL.fullmatch(name)
        if m:
            positions.setdefault(f"res{m.group(1)}", []).append(int(m.group(2)))
    after = tuple((s, tuple(sorted(positions[s]))) for s in STAGE_NAMES if s in positions)
    pred = blobs.get("pred_w")
    return BlobFacts(
        is_2d=is_2d,
        depth=depth,
        temporal=temporal,
        conv1_temporal=conv1_t,
        norm="bn" if "res_conv1_bn_rm" in blobs else "affine",
        nonlocal_after=after,
        nonlocal_bn=any(n.startswith("nonlocal_conv") and "_bn_" in n for n in blobs),
        num_classes=int(pred.shape[0]) if pred is not None else None,
    )


def _fits(arch: ArchSpec, facts: BlobFacts) -> bool:
    if arch.is_2d != facts.is_2d or arch.depth != facts.depth or arch.norm != facts.norm:
        return False
    if not facts.is_2d and (
        arch.temporal_convs != facts.temporal or arch.conv1_temporal != facts.conv1_temporal
    ):
        return False
    ours = tuple((s, i) for s, i in arch.nonlocal_after if i)
    if ours != facts.nonlocal_after:
        return False
    return not (arch.has_nonlocal and arch.nonlocal_block.use_bn != facts.nonlocal_bn)


def _with_classes(arch: ArchSpec, num_classes: int | None) -> ArchSpec:
    if num_classes is None or num_classes == arch.num_classes:
        return arch
    return dataclasses.replace(arch, num_classes=num_classes)


def candidates_from_blobs(blobs: Mapping[str, np.ndarray]) -> list[ArchSpec]:
    """Zoo architectures whose blobs look like these (stem and clip length aside)."""
    facts = blob_facts(blobs)
    return [get_arch(n) for n in arch_names() if _fits(get_arch(n), facts)]


@dataclass(frozen=True)
class NetFacts:
    """What a Caffe2 predict_net says about the network."""

    stem: str | None
    pool5_temporal: int | None
    grouped: bool
    head: str | None  # "clip" (FC) or "fully_conv"


def net_facts(net: Any) -> NetFacts:
    """Read the stem, the pool5 kernel, grouping and the head off a predict NetDef."""
    stem = pool5 = head = None
    grouped = False
    for op in net.op:
        args = arg_dict(op)
        outs = list(op.output)
        if op.type == "MaxPool" and outs and outs[0] == "pool1":
            kernels = args.get("kernels") or []
            if kernels:
                stem = "org" if kernels[0] == 2 else "short"
        elif op.type == "AveragePool" and outs and outs[0] == "pool5":
            kernels = args.get("kernels") or []
            pool5 = int(kernels[0]) if kernels else None
        elif op.type == "Transpose" and outs and outs[0].startswith("res3_"):
            grouped = True
        elif outs and outs[0] == "pred":
            head = "clip" if op.type == "FC" else "fully_conv"
    return NetFacts(stem, pool5, grouped, head)


def _fits_net(arch: ArchSpec, facts: NetFacts) -> bool:
    if facts.stem is not None and arch.stem != facts.stem:
        return False
    if facts.pool5_temporal is not None and arch.pool5_temporal_kernel != facts.pool5_temporal:
        return False
    return bool(arch.nonlocal_block.grouped_stages) == facts.grouped or not arch.has_nonlocal


def filename_conflict(path: str | Path, arch: ArchSpec, inflate: bool = False) -> str | None:
    """A warning when the architecture chosen contradicts the released file name of `path`
    (``i3d_nonlocal_8x8_IN_pretrain_400k.pkl`` converted as ``i3d_nonlocal_32x2``): the blobs
    of two clip lengths are the same, so only the name tells. None when they agree."""
    named = arch_from_filename(path)
    if named is None or named.name == arch.name or (named.is_2d and inflate):
        return None
    return (f"{Path(path).name}: the file name names {named.name}, but the architecture given "
            f"is {arch.name} (the weights fit both: is the name or the choice wrong?)")


def resolve_arch(
    path: str | Path,
    blobs: Mapping[str, np.ndarray],
    arch_name: str | None = None,
    predict_net: Any | None = None,
    inflate: bool = False,
) -> tuple[ArchSpec, str]:
    """The architecture of a checkpoint and how it was chosen (for the user to read)."""
    facts = blob_facts(blobs)
    if arch_name:
        arch = get_arch(arch_name)
        if arch.is_2d:
            raise ArchitectureError(
                f"{path}: {option('arch')} {arch.name} is a 2D ImageNet network; choose a video "
                "architecture"
            )
        return (_with_classes(arch, None if inflate else facts.num_classes),
                f"given by {option('arch').rstrip('=')}")
    named = arch_from_filename(path)
    if named is not None and not (named.is_2d and inflate):
        if named.is_2d:
            raise ArchitectureError(
                f"{path}: {named.name} is a 2D ImageNet checkpoint: pass {option('inflate')} and "
                f"{option('arch')} <video architecture> to inflate it"
            )
        return _with_classes(named, facts.num_classes), f"file name names {named.name}"
    if facts.is_2d:
        raise ArchitectureError(
            f"{path}: the blobs are a 2D ImageNet network (4-D conv1_w): pass "
            f"{option('inflate')} and {option('arch')} <video architecture> to inflate it"
        )
    found = candidates_from_blobs(blobs)
    if predict_net is not None:
        nf = net_facts(predict_net)
        found = [a for a in found if _fits_net(a, nf)]
        how = "predict_net and blobs"
    else:
        how = "blobs"
    if len(found) == 1:
        arch = _with_classes(found[0], facts.num_classes)
        return arch, f"inferred from the {how} ({facts.describe()})"
    if not found:
        raise ArchitectureError(
            f"{path}: no zoo architecture has these blobs ({facts.describe()}); "
            f"pass {option('arch')} NAME (see `nlconvert info --list-archs`)"
        )
    names = ", ".join(a.name for a in found)
    raise ArchitectureError(
        f"{path}: the {how} fit several architectures ({names}); the stem and clip length "
        f"are not in the weights: pass {option('arch')} with one of them"
    )
