"""Evaluation lists: the official ``vallist.txt`` and the Kinetics CSV, resolved to files.

``vallist.txt``: ``<path> <label index>`` per line (the official paths are absolute paths of
the authors' cluster, ``.../val_256/<class_dir>/<youtube_id>.mp4``). Kinetics CSV:
``label,youtube_id,time_start,time_end,split`` with a header. Downloaded Kinetics files are
named ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` (the ActivityNet crawler) or
``<youtube_id>.<ext>`` (the official lists), inside a folder per class whose name keeps its
spaces or has them replaced by underscores (the official gen_py_list.py), or all in one folder.
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..errors import NLConvertError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".flv", ".3gp", ".mpg")
_STEM_RE = re.compile(r"^(?P<yid>[A-Za-z0-9_-]{11})(?:_(?P<start>\d+)_(?P<end>\d+))?$")


@dataclass(frozen=True)
class Entry:
    """One listed video: `key` identifies it in the results (the list's own spelling)."""

    position: int  # line order in the list, 0-based
    key: str
    label: int
    path: str | None  # resolved file, or None if not found


class ListError(NLConvertError):
    """An evaluation list cannot be read."""


def _norm_label(label: str) -> str:
    return label.strip().strip('"').replace("_", " ").lower()


class FileIndex:
    """Video files under a root folder, found once by walking it, looked up by YouTube id."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_id: dict[str, list[Path]] | None = None

    @property
    def by_id(self) -> dict[str, list[Path]]:
        """Files by YouTube id (the walk happens on first use)."""
        if self._by_id is None:
            self._by_id = self._walk()
        return self._by_id

    def _walk(self) -> dict[str, list[Path]]:
        by_id: dict[str, list[Path]] = defaultdict(list)
        if not self.root.is_dir():
            return by_id
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                p = Path(dirpath) / name
                if p.suffix.lower() not in VIDEO_EXTENSIONS:
                    continue
                m = _STEM_RE.match(p.stem)
                if m:
                    by_id[m.group("yid")].append(p)
        return by_id

    def find(self, yid: str, label: str | None, start: int | None, end: int | None) -> Path | None:
        """Best file for a YouTube id: class folder and time span if they match."""
        found = self.by_id.get(yid, [])
        if not found:
            return None

        def rank(p: Path) -> tuple[int, int, str]:
            m = _STEM_RE.match(p.stem)
            times_ok = 0
            if m and m.group("start") is not None and start is not None:
                times_ok = 0 if (int(m.group("start")), int(m.group("end"))) == (start, end) else 2
            in_class = 0 if label is not None and _norm_label(p.parent.name) == label else 1
            return times_ok, in_class, str(p)

        return sorted(found, key=rank)[0]


def _resolve_listed(path_text: str, root: Path, index: FileIndex) -> Path | None:
    p = Path(path_text)
    candidates = [p] if p.is_absolute() else [root / p, p]
    parts = p.parts
    if len(parts) >= 2:
        candidates.append(root / parts[-2] / parts[-1])
    candidates.append(root / p.name)
    for c in candidates:
        if c.is_file():
            return c
    # same name with another extension (.mkv/.webm downloads listed as .mp4)
    for c in candidates[-2:]:
        if c.parent.is_dir():
            for ext in VIDEO_EXTENSIONS:
                alt = c.with_suffix(ext)
                if alt.is_file():
                    return alt
    m = _STEM_RE.match(p.stem)
    return index.find(m.group("yid"), None, None, None) if m else None


def read_list(
    list_path: str | Path, root: str | Path | None, class_names: list[str] | None = None,
    *, labels: bool = True,
) -> list[Entry]:
    """Entries of a vallist.txt or Kinetics CSV, with files resolved under `root`.

    With ``labels=False`` (feature extraction) a line may also be a bare path; its label is -1.
    """
    lp = Path(list_path)
    if not lp.is_file():
        raise ListError(f"{lp}: no such list file")
    text = lp.read_text(encoding="utf-8", errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ListError(f"{lp}: empty list")
    base = Path(root) if root else lp.parent
    index = FileIndex(base)
    if lines[0].lower().replace(" ", "").startswith("label,youtube_id"):
        return _read_csv(lp, lines, index, class_names)
    entries = []
    for n, line in enumerate(lines):
        fields = line.strip().rsplit(None, 1)
        labelled = len(fields) == 2 and fields[1].lstrip("-").isdigit()
        if not labelled and labels:
            raise ListError(f"{lp}:{n + 1}: expected '<path> <label index>', got {line!r}")
        listed = fields[0] if labelled else line.strip()
        path = _resolve_listed(listed, base, index)
        entries.append(Entry(n, listed, int(fields[1]) if labelled else -1,
                             str(path) if path else None))
    return entries


def expand_inputs(inputs: list[str | Path]) -> list[tuple[Path, Path | None]]:
    """Video files as given and the video files under given folders (recursively, sorted),
    each with the folder it was found under (None for a file given directly)."""
    out: list[tuple[Path, Path | None]] = []
    for text in inputs:
        p = Path(text)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*")
                           if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                raise ListError(f"{p}: no video files in this folder")
            out.extend((f, p) for f in found)
        else:
            out.append((p, None))
    return out


def _read_csv(
    lp: Path, lines: list[str], index: FileIndex, class_names: list[str] | None
) -> list[Entry]:
    if class_names is None:
        from ..arch.classes import kinetics400_names

        class_names = list(kinetics400_names())
    ids = {_norm_label(n): i for i, n in enumerate(class_names)}
    entries = []
    reader = csv.DictReader(lines)
    for n, row in enumerate(reader):
        try:
            label = _norm_label(row["label"])
            yid = row["youtube_id"].strip()
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except (KeyError, TypeError, ValueError):
            raise ListError(f"{lp}:{n + 2}: bad Kinetics CSV row {row}") from None
        if label not in ids:
            raise ListError(f"{lp}:{n + 2}: unknown class {row['label']!r}")
        path = index.find(yid, label, start, end)
        key = f"{yid}_{start:06d}_{end:06d}"
        entries.append(Entry(n, key, ids[label], str(path) if path else None))
    return entries
