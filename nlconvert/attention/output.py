"""The output folder of ``nlconvert attention``: arrays, pictures, ``index.html``, ``attention.json``.

Layout of ``DIR``:

* ``<block>.npy``: the block's weights, float32, exactly as :mod:`.maps` describes;
* ``<block>_q<t>_<y>_<x>.png``: one picture per block and query (:mod:`.pictures`);
* ``attention.json``: the input, the backend, and for each block its Caffe2 blob, shape,
  grids, groups, array file, and each query with its entropy and picture;
* ``index.html``: every picture with its block, query and entropy.

The folder is written beside its final place and renamed into it when complete: a crash
leaves no half-written ``DIR``; an existing ``DIR`` is replaced only with ``force``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_folder
from .maps import ATTENTION_BACKEND, BlockAttention, Query
from .pictures import clip_frames, render_query, require_pillow, save_png

MANIFEST = "attention.json"
INDEX = "index.html"
#: Queries drawn per block when none are given: the most concentrated ones.
DEFAULT_QUERIES = 3


def picture_name(block: str, query: Query) -> str:
    """The file name of a block's picture for `query`."""
    return f"{block}_q{query.t}_{query.y}_{query.x}.png"


def choose_queries(att: BlockAttention, given: list[Query], *, sample: int = 0
                   ) -> tuple[list[Query], str]:
    """The queries to draw for `att` and how they were chosen (given ones are checked)."""
    if given:
        for q in given:
            att.check_query(q)
        return list(dict.fromkeys(given)), "given (--query)"
    return (att.informative_queries(DEFAULT_QUERIES, sample),
            f"the {DEFAULT_QUERIES} queries with the lowest entropy (most concentrated attention)")


def write_attention(out: str | Path, clip: np.ndarray, blocks: dict[str, BlockAttention], *,
                    queries: list[Query] | None = None, sample: int = 0,
                    source: dict[str, Any] | None = None, force: bool = False) -> dict[str, Any]:
    """Write ``DIR`` (see the module doc) for `blocks` recorded on `clip` (N x 3 x T x H x W,
    normalised); pictures of clip `sample`. Returns the manifest written to attention.json."""
    require_pillow()  # before any work
    chosen = {name: choose_queries(att, queries or [], sample=sample)
              for name, att in blocks.items()}  # checked before anything is written
    frames = clip_frames(clip[sample])
    manifest: dict[str, Any] = {
        "input": {**(source or {}), "shape": list(clip.shape), "pictures_of_clip": sample},
        "backend": ATTENTION_BACKEND,
        "blocks": [],
    }
    with atomic_folder(Path(out), force) as tmp:
        for name, att in blocks.items():
            array_file = f"{name}.npy"
            np.save(tmp / array_file, np.ascontiguousarray(att.weights, dtype=np.float32))
            entropy = att.entropy(sample)
            picked, how = chosen[name]
            entries = []
            for q in picked:
                picture = picture_name(name, q)
                save_png(render_query(att, q, frames, sample=sample), tmp / picture)
                row, column = att.locate(q, sample)
                entries.append({"t": q.t, "y": q.y, "x": q.x, "row": row, "query_index": column,
                                "entropy": round(float(entropy[q.t, q.y, q.x]), 6),
                                "picture": picture})
            manifest["blocks"].append({
                "name": name, "module": att.module, "caffe2_blob": att.caffe2_blob,
                "file": array_file, "shape": list(att.weights.shape), "dtype": "float32",
                "query_grid": list(att.grid), "key_grid": list(att.key_grid),
                "groups": att.groups, "softmax": att.softmax,
                "max_entropy": round(att.max_entropy(), 6),
                "queries_chosen": how, "queries": entries,
            })
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        (tmp / INDEX).write_text(index_html(manifest))
    return manifest


def index_html(manifest: dict[str, Any]) -> str:
    """The page showing every picture with its block, query and entropy."""
    esc = html.escape
    parts = []
    for block in manifest["blocks"]:
        grid = "x".join(map(str, block["query_grid"]))
        keys = "x".join(map(str, block["key_grid"]))
        parts.append(
            f"<h2>{esc(block['name'])}</h2><p>after {esc(block['module'])}; Caffe2 blob "
            f"<code>{esc(block['caffe2_blob'])}</code>; array <a href=\"{esc(block['file'])}\">"
            f"{esc(block['file'])}</a> {esc(str(block['shape']))}; queries on a {grid} grid "
            f"(t x y x), keys {keys}; {block['groups']} group(s); queries: "
            f"{esc(block['queries_chosen'])}; uniform attention has entropy "
            f"{block['max_entropy']:.3f}</p>")
        for q in block["queries"]:
            parts.append(
                f"<figure><img src=\"{esc(q['picture'])}\" alt=\"{esc(block['name'])} query\">"
                f"<figcaption>{esc(block['name'])}, query t={q['t']} y={q['y']} x={q['x']}, "
                f"entropy {q['entropy']:.3f} nats</figcaption></figure>")
    source = esc(json.dumps(manifest["input"]))
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Non-local attention</title>
<style>body{{font-family:sans-serif;margin:2em}} img{{max-width:100%}}
figure{{margin:1em 0}} code{{background:#eee}}</style></head><body>
<h1>Non-local attention</h1>
<p>Input: <code>{source}</code>; computed by {esc(manifest['backend'])}. Each picture shows the
clip's frames (one per time step of the block), the query (circle) and its attention over
every position as a heat map (one colour scale per picture).</p>
{''.join(parts)}
</body></html>
"""
