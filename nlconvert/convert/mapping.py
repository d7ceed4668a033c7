"""Map Caffe2 blobs onto the PyTorch NL-ResNet with the table ``weights_map/caffe2_blobs.toml``.

Loading is strict: every parameter and buffer of the model is filled, every weight blob is
used, every shape is checked. Errors name the file, the blob, and the expected and found
shapes. :func:`format_table` prints what went where, grouped, as Detectron2's loader does.
The names are the table's; this module adds the loading rules (shapes, inflation, ignored
blobs) and knows none.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ..errors import MappingError, option
from ..keymap import KeyRule, KeyTable, load_table

#: The table of Caffe2 blob names (``weights_map/``).
BLOB_TABLE = "caffe2_blobs.toml"


@dataclass(frozen=True)
class Rule:
    """One blob-name template and the parameter-name template it maps to."""

    key: KeyRule

    @property
    def group(self) -> str:
        return str(self.key.get("group", ""))

    @property
    def inflate(self) -> bool:  # a conv weight that --inflate may repeat along time
        return bool(self.key.get("inflate", False))

    @property
    def squeeze(self) -> bool:  # trailing 1-sized dims of the blob may be dropped (pred_w as a conv)
        return bool(self.key.get("squeeze", False))


@dataclass(frozen=True)
class RuleSet:
    """The blob table and its ``[ignored]`` section."""

    table: KeyTable
    ignored_suffixes: dict[str, str]
    ignored_names: dict[str, str]

    def blob_to_param(self, blob: str) -> tuple[Rule, str] | None:
        """The rule and parameter name for a blob, or None if no rule matches."""
        found = self.table.to_right(blob)
        return (Rule(found[0]), found[1]) if found else None

    def param_to_blob(self, param: str) -> str | None:
        """The Caffe2 blob name a parameter is loaded from."""
        found = self.table.to_left(param)
        return found[1] if found else None

    def ignore_reason(self, blob: str) -> str | None:
        """Why a blob is not a parameter (optimizer state, counters), or None."""
        if blob in self.ignored_names:
            return self.ignored_names[blob]
        for suffix, why in self.ignored_suffixes.items():
            if blob.endswith(suffix):
                return why
        return None


@lru_cache(maxsize=1)
def load_rules() -> RuleSet:
    """The rule set of ``weights_map/caffe2_blobs.toml``."""
    table = load_table(BLOB_TABLE)
    ignored = table.extra.get("ignored", {})
    return RuleSet(table, dict(ignored.get("suffix", {})), dict(ignored.get("names", {})))


@dataclass
class MappedBlob:
    """One row of the mapping table."""

    group: str
    blob: str
    param: str
    shape: tuple[int, ...]
    note: str = ""
    initialised: str = ""  # not read from the file: how it was initialised ("N(0, 0.01)")


@dataclass
class MappingResult:
    """The state dict built from the blobs, and what went where."""

    state_dict: dict[str, torch.Tensor]
    rows: list[MappedBlob] = field(default_factory=list)

    def initialised(self) -> dict[str, str]:
        """Blobs that were not in the file, with how each was initialised."""
        return {r.blob: r.initialised for r in self.rows if r.initialised}

    def from_file(self) -> int:
        """How many tensors were read from the file."""
        return sum(1 for r in self.rows if not r.initialised)


def _group_name(rule: Rule, param: str) -> str:
    return load_rules().table.fill_field(rule.key, "group", param)


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    if array.dtype != np.float32:
        array = array.astype(np.float32)
    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array).copy()
    return torch.from_numpy(array)


def _fit_shape(
    blob: str, param: str, array: np.ndarray, want: tuple[int, ...], rule: Rule, inflate: bool,
    source: str,
) -> tuple[np.ndarray, str]:
    have = tuple(array.shape)
    if have == want:
        return array, ""
    if rule.squeeze and len(have) > len(want) and have[: len(want)] == want \
            and all(d == 1 for d in have[len(want):]):
        return array.reshape(want), f"reshaped {have} -> {want}"
    if inflate and rule.inflate and len(have) == 4 and len(want) == 5 \
            and have[:2] == want[:2] and have[2:] == want[3:]:
        kt = want[2]
        # Official inflation: repeat the 2D kernel kt times along time and divide by kt.
        inflated = np.repeat(array[:, :, None], kt, axis=2) / np.float32(kt)
        return inflated.astype(np.float32), f"inflated {have} -> {want}"
    hint = " (a 2D ImageNet checkpoint? pass --inflate)" if len(have) == 4 and len(want) == 5 else ""
    raise MappingError(
        f"{source}: blob '{blob}' has shape {have}, expected {want} for '{param}'{hint}"
    )


def map_blobs(
    blobs: Mapping[str, np.ndarray],
    target: Mapping[str, torch.Tensor],
    source: str,
    arch_name: str,
    inflate: bool = False,
    init_missing: Mapping[str, tuple[torch.Tensor, str]] | None = None,
    *,
    skip_head: bool = False,
) -> MappingResult:
    """Build a state dict for `target` (name -> tensor, shapes only are read) from `blobs`.

    Strict: a blob that matches no rule, a blob with no place in the architecture, a wrong
    shape, or a parameter with no blob raises :class:`MappingError`. With `inflate`, 2D conv
    weights are repeated along time. Parameters missing from the file are taken from
    `init_missing` (parameter -> (tensor, how): the official initialisation of the ones a
    caller allows to be missing), reported in the table. `skip_head`: the file's classifier
    is not read (a new one replaces it).
    """
    rules = load_rules()
    state: dict[str, torch.Tensor] = {}
    rows: list[MappedBlob] = []
    for blob, array in blobs.items():
        found = rules.blob_to_param(blob)
        if found is None:
            why = rules.ignore_reason(blob)
            if why:
                continue
            raise MappingError(
                f"{source}: blob '{blob}' is not a parameter of any video-nonlocal-net network"
            )
        rule, param = found
        if skip_head and rule.group == "head":
            continue
        if param not in target:
            if inflate and rule.group == "head":
                continue  # the classifier of a 2D ImageNet checkpoint is not transferred
            raise MappingError(
                f"{source}: blob '{blob}' has no place in architecture {arch_name} "
                f"(it would load '{param}'); is this the right {option('arch')}?"
            )
        want = tuple(target[param].shape)
        if inflate and rule.group == "head" and tuple(array.shape) != want:
            continue  # official trainer: an unmatching classifier is not loaded
        fitted, note = _fit_shape(blob, param, np.asarray(array), want, rule, inflate, source)
        state[param] = _as_tensor(fitted)
        rows.append(MappedBlob(_group_name(rule, param), blob, param, want, note))
    missing = [p for p in target if p not in state]
    if missing and init_missing is not None:
        for p in list(missing):
            if p in init_missing:
                tensor, how = init_missing[p]
                state[p] = tensor
                blob = rules.param_to_blob(p) or "?"
                found = rules.blob_to_param(blob)
                group = _group_name(found[0], p) if found else "?"
                rows.append(MappedBlob(group, blob, p, tuple(tensor.shape),
                                       f"not in file: official initialisation, {how}", how))
        missing = [p for p in target if p not in state]
    if missing:
        names = [rules.param_to_blob(p) or p for p in missing]
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        raise MappingError(
            f"{source}: blob '{names[0]}' is missing (needed by {arch_name} for "
            f"'{missing[0]}'); also missing: {', '.join(names[1:3]) or 'nothing else'}{more}"
        )
    return MappingResult(state, rows)


def blobs_from_state_dict(state_dict: Mapping[str, torch.Tensor], source: str
                          ) -> dict[str, np.ndarray]:
    """The Caffe2 blobs of a converted state dict (the rules run backwards; float32 numpy)."""
    rules = load_rules()
    blobs: dict[str, np.ndarray] = {}
    for param, tensor in state_dict.items():
        blob = rules.param_to_blob(param)
        if blob is None:
            raise MappingError(f"{source}: parameter '{param}' has no Caffe2 blob")
        blobs[blob] = tensor.detach().cpu().float().contiguous().numpy()
    return blobs


def format_table(result: MappingResult) -> str:
    """A grouped, aligned table of blob -> parameter with shapes (like Detectron2's loader)."""
    lines = []
    width_blob = max((len(r.blob) for r in result.rows), default=4)
    width_param = max((len(r.param) for r in result.rows), default=5)
    current = None
    for r in sorted(result.rows, key=lambda r: (_group_order(r.group), r.param)):
        if r.group != current:
            current = r.group
            count = sum(1 for x in result.rows if x.group == current)
            lines.append(f"[{current}] {count} blobs")
        shape = "x".join(str(d) for d in r.shape) or "scalar"
        note = f"  ({r.note})" if r.note else ""
        lines.append(f"  {r.blob:<{width_blob}} -> {r.param:<{width_param}} {shape}{note}")
    return "\n".join(lines)


def _group_order(group: str) -> tuple[int, str]:
    order = ["stem", "res2", "res3", "res4", "res5", "nonlocal", "head"]
    return (order.index(group) if group in order else len(order), group)


def recorded_initialised(provenance: Mapping[str, Any]) -> dict[str, str]:
    """A model file's record of the tensors it was not given (blob or pattern -> how); a
    file whose record is not such a mapping still reads, as one entry."""
    recorded = provenance.get("initialised")
    if isinstance(recorded, Mapping):
        return {str(k): str(v) for k, v in recorded.items()}
    return {"*": str(recorded)} if recorded else {}


def describe_initialised(initialised: Mapping[str, str]) -> list[str]:
    """Lines saying which blobs were not in the file and how they were initialised, grouped
    by blob pattern (digits as ``*``): ``nonlocal_conv*_*_theta_w (5): N(0, 0.01)``."""
    if not initialised:
        return []
    groups: dict[tuple[str, str], int] = {}
    for blob, how in initialised.items():
        key = (re.sub(r"\d+", "*", blob), how)
        groups[key] = groups.get(key, 0) + 1
    lines = [f"initialised {len(initialised)} blobs that are not in the file "
             "(official initialisation):"]
    lines += [f"  {pattern} ({n}): {how}" for (pattern, how), n in sorted(groups.items())]
    return lines
