"""Read a weight-name table of ``weights_map/`` and apply it, both ways.

A table is TOML (see ``weights_map/README.md``): ``[table]`` names its two sides (``left``
and ``right``, e.g. ``blob`` and ``param``); ``[[rule]]`` entries give a template for each
side, where ``{name}`` is a placeholder matched by the regular expression of
``[placeholders]`` (left-side spelling) and, where the two sides spell it differently,
translated by ``[values.<name>]`` (left spelling -> right spelling). Any other field of a
rule is carried as-is for the caller (``group``, ``inflate``, ``module``...). The first
matching rule wins. Nothing here knows a weight name: the tables do.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from ..errors import MappingError

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
#: The folder of the tables: top-level ``weights_map/`` (installed beside ``nlconvert``).
TABLES_PACKAGE = "weights_map"


@dataclass(frozen=True)
class KeyRule:
    """One rule: a template on each side, their compiled patterns, and the rule's other fields."""

    left: str
    right: str
    left_re: re.Pattern[str]
    right_re: re.Pattern[str]
    fields: Mapping[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        """A field of the rule other than the two templates (``group``, ``inflate``...)."""
        return self.fields.get(name, default)


def compile_template(template: str, patterns: Mapping[str, str]) -> re.Pattern[str]:
    """A template such as ``res{stage}_{block}_w`` as a regular expression with named groups
    (a placeholder used twice must match the same text twice)."""
    out, pos, seen = [], 0, set()
    for m in _PLACEHOLDER.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        name = m.group(1)
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>{patterns[name]})")
        seen.add(name)
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


@dataclass(frozen=True)
class KeyTable:
    """A loaded table: rules and the placeholder translations, applied left->right or back."""

    name: str
    left_side: str
    right_side: str
    rules: tuple[KeyRule, ...]
    values: Mapping[str, Mapping[str, str]]  # placeholder -> left spelling -> right spelling
    extra: Mapping[str, Any]  # the table's other top-level sections, for its caller

    def _fill(self, template: str, groups: Mapping[str, str], to_right: bool) -> str:
        def sub(m: re.Match[str]) -> str:
            key, val = m.group(1), groups[m.group(1)]
            table = self.values.get(key)
            if table is None:
                return val
            if to_right:
                return table[val]
            return {v: k for k, v in table.items()}[val]

        return _PLACEHOLDER.sub(sub, template)

    def to_right(self, name: str) -> tuple[KeyRule, str] | None:
        """The first rule whose left template matches `name`, and the right-side name."""
        for rule in self.rules:
            m = rule.left_re.fullmatch(name)
            if m:
                return rule, self._fill(rule.right, m.groupdict(), to_right=True)
        return None

    def to_left(self, name: str) -> tuple[KeyRule, str] | None:
        """The first rule whose right template matches `name`, and the left-side name."""
        for rule in self.rules:
            m = rule.right_re.fullmatch(name)
            if m:
                return rule, self._fill(rule.left, m.groupdict(), to_right=False)
        return None

    def fill_field(self, rule: KeyRule, field: str, name: str) -> str:
        """A rule's extra template field (e.g. ``group = "res{stage}"``) filled from a
        right-side `name` the rule matches (placeholders in right-side spelling)."""
        m = rule.right_re.fullmatch(name)
        return _PLACEHOLDER.sub(lambda g: m.group(g.group(1)) if m else "?", str(rule.get(field, "")))


def tables_dir() -> Traversable:
    """Where the tables are: ``weights_map/`` beside the ``nlconvert`` package (a source
    checkout, or site-packages after ``pip install``, which ships it as the data package
    ``weights_map``), else wherever that package is importable from."""
    here = Path(__file__).resolve().parents[2] / TABLES_PACKAGE
    if here.is_dir():
        return here
    try:
        return resources.files(TABLES_PACKAGE)
    except ModuleNotFoundError:
        raise MappingError(
            f"the weight-name tables ({TABLES_PACKAGE}/) are not installed; reinstall nlconvert"
        ) from None


@cache
def load_table(filename: str) -> KeyTable:
    """Load ``weights_map/<filename>`` (cached)."""
    path = tables_dir().joinpath(filename)
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        head = data["table"]
        left, right = str(head["left"]), str(head["right"])
        placeholders: dict[str, str] = dict(data.get("placeholders", {}))
        values: dict[str, dict[str, str]] = {k: dict(v) for k, v in data.get("values", {}).items()}
        # On the right side a placeholder with a value table matches the translated words.
        right_patterns = {
            k: "|".join(re.escape(v) for v in values[k].values()) if k in values else p
            for k, p in placeholders.items()
        }
        rules = tuple(
            KeyRule(
                left=r[left], right=r[right],
                left_re=compile_template(r[left], placeholders),
                right_re=compile_template(r[right], right_patterns),
                fields={k: v for k, v in r.items() if k not in (left, right)},
            )
            for r in data["rule"]
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, re.error) as exc:
        raise MappingError(f"{path}: not a readable weight-name table ({exc})") from exc
    extra = {k: v for k, v in data.items() if k not in ("table", "placeholders", "values", "rule")}
    return KeyTable(filename, left, right, rules, values, extra)
