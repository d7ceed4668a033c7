"""The model zoo: named architectures and released checkpoints, read from ``nlconvert/data/zoo.toml``."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ArchitectureError
from .spec import STAGE_NAMES, ArchSpec, NonLocalSpec

# A released file name is the architecture name plus a tail such as `_IN_pretrain_400k`.
_RELEASE_TAIL = re.compile(r"^(?P<arch>.+?)_(?:IN|I3D)_pretrain_[0-9a-z_]+$")


@dataclass(frozen=True)
class ZooCheckpoint:
    """One released file of the zoo and the accuracy published for it (30-view, Kinetics val)."""

    file: str
    arch: str
    top1: float | None = None
    top5: float | None = None
    url: str = ""  # where the official file was published (an archive for the 2D checkpoints)


def _read_table() -> dict[str, Any]:
    text = resources.files("nlconvert").joinpath("data/zoo.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _spec_from_entry(entry: dict[str, Any], table: dict[str, Any]) -> ArchSpec:
    depth = int(entry["depth"])
    family = str(entry["family"])
    temporal = table["temporal"][f"{family}_r{depth}"]
    kind = entry.get("nonlocal", "none")
    if kind not in ("none", "standard", "grouped"):
        raise ArchitectureError(f"zoo entry {entry['name']}: unknown nonlocal kind {kind!r}")
    after: tuple[tuple[str, tuple[int, ...]], ...] = ()
    nl = NonLocalSpec()
    if kind != "none":
        positions = table["nonlocal_positions"][f"r{depth}"]
        after = tuple((s, tuple(positions[s])) for s in STAGE_NAMES if s in positions)
    if kind == "grouped":
        nl = NonLocalSpec(use_bn=False, group_size=4, grouped_stages=("res3",))
    return ArchSpec(
        name=str(entry["name"]),
        depth=depth,
        stem=entry["stem"],
        conv1_temporal=int(temporal["conv1"]),
        temporal_convs=tuple(tuple(int(u) for u in s) for s in temporal["blocks"]),
        norm=entry["norm"],
        nonlocal_after=after,
        nonlocal_block=nl,
        num_classes=int(entry.get("num_classes", 400)),
        frames=int(entry["frames"]),
        sample_rate=int(entry["sample_rate"]),
        is_2d=bool(entry.get("is_2d", False)),
        family=family,
    )


@lru_cache(maxsize=1)
def _zoo() -> tuple[dict[str, ArchSpec], dict[str, ZooCheckpoint]]:
    table = _read_table()
    release = table["release"]
    archs: dict[str, ArchSpec] = {}
    files: dict[str, ZooCheckpoint] = {}
    for entry in table["arch"]:
        spec = _spec_from_entry(entry, table)
        archs[spec.name] = spec
        for ck in entry.get("checkpoints", []):
            url = (release["imagenet_archive"] if spec.is_2d
                   else f"{release['base_url']}{ck['file']}.pkl")
            files[ck["file"]] = ZooCheckpoint(ck["file"], spec.name, ck.get("top1"),
                                              ck.get("top5"), url)
    return archs, files


def arch_names() -> list[str]:
    """Names of every architecture in the zoo table."""
    return list(_zoo()[0])


def released_checkpoints() -> list[ZooCheckpoint]:
    """Every released checkpoint file of the zoo table."""
    return list(_zoo()[1].values())


def get_arch(name: str) -> ArchSpec:
    """The :class:`ArchSpec` called `name` (an architecture or a released file name)."""
    archs, files = _zoo()
    if name in archs:
        return archs[name]
    if name in files:
        return archs[files[name].arch]
    raise ArchitectureError(
        f"unknown architecture {name!r}; known: {', '.join(archs)}"
    )


def arch_from_filename(path: str | Path) -> ArchSpec | None:
    """The architecture a file is named after (in any directory), or None.

    Accepts an architecture name (``r101_i3d_nonlocal_8x8.pkl``), a released file name
    (``i3d_baseline_8x8_IN_pretrain_600k_4gpu.pkl``), or an architecture with a release-style
    tail. Extensions and the ``_init_net``/``_predict_net`` suffixes of pb pairs are ignored.
    """
    archs, files = _zoo()
    stem = Path(path).name
    for ext in (".pkl", ".pickle", ".pb", ".pt", ".pth", ".safetensors", ".onnx"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    for suffix in ("_init_net", "_predict_net"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    if stem in archs:
        return archs[stem]
    if stem in files:
        return archs[files[stem].arch]
    m = _RELEASE_TAIL.match(stem)
    if m and m.group("arch") in archs:
        return archs[m.group("arch")]
    return None


def published_accuracy(arch_name: str) -> list[ZooCheckpoint]:
    """Published 30-view results of the released checkpoints of an architecture."""
    return [c for c in _zoo()[1].values() if c.arch == arch_name]
